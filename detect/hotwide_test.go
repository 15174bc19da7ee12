package detect

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
)

// TestWideListRoundTrip: lists of random addresses (gaps from 0 to most of a /8, packets
// from 1 to 2^32-1) read back as written, pass checkWide, and fail it when cut short, past
// the dark space, or with an address of no packets.
func TestWideListRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 24
	for round := range 200 {
		var l wideList
		var ixs []int
		var pk []uint32
		for ix := r.IntN(3) - 1; ; {
			switch r.IntN(4) {
			case 0:
				ix += 1 + r.IntN(n/8)
			default:
				ix += 1 + r.IntN(3)
			}
			if ix >= n || len(ixs) > 200 {
				break
			}
			c := uint32(1 + r.Uint64N(math.MaxUint32))
			if r.IntN(2) == 0 {
				c = uint32(1 + r.IntN(3))
			}
			l.add(ix, c)
			ixs, pk = append(ixs, ix), append(pk, c)
		}
		it := wideIter{b: l.b}
		for i := range ixs {
			if !it.next() || it.ix != int64(ixs[i]) || it.n != uint64(pk[i]) {
				t.Fatalf("round %d: address %d read as %d with %d packets, want %d with %d", round, i, it.ix, it.n, ixs[i], pk[i])
			}
		}
		if it.next() || it.bad {
			t.Fatalf("round %d: more than the %d addresses written (bad %v)", round, len(ixs), it.bad)
		}
		if why := checkWide(l.b, n); why != "" {
			t.Fatalf("round %d: checkWide: %s", round, why)
		}
		if len(ixs) > 0 {
			if why := checkWide(l.b, ixs[len(ixs)-1]); why == "" {
				t.Errorf("round %d: a list past a space of %d addresses passed", round, ixs[len(ixs)-1])
			}
			if why := checkWide(l.b[:len(l.b)-1], n); why == "" {
				t.Errorf("round %d: a list cut short passed", round)
			}
		}
	}
	var zero wideList
	zero.add(5, 0)
	if checkWide(zero.b, 10) == "" {
		t.Error("an address of no packets passed")
	}
}

// TestObserveWideMerges: the receiver distribution of 1 to 4 workers' lists is each
// address's packets summed over them, counted by hand; lists of two numberings (a reload)
// are each entry on its own, counted as unmerged.
func TestObserveWideMerges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for workers := 1; workers <= 4; workers++ {
		sums := map[int]uint64{}
		entries := 0
		var lists [][]byte
		for range workers {
			var l wideList
			for ix := -1; ; {
				ix += 1 + r.IntN(40)
				if ix >= 5000 {
					break
				}
				c := uint32(1 + r.IntN(5))
				l.add(ix, c)
				sums[ix] += uint64(c)
				entries++
			}
			lists = append(lists, l.b)
		}
		var want aggregate.HistBatch
		for _, n := range sums {
			want.Add(n)
		}
		for _, mixed := range []bool{false, true} {
			hs := &Hotspots{}
			var b aggregate.HistBatch
			hs.observeWide(&hotPending{wide: lists, wideMixed: mixed}, &b)
			switch {
			case !mixed && (b != want || hs.Unmerged.Load() != 0):
				t.Errorf("workers=%d: %d destinations, %d packets, buckets %v; want %d, %d, %v",
					workers, b.Count, b.Sum, b.Counts, want.Count, want.Sum, want.Counts)
			case mixed && (b.Count != uint64(entries) || b.Sum != want.Sum || hs.Unmerged.Load() != uint64(entries)):
				t.Errorf("workers=%d, two numberings: %d destinations (%d unmerged), %d packets; want %d, %d, %d",
					workers, b.Count, hs.Unmerged.Load(), b.Sum, entries, entries, want.Sum)
			}
		}
	}
}
