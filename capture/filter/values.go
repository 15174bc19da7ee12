package filter

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
)

// parseValue reads one value and turns it into a primitive according to q, applying the
// same rules as libpcap's gen_ncode/gen_mcode/gen_scode.
func (p *parser) parseValue(q qual) (node, error) {
	t := p.peek()
	if t.kind == tEOF {
		return nil, syntaxErr(t.pos, "unexpected end of expression")
	}
	if t.kind == tOp {
		return nil, syntaxErr(t.pos, "unexpected %s", t.describe())
	}
	if t.kind == tWord && !t.escaped && isKeyword(t.text) && !protoName(q, t) {
		return nil, syntaxErr(t.pos, "unexpected keyword %q", t.text)
	}
	if !q.valid {
		if t.kind == tWord && strings.Contains(t.text, "-") {
			return nil, syntaxErr(t.pos, `unknown keyword %q (write "a - b" with spaces to subtract)`, t.text)
		}
		if t.kind == tWord {
			return nil, syntaxErr(t.pos, "unknown keyword %q", t.text)
		}
		return nil, syntaxErr(t.pos, "%s needs a qualifier such as host, net, port or proto", t.describe())
	}
	switch q.addr {
	case aPort:
		return p.portValue(q)
	case aPortrange:
		return p.portrangeValue(q)
	case aProto:
		return p.protoValue(q)
	}
	return p.hostValue(q)
}

// protoName allows "ip proto tcp" without the backslash libpcap requires (ip proto \tcp).
func protoName(q qual, t token) bool {
	_, ok := protocolNames[t.text]
	return q.valid && q.addr == aProto && ok
}

// hostValue reads an IPv4/IPv6 address or network for host, net or a bare direction.
func (p *parser) hostValue(q qual) (node, error) {
	if q.proto != "" && q.proto != "ip" && q.proto != "ip6" {
		return nil, semErr(q.protoPos, "%q cannot qualify a host or network; write \"%s and host ...\"", q.proto, q.proto)
	}
	t := p.next()
	var n *hostNode
	var err error
	switch t.kind {
	case tNum:
		n = p.v4FromNumber(q, t)
	case tHID:
		n, err = p.v4FromDotted(q, t)
	case tHID6:
		n, err = p.v6Value(q, t)
	default: // a name
		kind := "host"
		if q.addr == aNet {
			kind = "net"
		}
		return nil, unsupportedErr(t.pos, kind+" "+t.text, reasonNames)
	}
	if err != nil {
		return nil, err
	}
	if q.proto == "ip" && n.addr.Is6() {
		return nil, semErr(t.pos, `"ip" qualifier with IPv6 address %s`, n.addr)
	}
	if q.proto == "ip6" && n.addr.Is4() {
		return nil, semErr(t.pos, `"ip6" qualifier with IPv4 address %s`, n.addr)
	}
	n.dir = q.dir
	return n, nil
}

// v4FromNumber: "net 10" is 10.0.0.0/8 (the number is shifted up to the first nonzero
// byte); "host 10" is the single address 0.0.0.10, as in libpcap.
func (p *parser) v4FromNumber(q qual, t token) *hostNode {
	v, mask := t.num, uint32(0xffffffff)
	if q.addr == aNet {
		for v != 0 && v&0xff000000 == 0 {
			v <<= 8
			mask <<= 8
		}
	}
	return v4Node(v, mask)
}

