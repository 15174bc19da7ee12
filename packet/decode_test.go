package packet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Addresses used by the test frames (documentation prefixes).
var (
	tSrc4 = net.IP{192, 0, 2, 1}
	tDst4 = net.IP{203, 0, 113, 7}
	tSrc6 = net.ParseIP("2001:db8::1")
	tDst6 = net.ParseIP("2001:db8:ffff::7")
	// Quoted (inner) addresses of ICMP errors: the victim replies to a spoofed source.
	tQSrc4 = net.IP{198, 51, 100, 9}
	tQDst4 = net.IP{192, 0, 2, 200}
	tQSrc6 = net.ParseIP("2001:db8:1::9")
	tQDst6 = net.ParseIP("2001:db8:2::200")
)

// taddr converts a net.IP to the decoder's Addr form.
func taddr(ip net.IP) Addr { return Addr(ip.To16()) }

// serializeLayers builds a packet from gopacket layers with lengths and checksums fixed.
func serializeLayers(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var nl gopacket.NetworkLayer
	for _, l := range ls {
		if n, ok := l.(gopacket.NetworkLayer); ok {
			nl = n // transport checksums use the innermost network layer before them
			continue
		}
		tl, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		})
		if !ok || nl == nil {
			continue
		}
		if err := tl.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatalf("checksum layer for %v: %v", l.LayerType(), err)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	// Without a network layer there is no pseudo-header to checksum against.
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: nl != nil}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize %v: %v", ls, err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethL(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: et,
	}
}

func ip4L(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 51, Id: 54321, Protocol: proto, SrcIP: tSrc4, DstIP: tDst4}
}

func ip6L(nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 57, NextHeader: nh, SrcIP: tSrc6, DstIP: tDst6}
}

// synL is a scanner-style SYN with one MSS option (data offset 6).
func synL() *layers.TCP {
	return &layers.TCP{
		SrcPort: 40000, DstPort: 23, Seq: 0xCB007107, SYN: true, Window: 1024,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xB4}}},
	}
}

func udpL() *layers.UDP { return &layers.UDP{SrcPort: 40386, DstPort: 4776} }

// Frames shared by several tests.
func ethIPv4SYN(t testing.TB) []byte {
	return serializeLayers(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), synL())
}

func ethIPv4UDP(t testing.TB, payload []byte) []byte {
	return serializeLayers(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolUDP), udpL(), gopacket.Payload(payload))
}

func ethIPv6SYN(t testing.TB) []byte {
	return serializeLayers(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolTCP), synL())
}

func ethVLANIPv4SYN(t testing.TB) []byte {
	return serializeLayers(t, ethL(layers.EthernetTypeDot1Q),
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeIPv4},
		ip4L(layers.IPProtocolTCP), synL())
}

// Expected-header builders: each states what one layer must contribute.

func wantIPv4(h *Header) {
	h.Result, h.IPVersion, h.TTL, h.IPID, h.IPHdrLen = ResultIP, 4, 51, 54321, 20
	h.Src, h.Dst = taddr(tSrc4), taddr(tDst4)
}

func wantIPv6(h *Header) {
	h.Result, h.IPVersion, h.TTL, h.IPHdrLen = ResultIP, 6, 57, 40
	h.Src, h.Dst = taddr(tSrc6), taddr(tDst6)
}

func wantSYN(h *Header) {
	h.Proto, h.L4 = ProtoTCP, true
	h.SrcPort, h.DstPort, h.Seq, h.TCPFlags, h.Window = 40000, 23, 0xCB007107, FlagSYN, 1024
	h.Opts = TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1, MSS: 1460}
}

func wantUDP(payload []byte) func(*Header) {
	return func(h *Header) {
		h.Proto, h.L4 = ProtoUDP, true
		h.SrcPort, h.DstPort = 40386, 4776
		h.PayloadLen = uint16(len(payload))
		h.PayloadCap = uint8(copy(h.Payload[:], payload))
		h.PayloadClass = ClassifyUDP(payload, len(payload))
	}
}

// wantHeader composes builders over a Header that has only CapLen set, as Decode leaves it.
func wantHeader(capLen int, fs ...func(*Header)) Header {
	h := Header{CapLen: uint32(capLen)}
	for _, f := range fs {
		f(&h)
	}
	return h
}

// diffHeaders names the fields that differ, for readable failures.
func diffHeaders(got, want Header) string {
	var b strings.Builder
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			fmt.Fprintf(&b, "\n  %s: got %+v, want %+v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	return b.String()
}

// decodeCase is one frame with the complete Header it must produce.
type decodeCase struct {
	name  string
	link  LinkType
	net   uint16 // when link == LinkNetwork: the EtherType passed to DecodeNetwork
	frame []byte
	want  func(capLen int) Header
}

func runDecode(c decodeCase, h *Header) {
	if c.link == LinkNetwork {
		DecodeNetwork(c.net, c.frame, h)
		return
	}
	Decode(c.link, c.frame, h)
}

func checkCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Header
			runDecode(c, &h)
			h.NetOff, h.Net = 0, false // TestDecodeNetOff
			if w := c.want(len(c.frame)); h != w {
				t.Errorf("frame % x%s", c.frame, diffHeaders(h, w))
			}
		})
	}
}

// wantResult returns a want function for frames that stop before any IP field is set.
func wantResult(r Result, vlans uint8, vlan uint16) func(int) Header {
	return func(n int) Header {
		return wantHeader(n, func(h *Header) { h.Result, h.VLANs, h.VLAN = r, vlans, vlan })
	}
}

func prependBytes(prefix []byte, b []byte) []byte {
	return append(append([]byte(nil), prefix...), b...)
}

