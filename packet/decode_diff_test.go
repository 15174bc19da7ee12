package packet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// gopacketOracle decodes frames with gopacket's DecodingLayerParser, one parser per first layer
// (all sharing the same layer values).
type gopacketOracle struct {
	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	eth     layers.Ethernet
	sll     layers.LinuxSLL
	sll2    layers.LinuxSLL2
	loop    layers.Loopback
	dot1q   layers.Dot1Q
	llc     layers.LLC
	snap    layers.SNAP
	ip4     layers.IPv4
	ip6     layers.IPv6
	ext     layers.IPv6ExtensionSkipper
	frag    layers.IPv6Fragment
	ah      layers.IPSecAH
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	payload gopacket.Payload
}

func newGopacketOracle() *gopacketOracle {
	o := &gopacketOracle{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeLinuxSLL,
		layers.LayerTypeLinuxSLL2, layers.LayerTypeLoopback, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		// The skipper claims every IPv6 extension type; the fragment layer, added after it,
		// takes the fragment header back so that real fragments stop the parse as they should.
		p := gopacket.NewDecodingLayerParser(first,
			&o.eth, &o.sll, &o.sll2, &o.loop, &o.dot1q, &o.llc, &o.snap, &o.ip4, &o.ip6, &o.ext, &o.frag, &o.ah,
			&o.tcp, &o.udp, &o.icmp4, &o.icmp6, &o.payload)
		p.IgnoreUnsupported = true
		o.parsers[first] = p
	}
	return o
}

// firstLayer is gopacket's first layer for a link type, or LayerTypeZero when the oracle
// has nothing to say (unknown link types, a raw frame whose version nibble is not 4 or 6).
func firstLayer(link LinkType, frame []byte) gopacket.LayerType {
	switch link {
	case LinkEthernet:
		return layers.LayerTypeEthernet
	case LinkLinuxSLL:
		return layers.LayerTypeLinuxSLL
	case LinkLinuxSLL2:
		return layers.LayerTypeLinuxSLL2
	case LinkNull, LinkLoop:
		return layers.LayerTypeLoopback
	case LinkIPv4:
		return layers.LayerTypeIPv4
	case LinkIPv6:
		return layers.LayerTypeIPv6
	case LinkRaw, LinkRawBSD1, LinkRawBSD2:
		if len(frame) > 0 && frame[0]>>4 == 4 {
			return layers.LayerTypeIPv4
		}
		if len(frame) > 0 && frame[0]>>4 == 6 {
			return layers.LayerTypeIPv6
		}
	}
	return gopacket.LayerTypeZero
}

// oracleView is what gopacket decoded, in the decoder's terms.
type oracleView struct {
	accepted  bool // an IP layer and a transport layer decoded without error
	ipLayers  int
	vlans     int
	ipVersion uint8
	proto     uint8
	has       map[gopacket.LayerType]bool
	etherType layers.EthernetType // the last link-layer type field gopacket followed
}

func (o *gopacketOracle) decode(first gopacket.LayerType, frame []byte) oracleView {
	v := oracleView{has: map[gopacket.LayerType]bool{}}
	// Errors only stop the parse; what was decoded before them is still valid.
	_ = o.parsers[first].DecodeLayers(frame, &o.decoded)
	for _, t := range o.decoded {
		v.has[t] = true
		switch t {
		case layers.LayerTypeEthernet:
			v.etherType = o.eth.EthernetType
		case layers.LayerTypeLinuxSLL:
			v.etherType = o.sll.EthernetType
		case layers.LayerTypeLinuxSLL2:
			v.etherType = o.sll2.ProtocolType
		case layers.LayerTypeSNAP:
			v.etherType = o.snap.Type
		}
		switch t {
		case layers.LayerTypeDot1Q:
			v.vlans++
			v.etherType = o.dot1q.Type
		case layers.LayerTypeIPv4:
			v.ipLayers++
			v.ipVersion = 4
		case layers.LayerTypeIPv6:
			v.ipLayers++
			v.ipVersion = 6
		case layers.LayerTypeTCP:
			v.accepted, v.proto = true, ProtoTCP
		case layers.LayerTypeUDP:
			v.accepted, v.proto = true, ProtoUDP
		case layers.LayerTypeICMPv4:
			v.accepted, v.proto = true, ProtoICMP
		case layers.LayerTypeICMPv6:
			v.accepted, v.proto = true, ProtoICMPv6
		}
	}
	v.accepted = v.accepted && v.ipLayers > 0
	return v
}