// v4FromDotted: a partial address such as 192.168 means 192.168.0.0/16 (also for host,
// as in libpcap). "A/len" and "A mask M" are only valid with net.
func (p *parser) v4FromDotted(q qual, t token) (*hostNode, error) {
	v, vlen := dottedValue(t.text)
	mask := uint32(0xffffffff) << (32 - vlen)
	v <<= 32 - vlen
	text := t.text
	switch nt := p.peek(); {
	case isOp(nt, "/"):
		p.next()
		lt := p.next()
		if lt.kind != tNum {
			return nil, syntaxErr(lt.pos, `expected a prefix length after "/", found %s`, lt.describe())
		}
		if q.addr != aNet {
			return nil, semErr(t.pos, "%s/%d needs the \"net\" qualifier", t.text, lt.num)
		}
		if lt.num > 32 {
			return nil, semErr(lt.pos, "prefix length %d out of range (0-32)", lt.num)
		}
		mask = uint32(uint64(0xffffffff) << (32 - lt.num))
		text += "/" + lt.text
	case isWord(nt, "mask"):
		p.next()
		mt := p.next()
		if mt.kind != tHID {
			return nil, syntaxErr(mt.pos, `expected a dotted IPv4 mask after "mask", found %s`, mt.describe())
		}
		if q.addr != aNet {
			return nil, semErr(t.pos, `"mask" needs the "net" qualifier`)
		}
		m, mlen := dottedValue(mt.text)
		mask = m << (32 - mlen)
		text += " mask " + mt.text
	default:
		return v4Node(v, mask), nil
	}
	if v&^mask != 0 {
		return nil, semErr(t.pos, "non-network bits set in %q", text)
	}
	return v4Node(v, mask), nil
}

func (p *parser) v6Value(q qual, t token) (*hostNode, error) {
	bitsLen := 128
	if nt := p.peek(); isOp(nt, "/") {
		p.next()
		lt := p.next()
		if lt.kind != tNum {
			return nil, syntaxErr(lt.pos, `expected a prefix length after "/", found %s`, lt.describe())
		}
		if q.addr != aNet {
			return nil, semErr(t.pos, "%s/%d needs the \"net\" qualifier", t.text, lt.num)
		}
		if lt.num > 128 {
			return nil, semErr(lt.pos, "prefix length %d out of range (0-128)", lt.num)
		}
		bitsLen = int(lt.num)
		if pfx := netip.PrefixFrom(t.addr, bitsLen); pfx.Masked().Addr() != t.addr {
			return nil, semErr(t.pos, "non-network bits set in %q", t.text+"/"+lt.text)
		}
	}
	mask := make([]byte, 16)
	for i := 0; i < bitsLen; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return &hostNode{addr: t.addr, mask: mask}, nil
}

func v4Node(v, mask uint32) *hostNode {
	var a, m [4]byte
	binary.BigEndian.PutUint32(a[:], v&mask)
	binary.BigEndian.PutUint32(m[:], mask)
	return &hostNode{addr: netip.AddrFrom4(a), mask: m[:]}
}

// dottedValue packs validated dotted parts left to right; vlen is 8 bits per part.
func dottedValue(s string) (v uint32, vlen uint32) {
	for _, part := range strings.Split(s, ".") {
		n, _ := strconv.ParseUint(part, 10, 8)
		v = v<<8 | uint32(n)
		vlen += 8
	}
	return v, vlen
}

// portQualifier maps the protocol qualifier of a port to the protocols it allows.
func portQualifier(q qual) (portProto, error) {
	switch q.proto {
	case "":
		return ppAny, nil
	case "tcp":
		return ppTCP, nil
	case "udp":
		return ppUDP, nil
	case "sctp":
		return ppSCTP, nil
	}
	return 0, semErr(q.protoPos, "%q cannot qualify a port; use tcp, udp or sctp", q.proto)
}

var ppNames = map[portProto]string{ppTCP: "tcp", ppUDP: "udp", ppSCTP: "sctp"}

// narrow combines the qualifier's protocols with those a service name is listed for:
// "port ssh" is TCP only, "udp port ssh" is an error (libpcap: "port 'ssh' is tcp").
func narrow(qp, sp portProto, name string, pos int) (portProto, error) {
	if qp == ppAny {
		return sp, nil
	}
	if sp&qp == 0 {
		return 0, semErr(pos, "port %q is %s only", name, ppNames[sp])
	}
	return qp, nil
}