func TestDecodeLinkTypes(t *testing.T) {
	ip4syn := serializeLayers(t, ip4L(layers.IPProtocolTCP), synL())
	ip6syn := serializeLayers(t, ip6L(layers.IPProtocolTCP), synL())
	syn4 := func(n int) Header {
		return wantHeader(n, wantIPv4, wantSYN, func(h *Header) { h.IPLen = 44 })
	}
	syn6 := func(n int) Header {
		return wantHeader(n, wantIPv6, wantSYN, func(h *Header) { h.IPLen = 64 })
	}
	vlan := func(f func(int) Header, n uint8, id uint16) func(int) Header {
		return func(c int) Header { h := f(c); h.VLANs, h.VLAN = n, id; return h }
	}
	sll := func(proto uint16) []byte {
		b := []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(b[14:], proto)
		return b
	}
	sll2 := func(proto uint16) []byte {
		b := []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
		binary.BigEndian.PutUint16(b[0:], proto)
		return b
	}
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tag := func(tpid uint16, tci uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tci), tpid)
	}
	// ethTags builds an Ethernet frame whose type field is et, then the given tags
	// (each tag's second half is the next type), then the IPv4 SYN.
	ethTags := func(tpids []uint16, tcis []uint16) []byte {
		b := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
		b = binary.BigEndian.AppendUint16(b, tpids[0])
		for i, tci := range tcis {
			next := uint16(0x0800)
			if i+1 < len(tpids) {
				next = tpids[i+1]
			}
			b = binary.BigEndian.AppendUint16(b, tci)
			b = binary.BigEndian.AppendUint16(b, next)
		}
		return append(b, ip4syn...)
	}
	nine := make([]uint16, 9)
	nineTCI := make([]uint16, 9)
	for i := range nine {
		nine[i], nineTCI[i] = 0x8100, uint16(i+1)
	}
	snap := []byte{0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00}
	ethHdr := func(lenOrType uint16) []byte {
		return binary.BigEndian.AppendUint16([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}, lenOrType)
	}

	checkCases(t, []decodeCase{
		{"ethernet ipv4", LinkEthernet, 0, ethIPv4SYN(t), syn4},
		{"ethernet ipv6", LinkEthernet, 0, ethIPv6SYN(t), syn6},
		{"ethernet short", LinkEthernet, 0, ethIPv4SYN(t)[:13], wantResult(ResultTruncated, 0, 0)},
		{"ethernet arp", LinkEthernet, 0, serializeLayers(t, ethL(layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			SourceHwAddress: make([]byte, 6), SourceProtAddress: tSrc4, DstHwAddress: make([]byte, 6), DstProtAddress: tDst4,
		}), wantResult(ResultNonIP, 0, 0)},
		{"ethernet lldp type", LinkEthernet, 0, prependBytes(ethHdr(0x88CC), make([]byte, 46)), wantResult(ResultNonIP, 0, 0)},
		{"802.1Q", LinkEthernet, 0, ethVLANIPv4SYN(t), vlan(syn4, 1, 100)},
		{"802.1ad QinQ", LinkEthernet, 0, ethTags([]uint16{0x88A8, 0x8100}, []uint16{0x2000 | 300, 7}), vlan(syn4, 2, 300)},
		{"0x9100 outer tag", LinkEthernet, 0, ethTags([]uint16{0x9100, 0x8100}, []uint16{4095, 1}), vlan(syn4, 2, 4095)},
		{"8 tags", LinkEthernet, 0, ethTags(nine[:8], nineTCI[:8]), vlan(syn4, 8, 1)},
		{"9 tags", LinkEthernet, 0, ethTags(nine, nineTCI), wantResult(ResultNonIP, 8, 1)},
		{"tag cut", LinkEthernet, 0, ethVLANIPv4SYN(t)[:17], wantResult(ResultTruncated, 0, 0)},
		{"llc snap ipv4", LinkEthernet, 0, prependBytes(ethHdr(uint16(len(snap)+len(ip4syn))), prependBytes(snap, ip4syn)), syn4},
		{"802.3 length past the frame", LinkEthernet, 0, prependBytes(ethHdr(1500), prependBytes(snap, ip4syn)), syn4},
		{"802.3 length cuts the ip header", LinkEthernet, 0, prependBytes(ethHdr(8+19), prependBytes(snap, ip4syn)), wantResult(ResultTruncated, 0, 0)},
		{"802.3 length cuts the tcp header", LinkEthernet, 0, prependBytes(ethHdr(8+20+19), prependBytes(snap, ip4syn)), func(n int) Header {
			return wantHeader(n, wantIPv4, func(h *Header) { h.IPLen, h.Proto = 44, ProtoTCP })
		}},
		{"llc snap cut", LinkEthernet, 0, prependBytes(ethHdr(50), snap[:7]), wantResult(ResultTruncated, 0, 0)},
		{"llc prefix cut", LinkEthernet, 0, prependBytes(ethHdr(50), snap[:2]), wantResult(ResultTruncated, 0, 0)},
		{"llc stp", LinkEthernet, 0, prependBytes(ethHdr(38), append([]byte{0x42, 0x42, 0x03}, make([]byte, 35)...)), wantResult(ResultNonIP, 0, 0)},
		{"llc snap arp", LinkEthernet, 0, prependBytes(ethHdr(36), append([]byte{0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x06}, make([]byte, 28)...)), wantResult(ResultNonIP, 0, 0)},
		{"vlan then llc snap", LinkEthernet, 0, prependBytes(ethHdr(0x8100), prependBytes(tag(60, 5), prependBytes(snap, ip4syn))), vlan(syn4, 1, 5)},

		{"raw ipv4", LinkRaw, 0, ip4syn, syn4},
		{"raw ipv6", LinkRaw, 0, ip6syn, syn6},
		{"raw bsd 12", LinkRawBSD1, 0, ip4syn, syn4},
		{"raw bsd 14", LinkRawBSD2, 0, ip6syn, syn6},
		{"raw version 5", LinkRaw, 0, prependBytes([]byte{0x55}, ip4syn[1:]), wantResult(ResultMalformed, 0, 0)},
		{"raw empty", LinkRaw, 0, []byte{}, wantResult(ResultTruncated, 0, 0)},
		{"raw one byte", LinkRaw, 0, ip4syn[:1], wantResult(ResultTruncated, 0, 0)},
		{"ipv4 link", LinkIPv4, 0, ip4syn, syn4},
		{"ipv4 link with ipv6", LinkIPv4, 0, ip6syn, wantResult(ResultMalformed, 0, 0)},
		{"ipv6 link", LinkIPv6, 0, ip6syn, syn6},
		{"ipv6 link with ipv4", LinkIPv6, 0, prependBytes(ip4syn, make([]byte, 20)), wantResult(ResultMalformed, 0, 0)},

		{"sll ipv4", LinkLinuxSLL, 0, prependBytes(sll(0x0800), ip4syn), syn4},
		{"sll ipv6", LinkLinuxSLL, 0, prependBytes(sll(0x86DD), ip6syn), syn6},
		{"sll vlan", LinkLinuxSLL, 0, prependBytes(sll(0x8100), prependBytes(tag(0x0800, 42), ip4syn)), vlan(syn4, 1, 42)},
		{"sll 802.2 snap", LinkLinuxSLL, 0, prependBytes(sll(0x0004), prependBytes(snap, ip4syn)), syn4},
		{"sll 802.3 novell", LinkLinuxSLL, 0, prependBytes(sll(0x0001), ip4syn), wantResult(ResultNonIP, 0, 0)},
		{"sll arp", LinkLinuxSLL, 0, prependBytes(sll(0x0806), make([]byte, 28)), wantResult(ResultNonIP, 0, 0)},
		{"sll short", LinkLinuxSLL, 0, sll(0x0800)[:15], wantResult(ResultTruncated, 0, 0)},
		{"sll2 ipv6", LinkLinuxSLL2, 0, prependBytes(sll2(0x86DD), ip6syn), syn6},
		{"sll2 ipv4", LinkLinuxSLL2, 0, prependBytes(sll2(0x0800), ip4syn), syn4},
		{"sll2 short", LinkLinuxSLL2, 0, sll2(0x0800)[:19], wantResult(ResultTruncated, 0, 0)},
		{"sll2 header only", LinkLinuxSLL2, 0, sll2(0x0800), wantResult(ResultTruncated, 0, 0)},

		{"null le ipv4", LinkNull, 0, prependBytes(le(2), ip4syn), syn4},
		{"null be ipv4", LinkNull, 0, prependBytes(be(2), ip4syn), syn4},
		{"null le 24", LinkNull, 0, prependBytes(le(24), ip6syn), syn6},
		{"null le 28", LinkNull, 0, prependBytes(le(28), ip6syn), syn6},
		{"null be 30", LinkNull, 0, prependBytes(be(30), ip6syn), syn6},
		{"null le 10", LinkNull, 0, prependBytes(le(10), ip6syn), syn6},
		{"null unknown family", LinkNull, 0, prependBytes(le(7), ip4syn), wantResult(ResultNonIP, 0, 0)},
		{"null short", LinkNull, 0, le(2)[:3], wantResult(ResultTruncated, 0, 0)},
		{"loop ipv4", LinkLoop, 0, prependBytes(be(2), ip4syn), syn4},
		{"loop ipv6", LinkLoop, 0, prependBytes(be(24), ip6syn), syn6},
		{"loop host order", LinkLoop, 0, prependBytes(le(2), ip4syn), wantResult(ResultNonIP, 0, 0)},

		{"unknown link", LinkType(105), 0, ip4syn, wantResult(ResultNonIP, 0, 0)},
		{"network ipv4", LinkNetwork, 0x0800, ip4syn, syn4},
		{"network ipv6", LinkNetwork, 0x86DD, ip6syn, syn6},
		{"network vlan", LinkNetwork, 0x8100, prependBytes(tag(0x0800, 7), ip4syn), vlan(syn4, 1, 7)},
		{"network 802.1ad", LinkNetwork, 0x88A8, prependBytes(tag(0x86DD, 8), ip6syn), vlan(syn6, 1, 8)},
		{"network arp", LinkNetwork, 0x0806, make([]byte, 28), wantResult(ResultNonIP, 0, 0)},
		{"network empty", LinkNetwork, 0x0800, nil, wantResult(ResultTruncated, 0, 0)},
	})
}

