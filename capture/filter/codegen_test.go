package filter

import (
	"math/rand"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// run compiles expr and runs it on pkt with x/net/bpf's VM.
func run(t *testing.T, expr string, pkt []byte) bool {
	t.Helper()
	prog, err := CompileInstructions(expr, 65535)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("%q: NewVM: %v", expr, err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("%q: run: %v", expr, err)
	}
	return n > 0
}

func mustSerialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func ip6(src, dst string, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

// samplePackets are hand-built packets with known properties, named by letter.
func samplePackets(t *testing.T) map[string][]byte {
	t.Helper()
	p := map[string][]byte{}
	// A: IPv4 TCP SYN 1.2.3.4:1234 -> 10.0.0.1:23
	p["A"] = mustSerialize(t, ip4("1.2.3.4", "10.0.0.1", layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 1234, DstPort: 23, SYN: true})
	// B: IPv4 with options (IHL 6), TCP SYN|ACK 10.0.0.2:80 -> 192.168.1.1:2323
	b := ip4("10.0.0.2", "192.168.1.1", layers.IPProtocolTCP)
	b.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
	p["B"] = mustSerialize(t, b, &layers.TCP{SrcPort: 80, DstPort: 2323, SYN: true, ACK: true})
	// C: IPv4 TCP non-first fragment whose data looks like ports 23 -> 23
	c := ip4("10.1.2.3", "1.2.3.4", layers.IPProtocolTCP)
	c.FragOffset = 100
	p["C"] = mustSerialize(t, c, gopacket.Payload([]byte{0, 23, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0}))
	// D: IPv6 UDP 2001:db8::1:53 -> 2001:db8:1::5:5353
	d := &layers.UDP{SrcPort: 53, DstPort: 5353}
	p["D"] = mustSerialize(t, ip6("2001:db8::1", "2001:db8:1::5", layers.IPProtocolUDP), d, gopacket.Payload([]byte("x")))
	// E: IPv4 ICMP echo request 198.51.100.7 -> 10.0.0.1
	p["E"] = mustSerialize(t, ip4("198.51.100.7", "10.0.0.1", layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
	// F: ICMPv6 echo request fe80::1 -> ff02::1
	p["F"] = mustSerialize(t, ip6("fe80::1", "ff02::1", layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload([]byte{0, 1, 0, 1}))
	// G: IPv6 fragment header, then TCP 2001:db8::9:1234 -> 23
	tcp := mustSerialize(t, &layers.TCP{SrcPort: 1234, DstPort: 23, SYN: true})
	frag := append([]byte{6, 0, 0, 0, 0, 0, 0, 1}, tcp...)
	p["G"] = mustSerialize(t, ip6("2001:db8::9", "2001:db8::1:2", 44), gopacket.Payload(frag))
	// H: A truncated to 24 bytes: ports readable, TCP flags not
	p["H"] = append([]byte(nil), p["A"][:24]...)
	return p
}

// TestSemantics checks verdicts worked out by hand from pcap-filter(7) and libpcap's
// DLT_RAW code; it does not need tcpdump.
func TestSemantics(t *testing.T) {
	pkts := samplePackets(t)
	cases := []struct{ expr, want string }{
		{"tcp", "ABCGH"}, {"ip", "ABCEH"}, {"ip6", "DFG"}, {"udp", "D"}, {"icmp", "E"}, {"icmp6", "F"},
		{"port 23", "AH"}, {"tcp port 23 or 2323", "ABH"}, {"src port 80", "B"},
		{"udp port 53", "D"}, {"port domain", "D"}, {"portrange 20-25", "AH"},
		{"host 10.0.0.1", "AEH"}, {"src net 10.0.0.0/8", "BC"}, {"dst 10.0.0.1", "AEH"},
		{"net 2001:db8::/32", "DG"}, {"dst net 2001:db8:1::/48", "D"}, {"ip6 multicast", "F"},
		{"icmp[icmptype] == icmp-echo", "E"}, {"icmp6[icmp6type] == icmp6-echo", "F"},
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "A"},
		{"not tcp[13] & 2 != 0", "CDEFG"}, // H: the flags load fails, rejecting the packet
		{"ip[0] & 0xf > 5", "B"}, {"ip[6:2] & 0x1fff != 0", "C"}, {"less 26", "H"},
		{"tcp and not port 23", "BCG"},
		{"tcp or udp and port 53", "D"}, // (tcp or udp) and port 53
		{"ip6 proto 6", "G"}, {"ip6 proto 44", "G"}, {"proto 17", "D"},
		{"", "ABCDEFGH"}, {"1 = 1", "ABCDEFGH"}, {"0 = 1", ""},
	}
	for _, c := range cases {
		var got []string
		for name, pkt := range pkts {
			if run(t, c.expr, pkt) {
				got = append(got, name)
			}
		}
		if s := sortedJoin(got); s != c.want {
			t.Errorf("%q accepts %q, want %q", c.expr, s, c.want)
		}
	}
}

func sortedJoin(xs []string) string {
	for i := range xs {
		for j := i + 1; j < len(xs); j++ {
			if xs[j] < xs[i] {
				xs[i], xs[j] = xs[j], xs[i]
			}
		}
	}
	return strings.Join(xs, "")
}

func TestEmptyAndConstantPrograms(t *testing.T) {
	cases := []struct {
		expr    string
		snaplen uint32
		want    []bpf.Instruction
	}{
		{"", 96, []bpf.Instruction{bpf.RetConstant{Val: 96}}},
		{" \t\n", 96, []bpf.Instruction{bpf.RetConstant{Val: 96}}},
		{"", 0, []bpf.Instruction{bpf.RetConstant{Val: DefaultSnaplen}}},
		{"1 = 1", 128, []bpf.Instruction{bpf.RetConstant{Val: 128}}},
		{"2 * 3 = 7", 128, []bpf.Instruction{bpf.RetConstant{Val: 0}}},
	}
	for _, c := range cases {
		got, err := CompileInstructions(c.expr, c.snaplen)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
	if err := Check(""); err != nil {
		t.Errorf("Check(\"\") = %v", err)
	}
}

func TestCompileAssembles(t *testing.T) {
	const expr = "tcp dst port 23 and tcp[tcpflags] & tcp-syn != 0"
	insns, err := CompileInstructions(expr, 256)
	if err != nil {
		t.Fatal(err)
	}
	want, err := bpf.Assemble(insns)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Compile(expr, 256)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Compile = %v, %v; want %v", got, err, want)
	}
	if _, err := Compile("tcp prot 23", 256); err == nil {
		t.Error("Compile accepted a bad expression")
	}
	vm, _ := bpf.NewVM(insns)
	if n, _ := vm.Run(samplePackets(t)["A"]); n != 256 {
		t.Errorf("accepted packet returned %d, want the snaplen 256", n)
	}
}

// TestLongJumpsUseTrampolines: with hundreds of instructions between a test and its
// target, 8-bit jump offsets do not reach and trampolines must be inserted.
func TestLongJumpsUseTrampolines(t *testing.T) {
	var ports []string
	for p := 1; p <= 40; p++ {
		ports = append(ports, strconv.Itoa(p))
	}
	expr := "tcp and dst port (" + strings.Join(ports, " or ") + ")"
	prog, err := CompileInstructions(expr, 65535)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) < 600 {
		t.Fatalf("program has only %d instructions; the test needs long jumps", len(prog))
	}
	tramps := 0
	for i, in := range prog {
		switch in.(type) {
		case bpf.Jump:
			tramps++
		case bpf.RetConstant:
			if i < len(prog)-2 {
				tramps++ // a copied return standing in for a far jump to the end
			}
		}
	}
	if tramps == 0 {
		t.Error("no trampolines in a program with far jumps")
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	for _, port := range []layers.TCPPort{1, 17, 40, 41, 1000} {
		for _, v6 := range []bool{false, true} {
			var pkt []byte
			if v6 {
				pkt = mustSerialize(t, ip6("::1", "::2", layers.IPProtocolTCP), &layers.TCP{SrcPort: 9, DstPort: port})
			} else {
				pkt = mustSerialize(t, ip4("1.1.1.1", "2.2.2.2", layers.IPProtocolTCP), &layers.TCP{SrcPort: 9, DstPort: port})
			}
			if got, want := run(t, expr, pkt), port <= 40; got != want {
				t.Errorf("port %d v6=%v: got %v, want %v", port, v6, got, want)
			}
		}
	}
	udp := mustSerialize(t, ip4("1.1.1.1", "2.2.2.2", layers.IPProtocolUDP), &layers.UDP{SrcPort: 9, DstPort: 1})
	if run(t, expr, udp) {
		t.Error("UDP packet accepted by a tcp-only filter")
	}
}

// TestComputedOffsetIsBounded: a computed offset that could wrap into the kernel's
// negative (ancillary) offsets is checked first and rejects the packet, like any
// failed load, even under "not".
func TestComputedOffsetIsBounded(t *testing.T) {
	prog, err := CompileInstructions("not ip[ip[1] << 24] = 0", 65535)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range prog {
		if j, ok := in.(bpf.JumpIf); ok && j.Cond == bpf.JumpGreaterThan && j.Val == maxOffset {
			found = true
		}
	}
	if !found {
		t.Fatalf("no bounds check in\n%s", listing(prog))
	}
	pkt := samplePackets(t)["A"]
	pkt[1] = 0x80 // index 0x80000000: negative for the kernel
	if run(t, "not ip[ip[1] << 24] = 0", pkt) {
		t.Error("out-of-range computed offset accepted")
	}
	pkt[1] = 0
	if !run(t, "ip[ip[1] << 24] = 0x45", pkt) {
		t.Error("in-range computed offset rejected")
	}
	// A constant offset that can never be loaded rejects without emitting the load.
	prog, err = CompileInstructions("ip[0x80000000] = 0 or ip", 65535)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range prog {
		if l, ok := in.(bpf.LoadAbsolute); ok && l.Off >= maxOffset {
			t.Errorf("emitted %v", l)
		}
	}
	if run(t, "ip[0x80000000] = 0 or ip", pkt) {
		t.Error("a load past any packet must reject")
	}
}

// TestUnaryMinus: x/net/bpf's VM has no neg instruction, so negation is a multiply.
func TestUnaryMinus(t *testing.T) {
	prog, err := CompileInstructions("-ip[0] = 0xffffffbb", 65535)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range prog {
		if _, ok := in.(bpf.NegateA); ok {
			t.Fatal("emitted NegateA")
		}
	}
	pkt := samplePackets(t)["A"] // ip[0] = 0x45, and -0x45 = 0xffffffbb
	if !run(t, "-ip[0] = 0xffffffbb", pkt) || run(t, "-ip[0] = 0x45", pkt) {
		t.Error("wrong negation")
	}
}

// TestCodegenMatchesReference runs random expressions on random packets and compares
// the VM with a direct interpreter of the lowered predicates: this checks code
// generation and layout (jumps, trampolines, scratch registers) without tcpdump.
func TestCodegenMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	pg := &packetGen{r: r}
	var pkts [][]byte
	for i := 0; i < 300; i++ {
		pkts = append(pkts, pg.next())
	}
	g := &exprGen{r: r}
	compiled, long := 0, 0
	for i := 0; i < 300; i++ {
		expr := g.expr(3)
		for k := i % 16; k > 0; k-- { // long programs need trampolines
			expr = "(" + expr + ")" + g.pick(" or ", " and ", " and not ") + "(" + g.expr(3) + ")"
		}
		tree, err := parse(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		p, err := lower(tree)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		prog, err := CompileInstructions(expr, 1)
		if err != nil {
			if strings.Contains(err.Error(), "more than the kernel's limit") {
				continue
			}
			t.Fatalf("%q: %v", expr, err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		compiled++
		if len(prog) > 300 {
			long++
		}
		for j, pkt := range pkts {
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatalf("%q: %v", expr, err)
			}
			v, ok := evalPred(p, pkt)
			if want := ok && v; (n > 0) != want {
				t.Fatalf("%q on packet %d: VM %v, reference %v (aborted=%v)\n%s", expr, j, n > 0, want, !ok, listing(prog))
			}
		}
	}
	if compiled < 250 || long < 10 {
		t.Errorf("only %d expressions compiled, %d with more than 300 instructions: the sample is too weak", compiled, long)
	}
	t.Logf("%d expressions compiled, %d longer than 300 instructions", compiled, long)
}

// evalPred interprets a predicate with BPF semantics: ok=false when a load fails or a
// division by zero happens, which rejects the packet whatever the enclosing operators.
func evalPred(p pred, pkt []byte) (v, ok bool) {
	switch p := p.(type) {
	case *pConst:
		return p.v, true
	case *pNot:
		v, ok := evalPred(p.x, pkt)
		return !v, ok
	case *pAnd:
		if v, ok := evalPred(p.l, pkt); !ok || !v {
			return false, ok
		}
		return evalPred(p.r, pkt)
	case *pOr:
		if v, ok := evalPred(p.l, pkt); !ok || v {
			return v, ok
		}
		return evalPred(p.r, pkt)
	case *pTest:
		l, ok := evalArith(p.l, pkt)
		if !ok {
			return false, false
		}
		r, ok := evalArith(p.r, pkt)
		return ok && compare(l, p.op, r), ok
	}
	return false, false
}

func evalArith(a arith, pkt []byte) (uint32, bool) {
	switch a := a.(type) {
	case *numArith:
		return a.v, true
	case *lenArith:
		return uint32(len(pkt)), true
	case *negArith:
		v, ok := evalArith(a.x, pkt)
		return -v, ok
	case *binArith:
		l, ok := evalArith(a.l, pkt)
		if !ok {
			return 0, false
		}
		r, ok := evalArith(a.r, pkt)
		if !ok || (r == 0 && (a.op == opDiv || a.op == opMod)) {
			return 0, false
		}
		if (a.op == opShl || a.op == opShr) && r > 31 {
			return 0, true // Go's shifts, like the VM's
		}
		return evalALU(a.op, l, r), true
	case *loadArith:
		idx, ok := evalArith(a.idx, pkt)
		if !ok || idx > maxOffset {
			return 0, false
		}
		off := int(idx)
		switch a.base.phys {
		case physIP6Payload:
			off += 40
		case physTransport4:
			if len(pkt) < 1 {
				return 0, false
			}
			off += 4 * int(pkt[0]&0xf)
		}
		if off+a.size > len(pkt) {
			return 0, false
		}
		var v uint32
		for _, b := range pkt[off : off+a.size] {
			v = v<<8 | uint32(b)
		}
		return v, true
	}
	return 0, false
}
