package capture

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/telescope-dev/telescope/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// fanoutVM runs FanoutProgram in golang.org/x/net/bpf's VM. The VM has no SKF_AD_PROTOCOL,
// so instruction 0 (the only ancillary load) is replaced by a constant per EtherType.
type fanoutVM struct {
	t    testing.TB
	prog []bpf.Instruction
	vms  map[uint16]*bpf.VM
}

func newFanoutVM(t testing.TB, n int) *fanoutVM {
	t.Helper()
	prog, err := FanoutProgram(n)
	if err != nil {
		t.Fatalf("FanoutProgram(%d): %v", n, err)
	}
	if prog[0] != (bpf.LoadExtension{Num: bpf.ExtProto}) {
		t.Fatalf("instruction 0 is %v, want ld #proto", prog[0])
	}
	return &fanoutVM{t: t, prog: prog, vms: map[uint16]*bpf.VM{}}
}

func (f *fanoutVM) run(et uint16, pkt []byte) int {
	vm := f.vms[et]
	if vm == nil {
		p := append([]bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(et)}}, f.prog[1:]...)
		var err error
		if vm, err = bpf.NewVM(p); err != nil {
			f.t.Fatalf("NewVM: %v", err)
		}
		f.vms[et] = vm
	}
	out, err := vm.Run(pkt)
	if err != nil {
		f.t.Fatalf("VM run: %v", err)
	}
	return out
}

// wantIndex is the decoder's choice: the contract the program must meet.
func wantIndex(et uint16, pkt []byte, n int) (int, *packet.Header) {
	var h packet.Header
	packet.DecodeNetwork(et, pkt, &h)
	return packet.WorkerIndex(h.AffinityKey(), n), &h
}

func TestFanoutProgramRejectsBadSizes(t *testing.T) {
	for _, n := range []int{-1, 0, MaxWorkers + 1} {
		if _, err := FanoutProgram(n); err == nil {
			t.Errorf("FanoutProgram(%d) succeeded", n)
		}
	}
}

// TestFanoutProgramKernelAccepts attaches the program as a socket filter on a UDP socket
// (no privilege needed): the kernel's classic BPF checker validates jumps, scratch memory
// initialisation and the ancillary load.
func TestFanoutProgramKernelAccepts(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer unix.Close(fd)
	for _, n := range []int{1, 2, 7, MaxWorkers} {
		prog, err := FanoutProgram(n)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatal(err)
		}
		if err := setFilter(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, raw); err != nil {
			t.Errorf("n=%d: kernel rejected the %d-instruction program: %v", n, len(raw), err)
		}
	}
}