// ip4With returns an IPv4 layer with the test addresses and the given tweak applied.
func ip4With(proto layers.IPProtocol, f func(*layers.IPv4)) *layers.IPv4 {
	l := ip4L(proto)
	f(l)
	return l
}

// withU16 returns a copy of b with a big-endian uint16 written at off.
func withU16(b []byte, off int, v uint16) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint16(c[off:], v)
	return c
}

// withByte returns a copy of b with byte off set to v.
func withByte(b []byte, off int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[off] = v
	return c
}

func TestDecodeIPv4(t *testing.T) {
	payload := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe") // 56 bytes
	udp4 := serializeLayers(t, ip4L(layers.IPProtocolUDP), udpL(), gopacket.Payload(payload))
	syn := serializeLayers(t, ip4L(layers.IPProtocolTCP), synL())
	frag := func(flags layers.IPv4Flag, off uint16) []byte {
		return serializeLayers(t, ip4With(layers.IPProtocolUDP, func(l *layers.IPv4) { l.Flags, l.FragOffset = flags, off }),
			udpL(), gopacket.Payload(payload))
	}
	withOpts := serializeLayers(t, ip4With(layers.IPProtocolTCP, func(l *layers.IPv4) {
		l.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
	}), synL())
	// Ethernet minimum frame: 2 bytes of UDP payload, then padding that must not be read.
	padded := append(ethIPv4UDP(t, []byte{'h', 'i'}), bytes.Repeat([]byte{0xEE}, 16)...)

	udpWant := func(ipLen uint16, p []byte, plen uint16) func(int) Header {
		return func(n int) Header {
			return wantHeader(n, wantIPv4, wantUDP(p), func(h *Header) {
				h.IPLen, h.PayloadLen = ipLen, plen
				h.PayloadClass = ClassifyUDP(p, int(plen)) // a payload longer than captured is never dht
			})
		}
	}
	checkCases(t, []decodeCase{
		{"udp payload kept to 32", LinkRaw, 0, udp4, udpWant(84, payload, 56)},
		{"udp payload cut by capture", LinkRaw, 0, udp4[:28+20], udpWant(84, payload[:20], 56)},
		{"udp header only", LinkRaw, 0, udp4[:28], udpWant(84, nil, 56)},
		{"udp header cut", LinkRaw, 0, udp4[:27], func(n int) Header {
			return wantHeader(n, wantIPv4, func(h *Header) { h.IPLen, h.Proto = 84, ProtoUDP })
		}},
		{"udp length below 8", LinkRaw, 0, withU16(udp4, 24, 7), udpWant(84, nil, 0)},
		{"udp length 0", LinkRaw, 0, withU16(udp4, 24, 0), udpWant(84, nil, 0)},
		{"udp length shorter than datagram", LinkRaw, 0, withU16(udp4, 24, 8+4), udpWant(84, payload[:4], 4)},
		{"udp length longer than ip", LinkRaw, 0, withU16(udp4, 24, 8+200), udpWant(84, payload, 200)},
		{"ip length bounds udp payload", LinkRaw, 0, withU16(udp4, 2, 20+8+3), udpWant(31, payload[:3], 56)},
		{"ethernet padding is not payload", LinkEthernet, 0, padded, udpWant(30, []byte("hi"), 2)},
		{"total length 0 uses capture", LinkRaw, 0, withU16(udp4, 2, 0), udpWant(84, payload, 56)},
		{"total length 0 with trailer", LinkRaw, 0, append(withU16(udp4, 2, 0), 1, 2, 3, 4), udpWant(88, payload, 56)},
		{"dont fragment", LinkRaw, 0, serializeLayers(t, ip4With(layers.IPProtocolTCP, func(l *layers.IPv4) { l.Flags = layers.IPv4DontFragment }), synL()),
			func(n int) Header {
				return wantHeader(n, wantIPv4, wantSYN, func(h *Header) { h.IPLen, h.Frag = 44, FragDontFrag })
			}},
		{"first fragment", LinkRaw, 0, frag(layers.IPv4MoreFragments, 0), func(n int) Header {
			h := udpWant(84, payload, 56)(n)
			h.Frag = FragMore | FragFragment
			return h
		}},
		{"middle fragment", LinkRaw, 0, frag(layers.IPv4MoreFragments, 185), func(n int) Header {
			return wantHeader(n, wantIPv4, func(h *Header) {
				h.Proto, h.IPLen, h.FragOff, h.Frag = ProtoUDP, 84, 185, FragMore|FragNonFirst|FragFragment
			})
		}},
		{"last fragment", LinkRaw, 0, frag(0, 1), func(n int) Header {
			return wantHeader(n, wantIPv4, func(h *Header) {
				h.Proto, h.IPLen, h.FragOff, h.Frag = ProtoUDP, 84, 1, FragNonFirst|FragFragment
			})
		}},
		{"options", LinkRaw, 0, withOpts, func(n int) Header {
			return wantHeader(n, wantIPv4, wantSYN, func(h *Header) { h.IPLen, h.IPHdrLen = 48, 24 })
		}},
		{"options cut", LinkRaw, 0, withOpts[:22], wantResult(ResultTruncated, 0, 0)},
		{"options cut before total length check", LinkRaw, 0, withU16(withOpts, 2, 21)[:22], wantResult(ResultTruncated, 0, 0)},
		{"19 bytes", LinkRaw, 0, syn[:19], wantResult(ResultTruncated, 0, 0)},
		{"ihl 4", LinkRaw, 0, withByte(syn, 0, 0x44), wantResult(ResultMalformed, 0, 0)},
		{"ihl 0", LinkRaw, 0, withByte(syn, 0, 0x40), wantResult(ResultMalformed, 0, 0)},
		{"version 6 under ethertype ipv4", LinkNetwork, 0x0800, withByte(syn, 0, 0x65), wantResult(ResultMalformed, 0, 0)},
		{"version 5 under ethertype ipv4", LinkNetwork, 0x0800, withByte(syn, 0, 0x55), wantResult(ResultMalformed, 0, 0)},
		{"total length below header", LinkRaw, 0, withU16(syn, 2, 19), wantResult(ResultMalformed, 0, 0)},
		{"total length below options", LinkRaw, 0, withU16(withOpts, 2, 23), wantResult(ResultMalformed, 0, 0)},
		{"total length equal header", LinkRaw, 0, withU16(syn, 2, 20), func(n int) Header {
			return wantHeader(n, wantIPv4, func(h *Header) { h.IPLen, h.Proto = 20, ProtoTCP })
		}},
		{"ipv4 protocol 58 is other", LinkRaw, 0, serializeLayers(t, ip4L(layers.IPProtocolICMPv6), gopacket.Payload{128, 0, 0, 0, 0, 0, 0, 0}),
			func(n int) Header {
				return wantHeader(n, wantIPv4, func(h *Header) { h.IPLen, h.Proto = 28, ProtoICMPv6 })
			}},
		{"ipv4 gre is other", LinkRaw, 0, serializeLayers(t, ip4L(layers.IPProtocolGRE), gopacket.Payload(make([]byte, 24))),
			func(n int) Header {
				return wantHeader(n, wantIPv4, func(h *Header) { h.IPLen, h.Proto = 44, 47 })
			}},
	})
}

