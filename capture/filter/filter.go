package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// MaxInstructions is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const MaxInstructions = 4096

// DefaultSnaplen is what snaplen 0 means, as with tcpdump -s 0.
const DefaultSnaplen = 262144

// Compile compiles expr for frames that begin with an IPv4/IPv6 header. An empty
// expression accepts everything. snaplen is the value the program returns for an
// accepted packet (0 means DefaultSnaplen).
func Compile(expr string, snaplen uint32) ([]bpf.RawInstruction, error) {
	prog, err := CompileInstructions(expr, snaplen)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("filter %q: assembling: %w", expr, err)
	}
	return raw, nil
}

// CompileInstructions is Compile before assembly (for tests and debugging).
func CompileInstructions(expr string, snaplen uint32) ([]bpf.Instruction, error) {
	if snaplen == 0 {
		snaplen = DefaultSnaplen
	}
	if strings.TrimSpace(expr) == "" {
		return []bpf.Instruction{bpf.RetConstant{Val: snaplen}}, nil
	}
	prog, err := compile(expr, snaplen)
	if err != nil {
		return nil, publicError(expr, err)
	}
	if len(prog) > MaxInstructions {
		return nil, &Error{Expr: expr, kind: kindTooLong, Msg: fmt.Sprintf(
			"compiled program has %d instructions, more than the kernel's limit of %d", len(prog), MaxInstructions)}
	}
	return prog, nil
}

// Check reports a syntax or semantic error without needing a snaplen (used by config
// validation). It runs the whole compiler, so it also catches programs that are too long.
func Check(expr string) error {
	_, err := CompileInstructions(expr, DefaultSnaplen)
	return err
}

func compile(expr string, snaplen uint32) ([]bpf.Instruction, error) {
	tree, err := parse(expr)
	if err != nil {
		return nil, err
	}
	p, err := lower(tree)
	if err != nil {
		return nil, err
	}
	g := &cfg{
		accept: &block{term: termRet, ret: snaplen},
		reject: &block{term: termRet, ret: 0},
	}
	entry, err := g.gen(p, g.accept, g.reject)
	if err != nil {
		return nil, err
	}
	return linearize(entry, g)
}