// Hand-built packets with keys computed from the rules, not from the decoder: they pin both
// the program and AffinityKey to the same definition.
func TestFanoutProgramKeys(t *testing.T) {
	src4 := mkIP4(192, 0, 2, 1)
	victim4 := mkIP4(198, 51, 100, 7)
	src6 := netip.MustParseAddr("2001:db8::1").As16()
	victim6 := netip.MustParseAddr("2001:db8:1::7").As16()
	k4 := binary.BigEndian.Uint32(src4[:])
	kv4 := binary.BigEndian.Uint32(victim4[:])
	k6 := foldV6(src6)
	kv6 := foldV6(victim6)

	icmpErr := func(typ uint8, quoted []byte) []byte {
		return mkIPv4(src4, mkIP4(203, 0, 113, 9), packet.ProtoICMP, append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, quoted...))
	}
	quote4 := mkIPv4(mkIP4(203, 0, 113, 5), victim4, packet.ProtoUDP, mkUDP(53, 4444, nil))[:28]
	icmp6Err := func(typ uint8, quoted []byte) []byte {
		return mkIPv6(src6, victim6, packet.ProtoICMPv6, append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, quoted...))
	}
	quote6 := mkIPv6(netip.MustParseAddr("2001:db8:2::5").As16(), victim6, packet.ProtoUDP, mkUDP(53, 4444, nil))[:48]
	tcp4 := mkIPv4(src4, victim4, packet.ProtoTCP, make([]byte, 20))
	tag := func(et uint16, inner []byte) []byte {
		return append([]byte{0x20, 0x07, byte(et >> 8), byte(et)}, inner...)
	}

	cases := []struct {
		name string
		et   uint16
		pkt  []byte
		key  uint32
	}{
		{"ipv4 tcp", packet.EtherIPv4, tcp4, k4},
		{"ipv4 total length 0", packet.EtherIPv4, withU16At(tcp4, 2, 0), k4},
		{"ipv4 total below header", packet.EtherIPv4, withU16At(tcp4, 2, 19), 0},
		{"ipv4 ihl 4", packet.EtherIPv4, withByteAt(tcp4, 0, 0x44), 0},
		{"ipv4 version 6", packet.EtherIPv4, withByteAt(tcp4, 0, 0x65), 0},
		{"ipv4 19 bytes", packet.EtherIPv4, tcp4[:19], 0},
		{"ipv4 options cut", packet.EtherIPv4, withByteAt(tcp4, 0, 0x46)[:23], 0},
		{"icmp unreachable quotes victim", packet.EtherIPv4, icmpErr(3, quote4), kv4},
		{"icmp time exceeded", packet.EtherIPv4, icmpErr(11, quote4), kv4},
		{"icmp parameter problem", packet.EtherIPv4, icmpErr(12, quote4), kv4},
		{"icmp echo is not an error", packet.EtherIPv4, icmpErr(8, quote4), k4},
		{"icmp quote cut at 19", packet.EtherIPv4, icmpErr(3, quote4)[:20+8+19], k4},
		{"icmp quote beyond total length", packet.EtherIPv4, withU16At(icmpErr(3, quote4), 2, 20+8+19), k4},
		{"icmp quote in gso packet", packet.EtherIPv4, withU16At(icmpErr(3, quote4), 2, 0), kv4},
		{"icmp quoted version 6", packet.EtherIPv4, icmpErr(3, withByteAt(quote4, 0, 0x65)), k4},
		{"icmp quoted ihl 4", packet.EtherIPv4, icmpErr(3, withByteAt(quote4, 0, 0x44)), k4},
		{"icmp non-first fragment", packet.EtherIPv4, withU16At(icmpErr(3, quote4), 6, 0x0010), k4},
		{"icmp fragment offset high bit", packet.EtherIPv4, withU16At(icmpErr(3, quote4), 6, 0x1000), k4},
		{"icmp first fragment", packet.EtherIPv4, withU16At(icmpErr(3, quote4), 6, 0x2000), kv4},
		{"icmp behind ip options", packet.EtherIPv4, withIPv4Options(icmpErr(3, quote4), 8), kv4},
		{"ipv6 tcp", packet.EtherIPv6, mkIPv6(src6, victim6, packet.ProtoTCP, make([]byte, 20)), k6},
		{"ipv6 39 bytes", packet.EtherIPv6, mkIPv6(src6, victim6, packet.ProtoTCP, nil)[:39], 0},
		{"ipv6 version 4", packet.EtherIPv6, withByteAt(mkIPv6(src6, victim6, packet.ProtoTCP, nil), 0, 0x45), 0},
		{"icmpv6 unreachable quotes victim", packet.EtherIPv6, icmp6Err(1, quote6), kv6},
		{"icmpv6 packet too big", packet.EtherIPv6, icmp6Err(2, quote6), kv6},
		{"icmpv6 parameter problem", packet.EtherIPv6, icmp6Err(4, quote6), kv6},
		{"icmpv6 echo", packet.EtherIPv6, icmp6Err(128, quote6), k6},
		{"icmpv6 type 5", packet.EtherIPv6, icmp6Err(5, quote6), k6},
		{"icmpv6 quote cut", packet.EtherIPv6, icmp6Err(1, quote6)[:87], k6},
		{"icmpv6 payload length short", packet.EtherIPv6, withU16At(icmp6Err(1, quote6), 4, 47), k6},
		{"icmpv6 payload length 0", packet.EtherIPv6, withU16At(icmp6Err(1, quote6), 4, 0), kv6},
		{"icmpv6 quoted version 4", packet.EtherIPv6, icmp6Err(1, withByteAt(quote6, 0, 0x45)), k6},
		{"icmpv6 behind hop-by-hop", packet.EtherIPv6, withHopByHop(icmp6Err(1, quote6)), k6},
		{"inner 802.1Q tag", packet.EtherDot1Q, tag(packet.EtherIPv4, tcp4), k4},
		{"inner 802.1ad tag, icmp", packet.EtherDot1AD, tag(packet.EtherIPv4, icmpErr(3, quote4)), kv4},
		{"two inner tags, icmpv6", packet.EtherDot1Q, tag(packet.EtherDot1Q, tag(packet.EtherIPv6, icmp6Err(3, quote6))), kv6},
		{"eight inner tags", packet.EtherDot1Q, mkTags(8, tcp4), k4},
		{"nine inner tags", packet.EtherDot1Q, mkTags(9, tcp4), 0},
		{"tag cut", packet.EtherDot1Q, []byte{0, 1, 8}, 0},
		{"llc snap ipv4", packet.SLLProto8022, mkSNAP(packet.EtherIPv4, tcp4), k4},
		{"llc snap icmp inside a tag", packet.EtherDot1Q, tag(0x0040, mkSNAP(packet.EtherIPv4, icmpErr(5, quote4))), kv4},
		{"llc not snap", packet.SLLProto8022, append([]byte{0x42, 0x42, 0x03}, tcp4...), 0},
		{"802.3 raw", 0x0001, tcp4, 0},
		{"arp", 0x0806, make([]byte, 28), 0},
		{"empty ipv4", packet.EtherIPv4, nil, 0},
	}
	for _, n := range []int{2, 3, 5, 16} {
		vm := newFanoutVM(t, n)
		for _, c := range cases {
			_, h := wantIndex(c.et, c.pkt, n)
			if got := h.AffinityKey(); got != c.key {
				t.Errorf("%s: decoder key %#x, rules say %#x", c.name, got, c.key)
			}
			if got, want := vm.run(c.et, c.pkt), packet.WorkerIndex(c.key, n); got != want {
				t.Errorf("%s, n=%d: program picks worker %d, want %d (key %#x)", c.name, n, got, want, c.key)
			}
		}
	}
}

