package detect

import (
	"math"
	"time"

	"github.com/telescope-dev/telescope/packet"
)

// flowKey identifies a udp_then_syn flow: one source to one dark ip:port.
type flowKey struct {
	Src, Dst packet.Addr
	Port     uint16
}

func hashFlow(k *flowKey) uint64 { return flowHash(&k.Src, &k.Dst, k.Port) }

// flowHash is hashFlow of the key (src, dst, port) read in place: a flowKey built from a
// header just to be hashed was read back while its field stores were still in flight.
func flowHash(src, dst *packet.Addr, port uint16) uint64 {
	return packet.Mix64(src.Hash(seedFlow) ^ dst.Hash(seedFlow+1) ^ uint64(port))
}

// flow is the state of one flowKey, created by a UDP datagram. Until a SYN pairs with it
// the flow is "inactive"; a pairing SYN starts its episode.
type flow struct {
	First   int64 // first UDP datagram of the flow
	Last    int64 // last UDP datagram, or (once active) last UDP or SYN
	LastUDP int64
	UDP     uint32 // datagrams since First (saturating)
	SYN     uint32 // SYN probes since the pairing one (saturating)
	Kind    uint8  // 1 + index in PayloadKinds of the first dht/utp payload, 0 for none yet
	Active  bool
	Gen     uint32 // episodes this flow has started: tells a current flowRef from a stale one
}

// flowRef names a flow episode for the sweep. Refs are dropped lazily: one whose flow is
// gone, inactive, or in a later episode (Gen) is stale. No pointers: the table moves its
// entries when it grows.
type flowRef struct {
	key flowKey
	gen uint32
}

// flowUDP counts a UDP datagram: creates or refreshes its flow. A flow quiet for longer than
// the window starts over (its episode, if any, ends).
func (e *Engine) flowUDP(h *packet.Header, st *SourceState) {
	k := flowKey{Src: h.Src, Dst: h.Dst, Port: h.DstPort}
	slot, created := e.flows.TouchSlotHashed(k, flowHash(&h.Src, &h.Dst, h.DstPort))
	_, f := e.flows.At(slot)
	t := h.TS
	if !created {
		t = later(t, f.Last)
		if t-f.Last > e.window {
			if f.Active {
				e.endFlow(&k, f)
			}
			*f = flow{Gen: f.Gen} // Gen keeps telling the old episode's refs from new ones
			created = true
		}
	}
	if created {
		f.First = t
	}
	f.Last, f.LastUDP = t, t
	e.flowAt(st, h.DstPort, t)
	if f.UDP < ^uint32(0) {
		f.UDP++
	}
	if f.Kind == 0 {
		if kind := payloadKind(h); kind != payloadOther {
			f.Kind = uint8(kind) + 1
		}
	}
}

// flowSYN pairs a SYN probe with the UDP flow to the same dst ip:port when the last UDP
// datagram is at most MaxGap before it; later SYNs of an active flow count in its episode.
func (e *Engine) flowSYN(h *packet.Header, st *SourceState) {
	if !e.mayHaveFlows(h, st) {
		return // most SYN probes come from sources without a flow: no lookup
	}
	k := flowKey{Src: h.Src, Dst: h.Dst, Port: h.DstPort}
	f := e.flows.Get(k)
	if f == nil {
		return // a SYN before any UDP never pairs
	}
	t := later(h.TS, f.Last)
	if f.Active {
		if t-f.Last > e.window {
			// The episode is over and no UDP has come since: this SYN cannot pair.
			e.endFlow(&k, f)
			e.flows.Delete(k)
			return
		}
		if f.SYN < ^uint32(0) {
			f.SYN++
		}
		f.Last = t
		e.flowAt(st, h.DstPort, t)
		e.flows.Touch(k)
		return
	}
	if t-f.LastUDP > int64(e.cfg.UDPThenSYN.MaxGap) {
		return
	}
	f.Active, f.SYN, f.Last = true, 1, t
	e.flowAt(st, h.DstPort, t)
	f.Gen++
	e.flows.Touch(k)
	e.queueFlow(k, f)
	entry := e.flowEntry(&k, f)
	kind := flowPayload(f)
	e.c.UDPThenSYNSources[kind].Add(1)
	e.begin(detUDPThenSYN, kind, entry)
	e.hotPair(h)
}

// flowPayload is the flow's payload class: its first dht/utp payload, else other.
func flowPayload(f *flow) int {
	if f.Kind == 0 {
		return payloadOther
	}
	return int(f.Kind) - 1
}

func (e *Engine) flowEntry(k *flowKey, f *flow) *UDPThenSYNEntry {
	t := e.flowEntries.get()                            // zeroed; field by field (no temporary copied in)
	t.Src, t.Dst, t.Port = IP(k.Src), IP(k.Dst), k.Port // formatted when written
	t.UDPPackets, t.SYNPackets, t.Payload = uint64(f.UDP), uint64(f.SYN), PayloadKinds[flowPayload(f)]
	t.FirstSeen, t.LastSeen = Time(f.First), Time(f.Last)
	return t
}

