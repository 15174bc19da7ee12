package filter

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// The parser produces a tree of boolean nodes whose leaves are resolved primitives
// (qualifiers applied, names looked up). String renders a canonical, fully parenthesised
// form used by tests and debugging.

type node interface{ String() string }

type andNode struct{ l, r node }
type orNode struct{ l, r node }
type notNode struct{ x node }

func (n *andNode) String() string { return "(" + n.l.String() + " and " + n.r.String() + ")" }
func (n *orNode) String() string  { return "(" + n.l.String() + " or " + n.r.String() + ")" }
func (n *notNode) String() string { return "not " + n.x.String() }

// protoNode is "ip", "ip6", or "[ip|ip6] proto N" (tcp, udp, ... are abbreviations).
type protoNode struct {
	fam   family
	proto int // -1: the family alone
}

func (n *protoNode) String() string {
	prefix := map[family]string{famAny: "", famV4: "ip ", famV6: "ip6 "}[n.fam]
	if n.proto < 0 {
		return strings.TrimSpace(prefix)
	}
	return fmt.Sprintf("%sproto %d", prefix, n.proto)
}

// dir is a direction qualifier.
type dir int

const (
	dirSrcOrDst dir = iota // the default
	dirSrc
	dirDst
	dirSrcAndDst
)

func (d dir) prefix() string {
	return [...]string{"", "src ", "dst ", "src and dst "}[d]
}

// hostNode is a host or network test on the IPv4 or IPv6 addresses.
type hostNode struct {
	dir  dir
	addr netip.Addr // IPv4 or IPv6, host bits already zero
	mask []byte     // same length as the address: 4 or 16 bytes
}

func (n *hostNode) String() string {
	ones := 0
	for _, b := range n.mask {
		ones += bits.OnesCount8(b)
	}
	if ones == n.addr.BitLen() {
		return n.dir.prefix() + "host " + n.addr.String()
	}
	m, _ := netip.AddrFromSlice(n.mask)
	if netip.PrefixFrom(m, ones).Masked().Addr() == m { // contiguous mask
		return n.dir.prefix() + "net " + netip.PrefixFrom(n.addr, ones).String()
	}
	return n.dir.prefix() + "net " + n.addr.String() + " mask " + m.String()
}

// portNode tests transport ports on IPv4 (first fragments) and IPv6 (no extension headers).
type portNode struct {
	proto  portProto
	dir    dir
	lo, hi uint16
}

func (n *portNode) String() string {
	var p string
	switch n.proto {
	case ppTCP:
		p = "tcp "
	case ppUDP:
		p = "udp "
	case ppSCTP:
		p = "sctp "
	}
	if n.lo == n.hi {
		return fmt.Sprintf("%s%sport %d", p, n.dir.prefix(), n.lo)
	}
	return fmt.Sprintf("%s%sportrange %d-%d", p, n.dir.prefix(), n.lo, n.hi)
}

// multicastNode is "ip multicast" or "ip6 multicast" (destination address class).
type multicastNode struct{ fam family }

func (n *multicastNode) String() string {
	if n.fam == famV6 {
		return "ip6 multicast"
	}
	return "ip multicast"
}

// relOp is a comparison operator of an arithmetic relation.
type relOp int

const (
	relEq relOp = iota
	relNe
	relGt
	relGe
	relLt
	relLe
)

var relOpText = [...]string{"==", "!=", ">", ">=", "<", "<=", "jset"}

func (o relOp) String() string { return relOpText[o] }

// mirror returns the operator with its operands swapped (a < b  <=>  b > a).
func (o relOp) mirror() relOp {
	return [...]relOp{relEq, relNe, relLt, relLe, relGt, relGe, relLe + 1}[o]
}

// relNode is "arith relop arith"; less/greater/len are relations on the packet length.
type relNode struct {
	op   relOp
	l, r arith
	pos  int
}

func (n *relNode) String() string { return n.l.String() + " " + n.op.String() + " " + n.r.String() }

// arith is an arithmetic expression.
type arith interface{ String() string }

type numArith struct{ v uint32 }
type lenArith struct{}

// loadArith is base[idx:size]; base says where offset 0 is and what must hold first.
type loadArith struct {
	base *loadBase
	idx  arith
	size int
	pos  int
}

// aluOp is an arithmetic operator.
type aluOp int

const (
	opAdd aluOp = iota
	opSub
	opMul
	opDiv
	opMod
	opAnd
	opOr
	opXor
	opShl
	opShr
)

var aluOpText = [...]string{"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}

type binArith struct {
	op   aluOp
	l, r arith
	pos  int // of the operator, for errors such as division by zero
}

type negArith struct{ x arith }

func (a *numArith) String() string { return fmt.Sprint(a.v) }
func (a *lenArith) String() string { return "len" }
func (a *loadArith) String() string {
	return fmt.Sprintf("%s[%s:%d]", a.base.name, a.idx, a.size)
}
func (a *binArith) String() string {
	return "(" + a.l.String() + " " + aluOpText[a.op] + " " + a.r.String() + ")"
}
func (a *negArith) String() string { return "-" + a.x.String() }