// TestFanoutProgramMatchesDecoder compares the program with the decoder on random packets:
// valid, damaged, truncated and wrapped in tags and LLC/SNAP headers.
func TestFanoutProgramMatchesDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const perN = 6000
	var victims, tagged, snapped, notIP, workersSeen int
	for _, n := range []int{1, 2, 3, 4, 7, 16, MaxWorkers} {
		vm := newFanoutVM(t, n)
		seen := map[int]bool{}
		for i := range perN {
			et, pkt := genNetPacket(rng)
			want, h := wantIndex(et, pkt, n)
			if got := vm.run(et, pkt); got != want {
				t.Fatalf("n=%d packet %d: program picks %d, decoder %d (et %#04x, key %#x, result %v)\n% x",
					n, i, got, want, et, h.AffinityKey(), h.Result, pkt)
			}
			seen[want] = true
			switch {
			case h.Result != packet.ResultIP:
				notIP++
			case h.Inner.Valid && h.AffinityKey() != packet.FoldAddr(&h.Src, h.IPVersion == 4):
				victims++
			}
			if h.Result == packet.ResultIP && et != packet.EtherIPv4 && et != packet.EtherIPv6 {
				if et == packet.SLLProto8022 {
					snapped++
				} else {
					tagged++
				}
			}
		}
		if n <= 16 && len(seen) != n {
			t.Errorf("n=%d: only %d workers chosen", n, len(seen))
		}
		workersSeen += len(seen)
	}
	// The generator must reach every branch that changes the key, or the test proves little.
	for name, c := range map[string]int{"victim keys": victims, "tagged IP": tagged, "snap IP": snapped, "not IP": notIP} {
		if c < 200 {
			t.Errorf("only %d packets of kind %q", c, name)
		}
	}
	t.Logf("victim keys %d, tagged %d, snap %d, not IP %d, workers %d", victims, tagged, snapped, notIP, workersSeen)
}

// --- packet builders shared with the live tests ---

func mkIP4(a, b, c, d byte) [4]byte { return [4]byte{a, b, c, d} }

func foldV6(a [16]byte) uint32 { x := packet.Addr(a); return packet.FoldAddr(&x, false) }

func withByteAt(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

func withU16At(b []byte, i int, v uint16) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint16(c[i:], v)
	return c
}

func mkUDP(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func mkSYN(sport, dport uint16, seq uint32) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 5 << 4
	b[13] = packet.FlagSYN
	binary.BigEndian.PutUint16(b[14:], 1024)
	return b
}