func TestDecodeTCP(t *testing.T) {
	tcpWith := func(f func(*layers.TCP)) []byte {
		l := synL()
		f(l)
		return serializeLayers(t, ip4L(layers.IPProtocolTCP), l)
	}
	full := tcpWith(func(l *layers.TCP) {
		l.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0x78}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
	})
	// opts builds a SYN whose options area is exactly o (a multiple of 4 bytes).
	opts := func(o ...byte) []byte {
		b := serializeLayers(t, ip4L(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 23, Seq: 0xCB007107, SYN: true, Window: 1024},
			gopacket.Payload(o))
		b[20+12] = byte(5+len(o)/4) << 4
		return b
	}
	ipLen := func(n uint16) func(*Header) { return func(h *Header) { h.IPLen = n } }
	synOpts := func(ipl uint16, o TCPOptions) func(int) Header {
		return func(n int) Header {
			return wantHeader(n, wantIPv4, wantSYN, ipLen(ipl), func(h *Header) { h.Opts = o })
		}
	}
	checkCases(t, []decodeCase{
		{"linux syn options", LinkRaw, 0, full, synOpts(60, TCPOptions{Kinds: 1<<2 | 1<<3 | 1<<4 | 1<<8, Len: 20, Count: 4, MSS: 1400, WScale: 7})},
		{"no options", LinkRaw, 0, opts(), synOpts(40, TCPOptions{})},
		{"eol stops", LinkRaw, 0, opts(0, 2, 4, 1), synOpts(44, TCPOptions{Len: 4})},
		{"nop then mss", LinkRaw, 0, opts(1, 1, 1, 1, 2, 4, 0x05, 0xB4), synOpts(48, TCPOptions{Kinds: 1 << 2, Len: 8, Count: 1, MSS: 1460})},
		{"length 1 stops", LinkRaw, 0, opts(3, 1, 2, 4, 0x05, 0xB4, 0, 0), synOpts(48, TCPOptions{Len: 8})},
		{"length past end stops", LinkRaw, 0, opts(2, 4, 0x05, 0xB4, 8, 10, 0, 0), synOpts(48, TCPOptions{Kinds: 1 << 2, Len: 8, Count: 1, MSS: 1460})},
		{"mss with wrong length", LinkRaw, 0, opts(2, 3, 9, 0), synOpts(44, TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1})},
		{"wscale with wrong length", LinkRaw, 0, opts(3, 4, 9, 9), synOpts(44, TCPOptions{Kinds: 1 << 3, Len: 4, Count: 1})},
		{"kind above 31 counted not flagged", LinkRaw, 0, opts(34, 2, 254, 2), synOpts(44, TCPOptions{Len: 4, Count: 2})},
		{"kind 31 flagged", LinkRaw, 0, opts(31, 4, 0, 0), synOpts(44, TCPOptions{Kinds: 1 << 31, Len: 4, Count: 1})},
		{"options cut by capture", LinkRaw, 0, full[:20+20+6], synOpts(60, TCPOptions{Kinds: 1<<2 | 1<<4, Len: 20, Count: 2, MSS: 1400})},
		{"options cut by ip length", LinkRaw, 0, withU16(full, 2, 20+20+6), synOpts(46, TCPOptions{Kinds: 1<<2 | 1<<4, Len: 20, Count: 2, MSS: 1400})},
		{"data offset 15, header only", LinkRaw, 0, withByte(opts(), 32, 0xF0), synOpts(40, TCPOptions{Len: 40})},
		{"data offset 4", LinkRaw, 0, withByte(opts(), 32, 0x40), func(n int) Header {
			return wantHeader(n, wantIPv4, ipLen(40), func(h *Header) { h.Proto = ProtoTCP })
		}},
		{"all flags and NS", LinkRaw, 0, withByte(withByte(opts(), 32, 0x51), 33, 0xFF), func(n int) Header {
			return wantHeader(n, wantIPv4, wantSYN, ipLen(40), func(h *Header) { h.TCPFlags, h.Opts = 0xFF, TCPOptions{} })
		}},
		{"ack and seq", LinkRaw, 0, tcpWith(func(l *layers.TCP) { l.SYN, l.ACK, l.RST, l.Ack = false, true, true, 0x01020304 }),
			func(n int) Header {
				return wantHeader(n, wantIPv4, wantSYN, ipLen(44), func(h *Header) { h.TCPFlags, h.Ack = FlagACK|FlagRST, 0x01020304 })
			}},
	})
}

