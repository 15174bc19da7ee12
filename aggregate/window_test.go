package aggregate

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestAddrLessMatchesBytesCompare checks addrLess against bytes.Compare on address pairs
// that differ in each byte, share every prefix length, or are equal.
func TestAddrLessMatchesBytesCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100_000 {
		var a, b packet.Addr
		for i := range a {
			a[i] = byte(rng.IntN(3)) // few values: long shared prefixes and equal pairs
		}
		b = a
		if k := rng.IntN(17); k < 16 {
			b[k] = byte(rng.IntN(256))
		}
		if got, want := addrLess(&a, &b), bytes.Compare(a[:], b[:]) < 0; got != want {
			t.Fatalf("addrLess(%x, %x) = %v, want %v", a, b, got, want)
		}
	}
}

// TestTopHeapKeepsLargest offers many sources with few distinct counts (ties everywhere)
// and checks that Sorted gives the n largest, ties broken by the smaller address, as a sort
// of all of them does.
func TestTopHeapKeepsLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 5, 100} {
		th := NewTopHeap(n)
		var all []SourceCount
		seen := map[packet.Addr]bool{}
		for range 5_000 {
			var a packet.Addr
			a[10], a[11], a[14], a[15] = 0xff, 0xff, byte(rng.IntN(40)), byte(rng.IntN(256))
			if seen[a] {
				continue
			}
			seen[a] = true
			c := uint64(rng.IntN(4))
			th.Offer(&a, c)
			all = append(all, SourceCount{Addr: a, Packets: c})
		}
		SortCounts(all)
		got := th.Sorted()
		if len(got) != n {
			t.Fatalf("n=%d: %d kept", n, len(got))
		}
		for i := range got {
			if got[i] != all[i] {
				t.Fatalf("n=%d: entry %d is %v, want %v", n, i, got[i], all[i])
			}
		}
	}
}