func (p *parser) portValue(q qual) (node, error) {
	qp, err := portQualifier(q)
	if err != nil {
		return nil, err
	}
	t := p.next()
	var port uint16
	pp := qp
	switch t.kind {
	case tNum:
		if t.num > 65535 {
			return nil, semErr(t.pos, "port %d out of range (0-65535)", t.num)
		}
		port = uint16(t.num)
		if nt := p.peek(); isOp(nt, "-") && nt.pos == t.end {
			return nil, semErr(t.pos, "use portrange for a range of ports")
		}
	case tWord:
		svc, ok := services[t.text]
		if !ok {
			return nil, semErr(t.pos, "unknown port name %q", t.text)
		}
		if pp, err = narrow(qp, svc.proto, t.text, t.pos); err != nil {
			return nil, err
		}
		port = svc.port
	default:
		return nil, syntaxErr(t.pos, "expected a port number or name, found %s", t.describe())
	}
	return &portNode{proto: pp, dir: q.dir, lo: port, hi: port}, nil
}

// portrangeValue reads "N-M" where each side is a number or a name. The lexer makes
// "20-25" three tokens and "ssh-telnet" one word, so adjacent tokens are joined and every
// '-' is tried as the separator (names such as "ftp-data" contain one).
func (p *parser) portrangeValue(q qual) (node, error) {
	qp, err := portQualifier(q)
	if err != nil {
		return nil, err
	}
	first := p.next()
	if first.kind != tNum && first.kind != tWord {
		return nil, syntaxErr(first.pos, "expected a port range such as 1-1023, found %s", first.describe())
	}
	text, end := first.text, first.end
	for {
		dash, after := p.peek(), p.peekN(1)
		if !isOp(dash, "-") || dash.pos != end || after.pos != dash.end ||
			(after.kind != tNum && after.kind != tWord) {
			break
		}
		p.next()
		p.next()
		text += "-" + after.text
		end = after.end
	}
	lo, hi, sp, err := splitRange(text, first.pos)
	if err != nil {
		return nil, err
	}
	pp, err := narrow(qp, sp, text, first.pos)
	if err != nil {
		return nil, err
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return &portNode{proto: pp, dir: q.dir, lo: lo, hi: hi}, nil
}

func splitRange(text string, pos int) (lo, hi uint16, pp portProto, err error) {
	if !strings.Contains(text, "-") {
		v, p, perr := resolvePort(text, pos)
		return v, v, p, perr
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '-' {
			continue
		}
		l, lp, lerr := resolvePort(text[:i], pos)
		h, hp, herr := resolvePort(text[i+1:], pos+i+1)
		if lerr == nil && herr == nil {
			if lp != hp { // as libpcap: names listed for different protocols mean any
				lp = ppAny
			}
			return l, h, lp, nil
		}
		if pe, ok := lerr.(*posError); ok && strings.Contains(pe.msg, "out of range") {
			return 0, 0, 0, lerr
		}
		if pe, ok := herr.(*posError); ok && strings.Contains(pe.msg, "out of range") {
			return 0, 0, 0, herr
		}
	}
	return 0, 0, 0, semErr(pos, "unknown port range %q", text)
}

func resolvePort(s string, pos int) (uint16, portProto, error) {
	if s != "" && isDigit(s[0]) {
		v, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			return 0, 0, semErr(pos, "invalid port %q", s)
		}
		if v > 65535 {
			return 0, 0, semErr(pos, "port %d out of range (0-65535)", v)
		}
		return uint16(v), ppAny, nil
	}
	if svc, ok := services[s]; ok {
		return svc.port, svc.proto, nil
	}
	return 0, 0, semErr(pos, "unknown port name %q", s)
}

func (p *parser) protoValue(q qual) (node, error) {
	fam := famAny
	switch q.proto {
	case "":
	case "ip":
		fam = famV4
	case "ip6":
		fam = famV6
	default:
		return nil, semErr(q.protoPos, "%q cannot qualify proto; use ip, ip6 or neither", q.proto)
	}
	t := p.next()
	var v int
	switch t.kind {
	case tNum:
		if t.num > 255 {
			return nil, semErr(t.pos, "protocol %d out of range (0-255)", t.num)
		}
		v = int(t.num)
	case tWord:
		n, ok := protocolNames[t.text]
		if !ok {
			return nil, semErr(t.pos, "unknown protocol name %q", t.text)
		}
		v = n
	default:
		return nil, syntaxErr(t.pos, "expected a protocol number or name, found %s", t.describe())
	}
	return &protoNode{fam: fam, proto: v}, nil
}
