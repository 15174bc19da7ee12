package filter

import "golang.org/x/net/bpf"

// Code generation: predicates become a DAG of basic blocks by short-circuit translation
// (each test jumps straight to the block that decides the rest); layout.go then orders
// the blocks and fixes jump offsets.

// maxOffset bounds packet offsets. No packet is this long, so a larger offset can only
// fail to load, which rejects the packet; checking it explicitly keeps a wrapped computed
// offset from reaching the kernel's negative (ancillary / link-layer) offset space.
const maxOffset = 1 << 24

// scratchSlots is the number of BPF scratch memory words.
const scratchSlots = 16

type termKind int

const (
	termRet  termKind = iota // return ret
	termJump                 // continue at t
	termCond                 // compare A with k (or X): true -> t, false -> f
)

type block struct {
	insns []bpf.Instruction
	term  termKind
	ret   uint32
	cond  bpf.JumpTest // JumpEqual, JumpGreaterThan, JumpGreaterOrEqual or JumpBitsSet
	k     uint32
	useX  bool
	t, f  *block
}

type cfg struct {
	accept, reject *block
}

// gen returns the entry block of code that continues at t when p holds and at f when it
// does not. A failed load anywhere ends the program with "reject", as in the kernel.
func (g *cfg) gen(p pred, t, f *block) (*block, error) {
	switch p := p.(type) {
	case *pConst:
		if p.v {
			return t, nil
		}
		return f, nil
	case *pAnd:
		r, err := g.gen(p.r, t, f)
		if err != nil {
			return nil, err
		}
		return g.gen(p.l, r, f)
	case *pOr:
		r, err := g.gen(p.r, t, f)
		if err != nil {
			return nil, err
		}
		return g.gen(p.l, t, r)
	case *pNot:
		return g.gen(p.x, f, t)
	case *pTest:
		return g.genTest(p, t, f)
	}
	return nil, semErr(0, "internal error: unknown predicate %T", p)
}

// jumpFor maps a relation to a BPF conditional jump, swapping targets for the negated
// forms (BPF has no jne/jlt/jle; x/net/bpf would rewrite them the same way).
func jumpFor(op relOp) (bpf.JumpTest, bool) {
	switch op {
	case relEq:
		return bpf.JumpEqual, false
	case relNe:
		return bpf.JumpEqual, true
	case relGt:
		return bpf.JumpGreaterThan, false
	case relGe:
		return bpf.JumpGreaterOrEqual, false
	case relLt:
		return bpf.JumpGreaterOrEqual, true
	case relLe:
		return bpf.JumpGreaterThan, true
	}
	return bpf.JumpBitsSet, false
}

func (g *cfg) genTest(p *pTest, t, f *block) (*block, error) {
	cond, swap := jumpFor(p.op)
	if swap {
		t, f = f, t
	}
	final := &block{term: termCond, cond: cond, t: t, f: f}
	var code []item
	var err error
	if rc, ok := p.r.(*numArith); ok {
		if code, err = emit(p.l, 0); err != nil {
			return nil, err
		}
		final.k = rc.v
	} else {
		// l in M[0] while r is computed (r may use X), then A=l, X=r.
		l, err := emit(p.l, 0)
		if err != nil {
			return nil, err
		}
		r, err := emit(p.r, 1)
		if err != nil {
			return nil, err
		}
		code = append(l, ins(bpf.StoreScratch{Src: bpf.RegA, N: 0}))
		code = append(code, r...)
		code = append(code, ins(bpf.TAX{}), ins(bpf.LoadScratch{Dst: bpf.RegA, N: 0}))
		final.useX = true
	}
	return g.chain(code, final), nil
}

// item is one step of straight-line code: an instruction, or a bounds check on A that
// rejects the packet, or an unconditional reject (a constant offset beyond maxOffset).
type item struct {
	ins  bpf.Instruction
	kind itemKind
}

type itemKind int

const (
	itemIns itemKind = iota
	itemCheck
	itemAbort
)

func ins(i bpf.Instruction) item { return item{ins: i} }

