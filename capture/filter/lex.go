package filter

import (
	"net/netip"
	"strconv"
	"strings"
)

// tokKind classifies lexer output. Keywords are not a kind of their own: they are words
// that the parser recognises in context, as in libpcap where "\tcp" is a plain name.
type tokKind int

const (
	tEOF  tokKind = iota
	tNum          // decimal, 0x hex, 0-prefixed octal, or a named constant (tcp-syn)
	tHID          // dotted IPv4 address, possibly partial: 10, 10.1, 10.1.2.3 (2-4 parts)
	tHID6         // IPv6 address
	tWord         // identifier: keyword, port/protocol name, host name
	tOp           // punctuation and operators
)

type token struct {
	kind    tokKind
	text    string // as written (without the escaping backslash)
	pos     int    // byte offset of the first character
	end     int    // byte offset after the last character
	num     uint32 // tNum value
	addr    netip.Addr
	escaped bool // tWord written as \name: never a keyword
}

// twoCharOps must be tried before single characters so "<=" is not read as "<" "=".
var twoCharOps = []string{"&&", "||", "==", "!=", "<=", ">=", "<<", ">>"}

const oneCharOps = "()[]:/+-*%&|^=<>!"

// lex splits expr into tokens, ending with a tEOF token at len(expr).
func lex(expr string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '\\':
			j := i + 1
			for j < len(expr) && !strings.ContainsRune(" \t\n\r!()", rune(expr[j])) {
				j++
			}
			if j == i+1 {
				return nil, syntaxErr(i, `"\" must be followed by a name`)
			}
			toks = append(toks, token{kind: tWord, text: expr[i+1 : j], pos: i, end: j, escaped: true})
			i = j
			continue
		}
		if t, ok := lexIPv6(expr, i); ok {
			toks = append(toks, t)
			i = t.end
			continue
		}
		switch {
		case isDigit(c):
			t, err := lexNumeric(expr, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = t.end
		case isLetter(c) || c == '_':
			t := lexWord(expr, i)
			toks = append(toks, t)
			i = t.end
		default:
			t, ok := lexOp(expr, i)
			if !ok {
				return nil, syntaxErr(i, "unexpected character %q", rune(c))
			}
			toks = append(toks, t)
			i = t.end
		}
	}
	return append(toks, token{kind: tEOF, pos: len(expr), end: len(expr)}), nil
}

// lexIPv6 recognises an IPv6 literal: the longest run of hex digits, ':' and '.' that
// contains a ':' and parses as IPv6. "24:4" (an index and size inside brackets) is not one.
func lexIPv6(expr string, i int) (token, bool) {
	j := i
	colon := false
	for j < len(expr) && (isHex(expr[j]) || expr[j] == ':' || expr[j] == '.') {
		colon = colon || expr[j] == ':'
		j++
	}
	if !colon {
		return token{}, false
	}
	a, err := netip.ParseAddr(expr[i:j])
	if err != nil || !a.Is6() || a.Zone() != "" {
		return token{}, false
	}
	return token{kind: tHID6, text: expr[i:j], pos: i, end: j, addr: a}, true
}

// lexNumeric reads a token starting with a digit: a number, a dotted IPv4 address, or a
// name that happens to start with a digit.
func lexNumeric(expr string, i int) (token, error) {
	j := i
	for j < len(expr) && (isDigit(expr[j]) || isLetter(expr[j]) || expr[j] == '.') {
		j++
	}
	text := expr[i:j]
	t := token{text: text, pos: i, end: j}
	switch {
	case strings.Contains(text, ".") && strings.Trim(text, "0123456789.") == "":
		if !validDotted(text) {
			return t, semErr(i, "invalid IPv4 address %q", text)
		}
		t.kind = tHID
	case strings.HasPrefix(text, "0x") || strings.HasPrefix(text, "0X"):
		v, err := strconv.ParseUint(text[2:], 16, 32)
		if err != nil {
			return t, numberErr(i, text, err)
		}
		t.kind, t.num = tNum, uint32(v)
	case strings.Trim(text, "0123456789") == "":
		base := 10
		if len(text) > 1 && text[0] == '0' {
			base = 8 // libpcap reads a leading 0 as octal
		}
		v, err := strconv.ParseUint(text, base, 32)
		if err != nil {
			return t, numberErr(i, text, err)
		}
		t.kind, t.num = tNum, uint32(v)
	default:
		t.kind = tWord
	}
	return t, nil
}

func numberErr(pos int, text string, err error) *posError {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return syntaxErr(pos, "number %s does not fit in 32 bits", text)
	}
	return syntaxErr(pos, "invalid number %s", text)
}

// validDotted reports whether s is 2 to 4 decimal parts of at most 255.
func validDotted(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil || v > 255 {
			return false
		}
	}
	return true
}

// lexWord reads an identifier. Like libpcap it may contain '-', '.', '_' (so "tcp-syn",
// "ftp-data" and "ssh-telnet" are single words) but does not end in '-' or '_'.
func lexWord(expr string, i int) token {
	j := i
	for j < len(expr) && (isLetter(expr[j]) || isDigit(expr[j]) || strings.IndexByte("-_.", expr[j]) >= 0) {
		j++
	}
	for j > i+1 && (expr[j-1] == '-' || expr[j-1] == '_') {
		j--
	}
	text := expr[i:j]
	if v, ok := arithConstants[text]; ok {
		return token{kind: tNum, text: text, pos: i, end: j, num: v}
	}
	return token{kind: tWord, text: text, pos: i, end: j}
}

func lexOp(expr string, i int) (token, bool) {
	for _, op := range twoCharOps {
		if strings.HasPrefix(expr[i:], op) {
			return token{kind: tOp, text: op, pos: i, end: i + 2}, true
		}
	}
	if strings.IndexByte(oneCharOps, expr[i]) >= 0 {
		return token{kind: tOp, text: expr[i : i+1], pos: i, end: i + 1}, true
	}
	return token{}, false
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isHex(c byte) bool    { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// describe renders a token for error messages.
func (t token) describe() string {
	if t.kind == tEOF {
		return "end of expression"
	}
	return strconv.Quote(t.text)
}
