package pipeline

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
)

// denseSpace is a dark space of one prefix whose every address was hit 1-3 times, but for
// busy addresses spread over it with 1 000 packets or more.
func denseSpace(tb testing.TB, prefix string) (*aggregate.Prefixes, []uint32) {
	tb.Helper()
	px, err := aggregate.NewPrefixes([]netip.Prefix{netip.MustParsePrefix(prefix)}, aggregate.NewPrefixSlots())
	if err != nil {
		tb.Fatal(err)
	}
	counts := make([]uint32, px.ExactSize())
	r := rand.New(rand.NewPCG(1, 2))
	for i := range counts {
		counts[i] = 1 + uint32(r.IntN(3))
		if i%4099 == 0 {
			counts[i] = 1000 + uint32(i%1000)
		}
	}
	return px, counts
}

// TestFoldDense: the summary holds the busiest addresses with their exact counts, every
// address is either held or counted as dropped by its packets, and every address is in
// the estimate.
func TestFoldDense(t *testing.T) {
	for _, capacity := range []int{1, 100, 4096, 1 << 20} {
		px, counts := denseSpace(t, "10.0.0.0/12")
		top, hll := aggregate.NewTopK(capacity), aggregate.NewHLL(hllPrecision)
		foldDense(counts, px, top, hll)
		held := map[netip.Addr]uint64{}
		for c := range top.All() {
			if c.Err != 0 {
				t.Fatalf("capacity %d: %s held with an error of %d", capacity, c.Key, c.Err)
			}
			held[c.Key.Netip()] = c.Count
		}
		if want := min(capacity, len(counts)); len(held) != want {
			t.Errorf("capacity %d: %d addresses held, want %d", capacity, len(held), want)
		}
		var dropped [64]uint64
		busy, maxDropped := 0, 0
		for _, n := range counts {
			if n >= 1000 {
				busy++
			}
		}
		for i, n := range counts {
			a := px.ExactAddr(int32(i)).Netip()
			if c, ok := held[a]; ok {
				if c != uint64(n) {
					t.Fatalf("capacity %d: %s held with %d packets, had %d", capacity, a, c, n)
				}
				continue
			}
			if n >= 1000 && capacity >= busy {
				t.Fatalf("capacity %d: busy %s (%d packets) not held", capacity, a, n)
			}
			dropped[bits.Len32(n)-1]++
			maxDropped = max(maxDropped, bits.Len32(n))
		}
		for _, c := range held {
			if bits.Len64(c) < maxDropped {
				t.Errorf("capacity %d: an address of %d packets held, one of log2 class %d dropped", capacity, c, maxDropped-1)
				break
			}
		}
		if dropped != top.Dropped {
			t.Errorf("capacity %d: dropped by log2 %v, want %v", capacity, top.Dropped[:4], dropped[:4])
		}
		if est := hll.Estimate(); est < uint64(len(counts))*98/100 || est > uint64(len(counts))*102/100 {
			t.Errorf("capacity %d: estimate %d of %d addresses", capacity, est, len(counts))
		}
	}
}

// BenchmarkFoldDense is a reload's work on each worker when it replaces a /8 whose every
// address was hit: foldDense, and a summary add per address as it was before.
func BenchmarkFoldDense(b *testing.B) {
	px, counts := denseSpace(b, "44.0.0.0/8")
	b.Run("busiest", func(b *testing.B) {
		for b.Loop() {
			foldDense(counts, px, aggregate.NewTopK(topCapacity), aggregate.NewHLL(hllPrecision))
		}
	})
	b.Run("every-address", func(b *testing.B) {
		for b.Loop() {
			top, hll := aggregate.NewTopK(topCapacity), aggregate.NewHLL(hllPrecision)
			for i, n := range counts {
				a := px.ExactAddr(int32(i))
				top.Add(a, uint64(n))
				hll.AddHash(a.Hash(seedHLL))
			}
		}
	})
}
