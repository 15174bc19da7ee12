package detect

import "github.com/telescope-dev/telescope/packet"

// flowKey identifies a udp_then_syn flow: one source to one dark ip:port.
type flowKey struct {
	Src, Dst packet.Addr
	Port     uint16
}

func hashFlow(k *flowKey) uint64 {
	return packet.Mix64(k.Src.Hash(seedFlow) ^ k.Dst.Hash(seedFlow+1) ^ uint64(k.Port))
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
func (e *Engine) flowUDP(h *packet.Header) {
	k := flowKey{Src: h.Src, Dst: h.Dst, Port: h.DstPort}
	f, created := e.flows.Touch(k)
	if created {
		e.flowAdded(&k)
	}
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
func (e *Engine) flowSYN(h *packet.Header) {
	if !hasBit(e.flowPortBits[:], uint32(h.DstPort)) || !hasBit(e.flowSrcBits[:], flowSrcBucket(&h.Src)) {
		return // no UDP flow to this port, or from this source: most SYN probes skip the lookup
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
			e.deleteFlow(k)
			return
		}
		if f.SYN < ^uint32(0) {
			f.SYN++
		}
		f.Last = t
		e.flows.Touch(k)
		return
	}
	if t-f.LastUDP > int64(e.cfg.UDPThenSYN.MaxGap) {
		return
	}
	f.Active, f.SYN, f.Last = true, 1, t
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
	t := e.flowEntries.get() // zeroed; field by field (no temporary copied in)
	t.Src, t.Dst, t.Port = k.Src.String(), k.Dst.String(), k.Port
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
	e.flowRemoved(k)
	if f.Active {
		e.endFlow(k, f)
	}
}

// sweepFlows ends the episodes of flows quiet for longer than the window (dropping stale
// refs), then drops the least recently used flows that can neither pair nor continue.
func (e *Engine) sweepFlows(now int64) {
	horizon := max(e.window, int64(e.cfg.UDPThenSYN.MaxGap))
	for {
		k, f, ok := e.flows.Oldest()
		if !ok || f.Active || now-f.Last <= horizon {
			return
		}
		e.deleteFlow(*k)
	}
}

// deleteFlow removes a flow, keeping the per-port flow counts in step.
func (e *Engine) deleteFlow(k flowKey) {
	if e.flows.Delete(k) {
		e.flowRemoved(&k)
	}
}

// flowSrcBuckets is the size of the per-source flow counts (1 MiB of uint8).
const flowSrcBuckets = 1 << 20

const seedFlowSrc = 0x1f83d9abfb41bd6b

func flowSrcBucket(a *packet.Addr) uint32 {
	return uint32(a.Hash(seedFlowSrc) >> (64 - 20))
}

// flowAdded and flowRemoved keep the per-port and per-source flow counts in step with the
// flow table.
func (e *Engine) flowAdded(k *flowKey) {
	if e.flowPorts[k.Port]++; e.flowPorts[k.Port] == 1 {
		setBit(e.flowPortBits[:], uint32(k.Port), true)
	}
	b := flowSrcBucket(&k.Src)
	if c := &e.flowSrcs[b]; *c < 255 {
		if *c++; *c == 1 {
			setBit(e.flowSrcBits[:], b, true)
		}
	}
}

func (e *Engine) flowRemoved(k *flowKey) {
	if e.flowPorts[k.Port]--; e.flowPorts[k.Port] == 0 {
		setBit(e.flowPortBits[:], uint32(k.Port), false)
	}
	b := flowSrcBucket(&k.Src)
	if c := &e.flowSrcs[b]; *c < 255 { // a saturated count stays
		if *c--; *c == 0 {
			setBit(e.flowSrcBits[:], b, false)
		}
	}
}

// clearFlowCounts empties the per-port and per-source flow counts (before a recount).
func (e *Engine) clearFlowCounts() {
	clear(e.flowPorts[:])
	clear(e.flowSrcs[:])
	clear(e.flowPortBits[:])
	clear(e.flowSrcBits[:])
}

// hasBit reports whether bit i of the bitset is set.
func hasBit(set []uint64, i uint32) bool { return set[i/64]&(1<<(i%64)) != 0 }

// setBit sets or clears bit i of the bitset.
func setBit(set []uint64, i uint32, on bool) {
	if on {
		set[i/64] |= 1 << (i % 64)
	} else {
		set[i/64] &^= 1 << (i % 64)
	}
}
