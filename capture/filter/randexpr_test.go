package filter

import (
	"fmt"
	"math/rand"
	"strings"
)

// exprGen writes random valid expressions in the supported language, avoiding the
// libpcap 1.10 bugs noted on diffCase and arith.
type exprGen struct {
	r *rand.Rand
	// fullWords avoids IPv6 prefixes with an all-zero mask word: libpcap's unoptimized
	// code still loads those words (a truncated header then fails), the optimized code
	// and ours do not.
	fullWords bool
}

func (g *exprGen) pick(xs ...string) string { return xs[g.r.Intn(len(xs))] }

func (g *exprGen) expr(depth int) string {
	if depth <= 0 || g.r.Intn(3) == 0 {
		return g.prim()
	}
	switch g.r.Intn(7) {
	case 0, 1:
		return g.expr(depth-1) + g.pick(" and ", " && ") + g.expr(depth-1)
	case 2, 3:
		return g.expr(depth-1) + g.pick(" or ", " || ") + g.expr(depth-1)
	case 4:
		return g.pick("not ", "!") + g.expr(depth-1)
	case 5:
		return "(" + g.expr(depth-1) + ")"
	}
	// qualifier inheritance: a primitive with qualifiers followed by bare values
	head, val := g.qualified()
	if head == "" {
		head = "host"
	}
	s := head + " " + val
	for i := g.r.Intn(3); i >= 0; i-- {
		_, v := g.qualifiedLike(head)
		s += g.pick(" or ", " and ", " and not ") + v
	}
	return s
}

func (g *exprGen) v4() string { return v4Pool[g.r.Intn(len(v4Pool))] }
func (g *exprGen) v6() string { return v6Pool[g.r.Intn(len(v6Pool))] }
func (g *exprGen) port() string {
	if g.r.Intn(4) == 0 {
		return g.pick("domain", "https", "23", "2323") // valid for tcp and udp
	}
	return fmt.Sprint(portPool[g.r.Intn(len(portPool))])
}

func (g *exprGen) dir() string { return g.pick("", "src ", "dst ", "src or dst ", "src and dst ") }

// qualified returns a head and a value that fits it.
func (g *exprGen) qualified() (string, string) {
	switch g.r.Intn(4) {
	case 0:
		if d := g.dir(); d != "" {
			return strings.TrimSpace(g.pick("", "ip ") + d + g.pick("host", "")), g.v4()
		}
		return g.pick("", "ip ") + "host", g.v4()
	case 1:
		return strings.TrimSpace(g.pick("", "ip6 ") + g.dir() + "host"), g.v6()
	case 2:
		return strings.TrimSpace(g.pick("", "tcp ", "udp ") + g.dir() + "port"), g.pick("22", "23", "53", "80", "443", "2323")
	}
	return g.pick("", "ip ", "ip6 ") + "proto", g.pick("6", "17", "1", "58", "132")
}

func (g *exprGen) qualifiedLike(head string) (string, string) {
	switch {
	case strings.HasSuffix(head, "port"):
		return head, g.pick("22", "23", "53", "80", "443", "2323")
	case strings.HasSuffix(head, "proto"):
		return head, g.pick("6", "17", "1", "58", "132")
	case strings.HasPrefix(head, "ip6"):
		return head, g.v6()
	}
	if strings.Contains(head, "ip6") {
		return head, g.v6()
	}
	if strings.HasPrefix(head, "ip") {
		return head, g.v4()
	}
	return head, g.pick(g.v4(), g.v6())
}

func (g *exprGen) prim() string {
	switch g.r.Intn(12) {
	case 0:
		return g.pick("ip", "ip6", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "pim")
	case 1:
		return g.pick("ip ", "ip6 ", "") + "proto " + g.pick("6", "17", "1", "58", "132", "44", "47")
	case 2:
		return g.pick("", "ip ") + g.dir() + "host " + g.v4()
	case 3:
		return g.pick("", "ip6 ") + g.dir() + "host " + g.v6()
	case 4:
		if g.fullWords {
			return g.dir() + "net " + g.pick("10.0.0.0/8", "192.168", "10", "2001:db8::/120", "::/100")
		}
		return g.dir() + "net " + g.pick("10.0.0.0/8", "10.1.0.0/16", "192.168", "10", "198.51.100.0/24",
			"2001:db8::/32", "2001:db8:1::/48", "fe80::/10", "10.0.0.0 mask 255.255.0.0")
	case 5:
		return g.pick("", "tcp ", "udp ", "sctp ") + g.dir() + "port " + g.port()
	case 6:
		lo := g.r.Intn(3000)
		return g.pick("", "tcp ", "udp ") + g.dir() + fmt.Sprintf("portrange %d-%d", lo, lo+g.r.Intn(30000))
	case 7:
		return g.pick("less ", "greater ") + fmt.Sprint(20+g.r.Intn(200))
	case 8:
		return g.pick("ip", "ip6") + " multicast"
	}
	return g.arith(2, g.base()) + " " + g.pick("=", "==", "!=", "<", "<=", ">", ">=") + " " + g.arithOrConst()
}

func (g *exprGen) arithOrConst() string {
	if g.r.Intn(2) == 0 {
		return fmt.Sprint(g.r.Intn(300))
	}
	return g.arith(1, g.base())
}

func (g *exprGen) base() string {
	return g.pick("len", "ip", "ip", "ip6", "tcp", "tcp", "udp", "icmp", "icmp6")
}

// arith builds an expression whose leftmost operand is a load from base, and whose other
// operands are constants, len or loads from the same base: libpcap 1.10 drops the
// protocol check of a right operand ("len + ip[8] > 0" has no "ip" test) and mistakes a
// load whose index is 0 for a constant 0 divisor, so those are avoided.
func (g *exprGen) arith(depth int, base string) string {
	if depth <= 0 || g.r.Intn(3) == 0 {
		return g.load(base)
	}
	l := "(" + g.arith(depth-1, base) + ")"
	switch op := g.pick("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"); op {
	case "/", "%":
		return l + " " + op + " " + fmt.Sprint(1+g.r.Intn(9))
	case "<<", ">>":
		return l + " " + op + " " + fmt.Sprint(g.r.Intn(32))
	default:
		r := fmt.Sprint(g.r.Intn(256))
		switch g.r.Intn(3) {
		case 0:
			r = "(" + g.arith(depth-1, base) + ")"
		case 1:
			r = "len"
		}
		return l + " " + op + " " + r
	}
}

// headerLen is how much of each base a well-formed sample packet always has, so loads
// inside it never fail (libpcap's optimizer deletes loads whose value is unused, which
// changes the verdict only when such a load would have failed).
var headerLen = map[string]int{"ip": 20, "ip6": 40, "tcp": 20, "udp": 8, "icmp": 8, "icmp6": 4}

func (g *exprGen) load(base string) string {
	if base == "len" {
		return "len"
	}
	size := []int{1, 1, 2, 4}[g.r.Intn(4)]
	if size > headerLen[base] {
		size = 1
	}
	idx := fmt.Sprint(g.r.Intn(headerLen[base] - size + 1))
	if g.r.Intn(6) == 0 {
		idx, size = base+"[1] & 3", 1 // computed index
	}
	return fmt.Sprintf("%s[%s:%d]", base, idx, size)
}
