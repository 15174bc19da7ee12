package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// dropRedundantLoads removes loads at the start of a block that recompute what A or X
// already holds on every path into it, as in "ldb [9]; jeq #6 / ldb [9]; jeq #17" or the
// "ldx 4*([0]&0xf)" before each port. It keeps programs well under the kernel's limit
// and shortens the common paths; it is not a general optimiser. A dropped load cannot
// change which packets fail a load: the same load already succeeded on every path.
//
// order must list every block after all of its predecessors.
func dropRedundantLoads(order []*block) {
	preds := map[*block][]*block{}
	for _, b := range order {
		for _, s := range successors(b) {
			preds[s] = append(preds[s], b)
		}
	}
	exit := map[*block]regState{}
	for _, b := range order {
		var in regState
		for i, p := range preds[b] {
			if i == 0 {
				in = exit[p]
			} else {
				in = in.meet(exit[p])
			}
		}
		b.insns = trimPrefix(b.insns, in)
		s := in
		for _, ins := range b.insns {
			s = s.step(ins)
		}
		exit[b] = s
	}
}

func successors(b *block) []*block {
	switch b.term {
	case termJump:
		return []*block{b.t}
	case termCond:
		return []*block{b.t, b.f}
	}
	return nil
}

// regState describes how A and X were computed, as the instructions that computed them
// ("" when unknown). Only pure functions of the packet are tracked: anything involving
// scratch memory or both registers makes the register unknown.
type regState struct{ a, x string }

func (s regState) meet(o regState) regState {
	if s.a != o.a {
		s.a = ""
	}
	if s.x != o.x {
		s.x = ""
	}
	return s
}

func (s regState) step(in bpf.Instruction) regState {
	switch in := in.(type) {
	case bpf.LoadAbsolute, bpf.LoadExtension:
		s.a = fmt.Sprint(in)
	case bpf.LoadConstant:
		if in.Dst == bpf.RegA {
			s.a = fmt.Sprint(in)
		} else {
			s.x = fmt.Sprint(in)
		}
	case bpf.LoadIndirect:
		s.a = ""
		if s.x != "" {
			s.a = "(" + s.x + ") " + fmt.Sprint(in)
		}
	case bpf.ALUOpConstant:
		if s.a != "" {
			s.a += "; " + fmt.Sprint(in)
		}
	case bpf.LoadMemShift:
		s.x = fmt.Sprint(in)
	case bpf.TAX:
		s.x = s.a
	case bpf.TXA:
		s.a = s.x
	case bpf.StoreScratch:
	case bpf.LoadScratch:
		if in.Dst == bpf.RegX {
			s.x = ""
		} else {
			s.a = ""
		}
	default:
		s.a = ""
	}
	return s
}

// pureA reports whether in sets A from the packet or constants without touching X.
func pureA(in bpf.Instruction) bool {
	switch in := in.(type) {
	case bpf.LoadAbsolute, bpf.LoadIndirect, bpf.LoadExtension, bpf.ALUOpConstant:
		return true
	case bpf.LoadConstant:
		return in.Dst == bpf.RegA
	}
	return false
}

// trimPrefix drops a leading "ldx 4*([0]&0xf)" when X already holds it, and the longest
// leading run of A computations that ends with A holding what it held on entry.
func trimPrefix(insns []bpf.Instruction, in regState) []bpf.Instruction {
	for len(insns) > 0 {
		if ms, ok := insns[0].(bpf.LoadMemShift); ok && in.x != "" && in.x == fmt.Sprint(ms) {
			insns = insns[1:]
			continue
		}
		cut := 0
		if in.a != "" {
			t := regState{x: in.x}
			for i, ins := range insns {
				if !pureA(ins) {
					break
				}
				if t = t.step(ins); t.a == in.a {
					cut = i + 1
				}
			}
		}
		if cut == 0 {
			break
		}
		insns = insns[cut:]
	}
	return insns
}
