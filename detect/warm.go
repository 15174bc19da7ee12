package detect

import (
	"math/bits"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// A caller that handles packets in groups (the pipeline's workers) requests, for each dark
// packet of a group, the lines the detectors will read, before it handles any: Prefetch
// first, then Warm once the words Prefetch requested had time to arrive. The cache misses
// of the group overlap instead of each stalling its packet. Neither waits for memory or
// changes anything: a stale word (a cell or flow gone since) only wastes a request.

// Prefetch is the first stage for a dark packet h (dense: its destination's dense index,
// -1 for none): the index word of its udp_then_syn flow, of its episode record under a
// flood of fingerprints, and of the hotspot's part for a destination without a dense index
// (the hotspot appends a record per packet, in order; only those destinations are looked
// up).
func (e *Engine) Prefetch(h *packet.Header, dense int32) {
	if x, ok := e.udpFlowHash(h); ok {
		e.flows.Prefetch(x)
		// The port's latest flow time (flowAt), in a 256 KiB array: a datagram's random
		// destination port missed the cache there on a fifth of PacketIn's samples on the
		// 20x day.
		prefetch.Write(unsafe.Pointer(&e.flowPortSec[h.DstPort]))
	}
	// The hotspot's index word of a destination without a dense index (an IPv6 scanner's
	// random addresses: each packet a look-up that missed the cache, findHash).
	if hw := &e.hot; (dense < 0 || dense >= hw.ndense) && hw.hash != nil && e.hotOn() {
		prefetch.Line(unsafe.Pointer(&hw.hash[h.Dst.Hash(seedDstIP)&uint64(len(hw.hash)-1)]))
	}
	// Without the source table (SetSources), a probe with a tool's fingerprint is promoted
	// to an episode record (or continues one): the record table's index word, as random as
	// the source table's. Under a flood of Mirai-fingerprinted sources the promotion's
	// look-up was 9 % of the CPU. Only while probes often matched a tool lately (fpRecent):
	// elsewhere the match here cost more than it saved. With the table, tool episodes stay
	// in place (toolplace.go) and there is no record to look up.
	if e.srcs == nil && e.fpRecent.often() && h.SYNProbe() && toolMatches(h) != 0 {
		e.eps.Prefetch(hashEpisode(&h.Src))
	}
}

// Warm is the second stage: the lines the words requested by Prefetch name (the flow's
// entry).
func (e *Engine) Warm(h *packet.Header) {
	if x, ok := e.udpFlowHash(h); ok {
		e.flows.Warm(x)
	}
}

// udpFlowHash is the hash of h's udp_then_syn flow when flowUDP will touch it (a UDP
// datagram with the detector on).
func (e *Engine) udpFlowHash(h *packet.Header) (uint64, bool) {
	if !e.cfg.UDPThenSYN.Enabled || h.Proto != packet.ProtoUDP || !h.L4 {
		return 0, false
	}
	return flowHash(&h.Src, &h.Dst, h.DstPort), true
}

// WarmEvicted requests what Evicted of src will read beyond its state (a coming victim of
// the pipeline's table, Table.SetVictimHint): its episode record's index word.
func (e *Engine) WarmEvicted(src *packet.Addr) {
	// A victim with an episode record has it deleted (Evicted), which unlinks its index
	// word: requested when many recent victims had one (a flood of one-packet fingerprint
	// episodes, where that unlink was 10 % of the CPU), not for every victim of a flood
	// without episodes.
	if e.evRecords.often() {
		e.eps.Prefetch(hashEpisode(src))
	}
}

// recent remembers which of the last 32 events of a kind had a property, for hints that
// pay only when it is common (a flood of it) and cost a little otherwise.
type recent uint32

// note shifts in the latest event.
func (r *recent) note(had bool) {
	*r <<= 1
	if had {
		*r |= 1
	}
}

// often reports whether at least 8 of the last 32 had it.
func (r recent) often() bool { return bits.OnesCount32(uint32(r)) >= 8 }