// icmp4 builds an IPv4 ICMP message of type/code whose body (after the 8-byte header) is body.
func icmp4(t testing.TB, typ, code uint8, body []byte) []byte {
	return serializeLayers(t, ip4L(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: 7, Seq: 9}, gopacket.Payload(body))
}

func icmp6(t testing.TB, typ, code uint8, body []byte) []byte {
	// The 4 bytes after the ICMPv6 type/code/checksum (unused, MTU or pointer) lead the body.
	return serializeLayers(t, ip6L(layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}, gopacket.Payload(append(make([]byte, 4), body...)))
}

func TestDecodeICMP(t *testing.T) {
	qUDP4 := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.UDP{SrcPort: 5353, DstPort: 33434}, gopacket.Payload(make([]byte, 20)))
	qTCP4 := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: layers.IPProtocolTCP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.TCP{SrcPort: 80, DstPort: 61000, SYN: true, ACK: true})
	qOpt4 := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 6, TTL: 1, Protocol: layers.IPProtocolTCP, SrcIP: tQSrc4, DstIP: tQDst4,
		Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}},
		&layers.TCP{SrcPort: 443, DstPort: 1234})
	qFrag4 := withU16(qUDP4, 6, 0x2000|3)
	qUDP6 := serializeLayers(t, &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolUDP, SrcIP: tQSrc6, DstIP: tQDst6},
		&layers.UDP{SrcPort: 5353, DstPort: 33434}, gopacket.Payload(make([]byte, 8)))
	qTCP6 := serializeLayers(t, &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolTCP, SrcIP: tQSrc6, DstIP: tQDst6},
		&layers.TCP{SrcPort: 80, DstPort: 61000, RST: true})

	icmpWant := func(v4 bool, ipLen uint16, typ, code uint8, l4 bool, inner Quoted) func(int) Header {
		return func(n int) Header {
			return wantHeader(n, func(h *Header) {
				if v4 {
					wantIPv4(h)
					h.Proto = ProtoICMP
				} else {
					wantIPv6(h)
					h.Proto = ProtoICMPv6
				}
				h.IPLen, h.ICMPType, h.ICMPCode, h.L4, h.Inner = ipLen, typ, code, l4, inner
			})
		}
	}
	in4 := func(proto uint8, sp, dp uint16) Quoted {
		return Quoted{Valid: true, Proto: proto, Src: taddr(tQSrc4), Dst: taddr(tQDst4), SrcPort: sp, DstPort: dp}
	}
	in6 := func(proto uint8, sp, dp uint16) Quoted {
		return Quoted{Valid: true, Proto: proto, Src: taddr(tQSrc6), Dst: taddr(tQDst6), SrcPort: sp, DstPort: dp}
	}
	checkCases(t, []decodeCase{
		{"echo request", LinkRaw, 0, icmp4(t, 8, 0, []byte("ping")), icmpWant(true, 32, 8, 0, true, Quoted{})},
		{"echo reply is not an error", LinkRaw, 0, icmp4(t, 0, 0, qUDP4), icmpWant(true, 76, 0, 0, true, Quoted{})},
		{"type and code only", LinkRaw, 0, icmp4(t, 3, 1, qUDP4)[:20+2], icmpWant(true, 76, 3, 1, false, Quoted{})},
		{"one byte", LinkRaw, 0, icmp4(t, 3, 1, qUDP4)[:20+1], icmpWant(true, 76, 0, 0, false, Quoted{})},
		{"seven bytes", LinkRaw, 0, icmp4(t, 3, 1, qUDP4)[:20+7], icmpWant(true, 76, 3, 1, false, Quoted{})},
		{"unreachable quoting udp", LinkRaw, 0, icmp4(t, 3, 3, qUDP4), icmpWant(true, 76, 3, 3, true, in4(ProtoUDP, 5353, 33434))},
		{"unreachable quoting udp, 8 bytes", LinkRaw, 0, icmp4(t, 3, 3, qUDP4[:28]), icmpWant(true, 56, 3, 3, true, in4(ProtoUDP, 5353, 33434))},
		{"quote with 4 transport bytes", LinkRaw, 0, icmp4(t, 11, 0, qUDP4[:24]), icmpWant(true, 52, 11, 0, true, in4(ProtoUDP, 5353, 33434))},
		{"quote with 3 transport bytes", LinkRaw, 0, icmp4(t, 11, 0, qUDP4[:23]), icmpWant(true, 51, 11, 0, true, in4(ProtoUDP, 0, 0))},
		{"quote of ip header only", LinkRaw, 0, icmp4(t, 4, 0, qTCP4[:20]), icmpWant(true, 48, 4, 0, true, in4(ProtoTCP, 0, 0))},
		{"quote of 19 bytes", LinkRaw, 0, icmp4(t, 5, 1, qTCP4[:19]), icmpWant(true, 47, 5, 1, true, Quoted{})},
		{"quote cut by ip length", LinkRaw, 0, withU16(icmp4(t, 3, 3, qUDP4), 2, 20+8+19), icmpWant(true, 47, 3, 3, true, Quoted{})},
		{"quote tcp", LinkRaw, 0, icmp4(t, 12, 0, qTCP4), icmpWant(true, 68, 12, 0, true, in4(ProtoTCP, 80, 61000))},
		{"quote with options", LinkRaw, 0, icmp4(t, 3, 1, qOpt4[:28]), icmpWant(true, 56, 3, 1, true, in4(ProtoTCP, 443, 1234))},
		{"quote with options, ports cut", LinkRaw, 0, icmp4(t, 3, 1, qOpt4[:26]), icmpWant(true, 54, 3, 1, true, in4(ProtoTCP, 0, 0))},
		{"quote of a fragment", LinkRaw, 0, icmp4(t, 3, 3, qFrag4), icmpWant(true, 76, 3, 3, true, in4(ProtoUDP, 0, 0))},
		{"quote of icmp has no ports", LinkRaw, 0, icmp4(t, 3, 3, withByte(qUDP4, 9, 1)), icmpWant(true, 76, 3, 3, true, in4(ProtoICMP, 0, 0))},
		{"quote with bad version", LinkRaw, 0, icmp4(t, 3, 3, withByte(qUDP4, 0, 0x65)), icmpWant(true, 76, 3, 3, true, Quoted{})},
		{"quote with ihl 4", LinkRaw, 0, icmp4(t, 3, 3, withByte(qUDP4, 0, 0x44)), icmpWant(true, 76, 3, 3, true, Quoted{})},
		{"ipv6 quote in icmpv4", LinkRaw, 0, icmp4(t, 3, 3, qUDP6), icmpWant(true, 84, 3, 3, true, Quoted{})},

		{"icmpv6 echo", LinkRaw, 0, icmp6(t, 128, 0, []byte("ping")), icmpWant(false, 52, 128, 0, true, Quoted{})},
		{"icmpv6 echo reply", LinkRaw, 0, icmp6(t, 129, 0, qUDP6), icmpWant(false, 104, 129, 0, true, Quoted{})},
		{"icmpv6 unreachable quoting udp", LinkRaw, 0, icmp6(t, 1, 4, qUDP6), icmpWant(false, 104, 1, 4, true, in6(ProtoUDP, 5353, 33434))},
		{"icmpv6 too big quoting tcp", LinkRaw, 0, icmp6(t, 2, 0, qTCP6[:44]), icmpWant(false, 92, 2, 0, true, in6(ProtoTCP, 80, 61000))},
		{"icmpv6 time exceeded, header only", LinkRaw, 0, icmp6(t, 3, 0, qTCP6[:40]), icmpWant(false, 88, 3, 0, true, in6(ProtoTCP, 0, 0))},
		{"icmpv6 param problem, 39 bytes", LinkRaw, 0, icmp6(t, 4, 0, qTCP6[:39]), icmpWant(false, 87, 4, 0, true, Quoted{})},
		{"icmpv6 quote of ipv4", LinkRaw, 0, icmp6(t, 1, 0, append(qUDP4, make([]byte, 20)...)), icmpWant(false, 116, 1, 0, true, Quoted{})},
		{"icmpv6 short", LinkRaw, 0, icmp6(t, 1, 0, nil)[:40+4], icmpWant(false, 48, 1, 0, false, Quoted{})},
		{"icmpv4 inside ipv6 is other", LinkRaw, 0, serializeLayers(t, ip6L(layers.IPProtocolICMPv4), gopacket.Payload(append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, qUDP4...))),
			func(n int) Header {
				return wantHeader(n, wantIPv6, func(h *Header) { h.IPLen, h.Proto = 96, ProtoICMP })
			}},
	})
}

