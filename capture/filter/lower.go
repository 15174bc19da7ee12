package filter

// Lowering turns primitives into predicates over packet loads, with libpcap's semantics
// for frames that start at the IP header (DLT_RAW):
//   - IPv4 / IPv6 is the version nibble of byte 0.
//   - IPv4 transport fields are at 4*IHL and only read in unfragmented packets or first
//     fragments; IPv6 transport fields are at 40 (no extension header walking).
//   - "ip6 proto N" (and tcp, udp, ... on IPv6) also matches N after one fragment header.
// The order of the tests matters for truncated packets: a load past the end rejects the
// whole packet (even under "not"), so tests run in libpcap's order.

// pred is the lowered boolean program.
type pred interface{}

type pConst struct{ v bool }
type pAnd struct{ l, r pred }
type pOr struct{ l, r pred }
type pNot struct{ x pred }

// pTest compares l with r. relJset (internal) tests l & r != 0 with a constant r.
type pTest struct {
	l  arith
	op relOp
	r  arith
}

// relJset extends relOp for the fragment test; it never comes from the parser.
const relJset relOp = relLe + 1

// physBase is where offset 0 of a load is.
type physBase int

const (
	physNet        physBase = iota // the IP header
	physIP6Payload                 // byte 40, after the fixed IPv6 header
	physTransport4                 // 4*IHL, after the IPv4 header and options
)

// loadBase is a protocol usable as proto[...] (or an internal raw base with no guard).
type loadBase struct {
	name  string
	phys  physBase
	guard func() pred // what must hold before the load is attempted
}

var (
	rawNet        = &loadBase{name: "pkt", phys: physNet}
	rawTransport4 = &loadBase{name: "pkt4t", phys: physTransport4}
)

// transport4 is the guard of tcp[...], udp[...], icmp[...]: libpcap reads these only in
// IPv4 (first fragments), even for protocols that also exist on IPv6.
func transport4(name string, proto uint32) *loadBase {
	return &loadBase{name: name, phys: physTransport4, guard: func() pred {
		return and(isV4(), test(ld(9, 1), relEq, proto), notFrag4())
	}}
}

var loadBases = map[string]*loadBase{
	"ip":    {name: "ip", phys: physNet, guard: isV4},
	"ip6":   {name: "ip6", phys: physNet, guard: isV6},
	"icmp6": {name: "icmp6", phys: physIP6Payload, guard: func() pred { return and(isV6(), test(ld(6, 1), relEq, 58)) }},
	"tcp":   transport4("tcp", 6), "udp": transport4("udp", 17), "sctp": transport4("sctp", 132),
	"icmp": transport4("icmp", 1), "igmp": transport4("igmp", 2), "igrp": transport4("igrp", 9),
	"pim": transport4("pim", 103), "vrrp": transport4("vrrp", 112), "carp": transport4("carp", 112),
}

func num(v uint32) arith { return &numArith{v} }

func ld(off uint32, size int) arith { return &loadArith{base: rawNet, idx: num(off), size: size} }

func ldTransport4(off uint32, size int) arith {
	return &loadArith{base: rawTransport4, idx: num(off), size: size}
}

func masked(a arith, m uint32) arith {
	if m == 0xffffffff {
		return a
	}
	return &binArith{op: opAnd, l: a, r: num(m)}
}

func test(l arith, op relOp, k uint32) pred { return &pTest{l: l, op: op, r: num(k)} }

// and/or chain left to right: the first argument is evaluated first.
func and(ps ...pred) pred {
	r := ps[0]
	for _, p := range ps[1:] {
		r = &pAnd{r, p}
	}
	return r
}

func or(ps ...pred) pred {
	r := ps[0]
	for _, p := range ps[1:] {
		r = &pOr{r, p}
	}
	return r
}

func isV4() pred { return test(masked(ld(0, 1), 0xf0), relEq, 0x40) }
func isV6() pred { return test(masked(ld(0, 1), 0xf0), relEq, 0x60) }