func mkIPv4(src, dst [4]byte, proto uint8, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(b[4:], 54321)
	b[8] = 64
	b[9] = proto
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	return append(b, l4...)
}

// withIPv4Options inserts n bytes of NOP options into an IPv4 packet.
func withIPv4Options(p []byte, n int) []byte {
	hl := int(p[0]&0x0F) * 4
	out := append(append(append([]byte(nil), p[:hl]...), make([]byte, n)...), p[hl:]...)
	for i := hl; i < hl+n; i++ {
		out[i] = 1
	}
	out[0] = 0x40 | byte((hl+n)/4)
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(p[2:])+uint16(n))
	return out
}

func mkIPv6(src, dst [16]byte, nh uint8, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6] = nh
	b[7] = 64
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	return append(b, l4...)
}

// withHopByHop puts an 8-byte hop-by-hop header in front of the transport header.
func withHopByHop(p []byte) []byte {
	out := append(append(append([]byte(nil), p[:40]...), p[6], 0, 1, 4, 0, 0, 0, 0), p[40:]...)
	out[6] = 0
	binary.BigEndian.PutUint16(out[4:], binary.BigEndian.Uint16(p[4:])+8)
	return out
}

func mkSNAP(et uint16, inner []byte) []byte {
	return append([]byte{0xAA, 0xAA, 0x03, 0, 0, 0, byte(et >> 8), byte(et)}, inner...)
}

// nTags wraps an IPv4 packet in k in-band tags; the outermost EtherType is the caller's.
func mkTags(k int, inner []byte) []byte {
	et := uint16(packet.EtherIPv4)
	for range k {
		inner = append([]byte{0, byte(k), byte(et >> 8), byte(et)}, inner...)
		et = packet.EtherDot1Q
	}
	return inner
}

// genNetPacket returns a random packet as AF_PACKET SOCK_DGRAM delivers it: the EtherType
// and the bytes from the network header on.
func genNetPacket(rng *rand.Rand) (uint16, []byte) {
	var et uint16
	var pkt []byte
	switch rng.IntN(20) {
	case 0:
		et, pkt = uint16(rng.IntN(0x10000)), mkRandom(rng, rng.IntN(120))
	case 1, 2, 3, 4, 5, 6, 7:
		et, pkt = packet.EtherIPv4, genIPv4(rng)
	case 8, 9, 10, 11, 12:
		et, pkt = packet.EtherIPv6, genIPv6(rng)
	default:
		if rng.IntN(2) == 0 {
			et, pkt = packet.EtherIPv4, genIPv4(rng)
		} else {
			et, pkt = packet.EtherIPv6, genIPv6(rng)
		}
		et, pkt = wrapLink(rng, et, pkt)
	}
	if rng.IntN(8) == 0 && len(pkt) > 0 {
		pkt = pkt[:rng.IntN(len(pkt))]
	}
	return et, pkt
}

// wrapLink puts up to nine VLAN tags and LLC/SNAP headers in front of a packet.
func wrapLink(rng *rand.Rand, et uint16, pkt []byte) (uint16, []byte) {
	vlanTypes := []uint16{packet.EtherDot1Q, packet.EtherDot1AD, packet.EtherQinQOld}
	layers := 1 + rng.IntN(4)
	if rng.IntN(6) == 0 {
		layers = 7 + rng.IntN(4)
	}
	for range layers {
		if rng.IntN(4) == 0 {
			pkt = mkSNAP(et, pkt)
			et = uint16(rng.IntN(packet.EtherMinType))
			if rng.IntN(30) == 0 {
				pkt[rng.IntN(3)] ^= 1 << rng.IntN(8)
			}
			continue
		}
		pkt = append([]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(et >> 8), byte(et)}, pkt...)
		et = vlanTypes[rng.IntN(len(vlanTypes))]
	}
	if et < packet.EtherMinType { // outermost LLC: the kernel reports 802.2
		et = packet.SLLProto8022
		if rng.IntN(20) == 0 {
			et = 0x0001
		}
	}
	return et, pkt
}

