package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Layout orders the blocks so every jump goes forward (reverse postorder of the DAG, with
// the shared return blocks last) and resolves offsets. Conditional jumps have 8-bit
// offsets; a target further than 255 instructions is reached through a trampoline placed
// right after the jump: "ja" (32-bit offset), or a copy of the target when it is a return.

// placed is a block with its position and the trampolines that follow its jump.
type placed struct {
	b      *block
	addr   int
	tramps []*block // targets reached via trampolines, in the order they are emitted
}

func (pl *placed) termSize(next *block) int {
	switch pl.b.term {
	case termJump:
		if pl.b.t == next {
			return 0
		}
	}
	return 1
}

func linearize(entry *block, g *cfg) ([]bpf.Instruction, error) {
	normalize(entry, map[*block]bool{})
	order := reversePostorder(entry)
	dropRedundantLoads(order)
	index := make(map[*block]int, len(order))
	blocks := make([]*placed, len(order))
	for i, b := range order {
		index[b] = i
		blocks[i] = &placed{b: b}
	}
	next := func(i int) *block {
		if i+1 < len(blocks) {
			return blocks[i+1].b
		}
		return nil
	}
	// Adding a trampoline moves later code, which can push other jumps out of range:
	// repeat until nothing changes. Each jump gets at most one, so this terminates.
	for changed := true; changed; {
		changed = false
		addr := 0
		for i, pl := range blocks {
			pl.addr = addr
			addr += len(pl.b.insns) + pl.termSize(next(i)) + len(pl.tramps)
		}
		for _, pl := range blocks {
			if pl.b.term != termCond {
				continue
			}
			jumpAt := pl.addr + len(pl.b.insns)
			for _, target := range []*block{pl.b.t, pl.b.f} {
				if blocks[index[target]].addr-jumpAt-1 > 255 && !contains(pl.tramps, target) {
					pl.tramps = append(pl.tramps, target)
					changed = true
				}
			}
		}
	}
	return emitBlocks(blocks, index, next)
}

func contains(bs []*block, b *block) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// normalize turns a conditional whose targets coincide into a plain jump.
func normalize(b *block, seen map[*block]bool) {
	if seen[b] {
		return
	}
	seen[b] = true
	if b.term == termCond && b.t == b.f {
		b.term = termJump
	}
	if b.t != nil {
		normalize(b.t, seen)
	}
	if b.term == termCond {
		normalize(b.f, seen)
	}
}

// reversePostorder lists the blocks reachable from entry in an order where every edge
// goes forward; return blocks come last so jumps to them never go backwards.
func reversePostorder(entry *block) []*block {
	var post, rets []*block
	seen := map[*block]bool{}
	var visit func(b *block)
	visit = func(b *block) {
		if seen[b] {
			return
		}
		seen[b] = true
		if b.term == termRet {
			rets = append(rets, b)
			return
		}
		// Visit f first so that t ends up right after b: ands fall through.
		if b.term == termCond {
			visit(b.f)
		}
		visit(b.t)
		post = append(post, b)
	}
	visit(entry)
	order := make([]*block, 0, len(post)+len(rets))
	for i := len(post) - 1; i >= 0; i-- {
		order = append(order, post[i])
	}
	return append(order, rets...)
}

func emitBlocks(blocks []*placed, index map[*block]int, next func(int) *block) ([]bpf.Instruction, error) {
	var out []bpf.Instruction
	addrOf := func(b *block) int { return blocks[index[b]].addr }
	for i, pl := range blocks {
		b := pl.b
		out = append(out, b.insns...)
		pc := len(out) // address of the terminator
		switch b.term {
		case termRet:
			out = append(out, bpf.RetConstant{Val: b.ret})
		case termJump:
			switch {
			case b.t == next(i):
			case b.t.term == termRet:
				out = append(out, bpf.RetConstant{Val: b.t.ret})
			default:
				out = append(out, bpf.Jump{Skip: uint32(addrOf(b.t) - pc - 1)})
			}
		case termCond:
			skip := func(target *block) (uint8, error) {
				d := addrOf(target) - pc - 1
				for j, tr := range pl.tramps {
					if tr == target {
						d = j
					}
				}
				if d < 0 || d > 255 {
					return 0, fmt.Errorf("internal error: jump offset %d", d)
				}
				return uint8(d), nil
			}
			st, err := skip(b.t)
			if err != nil {
				return nil, err
			}
			sf, err := skip(b.f)
			if err != nil {
				return nil, err
			}
			if b.useX {
				out = append(out, bpf.JumpIfX{Cond: b.cond, SkipTrue: st, SkipFalse: sf})
			} else {
				out = append(out, bpf.JumpIf{Cond: b.cond, Val: b.k, SkipTrue: st, SkipFalse: sf})
			}
			for _, tr := range pl.tramps {
				if tr.term == termRet {
					out = append(out, bpf.RetConstant{Val: tr.ret})
				} else {
					out = append(out, bpf.Jump{Skip: uint32(addrOf(tr) - len(out) - 1)})
				}
			}
		}
		if len(out) != blocks[i].addr+len(b.insns)+pl.termSize(next(i))+len(pl.tramps) {
			return nil, fmt.Errorf("internal error: layout size mismatch at block %d", i)
		}
	}
	return out, nil
}
