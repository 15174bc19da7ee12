package daygen

import (
	"encoding/binary"
	"net/netip"

	"github.com/telescope-dev/telescope/packet"
)

// pkt is one generated packet: its decoded Header (exactly what packet.Decode makes of the
// frame) plus what the frame needs beyond the Header.
type pkt struct {
	h packet.Header
	// body: the whole UDP payload, or the ICMP message after its 8-byte header (echo data,
	// or the quoted packet of an error).
	body  []byte
	order int // generation order: breaks timestamp ties deterministically
}

// SYN probe styles: which tool fingerprint the probe carries (none for plain).
type style uint8

const (
	plain style = iota
	mirai
	zmap
	masscan
	nmap
)

const zmapIPID = 54321

// plainWindows are common SYN windows; 1024 (nmap, masscan) is deliberately absent.
var plainWindows = []uint16{29200, 64240, 65535, 14600, 5840, 8192}

// ipHeader fills the IP part of a Header for src -> dst.
func (g *gen) ipHeader(ts int64, src, dst netip.Addr, proto uint8) packet.Header {
	h := packet.Header{
		TS: ts, Result: packet.ResultIP, Proto: proto, L4: true,
		Src: packet.AddrFromNetip(src), Dst: packet.AddrFromNetip(dst),
		TTL: uint8(30 + g.rng.IntN(220)),
	}
	if src.Is4() {
		h.IPVersion, h.IPHdrLen = 4, 20
		h.IPID = uint16(g.rng.Uint32())
		h.Frag = packet.FragDontFrag
	} else {
		h.IPVersion, h.IPHdrLen = 6, 40
	}
	return h
}

// finish sets the lengths from the transport part, as the decoder reports them.
func finish(p *pkt) {
	h := &p.h
	var l4 int
	switch h.Proto {
	case packet.ProtoTCP:
		l4 = 20 + int(h.Opts.Len)
	case packet.ProtoUDP:
		l4 = 8 + len(p.body)
		h.PayloadLen = uint16(len(p.body))
		h.PayloadCap = uint8(copy(h.Payload[:], p.body))
		h.PayloadClass = packet.ClassifyUDP(p.body, len(p.body))
	default:
		l4 = 8 + len(p.body)
	}
	h.IPLen = h.IPHdrLen + uint16(l4)
	// Ethernet pads frames to its 60-byte minimum (FCS not captured).
	h.WireLen = max(60, 14+uint32(h.IPLen))
	h.CapLen = h.WireLen
}

// syn builds a SYN probe of the given style. Every probe carries exactly the fingerprints of
// its style and no other: a plain probe that happens to match one is changed.
func (g *gen) syn(ts int64, src, dst netip.Addr, port uint16, s style) pkt {
	h := g.ipHeader(ts, src, dst, packet.ProtoTCP)
	h.SrcPort = uint16(1024 + g.rng.IntN(64512))
	h.DstPort = port
	h.TCPFlags = packet.FlagSYN
	h.Seq = g.rng.Uint32()
	h.Window = plainWindows[g.rng.IntN(len(plainWindows))]
	switch g.rng.IntN(3) {
	case 1:
		h.Opts = packet.TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1, MSS: 1460}
	case 2:
		h.Opts = packet.TCPOptions{Kinds: 1<<2 | 1<<3, Len: 8, Count: 2, MSS: 1460, WScale: 7}
	}
	switch s {
	case mirai:
		h.Opts = packet.TCPOptions{}
		h.Seq = h.Dst.V4()
	case zmap:
		h.IPID, h.Window, h.TTL = zmapIPID, 65535, uint8(230+g.rng.IntN(20))
	case masscan:
		h.Window, h.Opts, h.TTL = 1024, packet.TCPOptions{}, uint8(230+g.rng.IntN(20))
	case nmap:
		h.Window, h.TTL = 1024, uint8(37+g.rng.IntN(23))
		h.Opts = packet.TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1, MSS: 1460}
	}
	if h.IPVersion == 4 {
		fixFingerprints(&h, s)
	}
	p := pkt{h: h}
	finish(&p)
	return p
}

// fixFingerprints removes the IPv4 fingerprints (mirai, zmap, masscan) a probe of style s
// must not carry; the nmap fingerprint needs window 1024, which only nmap and masscan
// styles use, and masscan probes carry no options.
func fixFingerprints(h *packet.Header, s style) {
	dst := h.Dst.V4()
	massID := func() uint16 { return uint16(dst ^ uint32(h.DstPort) ^ h.Seq) }
	for range 8 {
		if s != mirai && h.Seq == dst {
			h.Seq++
			continue
		}
		switch s {
		case masscan:
			h.IPID = massID()
			if h.IPID == zmapIPID {
				h.Seq ^= 1 << 20
				continue
			}
		case zmap:
			if massID() == h.IPID {
				h.Seq ^= 1 << 20
				continue
			}
		default:
			if h.IPID == zmapIPID || h.IPID == massID() {
				h.IPID += 2
				continue
			}
		}
		return
	}
}