// ipv6Ext builds an IPv6 packet whose first next header is nh and whose payload is parts.
func ipv6Ext(t testing.TB, nh uint8, parts ...[]byte) []byte {
	return serializeLayers(t, ip6L(layers.IPProtocol(nh)), gopacket.Payload(bytes.Join(parts, nil)))
}

// ext6 returns an extension header of n 8-byte units with next header nh, options zero.
func ext6(nh uint8, units int) []byte {
	b := make([]byte, units*8)
	b[0], b[1] = nh, uint8(units-1)
	return b
}

func TestDecodeIPv6(t *testing.T) {
	synB := serializeLayers(t, synL())
	udpPayload := []byte("abcd")
	udpB := serializeLayers(t, udpL(), gopacket.Payload(udpPayload))
	fragH := func(nh uint8, off uint16, more bool, id uint32) []byte {
		b := []byte{nh, 0, 0, 0, 0, 0, 0, 0}
		v := off << 3
		if more {
			v |= 1
		}
		binary.BigEndian.PutUint16(b[2:], v)
		binary.BigEndian.PutUint32(b[4:], id)
		return b
	}
	ah := func(nh uint8, words int) []byte { // (words+2)*4 bytes
		b := make([]byte, (words+2)*4)
		b[0], b[1] = nh, uint8(words)
		return b
	}
	v6 := func(ipLen, hdrLen uint16, more ...func(*Header)) func(int) Header {
		return func(n int) Header {
			return wantHeader(n, append([]func(*Header){wantIPv6, func(h *Header) { h.IPLen, h.IPHdrLen = ipLen, hdrLen }}, more...)...)
		}
	}
	proto := func(p uint8) func(*Header) { return func(h *Header) { h.Proto = p } }
	udpW := wantUDP(udpPayload)
	chain := make([][]byte, 0, 12)
	for range 11 {
		chain = append(chain, ext6(60, 1))
	}
	chain = append(chain, udpB)
	padded := append(ipv6Ext(t, 17, udpB), bytes.Repeat([]byte{0xEE}, 20)...)

	checkCases(t, []decodeCase{
		{"hop-by-hop then tcp", LinkRaw, 0, ipv6Ext(t, 0, ext6(6, 1), synB), v6(72, 48, wantSYN)},
		{"routing and destination then udp", LinkRaw, 0, ipv6Ext(t, 43, ext6(60, 3), ext6(17, 2), udpB), v6(92, 80, udpW)},
		{"mobility, hip, shim6", LinkRaw, 0, ipv6Ext(t, 135, ext6(139, 1), ext6(140, 1), ext6(17, 1), udpB), v6(76, 64, udpW)},
		{"atomic fragment", LinkRaw, 0, ipv6Ext(t, 44, fragH(17, 0, false, 0xABCD1234), udpB), v6(60, 48, udpW, func(h *Header) {
			h.Frag, h.IPID = FragFragment, 0x1234
		})},
		{"first fragment", LinkRaw, 0, ipv6Ext(t, 44, fragH(17, 0, true, 0x00010002), udpB), v6(60, 48, udpW, func(h *Header) {
			h.Frag, h.IPID = FragFragment|FragMore, 2
		})},
		{"non-first fragment", LinkRaw, 0, ipv6Ext(t, 44, fragH(6, 100, true, 77), synB), v6(72, 48, proto(6), func(h *Header) {
			h.Frag, h.IPID, h.FragOff = FragFragment|FragMore|FragNonFirst, 77, 100
		})},
		{"last fragment after hop-by-hop", LinkRaw, 0, ipv6Ext(t, 0, ext6(44, 1), fragH(17, 8191, false, 5), udpB), v6(68, 56, proto(17), func(h *Header) {
			h.Frag, h.IPID, h.FragOff = FragFragment|FragNonFirst, 5, 8191
		})},
		{"fragment header cut", LinkRaw, 0, ipv6Ext(t, 44, fragH(17, 0, true, 1), udpB)[:47], v6(60, 40, proto(44))},
		{"ah then tcp", LinkRaw, 0, ipv6Ext(t, 51, ah(6, 4), synB), v6(88, 64, wantSYN)},
		{"ah cut", LinkRaw, 0, ipv6Ext(t, 51, ah(6, 4), synB)[:40+23], v6(88, 40, proto(51))},
		{"esp stops", LinkRaw, 0, ipv6Ext(t, 50, make([]byte, 24)), v6(64, 40, proto(50))},
		{"no next header", LinkRaw, 0, ipv6Ext(t, 0, ext6(59, 1)), v6(48, 48, proto(59))},
		{"unknown header stops", LinkRaw, 0, ipv6Ext(t, 60, ext6(253, 1), udpB), v6(60, 48, proto(253))},
		{"extension length byte cut", LinkRaw, 0, ipv6Ext(t, 0, ext6(6, 2))[:41], v6(56, 40, proto(0))},
		{"extension cut short", LinkRaw, 0, ipv6Ext(t, 0, ext6(6, 2))[:40+15], v6(56, 40, proto(0))},
		{"extension past payload length", LinkRaw, 0, withU16(ipv6Ext(t, 0, ext6(6, 2), synB), 4, 8), v6(48, 40, proto(0))},
		{"second extension cut", LinkRaw, 0, ipv6Ext(t, 0, ext6(43, 1), ext6(6, 1))[:40+8+7], v6(56, 48, proto(43))},
		{"ten extensions walked, eleventh stops", LinkRaw, 0, ipv6Ext(t, 60, chain...), v6(40+88+12, 120, proto(60))},
		{"tcp header cut", LinkRaw, 0, ipv6Ext(t, 6, synB)[:40+19], v6(64, 40, proto(6))},
		{"payload length bounds udp payload", LinkRaw, 0, padded, v6(52, 40, udpW)},
		{"payload length 0 uses capture", LinkRaw, 0, withU16(ipv6Ext(t, 17, udpB), 4, 0), v6(52, 40, udpW)},
		{"payload length max", LinkRaw, 0, withU16(ipv6Ext(t, 17, udpB), 4, 0xFFFF), v6(0xFFFF, 40, udpW)},
		{"39 bytes", LinkRaw, 0, ipv6Ext(t, 17, udpB)[:39], wantResult(ResultTruncated, 0, 0)},
		{"version 4 under ethertype ipv6", LinkNetwork, 0x86DD, withByte(ipv6Ext(t, 17, udpB), 0, 0x40), wantResult(ResultMalformed, 0, 0)},
		{"version 0 under ethertype ipv6", LinkNetwork, 0x86DD, withByte(ipv6Ext(t, 17, udpB), 0, 0x00), wantResult(ResultMalformed, 0, 0)},
	})
}