// diffStats counts compared frames and the documented reasons for not comparing.
type diffStats struct {
	frames, compared, oursOnly int
	quotes                     int // ICMP error quotes compared
	skipped                    map[string]int
}

// oracleException returns why gopacket and the decoder may legitimately disagree on whether the
// frame carries a complete IP + transport header, or "" when they must agree. Each rule is
// a documented difference of the two parsers, not a tolerance.
func oracleException(link LinkType, v oracleView, h *Header, frame []byte) string {
	switch {
	case v.etherType == layers.EthernetTypeRaw && h.Result == ResultNonIP:
		// 0xFFFF is gopacket's own pseudo EtherType for raw IP, not a value on the wire
		// (after an 802.3 header it is the start of a Novell raw IPX frame).
		return "ethertype 0xffff"
	case v.ipLayers > 1:
		// gopacket follows IP-in-IP / 6in4 tunnels to the inner packet; the decoder reports
		// the outer packet with protocol 4 or 41.
		return "tunnel"
	case v.vlans > MaxVLANTags:
		return "more than 8 VLAN tags" // the decoder gives up (non-IP), gopacket goes on
	case h.Result == ResultMalformed:
		// gopacket does not check the version nibble under EtherType 0x0800/0x86DD.
		return "ip version nibble"
	case v.ipVersion == 4 && v.proto == ProtoICMPv6, v.ipVersion == 6 && v.proto == ProtoICMP:
		// gopacket decodes ICMPv4 inside IPv6 and ICMPv6 inside IPv4; for the decoder they
		// are "other" protocols (neither stack would accept them).
		return "icmp of the other ip version"
	case v.ipVersion == 4 && v.has[layers.LayerTypeIPSecAH]:
		return "ipv4 ah" // the decoder walks AH only in IPv6
	case v.proto == ProtoICMPv6 && h.Proto == ProtoICMPv6 && !h.L4 && len(frame) > 0:
		// gopacket's ICMPv6 layer needs 4 bytes, the decoder counts ICMP complete at 8.
		return "icmpv6 shorter than 8 bytes"
	case v.ipVersion == 6 && h.Result == ResultIP && h.Proto != v.proto && h.IPHdrLen >= 40+maxIPv6Exts*8:
		return "more than 10 ipv6 extension headers" // the decoder stops walking
	case link == LinkLoop && h.Result == ResultNonIP:
		return "loop family in host order" // gopacket's Loopback takes either order for both links
	case v.has[layers.LayerTypeSNAP] && h.Result == ResultNonIP:
		// gopacket takes any LLC with DSAP and SSAP AA (ignoring the I/G and C/R bits) and
		// any control field as SNAP; the decoder requires exactly AA AA 03 (UI).
		return "llc other than AA AA 03"
	}
	return ""
}