// udp builds a UDP datagram carrying body.
func (g *gen) udp(ts int64, src, dst netip.Addr, sport, dport uint16, body []byte) pkt {
	h := g.ipHeader(ts, src, dst, packet.ProtoUDP)
	h.SrcPort, h.DstPort = sport, dport
	p := pkt{h: h, body: body}
	finish(&p)
	return p
}

var echoData = []byte("telescop")

// echo builds an ICMP (or ICMPv6) echo request.
func (g *gen) echo(ts int64, src, dst netip.Addr) pkt {
	h := g.ipHeader(ts, src, dst, packet.ProtoICMP)
	h.ICMPType = 8
	if h.IPVersion == 6 {
		h.Proto, h.ICMPType = packet.ProtoICMPv6, 128
	}
	p := pkt{h: h, body: echoData}
	finish(&p)
	return p
}

// reply builds a TCP reply (SYN-ACK, RST, RST-ACK) from a DoS victim to a spoofed source.
func (g *gen) reply(ts int64, victim, dst netip.Addr, flags uint8) pkt {
	h := g.ipHeader(ts, victim, dst, packet.ProtoTCP)
	h.TTL = uint8(40 + g.rng.IntN(80))
	h.SrcPort = []uint16{80, 443, 53, 25}[g.rng.IntN(4)]
	h.DstPort = uint16(1024 + g.rng.IntN(64512))
	h.TCPFlags = flags
	h.Seq, h.Ack = g.rng.Uint32(), g.rng.Uint32()
	if flags&packet.FlagSYN != 0 {
		h.Window = 29200
		h.Opts = packet.TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1, MSS: 1460}
	}
	p := pkt{h: h}
	finish(&p)
	return p
}

// unreachable builds an ICMP destination unreachable from router to the dark address dark,
// quoting a flood packet dark -> victim (spoofed from the dark space).
func (g *gen) unreachable(ts int64, router, dark, victim netip.Addr) pkt {
	h := g.ipHeader(ts, router, dark, packet.ProtoICMP)
	sport, dport := uint16(1024+g.rng.IntN(64512)), uint16(80)
	var quote []byte
	if h.IPVersion == 4 {
		h.Frag = 0
		h.ICMPType, h.ICMPCode = 3, uint8(g.rng.IntN(4))
		quote = make([]byte, 28)
		quote[0] = 0x45
		binary.BigEndian.PutUint16(quote[2:], 40)
		binary.BigEndian.PutUint16(quote[4:], uint16(g.rng.Uint32()))
		quote[8], quote[9] = uint8(40+g.rng.IntN(200)), packet.ProtoTCP
		copy(quote[12:16], dark.AsSlice())
		copy(quote[16:20], victim.AsSlice())
		binary.BigEndian.PutUint16(quote[10:], ipChecksum(quote[:20]))
		tcpQuote(quote[20:], sport, dport, g.rng.Uint32())
	} else {
		h.Proto = packet.ProtoICMPv6
		h.ICMPType, h.ICMPCode = 1, uint8(g.rng.IntN(4))
		quote = make([]byte, 48)
		quote[0] = 0x60
		binary.BigEndian.PutUint16(quote[4:], 20)
		quote[6], quote[7] = packet.ProtoTCP, uint8(40+g.rng.IntN(200))
		copy(quote[8:24], dark.AsSlice())
		copy(quote[24:40], victim.AsSlice())
		tcpQuote(quote[40:], sport, dport, g.rng.Uint32())
	}
	h.Inner = packet.Quoted{Valid: true, Proto: packet.ProtoTCP,
		Src: packet.AddrFromNetip(dark), Dst: packet.AddrFromNetip(victim), SrcPort: sport, DstPort: dport}
	p := pkt{h: h, body: quote}
	finish(&p)
	return p
}

// tcpQuote writes the first 8 bytes of a quoted TCP SYN header.
func tcpQuote(b []byte, sport, dport uint16, seq uint32) {
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
}

// ipChecksum is the Internet checksum of an IPv4 header (checksum field zero).
func ipChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xFFFF {
		s = s&0xFFFF + s>>16
	}
	return ^uint16(s)
}
