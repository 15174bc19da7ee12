package detect

import (
	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// victim is what the backscatter detector knows about one DoS victim (the host whose
// replies reach the dark space).
type victim struct {
	First, Last int64
	Packets     uint32                 // saturating
	Kinds       [len(kindNames)]uint32 // packets per kind (saturating)
	Targets     aggregate.Distinct     // dark IPs hit
	Rate        int32                  // 1 + index of its rate window in the engine's pool (0: none), from the second packet on
	RateMet     bool                   // some sliding minute held MinRatePerMinute packets
	Attack      bool                   // an episode is active
}

// kindNames mirrors BackscatterKinds, fixing the array sizes at compile time.
var kindNames = [17]string(BackscatterKinds)

// Backscatter kind indexes (positions in BackscatterKinds).
const (
	bsSynAck = iota
	bsRst
	bsRstAck
	bsEchoReply
	bsUnreach
	bsQuench
	bsRedirect
	bsTimeExceeded
	bsParam
	bsTimestampReply
	bsInfoReply
	bsMaskReply
	bs6EchoReply
	bs6Unreach
	bs6TooBig
	bs6TimeExceeded
	bs6Param
)

// icmp4Kinds and icmp6Kinds map ICMP types to kind index + 1 (0: not backscatter).
var icmp4Kinds = [256]uint8{
	0: bsEchoReply + 1, 3: bsUnreach + 1, 4: bsQuench + 1, 5: bsRedirect + 1,
	11: bsTimeExceeded + 1, 12: bsParam + 1, 14: bsTimestampReply + 1, 16: bsInfoReply + 1,
	18: bsMaskReply + 1,
}

var icmp6Kinds = [256]uint8{
	129: bs6EchoReply + 1, 1: bs6Unreach + 1, 2: bs6TooBig + 1, 3: bs6TimeExceeded + 1,
	4: bs6Param + 1,
}

// backscatterKind returns the reply kind of h, or -1 when it is not backscatter.
func backscatterKind(h *packet.Header) int {
	if !h.L4 {
		return -1
	}
	switch h.Proto {
	case packet.ProtoTCP:
		f := h.TCPFlags & (packet.FlagSYN | packet.FlagACK | packet.FlagRST)
		switch f {
		case packet.FlagSYN | packet.FlagACK:
			return bsSynAck
		case packet.FlagRST:
			return bsRst
		case packet.FlagRST | packet.FlagACK:
			return bsRstAck
		}
	case packet.ProtoICMP:
		if h.IPVersion == 4 {
			return int(icmp4Kinds[h.ICMPType]) - 1
		}
	case packet.ProtoICMPv6:
		if h.IPVersion == 6 {
			return int(icmp6Kinds[h.ICMPType]) - 1
		}
	}
	return -1
}

// backscatter counts one reply packet for its victim: the quoted packet's destination for
// ICMP errors that quote one, else the packet's source.
func (e *Engine) backscatter(h *packet.Header) {
	kind := backscatterKind(h)
	if kind < 0 {
		return
	}
	e.bsPackets[kind]++
	key := h.Src
	if h.Inner.Valid {
		key = h.Inner.Dst
	}
	v, created := e.victims.Touch(key)
	t := h.TS
	if !created {
		t = later(t, v.Last)
		if t-v.Last > e.window {
			// Quiet for a window: the attack (if any) is over, and what follows is a new one.
			if v.Attack {
				e.endAttack(&key, v)
			}
			e.clearVictim(v)
			created = true
		}
	}
	if created {
		v.First = t
	}
	v.Last = t
	if v.Packets < ^uint32(0) {
		v.Packets++
	}
	if v.Kinds[kind] < ^uint32(0) {
		v.Kinds[kind]++
	}
	v.Targets.Add(&e.slab, h.Dst.Hash(seedDstIP))
	e.trackRate(v, t)
	cfg := &e.cfg.Backscatter
	if !v.Attack && v.RateMet && v.Packets >= uint32(max(cfg.MinPackets, 0)) &&
		v.Last-v.First >= int64(cfg.MinDuration) {
		v.Attack = true
		entry := e.victimEntry(&key, v)
		e.begin(detBackscatter, mainKind(v), entry)
	}
}

// mainKind is the victim's most frequent kind, ties broken by BackscatterKinds order.
func mainKind(v *victim) int {
	best := 0
	for i, n := range v.Kinds {
		if n > v.Kinds[best] {
			best = i
		}
	}
	return best
}

func (e *Engine) victimEntry(k *packet.Addr, v *victim) *BackscatterEntry {
	var peak uint64
	if v.Rate != 0 {
		peak = e.rate(v).Peak
	}
	return &BackscatterEntry{
		Victim:           k.String(),
		Kind:             kindNames[mainKind(v)],
		Packets:          uint64(v.Packets),
		Targets:          min(v.Targets.Count(&e.slab), uint64(v.Packets)),
		PeakRate:         peak,
		FirstSeen:        Time(v.First),
		LastSeen:         Time(v.Last),
		TargetsEstimated: !v.Targets.Exact(),
	}
}

func (e *Engine) endAttack(k *packet.Addr, v *victim) {
	v.Attack = false
	e.end(detBackscatter, mainKind(v), e.victimEntry(k, v))
}

// clearVictim returns a victim's rate window and slab block and empties it.
func (e *Engine) clearVictim(v *victim) {
	e.releaseRate(v)
	v.Targets.Reset(&e.slab)
	*v = victim{}
}

// evictVictim is the victim table's eviction callback.
func (e *Engine) evictVictim(k *packet.Addr, v *victim) {
	e.c.Evictions.Add(1)
	if v.Attack {
		e.endAttack(k, v)
	}
	e.clearVictim(v)
}

// sweepVictims ends attacks quiet for longer than the window and drops such victims,
// oldest first. The LRU order is the order of last packets (up to out-of-order packets,
// which can only delay an expiry by as much as they are late), so the sweep stops at the
// first victim still in its window.
func (e *Engine) sweepVictims(now int64) {
	for {
		k, v, ok := e.victims.Oldest()
		if !ok || now-v.Last <= e.window {
			return
		}
		if v.Attack {
			e.endAttack(k, v)
		}
		e.clearVictim(v)
		e.victims.Delete(*k)
	}
}

// endVictims ends every active attack (Finish, or the detector turned off).
func (e *Engine) endVictims() {
	e.victims.Range(func(k *packet.Addr, v *victim) bool {
		if v.Attack {
			e.endAttack(k, v)
		}
		return true
	})
}
