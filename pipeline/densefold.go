package pipeline

import (
	"encoding/binary"
	"math/bits"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// foldDense moves a worker's per-address counts of a dark space that a reload replaced
// into its destination summary and estimate (the report adds them to the new space's
// counts). The summary gets only its capacity's worth of the busiest addresses: those in
// the highest log2 classes of packets, and of the class that overflows it the first ones
// by dense index. The others are counted as dropped by their packets, as the summary
// itself would have let them go, and every address goes into the estimate.
//
// One summary add per address hit, as this did before, held each worker 1.3 s on a
// reload of a /8 whose addresses had all been hit: more than a live ring holds at a high
// rate. This is two passes over the counts.
func foldDense(counts []uint32, px *aggregate.Prefixes, top *aggregate.TopK, hll *aggregate.HLL) {
	var byClass [33]int // addresses by bits.Len32 of their packets
	for _, n := range counts {
		byClass[bits.Len32(n)]++
	}
	// Classes [cut+1, 32] fit whole, class cut only its first `part` addresses.
	room, cut := top.Capacity, 0
	for c := 32; c >= 1; c-- {
		if byClass[c] > room {
			cut = c
			break
		}
		room -= byClass[c]
	}
	part := room
	px.ExactRuns(func(base int32, first uint32, n int) {
		var a packet.Addr
		a[10], a[11] = 0xff, 0xff
		for j, c := range counts[base : int(base)+n] {
			if c == 0 {
				continue
			}
			binary.BigEndian.PutUint32(a[12:], first+uint32(j))
			hll.AddHash(a.Hash(seedHLL))
			switch cl := bits.Len32(c); {
			case cl > cut:
				top.Add(a, uint64(c))
			case cl == cut && part > 0:
				part--
				top.Add(a, uint64(c))
			default:
				top.Drop(uint64(c))
			}
		}
	})
}
