package filter

import (
	"encoding/binary"
	"math/rand"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// TestProgramMatchesVM: Program accepts what x/net/bpf's interpreter accepts, on random
// expressions (long ones with trampolines among them) and random packets, well formed,
// truncated and malformed; with len the captured length, as the VM has it.
func TestProgramMatchesVM(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	pg := &packetGen{r: r}
	var pkts [][]byte
	for range 300 {
		pkts = append(pkts, pg.next())
	}
	g := &exprGen{r: r}
	compiled, accepted, checks := 0, 0, 0
	for i := range 400 {
		expr := g.expr(3)
		for k := i % 12; k > 0; k-- {
			expr = "(" + expr + ")" + g.pick(" or ", " and ", " and not ") + "(" + g.expr(3) + ")"
		}
		if i%7 == 0 {
			expr = "(" + expr + ") or greater " + g.pick("60", "200", "1000")
		}
		ins, err := CompileInstructions(expr, 1)
		if err != nil {
			if strings.Contains(err.Error(), "more than the kernel's limit") {
				continue
			}
			t.Fatalf("%q: %v", expr, err)
		}
		raw, err := bpf.Assemble(ins)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProgram(raw)
		if err != nil {
			t.Fatalf("%q: NewProgram: %v", expr, err)
		}
		vm, err := bpf.NewVM(ins)
		if err != nil {
			t.Fatal(err)
		}
		compiled++
		for j, pkt := range pkts {
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(pkt, uint32(len(pkt))); got != (n > 0) {
				t.Fatalf("%q on packet %d: Match %v, VM %v\n%s", expr, j, got, n > 0, listing(ins))
			}
			checks++
			if n > 0 {
				accepted++
			}
		}
	}
	if compiled < 350 || accepted < checks/20 || accepted > checks*19/20 {
		t.Errorf("%d programs compiled, %d of %d runs accepted: the sample is too weak", compiled, accepted, checks)
	}
}

// TestProgramWireLength: len is the length on the wire, as in libpcap's bpf_filter for a
// saved packet (and in the kernel, whose filter sees the whole packet), while loads past
// the bytes captured reject the packet.
func TestProgramWireLength(t *testing.T) {
	pkt := benchPacket // a 40-byte IPv4 TCP SYN to port 23
	for _, c := range []struct {
		expr  string
		wire  uint32
		match bool
	}{
		{"greater 100", 1500, true},
		{"greater 100", 40, false},
		{"less 100", 1500, false},
		{"tcp port 23", 1500, true},
		{"ip[100] = 0", 1500, false}, // past the bytes captured
		{"not ip[100] = 0", 1500, false},
	} {
		raw, err := Compile(c.expr, 256)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProgram(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(pkt, c.wire); got != c.match {
			t.Errorf("%q, %d bytes on the wire: %v, want %v", c.expr, c.wire, got, c.match)
		}
	}
}

// TestNewProgramRefuses: programs the kernel's checker refuses.
func TestNewProgramRefuses(t *testing.T) {
	ret := bpf.RawInstruction{Op: clsRET | retK, K: 1}
	for _, c := range []struct {
		name string
		ins  []bpf.RawInstruction
		want string
	}{
		{"empty", nil, "a program of 0 instructions"},
		{"no return at the end", []bpf.RawInstruction{{Op: clsLD | modeIMM}}, "does not end with a return"},
		{"jump past the end", []bpf.RawInstruction{{Op: clsJMP | jmpJA, K: 1}, ret}, "jump out of the program"},
		{"conditional jump past the end", []bpf.RawInstruction{{Op: clsJMP | jmpJEQ, Jt: 0, Jf: 2}, ret}, "jump out of the program"},
		{"division by a zero constant", []bpf.RawInstruction{{Op: clsALU | aluDIV | srcK}, ret}, "division by zero"},
		{"scratch slot 16", []bpf.RawInstruction{{Op: clsST, K: 16}, ret}, "scratch slot out of range"},
		{"load of scratch slot 16", []bpf.RawInstruction{{Op: clsLD | modeMEM, K: 16}, ret}, "scratch slot out of range"},
		{"absolute load into X", []bpf.RawInstruction{{Op: clsLDX | szW | modeABS}, ret}, "unknown operation"},
		{"unknown ALU operation", []bpf.RawInstruction{{Op: clsALU | 0xb0}, ret}, "unknown operation"},
		{"unknown jump", []bpf.RawInstruction{{Op: clsJMP | 0x50}, ret}, "unknown operation"},
	} {
		if _, err := NewProgram(c.ins); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// BenchmarkMatch runs the programs of BenchmarkRun in Program.
func BenchmarkMatch(b *testing.B) {
	for _, c := range benchExprs {
		b.Run(c.name, func(b *testing.B) {
			raw, err := Compile(c.expr, 256)
			if err != nil {
				b.Fatal(err)
			}
			p, err := NewProgram(raw)
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				p.Match(benchPacket, uint32(len(benchPacket)))
			}
		})
	}
}

// FuzzProgram: any program NewProgram accepts runs on any packet without a panic, and
// returns at a return instruction (an accepted program never runs off its end).
func FuzzProgram(f *testing.F) {
	raw, err := Compile("tcp port 23 and greater 60", 256)
	if err != nil {
		f.Fatal(err)
	}
	var seed []byte
	for _, in := range raw {
		seed = binary.BigEndian.AppendUint16(seed, in.Op)
		seed = append(seed, in.Jt, in.Jf)
		seed = binary.BigEndian.AppendUint32(seed, in.K)
	}
	f.Add(seed, benchPacket, uint32(60))
	f.Fuzz(func(t *testing.T, code, pkt []byte, wire uint32) {
		var ins []bpf.RawInstruction
		for ; len(code) >= 8; code = code[8:] {
			ins = append(ins, bpf.RawInstruction{Op: binary.BigEndian.Uint16(code), Jt: code[2], Jf: code[3], K: binary.BigEndian.Uint32(code[4:])})
		}
		p, err := NewProgram(ins)
		if err != nil {
			return
		}
		p.Match(pkt, wire)
	})
}