// TestDecodeTruncation cuts frames at every length: the Result must go Truncated until the
// IP header ends, then IP without L4 until the transport header ends, then IP with L4.
func TestDecodeTruncation(t *testing.T) {
	withOpts := serializeLayers(t, ethL(layers.EthernetTypeIPv4), ip4With(layers.IPProtocolTCP, func(l *layers.IPv4) {
		l.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	}), synL())
	cases := []struct {
		name         string
		link         LinkType
		frame        []byte
		ipEnd, l4End int
	}{
		{"ethernet ipv4 syn", LinkEthernet, ethIPv4SYN(t), 14 + 20, 14 + 20 + 20},
		{"ethernet ipv4 options syn", LinkEthernet, withOpts, 14 + 24, 14 + 24 + 20},
		{"vlan ipv4 syn", LinkEthernet, ethVLANIPv4SYN(t), 18 + 20, 18 + 20 + 20},
		{"ethernet ipv6 syn", LinkEthernet, ethIPv6SYN(t), 14 + 40, 14 + 40 + 20},
		{"ethernet ipv4 udp", LinkEthernet, ethIPv4UDP(t, []byte("x")), 14 + 20, 14 + 20 + 8},
		{"raw ipv4 icmp", LinkRaw, icmp4(t, 8, 0, nil), 20, 28},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var full, h Header
			Decode(c.link, c.frame, &full)
			for n := 0; n <= len(c.frame); n++ {
				Decode(c.link, c.frame[:n], &h)
				var wantR Result
				switch {
				case n < c.ipEnd:
					wantR = ResultTruncated
				default:
					wantR = ResultIP
				}
				if h.Result != wantR || h.L4 != (n >= c.l4End) || h.CapLen != uint32(n) {
					t.Errorf("len %d: Result %v L4 %v CapLen %d, want %v L4 %v", n, h.Result, h.L4, h.CapLen, wantR, n >= c.l4End)
				}
				// Once the transport header is complete its fields are those of the whole frame.
				if n >= c.l4End && (h.SrcPort != full.SrcPort || h.DstPort != full.DstPort ||
					h.TCPFlags != full.TCPFlags || h.Seq != full.Seq || h.ICMPType != full.ICMPType) {
					t.Errorf("len %d: transport fields differ from the full frame's", n)
				}
			}
		})
	}
	// The SYN's MSS option appears only once its 4 bytes are captured.
	syn := ethIPv4SYN(t)
	var h Header
	for n := 54; n <= len(syn); n++ {
		Decode(LinkEthernet, syn[:n], &h)
		wantMSS := uint16(0)
		if n >= 58 {
			wantMSS = 1460
		}
		if h.Opts.MSS != wantMSS || h.Opts.Len != 4 {
			t.Errorf("len %d: MSS %d Opts.Len %d, want %d 4", n, h.Opts.MSS, h.Opts.Len, wantMSS)
		}
	}
}