func notFrag4() pred { return &pNot{test(ld(6, 2), relJset, 0x1fff)} }

func ipProto(p uint32) pred { return and(isV4(), test(ld(9, 1), relEq, p)) }

// ip6Proto: next header p, or a fragment header (44) followed by p.
func ip6Proto(p uint32) pred {
	return and(isV6(), or(test(ld(6, 1), relEq, p),
		and(test(ld(6, 1), relEq, 44), test(ld(40, 1), relEq, p))))
}

func dirComb(d dir, src, dst pred) pred {
	switch d {
	case dirSrc:
		return src
	case dirDst:
		return dst
	case dirSrcAndDst:
		return and(src, dst)
	}
	return or(src, dst)
}

// lower converts the parsed tree; errors are semantic (division by zero, ...).
func lower(n node) (pred, error) {
	switch n := n.(type) {
	case *andNode:
		return lowerPair(n.l, n.r, func(l, r pred) pred { return &pAnd{l, r} })
	case *orNode:
		return lowerPair(n.l, n.r, func(l, r pred) pred { return &pOr{l, r} })
	case *notNode:
		x, err := lower(n.x)
		if err != nil {
			return nil, err
		}
		return &pNot{x}, nil
	case *protoNode:
		return lowerProto(n), nil
	case *hostNode:
		return lowerHost(n), nil
	case *portNode:
		return lowerPort(n), nil
	case *multicastNode:
		if n.fam == famV6 {
			return and(isV6(), test(ld(24, 1), relEq, 0xff)), nil
		}
		return and(isV4(), test(ld(16, 1), relGe, 224)), nil
	case *relNode:
		return lowerRel(n)
	}
	return nil, semErr(0, "internal error: unknown node %T", n)
}

func lowerPair(l, r node, mk func(l, r pred) pred) (pred, error) {
	lp, err := lower(l)
	if err != nil {
		return nil, err
	}
	rp, err := lower(r)
	if err != nil {
		return nil, err
	}
	return mk(lp, rp), nil
}

func lowerProto(n *protoNode) pred {
	if n.proto < 0 {
		if n.fam == famV6 {
			return isV6()
		}
		return isV4()
	}
	p := uint32(n.proto)
	switch n.fam {
	case famV4:
		return ipProto(p)
	case famV6:
		return ip6Proto(p)
	}
	return or(ipProto(p), ip6Proto(p))
}

