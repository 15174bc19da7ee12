package filter

import (
	"errors"
	"fmt"
)

// ErrUnsupported is matched (errors.Is) by errors for valid pcap-filter(7) syntax that the
// built-in compiler does not implement, so callers can suggest the libpcap build.
var ErrUnsupported = errors.New("not supported by the built-in compiler")

// errKind separates the three families of messages the package produces.
type errKind int

const (
	kindSyntax      errKind = iota // the text is not a filter expression
	kindSemantic                   // well-formed, but a value or combination is invalid
	kindUnsupported                // valid pcap-filter(7), not implemented here
	kindTooLong                    // compiled fine, but exceeds what the kernel accepts
)

// Error describes why an expression could not be compiled. Offset is the byte offset in
// Expr where the problem was found.
type Error struct {
	Expr      string
	Offset    int
	Msg       string
	kind      errKind
	construct string // for kindUnsupported: the construct as written, e.g. "ether host"
	reason    string // for kindUnsupported: why it cannot be compiled here
}

// Error renders the one-line message.
func (e *Error) Error() string {
	switch e.kind {
	case kindSyntax:
		return fmt.Sprintf("filter %q: syntax error at offset %d: %s", e.Expr, e.Offset, e.Msg)
	case kindUnsupported:
		return fmt.Sprintf("filter %q: %q is not supported by the built-in compiler (%s); "+
			"build with -tags pcap to use libpcap's compiler", e.Expr, e.construct, e.reason)
	case kindTooLong:
		return fmt.Sprintf("filter %q: %s", e.Expr, e.Msg)
	default:
		return fmt.Sprintf("filter %q: at offset %d: %s", e.Expr, e.Offset, e.Msg)
	}
}

// Is lets errors.Is(err, ErrUnsupported) identify unsupported constructs.
func (e *Error) Is(target error) bool {
	return target == ErrUnsupported && e.kind == kindUnsupported
}

// posError is the internal error carried through the parser and code generator; the
// public Error adds the expression text once, at the API boundary.
type posError struct {
	pos       int
	msg       string
	kind      errKind
	construct string
	reason    string
}

func (e *posError) Error() string { return e.msg }

func syntaxErr(pos int, format string, args ...any) *posError {
	return &posError{pos: pos, msg: fmt.Sprintf(format, args...), kind: kindSyntax}
}

func semErr(pos int, format string, args ...any) *posError {
	return &posError{pos: pos, msg: fmt.Sprintf(format, args...), kind: kindSemantic}
}

func unsupportedErr(pos int, construct, reason string) *posError {
	return &posError{pos: pos, kind: kindUnsupported, construct: construct, reason: reason,
		msg: fmt.Sprintf("%q is not supported (%s)", construct, reason)}
}

// publicError converts an internal error into the exported form.
func publicError(expr string, err error) error {
	var pe *posError
	if !errors.As(err, &pe) {
		return fmt.Errorf("filter %q: %w", expr, err)
	}
	return &Error{Expr: expr, Offset: pe.pos, Msg: pe.msg, kind: pe.kind,
		construct: pe.construct, reason: pe.reason}
}
