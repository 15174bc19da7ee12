package filter

import (
	"encoding/binary"
	"math/rand"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// packetGen builds varied raw IP packets (no link header) from a seeded source, biased
// towards the values the test expressions look for so that every expression both accepts
// and rejects something.
type packetGen struct {
	r          *rand.Rand
	wellFormed bool  // no truncated or malformed packets
	err        error // first serialization error, checked by the caller
}

var (
	v4Pool = []string{"1.2.3.4", "5.6.7.8", "10.0.0.1", "10.0.0.2", "10.1.2.3", "192.168.1.1",
		"198.51.100.7", "203.0.113.9", "224.0.0.251", "255.255.255.255", "0.0.0.80"}
	v6Pool = []string{"2001:db8::1", "2001:db8::2", "2001:db8:1::5", "fe80::1", "::1",
		"::ffff:1.2.3.4", "ff02::1", "2001:db8:1:2::9"}
	portPool = []uint16{0, 20, 21, 22, 23, 25, 53, 80, 123, 443, 1000, 1500, 2000, 2323, 8080,
		5060, 60000, 65535}
	tcpFlagPool = []uint8{0x02, 0x12, 0x10, 0x04, 0x14, 0x11, 0x18, 0x01, 0x29, 0xc2}
)

func (g *packetGen) v4() net.IP {
	switch g.r.Intn(4) {
	case 0:
		return net.IPv4(10, byte(g.r.Intn(3)), byte(g.r.Intn(256)), byte(g.r.Intn(256))).To4()
	case 1:
		return net.IPv4(192, 168, byte(g.r.Intn(3)), byte(g.r.Intn(256))).To4()
	case 2:
		ip := make(net.IP, 4)
		g.r.Read(ip)
		return ip
	}
	return net.ParseIP(v4Pool[g.r.Intn(len(v4Pool))]).To4()
}

func (g *packetGen) v6() net.IP {
	switch g.r.Intn(3) {
	case 0:
		ip := net.ParseIP("2001:db8::")
		g.r.Read(ip[6:])
		if g.r.Intn(2) == 0 {
			ip[4], ip[5] = 0, 1 // inside 2001:db8:1::/48
		}
		return ip
	case 1:
		ip := make(net.IP, 16)
		g.r.Read(ip)
		return ip
	}
	return net.ParseIP(v6Pool[g.r.Intn(len(v6Pool))])
}

func (g *packetGen) port() uint16 {
	if g.r.Intn(3) == 0 {
		return uint16(g.r.Intn(65536))
	}
	return portPool[g.r.Intn(len(portPool))]
}

func (g *packetGen) payload() []byte {
	n := g.r.Intn(48)
	if g.r.Intn(8) == 0 {
		n = 64 + g.r.Intn(1300)
	}
	b := make([]byte, n)
	g.r.Read(b)
	switch {
	case n >= 4 && g.r.Intn(6) == 0:
		copy(b, "GET ")
	case n >= 2 && g.r.Intn(6) == 0:
		binary.BigEndian.PutUint16(b, 0x4100)
	}
	return b
}

func (g *packetGen) transport(proto layers.IPProtocol, v6 bool) []gopacket.SerializableLayer {
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(g.port()), DstPort: layers.TCPPort(g.port()),
			Seq: g.r.Uint32(), Window: uint16(g.r.Intn(65536))}
		flags := tcpFlagPool[g.r.Intn(len(tcpFlagPool))]
		if g.r.Intn(3) == 0 {
			flags = uint8(g.r.Intn(256))
		}
		tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
		tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR = flags&16 != 0, flags&32 != 0, flags&64 != 0, flags&128 != 0
		for i := g.r.Intn(4); i > 0; i-- {
			tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
		}
		return []gopacket.SerializableLayer{tcp, gopacket.Payload(g.payload())}
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(g.port()), DstPort: layers.UDPPort(g.port())}
		return []gopacket.SerializableLayer{udp, gopacket.Payload(g.payload())}
	case layers.IPProtocolICMPv4:
		typ := []uint8{0, 3, 5, 8, 11, 13, 14}[g.r.Intn(7)]
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, uint8(g.r.Intn(5)))}
		return []gopacket.SerializableLayer{icmp, gopacket.Payload(g.payload())}
	case layers.IPProtocolICMPv6:
		typ := []uint8{1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 143}[g.r.Intn(11)]
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, uint8(g.r.Intn(3)))}
		return []gopacket.SerializableLayer{icmp, gopacket.Payload(g.payload())}
	case layers.IPProtocolSCTP:
		h := make([]byte, 12)
		binary.BigEndian.PutUint16(h, g.port())
		binary.BigEndian.PutUint16(h[2:], g.port())
		return []gopacket.SerializableLayer{gopacket.Payload(append(h, g.payload()...))}
	}
	return []gopacket.SerializableLayer{gopacket.Payload(g.payload())}
}