// compare checks one frame, returning an error when the decoder and gopacket disagree.
func (o *gopacketOracle) compare(link LinkType, frame []byte, st *diffStats) error {
	first := firstLayer(link, frame)
	if first == gopacket.LayerTypeZero {
		return nil
	}
	st.frames++
	var h Header
	Decode(link, frame, &h)
	v := o.decode(first, frame)
	ours := h.Result == ResultIP && h.L4
	if !v.accepted || !ours {
		if v.accepted {
			if why := oracleException(link, v, &h, frame); why != "" {
				st.skipped[why]++
				return nil
			}
			return fmt.Errorf("gopacket decoded %v, decoder gave Result %v L4 %v Proto %d", o.decoded, h.Result, h.L4, h.Proto)
		}
		if ours {
			st.oursOnly++ // gopacket is stricter in places (see TestDecodeMatchesGopacket)
		}
		return nil
	}
	if why := oracleException(link, v, &h, frame); why != "" {
		st.skipped[why]++
		return nil
	}
	st.compared++
	var errs []string
	check := func(name string, got, want any) {
		if got != want {
			errs = append(errs, fmt.Sprintf("%s: decoder %v, gopacket %v", name, got, want))
		}
	}
	check("ip version", h.IPVersion, v.ipVersion)
	check("protocol", h.Proto, v.proto)
	if v.ipVersion == 4 {
		check("src", h.Src.Netip().String(), o.ip4.SrcIP.String())
		check("dst", h.Dst.Netip().String(), o.ip4.DstIP.String())
		check("ttl", h.TTL, o.ip4.TTL)
		check("ip id", h.IPID, o.ip4.Id)
		check("ip header length", h.IPHdrLen, uint16(o.ip4.IHL)*4)
		check("ip length", h.IPLen, o.ip4.Length)
	} else {
		check("src", h.Src.Netip().String(), o.ip6.SrcIP.String())
		check("dst", h.Dst.Netip().String(), o.ip6.DstIP.String())
		check("hop limit", h.TTL, o.ip6.HopLimit)
	}
	switch v.proto {
	case ProtoTCP:
		t := &o.tcp
		check("src port", h.SrcPort, uint16(t.SrcPort))
		check("dst port", h.DstPort, uint16(t.DstPort))
		check("tcp flags", h.TCPFlags, tcpFlagsOf(t))
		check("seq", h.Seq, t.Seq)
		check("ack", h.Ack, t.Ack)
		check("window", h.Window, t.Window)
		check("options length", int(h.Opts.Len), int(t.DataOffset)*4-20)
		// gopacket validates MPTCP (kind 30) sub-options and drops those it cannot
		// follow; the decoder only checks the generic kind/length framing.
		if !(len(t.Padding) > 0 && t.Padding[0] == byte(layers.TCPOptionKindMultipathTCP)) {
			check("options", h.Opts, tcpOptionsOf(t, h.Opts.Len))
		}
	case ProtoUDP:
		u := &o.udp
		check("src port", h.SrcPort, uint16(u.SrcPort))
		check("dst port", h.DstPort, uint16(u.DstPort))
		check("udp payload length", int(h.PayloadLen), max(int(u.Length)-8, 0))
		// UDP length 0: gopacket reads it as a jumbogram and takes the rest of the packet
		// as payload; the decoder keeps none, since it bounds the payload by the UDP length.
		if u.Length != 0 {
			n := min(len(u.Payload), PayloadMax)
			check("udp payload", string(h.Payload[:h.PayloadCap]), string(u.Payload[:n]))
		} else {
			check("udp payload bytes", h.PayloadCap, uint8(0))
		}
	case ProtoICMP:
		check("icmp type/code", [2]uint8{h.ICMPType, h.ICMPCode}, [2]uint8{o.icmp4.TypeCode.Type(), o.icmp4.TypeCode.Code()})
		if ICMPError(4, h.ICMPType) {
			if checkQuote(&h, o.icmp4.Payload, &layers.IPv4{}, check) {
				st.quotes++
			}
		}
	case ProtoICMPv6:
		check("icmp type/code", [2]uint8{h.ICMPType, h.ICMPCode}, [2]uint8{o.icmp6.TypeCode.Type(), o.icmp6.TypeCode.Code()})
		// gopacket's ICMPv6 payload starts with the 4 bytes of unused/MTU/pointer.
		if ICMPError(6, h.ICMPType) && len(o.icmp6.Payload) >= 4 {
			if checkQuote(&h, o.icmp6.Payload[4:], &layers.IPv6{}, check) {
				st.quotes++
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("layers %v:\n  %s", o.decoded, strings.Join(errs, "\n  "))
	}
	return nil
}

// checkQuote decodes the packet quoted by an ICMP error with gopacket's IPv4 or IPv6 layer.
// gopacket is the stricter parser here (it also checks the quoted lengths), so every quote it
// decodes must be valid for the decoder too, with the same addresses, protocol and ports.
func checkQuote(h *Header, quote []byte, ip gopacket.DecodingLayer, check func(string, any, any)) (compared bool) {
	var src, dst string
	var proto uint8
	var transport []byte
	var fragment bool
	switch q := ip.(type) {
	case *layers.IPv4:
		if q.DecodeFromBytes(quote, gopacket.NilDecodeFeedback) != nil || q.Version != 4 {
			return false
		}
		src, dst, proto, transport, fragment = q.SrcIP.String(), q.DstIP.String(), uint8(q.Protocol), q.Payload, q.FragOffset != 0
	case *layers.IPv6:
		// A leading hop-by-hop header is folded into gopacket's IPv6 layer; the decoder
		// does not walk extension headers in a quote.
		if q.DecodeFromBytes(quote, gopacket.NilDecodeFeedback) != nil || q.Version != 6 || q.NextHeader == 0 {
			return false
		}
		src, dst, proto, transport = q.SrcIP.String(), q.DstIP.String(), uint8(q.NextHeader), q.Payload
	}
	check("quote valid", h.Inner.Valid, true)
	check("quote src", h.Inner.Src.Netip().String(), src)
	check("quote dst", h.Inner.Dst.Netip().String(), dst)
	check("quote protocol", h.Inner.Proto, proto)
	// gopacket cuts the quote at its own total length; compare ports where both have them.
	if (proto == ProtoTCP || proto == ProtoUDP) && !fragment && len(transport) >= 4 {
		check("quote ports", [2]uint16{h.Inner.SrcPort, h.Inner.DstPort},
			[2]uint16{binary.BigEndian.Uint16(transport[0:2]), binary.BigEndian.Uint16(transport[2:4])})
	}
	return true
}

func tcpFlagsOf(t *layers.TCP) uint8 {
	var f uint8
	for i, set := range []bool{t.FIN, t.SYN, t.RST, t.PSH, t.ACK, t.URG, t.ECE, t.CWR} {
		if set {
			f |= 1 << i
		}
	}
	return f
}

// tcpOptionsOf summarises gopacket's option list the way TCPOptions does.
func tcpOptionsOf(t *layers.TCP, optLen uint8) TCPOptions {
	o := TCPOptions{Len: optLen}
	for _, opt := range t.Options {
		k := uint8(opt.OptionType)
		if k <= 1 {
			continue
		}
		if k < 32 {
			o.Kinds |= 1 << k
		}
		o.Count++
		switch {
		case k == 2 && opt.OptionLength == 4:
			o.MSS = uint16(opt.OptionData[0])<<8 | uint16(opt.OptionData[1])
		case k == 3 && opt.OptionLength == 3:
			o.WScale = opt.OptionData[0]
		}
	}
	return o
}

// linkFrame is a frame with its link type.
type linkFrame struct {
	link  LinkType
	frame []byte
}

// diffBaseFrames are valid frames covering every path the oracle understands.
func diffBaseFrames(t testing.TB) []linkFrame {
	q := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolUDP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.UDP{SrcPort: 1, DstPort: 2})
	eth4 := func(ip []byte) []byte { return append(serializeLayers(t, ethL(layers.EthernetTypeIPv4))[:14], ip...) }
	eth6 := func(ip []byte) []byte { return append(serializeLayers(t, ethL(layers.EthernetTypeIPv6))[:14], ip...) }
	fullSYN := synL()
	fullSYN.Options = append(fullSYN.Options,
		layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		layers.TCPOption{OptionType: layers.TCPOptionKindNop},
		layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{8}})
	ip4syn := serializeLayers(t, ip4L(layers.IPProtocolTCP), synL())
	ip6udp := serializeLayers(t, ip6L(layers.IPProtocolUDP), udpL(), gopacket.Payload("d1:ad2:id20:"))
	snap := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0, 52, 0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00}
	sll := []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x81, 0x00, 0, 5, 0x08, 0x00}
	sll2 := []byte{0x86, 0xDD, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
	return []linkFrame{
		{LinkEthernet, ethIPv4SYN(t)},
		{LinkEthernet, ethIPv6SYN(t)},
		{LinkEthernet, ethVLANIPv4SYN(t)},
		{LinkEthernet, ethIPv4UDP(t, []byte("d1:ad2:id20:0123456789abcdefghije1:q9:get_peers"))},
		{LinkEthernet, serializeLayers(t, ethL(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 20, Type: layers.EthernetTypeIPv6}, ip6L(layers.IPProtocolUDP), udpL(), gopacket.Payload("x"))},
		{LinkEthernet, serializeLayers(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), fullSYN)},
		{LinkEthernet, serializeLayers(t, ethL(layers.EthernetTypeIPv4), ip4With(layers.IPProtocolTCP, func(l *layers.IPv4) {
			l.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}), synL())},
		{LinkEthernet, eth4(icmp4(t, 3, 3, q))},
		{LinkEthernet, eth4(icmp4(t, 8, 0, []byte("ping")))},
		{LinkEthernet, eth6(icmp6(t, 1, 4, q))},
		{LinkEthernet, eth6(icmp6(t, 128, 0, []byte("ping")))},
		{LinkEthernet, eth6(ipv6Ext(t, 0, ext6(43, 1), ext6(60, 2), ext6(6, 1), serializeLayers(t, synL())))},
		{LinkEthernet, eth6(ipv6Ext(t, 44, []byte{17, 0, 0, 0, 0, 0, 0, 9}, serializeLayers(t, udpL(), gopacket.Payload("abc"))))},
		{LinkEthernet, eth6(ipv6Ext(t, 51, append([]byte{6, 4}, make([]byte, 22)...), serializeLayers(t, synL())))},
		{LinkEthernet, append(snap, ip4syn...)},
		{LinkLinuxSLL, append(sll, ip4syn...)},
		{LinkLinuxSLL2, append(sll2, ip6udp...)},
		{LinkNull, append([]byte{2, 0, 0, 0}, ip4syn...)},
		{LinkNull, append([]byte{0, 0, 0, 30}, ip6udp...)},
		{LinkRaw, ip4syn},
		{LinkRaw, ip6udp},
		{LinkIPv6, ip6udp},
	}
}