// chain turns straight-line items ending in final into blocks, splitting at checks.
func (g *cfg) chain(items []item, final *block) *block {
	cur, end := final, len(items)
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].kind == itemIns {
			continue
		}
		cur.insns = append(insnsOf(items[i+1:end]), cur.insns...)
		end = i
		if items[i].kind == itemAbort {
			cur = &block{term: termJump, t: g.reject}
		} else {
			cur = &block{term: termCond, cond: bpf.JumpGreaterThan, k: maxOffset, t: g.reject, f: cur}
		}
	}
	cur.insns = append(insnsOf(items[:end]), cur.insns...)
	return cur
}

func insnsOf(items []item) []bpf.Instruction {
	out := make([]bpf.Instruction, 0, len(items))
	for _, it := range items {
		out = append(out, it.ins)
	}
	return out
}

var bpfALU = map[aluOp]bpf.ALUOp{
	opAdd: bpf.ALUOpAdd, opSub: bpf.ALUOpSub, opMul: bpf.ALUOpMul, opDiv: bpf.ALUOpDiv,
	opMod: bpf.ALUOpMod, opAnd: bpf.ALUOpAnd, opOr: bpf.ALUOpOr, opXor: bpf.ALUOpXor,
	opShl: bpf.ALUOpShiftLeft, opShr: bpf.ALUOpShiftRight,
}

func commutative(op aluOp) bool {
	return op == opAdd || op == opMul || op == opAnd || op == opOr || op == opXor
}

// emit computes a into A. It may clobber X and scratch words depth and above.
func emit(a arith, depth int) ([]item, error) {
	switch a := a.(type) {
	case *numArith:
		return []item{ins(bpf.LoadConstant{Dst: bpf.RegA, Val: a.v})}, nil
	case *lenArith:
		return []item{ins(bpf.LoadExtension{Num: bpf.ExtLen})}, nil
	case *negArith:
		x, err := emit(a.x, depth)
		if err != nil {
			return nil, err
		}
		// -A as A * 0xffffffff: the same value mod 2^32, and x/net/bpf's VM has no neg.
		return append(x, ins(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff})), nil
	case *binArith:
		return emitBin(a, depth)
	case *loadArith:
		return emitLoad(a, depth)
	}
	return nil, semErr(0, "internal error: unknown arithmetic %T", a)
}

func emitBin(a *binArith, depth int) ([]item, error) {
	l, r := a.l, a.r
	if _, lc := l.(*numArith); lc && commutative(a.op) {
		l, r = r, l
	}
	code, err := emit(l, depth)
	if err != nil {
		return nil, err
	}
	if rc, ok := r.(*numArith); ok {
		return append(code, ins(bpf.ALUOpConstant{Op: bpfALU[a.op], Val: rc.v})), nil
	}
	if depth >= scratchSlots {
		return nil, semErr(a.pos, "arithmetic expression too complex (needs more than %d scratch registers)", scratchSlots)
	}
	rcode, err := emit(r, depth+1)
	if err != nil {
		return nil, err
	}
	code = append(code, ins(bpf.StoreScratch{Src: bpf.RegA, N: depth}))
	code = append(code, rcode...)
	return append(code, ins(bpf.TAX{}), ins(bpf.LoadScratch{Dst: bpf.RegA, N: depth}),
		ins(bpf.ALUOpX{Op: bpfALU[a.op]})), nil
}

func emitLoad(a *loadArith, depth int) ([]item, error) {
	base := uint64(0)
	if a.base.phys == physIP6Payload {
		base = 40
	}
	if c, ok := a.idx.(*numArith); ok {
		off := base + uint64(c.v)
		if off+uint64(a.size) > maxOffset {
			return []item{{kind: itemAbort}}, nil
		}
		if a.base.phys == physTransport4 {
			return []item{ins(bpf.LoadMemShift{Off: 0}), ins(bpf.LoadIndirect{Off: uint32(off), Size: a.size})}, nil
		}
		return []item{ins(bpf.LoadAbsolute{Off: uint32(off), Size: a.size})}, nil
	}
	code, err := emit(a.idx, depth)
	if err != nil {
		return nil, err
	}
	code = append(code, item{kind: itemCheck})
	if a.base.phys == physTransport4 {
		code = append(code, ins(bpf.LoadMemShift{Off: 0}), ins(bpf.ALUOpX{Op: bpf.ALUOpAdd}))
	}
	return append(code, ins(bpf.TAX{}), ins(bpf.LoadIndirect{Off: uint32(base), Size: a.size})), nil
}