func (g *packetGen) proto(v6 bool) layers.IPProtocol {
	n := g.r.Intn(20)
	switch {
	case n < 8:
		return layers.IPProtocolTCP
	case n < 13:
		return layers.IPProtocolUDP
	case n < 16 && v6:
		return layers.IPProtocolICMPv6
	case n < 16:
		return layers.IPProtocolICMPv4
	case n < 17:
		return layers.IPProtocolSCTP
	}
	return layers.IPProtocol([]uint8{2, 47, 50, 51, 103, 112, 9, 0, uint8(g.r.Intn(256))}[g.r.Intn(9)])
}

func (g *packetGen) serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil && g.err == nil {
		g.err = err
	}
	return append([]byte(nil), buf.Bytes()...)
}

func (g *packetGen) ipv4() []byte {
	proto := g.proto(false)
	ip := &layers.IPv4{Version: 4, TTL: uint8(g.r.Intn(256)), Id: uint16(g.r.Intn(65536)),
		Protocol: proto, SrcIP: g.v4(), DstIP: g.v4(), TOS: []uint8{0, 0, 0, 0x10, 0xb8}[g.r.Intn(5)]}
	switch g.r.Intn(10) {
	case 0: // non-first fragment: the "transport header" is just data
		ip.FragOffset = uint16(1 + g.r.Intn(8000))
		ip.Flags = layers.IPv4Flag(g.r.Intn(2)) * layers.IPv4MoreFragments
	case 1:
		ip.Flags = layers.IPv4MoreFragments
	case 2:
		ip.Flags = layers.IPv4DontFragment
	}
	if g.r.Intn(6) == 0 { // options: IHL 6..15
		words := 1 + g.r.Intn(10)
		for i := 0; i < words*4; i++ {
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 1})
		}
	}
	return g.serialize(append([]gopacket.SerializableLayer{ip}, g.transport(proto, false)...)...)
}

func (g *packetGen) ipv6() []byte {
	proto := g.proto(true)
	ip := &layers.IPv6{Version: 6, HopLimit: uint8(g.r.Intn(256)), NextHeader: proto,
		SrcIP: g.v6(), DstIP: g.v6(), TrafficClass: uint8(g.r.Intn(4)) * 0x40, FlowLabel: uint32(g.r.Intn(1 << 20))}
	rest := g.transport(proto, true)
	if g.r.Intn(10) == 0 { // a fragment (44) or hop-by-hop (0) header before the transport
		ext := []byte{byte(proto), 0, 0, 0, 0, 0, 0, 0}
		g.r.Read(ext[4:])
		ip.NextHeader = []layers.IPProtocol{44, 44, 0}[g.r.Intn(3)]
		if ip.NextHeader == 44 && g.r.Intn(2) == 0 {
			ext[2], ext[3] = byte(g.r.Intn(256)), byte(g.r.Intn(256)) // non-zero offset
		}
		inner := g.serialize(rest...)
		rest = []gopacket.SerializableLayer{gopacket.Payload(append(ext, inner...))}
	}
	return g.serialize(append([]gopacket.SerializableLayer{ip}, rest...)...)
}

// next returns one packet; a few are deliberately malformed (truncated, bad IHL,
// unknown version) to check that out-of-bounds loads reject exactly as in libpcap.
func (g *packetGen) next() []byte {
	var p []byte
	if g.r.Intn(5) < 3 {
		p = g.ipv4()
	} else {
		p = g.ipv6()
	}
	if g.wellFormed {
		return p
	}
	switch g.r.Intn(40) {
	case 0, 1: // truncated, but keep the fixed IPv4 header
		p = p[:20+g.r.Intn(len(p)-19)]
	case 2: // very short, so even IPv6 address loads fail
		if n := 8 + g.r.Intn(32); n < len(p) {
			p = p[:n]
		}
	case 3: // bad IHL
		p[0] = p[0]&0xf0 | byte(g.r.Intn(5))
	case 4: // neither IPv4 nor IPv6
		p[0] = byte(g.r.Intn(4))<<4 | p[0]&0x0f
	}
	return p
}