// mutateFrame damages a copy of frame: truncation, random bytes, or header fields set to
// boundary values, so that the two parsers meet every edge.
func mutateFrame(r *rand.Rand, frame []byte) []byte {
	f := append([]byte(nil), frame...)
	for range 1 + r.Intn(3) {
		if len(f) == 0 {
			break
		}
		i := r.Intn(min(len(f), 96)) // headers live in the first bytes
		switch r.Intn(6) {
		case 0:
			f = f[:r.Intn(len(f)+1)]
		case 1:
			f[i] = byte(r.Intn(256))
		case 2:
			f[i] ^= 1 << r.Intn(8)
		case 3:
			f[i] = []byte{0, 1, 2, 4, 5, 6, 0x0F, 0x40, 0x45, 0x4F, 0x60, 0x80, 0xFF}[r.Intn(13)]
		case 4:
			f = append(f, make([]byte, r.Intn(40))...) // trailer / padding
		case 5:
			if i+1 < len(f) {
				f[i], f[i+1] = 0, byte(r.Intn(80))
			}
		}
	}
	return f
}

// TestDecodeMatchesGopacket is the differential test: gopacket's layers are the oracle, over
// (a) valid frames of every link type gopacket has a layer for, mutated and truncated with a
// seeded math/rand, and (b) every frame of those link types in the tcpdump test captures
// (Ethernet, Linux SLL/SLL2, NULL, raw IP).
//
// Where both accept a frame (gopacket decoded an IP and a transport layer without error;
// the decoder returned ResultIP with L4), addresses, protocol, ports, TCP flags, sequence
// numbers, window, TCP options, UDP length and payload, ICMP type/code and the packet an
// ICMP error quotes must agree. Where gopacket accepts and the decoder does not, one of the
// rules in oracleException must explain it. The decoder accepting a frame gopacket rejects is
// allowed and counted, because gopacket is stricter or stops earlier there: TCP data offsets
// past the capture, UDP lengths 1-7, malformed IPv4 options, IPv6 payload length 0, AH with
// a length below 12 bytes, the 0x9100 tag, extension headers it does not know (mobility,
// HIP, shim6), and first fragments (gopacket decodes no transport header in any fragment).
func TestDecodeMatchesGopacket(t *testing.T) {
	o := newGopacketOracle()
	t.Run("mutated", func(t *testing.T) {
		st := diffStats{skipped: map[string]int{}}
		r := rand.New(rand.NewSource(20190110))
		bases := diffBaseFrames(t)
		fails := 0
		for i := range 30000 {
			b := bases[i%len(bases)]
			f := b.frame
			if i >= len(bases) {
				f = mutateFrame(r, f)
			}
			if err := o.compare(b.link, f, &st); err != nil && fails < 10 {
				fails++
				t.Errorf("frame % x: %v", f[:min(len(f), 128)], err)
			}
		}
		reportDiff(t, st, 10000)
	})
	t.Run("tcpdump-tests", func(t *testing.T) {
		st := diffStats{skipped: map[string]int{}}
		files, err := filepath.Glob("../testdata/tcpdump-tests/*")
		if err != nil || len(files) == 0 {
			t.Fatalf("no captures in ../testdata/tcpdump-tests (err %v)", err)
		}
		fails, opened := 0, 0
		for _, name := range files {
			if forEachCaptureFrame(t, name, func(link LinkType, frame []byte) {
				if err := o.compare(link, frame, &st); err != nil && fails < 10 {
					fails++
					t.Errorf("%s: frame % x: %v", filepath.Base(name), frame[:min(len(frame), 128)], err)
				}
			}) {
				opened++
			}
		}
		t.Logf("%d of %d files opened by pcapgo", opened, len(files))
		reportDiff(t, st, 1000)
	})
}

func reportDiff(t *testing.T, st diffStats, minCompared int) {
	t.Helper()
	reasons := make([]string, 0, len(st.skipped))
	for k, n := range st.skipped {
		reasons = append(reasons, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(reasons)
	t.Logf("%d frames, %d compared field by field (%d with an ICMP error quote), %d accepted only by the decoder, not compared: %v",
		st.frames, st.compared, st.quotes, st.oursOnly, reasons)
	if st.compared < minCompared {
		t.Errorf("only %d frames compared, want at least %d", st.compared, minCompared)
	}
}

// forEachCaptureFrame calls fn for every record of a pcap or pcapng file and reports whether
// pcapgo opened it. Files pcapgo rejects are skipped; a damaged record ends the file.
func forEachCaptureFrame(t *testing.T, name string, fn func(LinkType, []byte)) bool {
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if r, err := pcapgo.NewReader(bytes.NewReader(raw)); err == nil {
		link := LinkType(r.LinkType())
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				return true
			}
			fn(link, data)
		}
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return false
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			return true
		}
		if intf, err := r.Interface(ci.InterfaceIndex); err == nil {
			fn(LinkType(intf.LinkType), data)
		}
	}
}
