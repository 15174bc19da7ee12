package filter

import (
	"testing"

	"golang.org/x/net/bpf"
)

// TestLayoutTwoFarTargets builds a graph by hand where one conditional has both targets
// more than 255 instructions away, so it needs two trampolines, in the right order.
func TestLayoutTwoFarTargets(t *testing.T) {
	g := &cfg{accept: &block{term: termRet, ret: 7}, reject: &block{term: termRet, ret: 0}}
	// b: accept if pkt[1] == 2, else reject; laid out before c's filler.
	b := &block{insns: []bpf.Instruction{bpf.LoadAbsolute{Off: 1, Size: 1}},
		term: termCond, cond: bpf.JumpEqual, k: 2, t: g.accept, f: g.reject}
	c := &block{term: termJump, t: g.accept}
	for i := 0; i < 300; i++ {
		c.insns = append(c.insns, bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(i)})
	}
	entry := &block{insns: []bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 1}},
		term: termCond, cond: bpf.JumpEqual, k: 1, t: b, f: c}
	prog, err := linearize(entry, g)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pkt  []byte
		want int
	}{{[]byte{1, 2}, 7}, {[]byte{1, 3}, 0}, {[]byte{0, 0}, 7}} {
		if got, err := vm.Run(c.pkt); err != nil || got != c.want {
			t.Errorf("packet %v: got %d, %v; want %d\n%s", c.pkt, got, err, c.want, listing(prog))
		}
	}
	if len(prog) != 2+4+300+2 { // entry, b with two trampolines, c (falls into accept), accept, reject
		t.Errorf("program has %d instructions; want 308", len(prog))
	}
}
