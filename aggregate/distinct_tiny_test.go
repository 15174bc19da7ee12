package aggregate

import (
	"math"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestDistinctSlabLimit: with its slab's Limit reached, a Distinct that needs a block
// switches to the inline sketch at whichever step it needs one (its 5th value, a set's
// growth, the switch to the 1 KiB sketch), keeps counting (not exact, at least the values it
// had exactly plus one, within 3 standard errors of the inline sketch, 3 × 13 %), and the
// slab's memory never passes the limit. Freed blocks are still given out past it.
func TestDistinctSlabLimit(t *testing.T) {
	const limit = 4096 // words: 32 KiB
	s := &Slab{Limit: limit}
	ds := make([]Distinct, 200)
	rel := func(got, n uint64) float64 { return math.Abs(float64(got)-float64(n)) / float64(n) }
	for i := range ds {
		n := uint64(5 + i*37%3000)
		for j := range n {
			ds[i].Add(s, packet.Mix64(uint64(i)<<32|j+1))
		}
		d := &ds[i]
		if err := d.Validate(s); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		c := d.Count(s)
		switch {
		case d.tiny():
			if d.Exact() || d.Ref != 0 || c < d.Floor() || d.Values(s, func(uint64) {}) {
				t.Errorf("set %d (%d values): inline sketch with Exact %v, block %d, Count %d < Floor %d?", i, n, d.Exact(), d.Ref, c, d.Floor())
			}
			if n >= 100 && rel(c, n) > 0.39 {
				t.Errorf("set %d: inline sketch counts %d of %d values (%.0f %%)", i, c, n, 100*rel(c, n))
			}
		case d.Exact() && c != n:
			t.Errorf("set %d: exact count %d of %d values", i, c, n)
		}
		if used := uint64(s.Next); used > limit {
			t.Fatalf("after set %d: the slab hands out %d words, past its limit %d", i, used, limit)
		}
	}
	tiny := 0
	for i := range ds {
		if ds[i].tiny() {
			tiny++
		}
	}
	if tiny < len(ds)/2 || s.Refused == 0 {
		t.Errorf("%d of %d sets inline sketches, %d blocks refused: the limit did not bite", tiny, len(ds), s.Refused)
	}
	// A freed block is given out again past the limit: the next set is exact as far as it fits.
	var big Distinct
	for _, i := range []int{0, 1, 2, 3} {
		ds[i].Reset(s)
	}
	for j := range uint64(5) {
		big.Add(s, packet.Mix64(j+1))
	}
	if !big.Exact() || big.Count(s) != 5 {
		t.Errorf("after blocks were freed: Exact %v, Count %d, want an exact 5", big.Exact(), big.Count(s))
	}
	// AddAll ends as Add one by one does, in the inline sketch too.
	var a, b Distinct
	xs := make([]uint64, 5000)
	for i := range xs {
		xs[i] = packet.Mix64(uint64(i) + 77)
	}
	a.AddAll(s, xs)
	for _, x := range xs {
		b.Add(s, x)
	}
	if a != b {
		t.Errorf("AddAll %+v, Add one by one %+v", a, b)
	}
}

// TestDistinctTinyAccuracy: the inline sketch alone (a slab that gives no block at all)
// estimates 100 to 1 M distinct values within 3 standard errors (39 %), and its count
// never falls below the exact count it had.
func TestDistinctTinyAccuracy(t *testing.T) {
	s := &Slab{Limit: 1} // no block fits
	worst := 0.0
	for seed := range uint64(20) {
		for _, n := range []uint64{100, 1000, 10_000, 1_000_000} {
			var d Distinct
			for j := range n {
				d.Add(s, packet.Mix64(seed<<40|j))
			}
			if !d.tiny() || d.N != 4 {
				t.Fatalf("n=%d: flags %#x, exact count %d: want the inline sketch from the 5th value", n, d.Flags, d.N)
			}
			c := d.Count(s)
			r := math.Abs(float64(c)-float64(n)) / float64(n)
			worst = max(worst, r)
			if r > 0.39 {
				t.Errorf("seed %d, n=%d: estimate %d (%.0f %%)", seed, n, c, 100*r)
			}
		}
	}
	t.Logf("worst relative error over 80 sketches: %.1f %%", 100*worst)
}
