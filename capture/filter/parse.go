package filter

// The parser follows libpcap's grammar (grammar.y) rather than the usual conventions:
//   - "and" and "or" have the SAME precedence and associate to the left, so
//     "tcp or udp and port 53" means "(tcp or udp) and port 53"; "not" binds tightest.
//   - A value without qualifiers ("port 23 or 2323", "src 1.2.3.4 or 5.6.7.8") takes the
//     qualifiers of the term before it; after a parenthesised group, the qualifiers are
//     those in force before the group ("port 80 and (tcp) or 81" = ... or port 81).

// addrKind is the "type" qualifier.
type addrKind int

const (
	aDefault addrKind = iota // host or net, decided by the value
	aHost
	aNet
	aPort
	aPortrange
	aProto
)

var addrWords = map[string]addrKind{"host": aHost, "net": aNet, "port": aPort, "portrange": aPortrange}

// qual is the qualifier set a value is read with. valid is false after a primitive that
// has no qualifiers (libpcap's qerr), so a bare value there is an error.
type qual struct {
	valid    bool
	proto    string // "" or a protoKeywords name
	protoPos int
	dir      dir
	addr     addrKind
}

type parser struct {
	toks []token
	i    int
}

// parse returns nil for an expression with no tokens (accept everything).
func parse(expr string) (node, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	if err := checkNesting(toks); err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, nil
	}
	n, _, err := p.parseExpr(qual{})
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.junk(t, `"and", "or" or end of expression`)
	}
	return n, nil
}

// maxNesting bounds bracket depth: the parser backtracks at "(" (relation or group?), which
// costs time quadratic in the depth.
const maxNesting = 200