// endFlow ends an active flow's episode; the caller deletes or resets the flow.
func (e *Engine) endFlow(k *flowKey, f *flow) {
	f.Active = false
	e.end(detUDPThenSYN, flowPayload(f), e.flowEntry(k, f))
}

// evictFlow is the flow table's eviction callback.
func (e *Engine) evictFlow(k *flowKey, f *flow) {
	e.c.Evictions.Add(1)
	if f.Active {
		e.endFlow(k, f)
	}
}

// sweepFlows ends the episodes of flows quiet for longer than the window (dropping stale
// refs), then drops the least recently used flows that can neither pair nor continue.
func (e *Engine) sweepFlows(now int64) {
	horizon := e.flowHorizon()
	e.flowTurn(now, horizon)
	for {
		_, f, ok := e.flows.Oldest()
		if !ok || f.Active || now-f.Last <= horizon {
			return
		}
		e.flows.DeleteAt(e.flows.Tail) // the oldest: no hash, no look-up
	}
}

// flowHorizon is how long after its last packet a flow can still matter: an active one
// continues for a window, an inactive one pairs for max_gap.
func (e *Engine) flowHorizon() int64 { return max(e.window, int64(e.cfg.UDPThenSYN.MaxGap)) }

// mayHaveFlows reports whether the source of SYN probe h (state st) may have a flow the
// probe can pair with or continue. Its FlowSec is the latest packet time of its flows
// while its entry lives (a flow's Last never exceeds it), so past the horizon it has none
// that matter; a source whose entry never had a flow (FlowSec 0) may have some from before
// an eviction of its entry, which marked it. The same holds per destination port
// (flowPortSec).
func (e *Engine) mayHaveFlows(h *packet.Header, st *SourceState) bool {
	if st.FlowSec != 0 {
		if !e.flowRecent(st.FlowSec, h.TS) {
			return false
		}
	} else if e.flowEvN[0]+e.flowEvN[1] == 0 {
		return false // no source was marked: no hash
	} else if i := flowEvBit(&h.Src); !hasBit(e.flowEv[0], i) && !hasBit(e.flowEv[1], i) {
		return false
	}
	// A source scanning TCP and UDP has flows, but rarely to the port it probes.
	return e.flowRecent(e.flowPortSec[h.DstPort], h.TS)
}

// flowRecent reports whether a flow whose Last was at most sec (a flowSec) may still matter
// at packet time t.
func (e *Engine) flowRecent(sec uint32, t int64) bool {
	return t-int64(sec)*int64(time.Second) <= e.flowHorizon()
}

// flowAt notes that a flow of the source of st to port moved its Last to t.
func (e *Engine) flowAt(st *SourceState, port uint16, t int64) {
	sec := flowSec(t)
	st.FlowSec = max(st.FlowSec, sec)
	if p := &e.flowPortSec[port]; *p < sec {
		*p = sec
	}
}

// flowSec is packet time t as a SourceState.FlowSec: seconds rounded up, so never before
// t; a time that does not fit (before 1970 or after 2106) gives the largest value, which
// no SYN probe is past (the lookup is always made).
func flowSec(t int64) uint32 {
	if t <= 0 || t/int64(time.Second) >= math.MaxUint32-1 {
		return math.MaxUint32
	}
	return uint32((t + int64(time.Second) - 1) / int64(time.Second))
}

const seedFlowEv = 0x5be0cd19137e2179 // not seedHotSrc: that filter marks evicted sources too

// flowEvBit is src's bit in each generation of flowEv (a filter, filter.go).
func flowEvBit(src *packet.Addr) uint32 { return filterBit(src.Hash(seedFlowEv)) }

// flowMark marks src, evicted with flows that may still matter, in the newer generation.
func (e *Engine) flowMark(src *packet.Addr) {
	if e.flowEv[1] == nil {
		e.flowEv[1] = make([]uint64, filterWords) // read by mayHaveFlows
	}
	if markFilter(&e.flowEv[0], src.Hash(seedFlowEv)) {
		e.flowEvN[0]++
	}
}

// flowTurn makes the newer generation of marks the older one, dropping the older, once a
// horizon has passed since the last turn: a mark made at time T lasts until at least
// T + horizon, the last moment its source's flows may matter.
func (e *Engine) flowTurn(now, horizon int64) {
	if e.flowEvEnd == 0 {
		e.flowEvEnd = now + horizon
	}
	if now < e.flowEvEnd {
		return
	}
	e.flowEvEnd = now + horizon
	if e.flowEvN[1] > 0 {
		clear(e.flowEv[1])
	}
	e.flowEv[0], e.flowEv[1] = e.flowEv[1], e.flowEv[0]
	e.flowEvN[0], e.flowEvN[1] = 0, e.flowEvN[0]
}