// lowerHost compares the masked address words. A word under a zero mask is not loaded at
// all: libpcap's optimizer drops those tests, which matters for truncated headers.
func lowerHost(n *hostNode) pred {
	a := n.addr.AsSlice()
	words := func(off uint32) pred {
		ps := []pred{&pConst{true}}
		for i := 0; i < len(a)/4; i++ {
			if m := be32(n.mask[4*i:]); m != 0 {
				ps = append(ps, test(masked(ld(off+4*uint32(i), 4), m), relEq, be32(a[4*i:])&m))
			}
		}
		return and(ps...)
	}
	if len(a) == 4 {
		return and(isV4(), dirComb(n.dir, words(12), words(16)))
	}
	return and(isV6(), dirComb(n.dir, words(8), words(24)))
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func lowerPort(n *portNode) pred {
	protoIn := func(a func() arith) pred {
		var ps []pred
		for _, c := range []struct {
			bit portProto
			num uint32
		}{{ppTCP, 6}, {ppUDP, 17}, {ppSCTP, 132}} {
			if n.proto&c.bit != 0 {
				ps = append(ps, test(a(), relEq, c.num))
			}
		}
		return or(ps...)
	}
	cmp := func(a arith) pred {
		if n.lo == n.hi {
			return test(a, relEq, uint32(n.lo))
		}
		return and(test(a, relGe, uint32(n.lo)), test(a, relLe, uint32(n.hi)))
	}
	v4 := and(isV4(), protoIn(func() arith { return ld(9, 1) }), notFrag4(),
		dirComb(n.dir, cmp(ldTransport4(0, 2)), cmp(ldTransport4(2, 2))))
	v6 := and(isV6(), protoIn(func() arith { return ld(6, 1) }),
		dirComb(n.dir, cmp(ld(40, 2)), cmp(ld(42, 2))))
	return or(v4, v6)
}

// lowerRel: guards of every proto[...] in the relation (in order), then the comparison.
func lowerRel(n *relNode) (pred, error) {
	l, err := fold(n.l)
	if err != nil {
		return nil, err
	}
	r, err := fold(n.r)
	if err != nil {
		return nil, err
	}
	var guards []pred
	seen := map[*loadBase]bool{}
	collectGuards(l, seen, &guards)
	collectGuards(r, seen, &guards)
	op := n.op
	lc, lconst := l.(*numArith)
	rc, rconst := r.(*numArith)
	var cmp pred
	switch {
	case lconst && rconst:
		cmp = &pConst{compare(lc.v, op, rc.v)}
	case lconst: // constant on the right lets the comparison use an immediate
		cmp = &pTest{l: r, op: op.mirror(), r: l}
	default:
		cmp = &pTest{l: l, op: op, r: r}
	}
	return and(append(guards, cmp)...), nil
}

func collectGuards(a arith, seen map[*loadBase]bool, out *[]pred) {
	switch a := a.(type) {
	case *loadArith:
		collectGuards(a.idx, seen, out)
		if a.base.guard != nil && !seen[a.base] {
			seen[a.base] = true
			*out = append(*out, a.base.guard())
		}
	case *binArith:
		collectGuards(a.l, seen, out)
		collectGuards(a.r, seen, out)
	case *negArith:
		collectGuards(a.x, seen, out)
	}
}

func compare(a uint32, op relOp, b uint32) bool {
	switch op {
	case relEq:
		return a == b
	case relNe:
		return a != b
	case relGt:
		return a > b
	case relGe:
		return a >= b
	case relLt:
		return a < b
	case relLe:
		return a <= b
	}
	return a&b != 0
}

// fold evaluates constant subexpressions with 32-bit unsigned semantics (as the BPF
// machine does) and rejects what the kernel would refuse: division by a constant zero
// and constant shifts of 32 bits or more (libpcap refuses the latter too).
func fold(a arith) (arith, error) {
	switch a := a.(type) {
	case *loadArith:
		idx, err := fold(a.idx)
		if err != nil {
			return nil, err
		}
		c := *a
		c.idx = idx
		return &c, nil
	case *negArith:
		x, err := fold(a.x)
		if err != nil {
			return nil, err
		}
		if c, ok := x.(*numArith); ok {
			return num(-c.v), nil
		}
		return &negArith{x}, nil
	case *binArith:
		l, err := fold(a.l)
		if err != nil {
			return nil, err
		}
		r, err := fold(a.r)
		if err != nil {
			return nil, err
		}
		rc, rconst := r.(*numArith)
		if rconst {
			switch {
			case rc.v == 0 && a.op == opDiv:
				return nil, semErr(a.pos, "division by zero")
			case rc.v == 0 && a.op == opMod:
				return nil, semErr(a.pos, "modulus by zero")
			case rc.v > 31 && (a.op == opShl || a.op == opShr):
				return nil, semErr(a.pos, "shift by more than 31 bits")
			}
		}
		if lc, ok := l.(*numArith); ok && rconst {
			return num(evalALU(a.op, lc.v, rc.v)), nil
		}
		return &binArith{op: a.op, l: l, r: r, pos: a.pos}, nil
	}
	return a, nil
}

func evalALU(op aluOp, a, b uint32) uint32 {
	switch op {
	case opAdd:
		return a + b
	case opSub:
		return a - b
	case opMul:
		return a * b
	case opDiv:
		return a / b
	case opMod:
		return a % b
	case opAnd:
		return a & b
	case opOr:
		return a | b
	case opXor:
		return a ^ b
	case opShl:
		return a << b
	}
	return a >> b
}
