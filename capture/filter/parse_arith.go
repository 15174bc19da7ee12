package filter

// Arithmetic follows libpcap's yacc precedences: | < & < << >> < + - < * / < unary minus.
// '%' and '^' have no declared precedence there, so yacc always shifts on them: they take
// everything to their right as the right operand ("2 ^ 3 * 2" = 2 ^ (3*2),
// "6 & 3 ^ 1" = 6 & (3^1), "7 % 4 % 3" = 7 % (4%3)). noPrec reproduces that.

const (
	precUnary = 6
	noPrec    = 100
)

var arithOps = map[string]struct {
	op   aluOp
	prec int
}{
	"|": {opOr, 1}, "&": {opAnd, 2}, "<<": {opShl, 3}, ">>": {opShr, 3},
	"+": {opAdd, 4}, "-": {opSub, 4}, "*": {opMul, 5}, "/": {opDiv, 5},
	"%": {opMod, noPrec}, "^": {opXor, noPrec},
}

var relOps = map[string]relOp{
	"=": relEq, "==": relEq, "!=": relNe, ">": relGt, ">=": relGe, "<": relLt, "<=": relLe,
}

// tryRelation parses "arith relop arith" if the tokens here form one. When they do not,
// it rewinds and reports ok=false so the caller can read a parenthesised boolean
// expression or a bare value instead. oneValue: a lone number is a bare value ("port 23
// or 2323"), but a longer arithmetic expression without a comparison is an error.
func (p *parser) tryRelation(oneValue bool) (node, bool, error) {
	start := p.i
	l, err := p.parseArith(0)
	if err != nil {
		if oneValue && p.i > start+1 { // clearly arithmetic: report the real problem
			return nil, false, err
		}
		p.i = start
		return nil, false, nil
	}
	t := p.peek()
	if _, ok := relOps[t.text]; !ok || t.kind != tOp {
		if oneValue && p.i > start+1 {
			return nil, false, syntaxErr(t.pos, "expected a comparison (==, !=, <, <=, >, >=) after %s, found %s",
				l, t.describe())
		}
		p.i = start
		return nil, false, nil
	}
	n, err := p.finishRelation(l, p.toks[start].pos)
	return n, err == nil, err
}

// parseRelation parses a relation where nothing else is possible (it starts with len,
// a minus sign, or proto[...]).
func (p *parser) parseRelation() (node, error) {
	pos := p.peek().pos
	l, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tOp || !isRelOp(t.text) {
		return nil, syntaxErr(t.pos, "expected a comparison (==, !=, <, <=, >, >=) after %s, found %s",
			l, t.describe())
	}
	return p.finishRelation(l, pos)
}

func isRelOp(s string) bool { _, ok := relOps[s]; return ok }

func (p *parser) finishRelation(l arith, pos int) (node, error) {
	op := relOps[p.next().text]
	r, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	return &relNode{op: op, l: l, r: r, pos: pos}, nil
}

// parseArith is precedence climbing over arithOps.
func (p *parser) parseArith(minPrec int) (arith, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		o, ok := arithOps[t.text]
		if t.kind != tOp || !ok || o.prec < minPrec {
			return l, nil
		}
		p.next()
		rp := o.prec + 1
		if o.prec == noPrec {
			rp = 0
		}
		r, err := p.parseArith(rp)
		if err != nil {
			return nil, err
		}
		l = &binArith{op: o.op, l: l, r: r, pos: t.pos}
	}
}

func (p *parser) parseUnary() (arith, error) {
	if isOp(p.peek(), "-") {
		p.next()
		x, err := p.parseArith(precUnary)
		if err != nil {
			return nil, err
		}
		return &negArith{x}, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (arith, error) {
	t := p.next()
	switch {
	case t.kind == tNum:
		return &numArith{t.num}, nil
	case isWord(t, "len") || isWord(t, "length"):
		return &lenArith{}, nil
	case isOp(t, "("):
		a, err := p.parseArith(0)
		if err != nil {
			return nil, err
		}
		if c := p.next(); !isOp(c, ")") {
			return nil, syntaxErr(c.pos, `expected ")" in arithmetic expression, found %s`, c.describe())
		}
		return a, nil
	case t.kind == tWord && !t.escaped && isOp(p.peek(), "["):
		return p.parseLoad(t)
	case t.kind == tWord && !t.escaped && !isKeyword(t.text):
		return nil, syntaxErr(t.pos, "unknown name %q in arithmetic expression (write \"a - b\" with spaces to subtract)", t.text)
	}
	return nil, syntaxErr(t.pos, "expected a number, len or proto[offset], found %s", t.describe())
}

// parseLoad reads proto[index] or proto[index:size] after the protocol word.
func (p *parser) parseLoad(t token) (arith, error) {
	base, ok := loadBases[t.text]
	if !ok {
		if reason, unsup := unsupportedKeywords[t.text]; unsup {
			return nil, unsupportedErr(t.pos, t.text+"[...]", reason)
		}
		return nil, semErr(t.pos, "%q cannot be indexed; use ip, ip6, tcp, udp, sctp, icmp, icmp6 or igmp", t.text)
	}
	p.next() // [
	idx, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	size := 1
	if isOp(p.peek(), ":") {
		p.next()
		st := p.next()
		if st.kind != tNum {
			return nil, syntaxErr(st.pos, "expected a size (1, 2 or 4) after \":\", found %s", st.describe())
		}
		if st.num != 1 && st.num != 2 && st.num != 4 {
			return nil, semErr(st.pos, "size must be 1, 2 or 4, not %d", st.num)
		}
		size = int(st.num)
	}
	if c := p.next(); !isOp(c, "]") {
		return nil, syntaxErr(c.pos, `expected "]", found %s`, c.describe())
	}
	return &loadArith{base: base, idx: idx, size: size, pos: t.pos}, nil
}
