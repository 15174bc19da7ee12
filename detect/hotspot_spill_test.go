package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestSpilledBeforeDenseExact marks every other address of a dark /16 as spilled, as a
// scan's spills do: a destination with a dense index is found spilled exactly when it was
// (its bit is its index), where a hashed bit would make some of the others look spilled
// too (about 3 % of them with 32 768 marks in the 1 Mbit filter). Destinations without a
// dense index keep the hashed bit: each marked one is found.
func TestSpilledBeforeDenseExact(t *testing.T) {
	var hw hotWorker
	cell := func(ix int32) *hotCell {
		return &hotCell{Dst: packet.AddrFrom4([]byte{198, 18, byte(ix >> 8), byte(ix)}), Ix: ix, Packets: 1}
	}
	for ix := int32(0); ix < 1<<16; ix += 2 {
		markBit(&hw.back, spillBit(cell(ix)))
	}
	wrong := 0
	for ix := int32(0); ix < 1<<16; ix++ {
		c := cell(ix)
		if got := hw.spilledBefore(c); got != (ix%2 == 0) || c.Split != got {
			wrong++
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of 65 536 dense destinations found spilled wrongly", wrong)
	}
	var other []*hotCell
	for i := range 1000 {
		c := cell(int32(i))
		c.Ix = -1 - int32(i) // a slot of the hash index
		c.Dst[0] = 10
		markBit(&hw.back, spillBit(c))
		other = append(other, c)
	}
	for i, c := range other {
		if !hw.spilledBefore(c) {
			t.Fatalf("destination %d without a dense index not found spilled", i)
		}
	}
}
