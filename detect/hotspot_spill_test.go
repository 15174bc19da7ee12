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

// TestNewCellAhead checks the slots requestNewCell requests: the k+1th new cell from now
// takes the slot newCellAhead(k) names, first the freed slots (last freed first), then
// those after the cells in use, and none past the cells' capacity (they grow first).
func TestNewCellAhead(t *testing.T) {
	var hw hotWorker
	hw.cap = 64
	hw.cells = make([]hotCell, 8, 12)
	hw.free = []int32{5, 1, 6}
	var want []*hotCell
	for k := range 8 {
		want = append(want, hw.newCellAhead(k))
	}
	if want[7] != nil {
		t.Fatalf("a cell past the capacity was named (3 free, 4 after the 8 in use)")
	}
	for k := range 7 {
		dst := packet.AddrFrom4([]byte{192, 0, 2, byte(k)})
		if c := hw.newCell(&dst, -1); c != want[k] || want[k] == nil {
			t.Fatalf("new cell %d took slot %d, newCellAhead named %p", k, hw.last-1, want[k])
		}
	}
}