func checkNesting(toks []token) error {
	depth := 0
	for _, t := range toks {
		switch {
		case isOp(t, "(") || isOp(t, "["):
			if depth++; depth > maxNesting {
				return syntaxErr(t.pos, "brackets nested more than %d deep", maxNesting)
			}
		case isOp(t, ")") || isOp(t, "]"):
			depth--
		}
	}
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func isOp(t token, op string) bool { return t.kind == tOp && t.text == op }

// isWord matches an unescaped keyword.
func isWord(t token, w string) bool { return t.kind == tWord && !t.escaped && t.text == w }

func isAnd(t token) bool { return isWord(t, "and") || isOp(t, "&&") }
func isOr(t token) bool  { return isWord(t, "or") || isOp(t, "||") }
func isNot(t token) bool { return isWord(t, "not") || isOp(t, "!") }

// junk reports a token where an operator or the end was expected.
func (p *parser) junk(t token, want string) error {
	if t.kind == tWord && !t.escaped && !isKeyword(t.text) {
		return syntaxErr(t.pos, "unknown keyword %q", t.text)
	}
	return syntaxErr(t.pos, "unexpected %s; expected %s", t.describe(), want)
}

// parseExpr: term { (and|or) term }, left-associative with equal precedence.
func (p *parser) parseExpr(q qual) (node, qual, error) {
	n, q, err := p.parseTerm(q)
	if err != nil {
		return nil, q, err
	}
	for {
		t := p.peek()
		if !isAnd(t) && !isOr(t) {
			return n, q, nil
		}
		p.next()
		var r node
		r, q, err = p.parseTerm(q)
		if err != nil {
			return nil, q, err
		}
		if isAnd(t) {
			n = &andNode{n, r}
		} else {
			n = &orNode{n, r}
		}
	}
}

func (p *parser) parseTerm(q qual) (node, qual, error) {
	if isNot(p.peek()) {
		p.next()
		x, q, err := p.parseTerm(q)
		if err != nil {
			return nil, q, err
		}
		return &notNode{x}, q, nil
	}
	return p.parseRterm(q)
}

// parseRterm parses one primitive, a parenthesised expression, a relation or a bare value.
func (p *parser) parseRterm(q qual) (node, qual, error) {
	t := p.peek()
	switch {
	case t.kind == tEOF:
		return nil, q, syntaxErr(t.pos, "unexpected end of expression")
	case isOp(t, "("):
		if n, ok, err := p.tryRelation(false); err != nil || ok {
			return n, qual{}, err
		}
		return p.parseParen(q)
	case t.kind == tNum:
		if n, ok, err := p.tryRelation(true); err != nil || ok {
			return n, qual{}, err
		}
		n, err := p.parseValue(q)
		return n, q, err
	case isOp(t, "-") || isWord(t, "len") || isWord(t, "length") ||
		(t.kind == tWord && !t.escaped && isOp(p.peekN(1), "[")):
		n, err := p.parseRelation()
		return n, qual{}, err
	case t.kind == tWord && !t.escaped:
		return p.parseKeyword(q)
	case t.kind == tOp:
		return nil, q, syntaxErr(t.pos, "unexpected %s", t.describe())
	}
	n, err := p.parseValue(q) // address, IPv6 address or escaped name
	return n, q, err
}

func (p *parser) parseParen(q qual) (node, qual, error) {
	open := p.next()
	n, _, err := p.parseExpr(q)
	if err != nil {
		return nil, q, err
	}
	if t := p.peek(); !isOp(t, ")") {
		if t.kind == tEOF {
			return nil, q, syntaxErr(t.pos, `missing ")" to close "(" at offset %d`, open.pos)
		}
		return nil, q, p.junk(t, `"and", "or" or ")"`)
	}
	p.next()
	return n, q, nil // the qualifiers before the group stay in force after it
}

// parseKeyword handles a term that starts with an unescaped word.
func (p *parser) parseKeyword(q qual) (node, qual, error) {
	t := p.peek()
	w := t.text
	if _, ok := protoKeywords[w]; ok {
		return p.parseProtoLed()
	}
	switch w {
	case "src", "dst", "host", "net", "port", "portrange", "proto":
		hq, err := p.parseHead("", 0)
		if err != nil {
			return nil, q, err
		}
		n, err := p.parseID(hq)
		return n, hq, err
	case "less", "greater":
		p.next()
		v := p.next()
		if v.kind != tNum {
			return nil, q, syntaxErr(v.pos, "expected a number after %q, found %s", w, v.describe())
		}
		op := relLe
		if w == "greater" {
			op = relGe
		}
		return &relNode{op: op, l: &lenArith{}, r: &numArith{v.num}, pos: t.pos}, qual{}, nil
	case "and", "or", "not", "mask":
		return nil, q, syntaxErr(t.pos, "unexpected %s", t.describe())
	}
	if reason, ok := unsupportedKeywords[w]; ok {
		return nil, q, p.unsupported(reason)
	}
	n, err := p.parseValue(q) // a name with inherited qualifiers: "port 80 or http"
	return n, q, err
}

// unsupported builds the error for a valid but unimplemented construct starting at the
// current token, naming it with the qualifier that follows ("ether host").
func (p *parser) unsupported(reason string) error {
	t := p.peek()
	construct := t.text
	if n := p.peekN(1); isOp(n, "[") {
		construct += "[...]"
	} else if n.kind == tWord && qualifierWords[n.text] {
		construct += " " + n.text
	}
	return unsupportedErr(t.pos, construct, reason)
}

// parseProtoLed handles a protocol keyword: alone ("tcp"), as the protocol qualifier of a
// head ("tcp dst port 80", "ip6 host ::1", "ip proto 6"), or "ip multicast".
func (p *parser) parseProtoLed() (node, qual, error) {
	t := p.next()
	nt := p.peek()
	switch {
	case isWord(nt, "multicast"):
		p.next()
		if t.text != "ip" && t.text != "ip6" {
			return nil, qual{}, semErr(nt.pos, `"multicast" applies to ip or ip6 only, not %q`, t.text)
		}
		return &multicastNode{fam: protoKeywords[t.text].fam}, qual{}, nil
	case isWord(nt, "broadcast"):
		return nil, qual{}, unsupportedErr(t.pos, t.text+" broadcast", reasonNetmask)
	case isWord(nt, "protochain"):
		return nil, qual{}, unsupportedErr(t.pos, t.text+" protochain", reasonChain)
	case isWord(nt, "gateway"):
		return nil, qual{}, unsupportedErr(t.pos, t.text+" gateway", reasonNames)
	case isWord(nt, "src") || isWord(nt, "dst") || isWord(nt, "proto") ||
		nt.kind == tWord && !nt.escaped && addrWords[nt.text] != aDefault:
		hq, err := p.parseHead(t.text, t.pos)
		if err != nil {
			return nil, qual{}, err
		}
		n, err := p.parseID(hq)
		return n, hq, err
	}
	a := protoKeywords[t.text]
	return &protoNode{fam: a.fam, proto: a.proto}, qual{}, nil
}

// parseHead reads [dir] [type] qualifiers after an optional protocol qualifier.
func (p *parser) parseHead(proto string, protoPos int) (qual, error) {
	q := qual{valid: true, proto: proto, protoPos: protoPos}
	t := p.peek()
	if isWord(t, "src") || isWord(t, "dst") {
		q.dir = p.parseDir()
		t = p.peek()
		if isWord(t, "proto") {
			return q, syntaxErr(t.pos, `"proto" cannot follow a direction qualifier`)
		}
	}
	if t.kind == tWord && !t.escaped {
		if k, ok := addrWords[t.text]; ok {
			p.next()
			q.addr = k
		} else if t.text == "proto" {
			p.next()
			q.addr = aProto
		} else if t.text == "gateway" || t.text == "protochain" {
			return q, unsupportedErr(t.pos, t.text, unsupportedKeywords[t.text])
		}
	}
	return q, nil
}

// parseDir reads src, dst, "src or dst", "src and dst" (and the dst-first spellings).
func (p *parser) parseDir() dir {
	first := p.next()
	conj, second := p.peek(), p.peekN(1)
	other := "dst"
	if first.text == "dst" {
		other = "src"
	}
	if (isAnd(conj) || isOr(conj)) && isWord(second, other) {
		p.next()
		p.next()
		if isAnd(conj) {
			return dirSrcAndDst
		}
		return dirSrcOrDst
	}
	if first.text == "src" {
		return dirSrc
	}
	return dirDst
}

// parseID reads the value part after a head: a value, "not id", or a parenthesised list
// of ids joined by and/or ("host (10.0.0.1 or 10.0.0.2)"), all read with the head's q.
func (p *parser) parseID(q qual) (node, error) {
	t := p.peek()
	switch {
	case isNot(t):
		p.next()
		x, err := p.parseID(q)
		if err != nil {
			return nil, err
		}
		return &notNode{x}, nil
	case isOp(t, "("):
		p.next()
		n, err := p.parseID(q)
		if err != nil {
			return nil, err
		}
		for {
			c := p.peek()
			if isOp(c, ")") {
				p.next()
				return n, nil
			}
			if !isAnd(c) && !isOr(c) {
				if c.kind == tEOF {
					return nil, syntaxErr(c.pos, `missing ")" to close "(" at offset %d`, t.pos)
				}
				return nil, p.junk(c, `"and", "or" or ")"`)
			}
			p.next()
			r, err := p.parseID(q)
			if err != nil {
				return nil, err
			}
			if isAnd(c) {
				n = &andNode{n, r}
			} else {
				n = &orNode{n, r}
			}
		}
	}
	return p.parseValue(q)
}
