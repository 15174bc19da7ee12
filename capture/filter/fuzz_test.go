package filter

import (
	"errors"
	"math/rand"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// FuzzCompile: any string either fails with a one-line *Error, or compiles to a program
// the kernel would load (assembles, at most 4096 instructions) and that x/net/bpf's VM
// runs without error, returning the snaplen or 0. Seeds: testdata/fuzz/FuzzCompile and
// the differential test's expressions.
func FuzzCompile(f *testing.F) {
	for _, c := range diffCases {
		f.Add(c.expr)
	}
	pkts := fuzzPackets(f)
	f.Fuzz(func(t *testing.T, expr string) {
		const snaplen = 1500
		prog, err := CompileInstructions(expr, snaplen)
		if cerr := Check(expr); (cerr == nil) != (err == nil) {
			t.Fatalf("Check = %v but CompileInstructions = %v", cerr, err)
		}
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("multi-line error: %q", err.Error())
			}
			return
		}
		if len(prog) == 0 || len(prog) > MaxInstructions {
			t.Fatalf("program length %d", len(prog))
		}
		if _, err := bpf.Assemble(prog); err != nil {
			t.Fatalf("assemble: %v", err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("NewVM: %v", err)
		}
		for i, p := range pkts {
			n, err := vm.Run(p)
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			if n != 0 && n != snaplen {
				t.Fatalf("packet %d: returned %d", i, n)
			}
		}
	})
}

// fuzzPackets: a few well-formed packets and a few cut short.
func fuzzPackets(f *testing.F) [][]byte {
	g := &packetGen{r: rand.New(rand.NewSource(11))}
	var pkts [][]byte
	for i := 0; i < 6; i++ {
		pkts = append(pkts, g.ipv4(), g.ipv6())
	}
	pkts = append(pkts, nil, []byte{0x45}, []byte{0x60, 0, 0, 0, 0, 0, 6})
	if g.err != nil {
		f.Fatal(g.err)
	}
	return pkts
}
