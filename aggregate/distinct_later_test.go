package aggregate

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// TestDistinctAddLaterSameAsAdd runs the same random operations on two slabs, one adding
// with Add, the other with AddLater: many sets in every phase sharing a slab, resets that
// hand a sketch's block (perhaps with raises waiting) to a new exact set, counts, values
// and a checkpoint in between. Every observable must agree at every step, and the slabs'
// words at the end. It fails if any slab use skips the raises that wait (e.g. Release,
// whose freed block the next Alloc zeroes: a raise applied after that writes into a
// stranger's set).
func TestDistinctAddLaterSameAsAdd(t *testing.T) {
	const sets = 40
	var now, later Slab
	a, b := make([]Distinct, sets), make([]Distinct, sets)
	rng := rand.New(rand.NewPCG(7, 11))
	waited := 0
	for step := range 400_000 {
		i := rng.IntN(sets)
		switch op := rng.IntN(10_000); {
		case op < 1: // reset: the block goes back to the slab, perhaps to be reused at once
			a[i].Reset(&now)
			b[i].Reset(&later)
		case op < 20:
			if ca, cb := a[i].Count(&now), b[i].Count(&later); ca != cb {
				t.Fatalf("step %d: set %d counts %d with Add, %d with AddLater", step, i, ca, cb)
			}
		case op < 25:
			var va, vb []uint64
			oka := a[i].Values(&now, func(x uint64) { va = append(va, x) })
			okb := b[i].Values(&later, func(x uint64) { vb = append(vb, x) })
			slices.Sort(va)
			slices.Sort(vb)
			if oka != okb || !slices.Equal(va, vb) {
				t.Fatalf("step %d: set %d values differ", step, i)
			}
		case op < 27: // a checkpoint writes the slab as it would be with every raise applied
			if !bytes.Equal(slabBytes(&now), slabBytes(&later)) {
				t.Fatalf("step %d: checkpoints differ", step)
			}
		default:
			// Sets 0-9 stay small; the others grow past the exact limit.
			x := packet.Mix64(uint64(rng.IntN(64)))
			if i >= 10 {
				x = packet.Mix64(rng.Uint64())
			}
			a[i].Add(&now, x)
			b[i].AddLater(&later, x)
			if later.npend > 0 {
				waited++
			}
		}
		if a[i] != b[i] {
			t.Fatalf("step %d: set %d is %+v with Add, %+v with AddLater", step, i, a[i], b[i])
		}
	}
	if waited == 0 {
		t.Fatal("no raise ever waited: the test did not exercise AddLater's sketch phase")
	}
	for i := range a {
		if ca, cb := a[i].Count(&now), b[i].Count(&later); ca != cb {
			t.Fatalf("set %d counts %d with Add, %d with AddLater", i, ca, cb)
		}
	}
	later.Settle()
	if !slices.EqualFunc(now.Chunks, later.Chunks, slices.Equal) {
		t.Fatal("the slabs' words differ after Settle")
	}
}

func slabBytes(s *Slab) []byte {
	var enc checkpoint.Encoder
	s.Save(&enc)
	return enc.Bytes()
}

// TestDistinctAddLaterThenReset resets a sketch whose first word has raises waiting, then
// lets new sets take its block: the raises belong to the freed sketch, and must neither
// reach the free list's link in that word nor the set that takes the block next.
func TestDistinctAddLaterThenReset(t *testing.T) {
	var now, later Slab
	var a, b Distinct
	for i := range uint64(DistinctExactLimit + 1) {
		a.Add(&now, packet.Mix64(i))
		b.Add(&later, packet.Mix64(i))
	}
	if a.Exact() {
		t.Fatal("not a sketch")
	}
	// Values whose registers are in the sketch's first word, with ranks above any the
	// sketch holds there, so that every raise changes the word.
	var raise []uint64
	for x := uint64(1); len(raise) < 8; x++ {
		if idx, r := hllSplit(packet.Mix64(x<<32), distinctP); idx < 8 && r > 12 {
			raise = append(raise, packet.Mix64(x<<32))
		}
	}
	for _, x := range raise {
		a.Add(&now, x)
		b.AddLater(&later, x)
	}
	if later.npend == 0 {
		t.Fatal("no raise waits")
	}
	a.Reset(&now)
	b.Reset(&later)
	// New sets grow through every block size, the sketch's among them.
	c, d := make([]Distinct, 4), make([]Distinct, 4)
	for i := range c {
		for v := range uint64(200) {
			c[i].Add(&now, packet.Mix64(v+uint64(i)<<20))
			d[i].Add(&later, packet.Mix64(v+uint64(i)<<20))
		}
		if c[i] != d[i] || c[i].Count(&now) != 200 || d[i].Count(&later) != 200 {
			t.Fatalf("set %d: %+v with Add, %+v with AddLater", i, c[i], d[i])
		}
	}
	later.Settle()
	if !slices.EqualFunc(now.Chunks, later.Chunks, slices.Equal) || now.Free != later.Free {
		t.Fatal("the slabs differ")
	}
}