func mkRandom(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// genAddr4 draws from a small pool so keys repeat across packets, like real sources.
func genAddr4(rng *rand.Rand) [4]byte {
	return mkIP4(192, 0, byte(2+rng.IntN(2)), byte(rng.IntN(40)))
}

func genAddr6(rng *rand.Rand) [16]byte {
	a := netip.MustParseAddr("2001:db8::").As16()
	a[7] = byte(rng.IntN(4))
	a[15] = byte(rng.IntN(40))
	if rng.IntN(10) == 0 { // IPv4-mapped, folded as IPv6 words
		a = netip.AddrFrom4(genAddr4(rng)).As16()
		a[10], a[11] = 0xff, 0xff
	}
	return a
}

func genIPv4(rng *rand.Rand) []byte {
	proto := []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMP, packet.ProtoICMP, 47}[rng.IntN(6)]
	var l4 []byte
	switch proto {
	case packet.ProtoTCP:
		l4 = mkSYN(uint16(rng.IntN(65536)), 23, rng.Uint32())
	case packet.ProtoUDP:
		l4 = mkUDP(uint16(rng.IntN(65536)), 53, mkRandom(rng, rng.IntN(40)))
	case packet.ProtoICMP:
		types := []uint8{0, 3, 4, 5, 8, 11, 12, 13, uint8(rng.IntN(256))}
		l4 = append([]byte{types[rng.IntN(len(types))], uint8(rng.IntN(16)), 0, 0, 0, 0, 0, 0}, genQuote4(rng)...)
	default:
		l4 = mkRandom(rng, rng.IntN(60))
	}
	p := mkIPv4(genAddr4(rng), genAddr4(rng), proto, l4)
	if rng.IntN(4) == 0 {
		p = withIPv4Options(p, 4*rng.IntN(11))
	}
	switch rng.IntN(12) {
	case 0:
		binary.BigEndian.PutUint16(p[2:], 0)
	case 1:
		binary.BigEndian.PutUint16(p[2:], uint16(rng.IntN(len(p)+8)))
	case 2:
		p[0] = byte(rng.IntN(256))
	case 3:
		off := []uint16{0, 1, 2, 0x1000, uint16(rng.IntN(0x2000))}[rng.IntN(5)]
		binary.BigEndian.PutUint16(p[6:], uint16(rng.IntN(4))<<13|off)
	}
	return p
}

// genQuote4 returns the start of a quoted IPv4 packet, sometimes damaged or cut.
func genQuote4(rng *rand.Rand) []byte {
	q := mkIPv4(genAddr4(rng), genAddr4(rng), packet.ProtoUDP, mkUDP(1, 2, nil))
	switch rng.IntN(10) {
	case 0:
		q[0] = byte(rng.IntN(256))
	case 1:
		q[0] = 0x60 | q[0]&0x0F
	case 2:
		return q[:rng.IntN(len(q))]
	}
	return q
}

func genIPv6(rng *rand.Rand) []byte {
	nh := []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMPv6, packet.ProtoICMPv6, packet.ProtoICMPv6, 0}[rng.IntN(6)]
	var l4 []byte
	switch nh {
	case packet.ProtoTCP:
		l4 = mkSYN(uint16(rng.IntN(65536)), 22, rng.Uint32())
	case packet.ProtoUDP:
		l4 = mkUDP(uint16(rng.IntN(65536)), 6881, mkRandom(rng, rng.IntN(40)))
	default:
		types := []uint8{0, 1, 2, 3, 4, 5, 128, 129, uint8(rng.IntN(256))}
		l4 = append([]byte{types[rng.IntN(len(types))], 0, 0, 0, 0, 0, 0, 0}, genQuote6(rng)...)
	}
	p := mkIPv6(genAddr6(rng), genAddr6(rng), nh, l4)
	if nh == 0 { // hop-by-hop in front of an ICMPv6 error
		p[6] = packet.ProtoICMPv6
		p = withHopByHop(p)
	}
	switch rng.IntN(12) {
	case 0:
		binary.BigEndian.PutUint16(p[4:], 0)
	case 1:
		binary.BigEndian.PutUint16(p[4:], uint16(rng.IntN(len(p))))
	case 2:
		p[0] = byte(rng.IntN(256))
	}
	return p
}

func genQuote6(rng *rand.Rand) []byte {
	q := mkIPv6(genAddr6(rng), genAddr6(rng), packet.ProtoTCP, mkSYN(1, 2, 3)[:8])
	switch rng.IntN(10) {
	case 0:
		q[0] = byte(rng.IntN(256))
	case 1:
		return q[:rng.IntN(len(q))]
	}
	return q
}