// TestDecodeResetsEveryField decodes each frame after each other frame into the same
// Header: the result must equal a decode into a fresh Header, so no field survives.
func TestDecodeResetsEveryField(t *testing.T) {
	q := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolUDP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.UDP{SrcPort: 1, DstPort: 2})
	frames := []struct {
		link  LinkType
		frame []byte
	}{
		{LinkEthernet, ethIPv4SYN(t)},
		{LinkRaw, icmp4(t, 3, 3, q)},
		{LinkEthernet, ethIPv4UDP(t, bytes.Repeat([]byte{'z'}, 40))},
		{LinkEthernet, ethIPv4UDP(t, []byte{'a'})},
		{LinkEthernet, ethVLANIPv4SYN(t)},
		{LinkRaw, ipv6Ext(t, 44, []byte{6, 0, 0, 8, 0, 0, 0, 9}, serializeLayers(t, synL()))},
		{LinkEthernet, ethIPv6SYN(t)},
		{LinkEthernet, ethIPv4SYN(t)[:20]},
		{LinkRaw, []byte{0x55}},
		{LinkType(999), nil},
	}
	for i, a := range frames {
		for j, b := range frames {
			var fresh, reused Header
			fresh.TS, fresh.WireLen = 123, 456
			Decode(b.link, b.frame, &fresh)
			Decode(a.link, a.frame, &reused)
			reused.TS, reused.WireLen = 123, 456
			Decode(b.link, b.frame, &reused)
			if reused != fresh {
				t.Errorf("frame %d after frame %d:%s", j, i, diffHeaders(reused, fresh))
			}
		}
	}
	// The two fields the caller owns survive.
	h := Header{TS: 1, WireLen: 2, CapLen: 3, Result: ResultMalformed}
	Decode(LinkEthernet, ethIPv4SYN(t), &h)
	if h.TS != 1 || h.WireLen != 2 {
		t.Errorf("TS %d WireLen %d, want 1 2", h.TS, h.WireLen)
	}
}

// TestDecodeDHTVector decodes the shared real-world DHT get_peers datagram.
func TestDecodeDHTVector(t *testing.T) {
	raw, err := os.ReadFile("../testdata/dht-get-peers.ipv4.hex")
	if err != nil {
		t.Fatalf("read vector: %v", err)
	}
	pkt, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("decode hex: %v", err)
	}
	var h Header
	Decode(LinkRaw, pkt, &h)
	if h.Result != ResultIP || !h.L4 || h.Proto != ProtoUDP || h.IPVersion != 4 {
		t.Fatalf("Result %v L4 %v Proto %d IPVersion %d", h.Result, h.L4, h.Proto, h.IPVersion)
	}
	got := fmt.Sprintf("%s:%d -> %s:%d", h.Src, h.SrcPort, h.Dst, h.DstPort)
	if got != "189.127.196.8:40386 -> 211.1.11.177:4776" {
		t.Errorf("flow %s", got)
	}
	if h.PayloadLen != 104 || h.PayloadCap != PayloadMax || !bytes.HasPrefix(h.Payload[:], []byte("d1:ad2:id20:")) {
		t.Errorf("PayloadLen %d PayloadCap %d Payload %q", h.PayloadLen, h.PayloadCap, h.Payload[:h.PayloadCap])
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	frames := [][]byte{ethIPv4SYN(t), ethIPv4UDP(t, make([]byte, 64)), ethIPv6SYN(t), ethVLANIPv4SYN(t)}
	var h Header
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { Decode(LinkEthernet, f, &h) }); n != 0 {
			t.Errorf("% x: %v allocs", f[:16], n)
		}
	}
}

// TestDecodeNetOff: where the network header starts (IP's, or ARP's), for each link type
// and through VLAN tags (replay runs capture.filter's program from there); no network header
// for a frame that does not reach one.
func TestDecodeNetOff(t *testing.T) {
	ip4 := serializeLayers(t, ip4L(layers.IPProtocolTCP), synL())
	ip6 := serializeLayers(t, ip6L(layers.IPProtocolTCP), synL())
	sll := func(proto uint16) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint16(b[14:], proto)
		return b
	}
	sll2 := func(proto uint16) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], proto)
		return b
	}
	for _, c := range []struct {
		name  string
		link  LinkType
		frame []byte
		off   int // -1: no network header
	}{
		{"ethernet ipv4", LinkEthernet, ethIPv4SYN(t), 14},
		{"ethernet ipv6", LinkEthernet, ethIPv6SYN(t), 14},
		{"ethernet 802.1Q", LinkEthernet, ethVLANIPv4SYN(t), 18},
		{"raw ipv4", LinkRaw, ip4, 0},
		{"raw ipv6", LinkRaw, ip6, 0},
		{"raw, version 5", LinkRaw, prependBytes([]byte{0x50}, ip4[1:]), 0},
		{"linux cooked", LinkLinuxSLL, prependBytes(sll(0x0800), ip4), 16},
		{"linux cooked v2", LinkLinuxSLL2, prependBytes(sll2(0x86dd), ip6), 20},
		{"bsd loopback", LinkNull, prependBytes([]byte{2, 0, 0, 0}, ip4), 4},
		// Another EtherType's header: the kernel runs the filter on it too.
		{"ethernet arp", LinkEthernet, prependBytes(ethIPv4SYN(t)[:12], []byte{0x08, 0x06, 0, 1}), 14},
		{"802.1Q arp", LinkEthernet, prependBytes(ethIPv4SYN(t)[:12], []byte{0x81, 0, 0, 7, 0x08, 0x06, 0, 1}), 18},
		{"linux cooked arp", LinkLinuxSLL, prependBytes(sll(0x0806), []byte{0, 1}), 16},
		{"too many tags", LinkEthernet, prependBytes(ethIPv4SYN(t)[:12], bytes.Repeat([]byte{0x81, 0, 0, 7}, MaxVLANTags+1)), -1},
		{"ethernet cut in its header", LinkEthernet, ethIPv4SYN(t)[:10], -1},
	} {
		var h Header
		Decode(c.link, c.frame, &h)
		if got := int(h.NetOff); !h.Net && c.off != -1 || h.Net && (c.off == -1 || got != c.off) {
			t.Errorf("%s: NetOff %d (network header %v), want %d", c.name, got, h.Net, c.off)
		}
	}
}
