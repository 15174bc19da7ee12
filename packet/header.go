// Package packet is the packet model every other package shares: the decoded Header
// value, addresses, flag and protocol names, and the hot-path decoder that fills a Header
// from a frame without allocating. It does no I/O: capture/ reads frames, aggregate/ and
// detect/ count and judge decoded headers.
package packet

import (
	"cmp"
	"encoding/binary"
	"net/netip"
)

// Addr is an IP address in 16-byte form. IPv4 addresses are stored IPv4-mapped
// (::ffff:a.b.c.d) so one fixed-size key serves both families without allocation.
type Addr [16]byte

// AddrFrom4 returns the IPv4-mapped form of a 4-byte address.
func AddrFrom4(b []byte) (a Addr) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b[:4])
	return a
}

// AddrFromNetip converts a netip.Addr (IPv4 or IPv6) to an Addr.
func AddrFromNetip(ip netip.Addr) Addr {
	return Addr(ip.As16())
}

// Is4 reports whether a is an IPv4-mapped address.
//
// Is4, V4 and Hash read *a where it is: on an Addr value the 16 bytes were copied to the
// stack and read back in 8- and 4-byte loads, which waited for that store (on the live
// flood, a sixth of the samples of the functions that called them).
func (a *Addr) Is4() bool {
	// The IPv4-mapped prefix ::ffff:0:0/96: eight zero bytes, then 00 00 ff ff.
	return binary.LittleEndian.Uint64(a[:8]) == 0 && binary.LittleEndian.Uint32(a[8:12]) == 0xffff0000
}

// V4 returns the IPv4 address as a big-endian uint32 (meaningful only when Is4).
func (a *Addr) V4() uint32 { return binary.BigEndian.Uint32(a[12:]) }

// Netip returns the address as a netip.Addr, unmapping IPv4.
func (a Addr) Netip() netip.Addr { return netip.AddrFrom16(a).Unmap() }

// Compare orders addresses as netip.Addr.Compare orders their Netip(): IPv4 before IPv6,
// then by value. Without the conversion: ranking a hotspot's top sources, which tie on
// their packets more often than not, compared netip.Addr values (a tenth of
// BenchmarkHotspotDay's time was in the small sorts of those lists).
func (a *Addr) Compare(b *Addr) int {
	if a4, b4 := a.Is4(), b.Is4(); a4 != b4 {
		if a4 {
			return -1
		}
		return 1
	}
	// Both IPv4 (the same mapped prefix) or both IPv6: the bytes in order.
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// String formats the address like netip.Addr does (dotted quad for IPv4).
func (a Addr) String() string { return a.Netip().String() }

// Hash returns a well-mixed 64-bit hash of the address. seed separates
// independent uses (worker choice, tables, sketches) so their bits do not correlate.
func (a *Addr) Hash(seed uint64) uint64 {
	lo := binary.LittleEndian.Uint64(a[:8])
	hi := binary.LittleEndian.Uint64(a[8:])
	return mix64(hi ^ mix64(lo^seed))
}

// mix64 is the murmur3 64-bit finaliser: cheap and with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Mix64 exposes the finaliser for hashing other keys (ports, flows) consistently.
func Mix64(x uint64) uint64 { return mix64(x) }

// Result classifies a frame. Every frame read gets exactly one result.
type Result uint8

const (
	// ResultIP: an IPv4 or IPv6 header was decoded completely.
	ResultIP Result = iota
	// ResultNonIP: the frame carries something other than IP (ARP, STP, an unknown link type).
	ResultNonIP
	// ResultTruncated: the frame ends before its IP header does.
	ResultTruncated
	// ResultMalformed: the IP header is present but invalid (bad version, IHL < 5, ...).
	ResultMalformed
	// NumResults is the number of Result values (for counter arrays).
	NumResults
)

var resultNames = [NumResults]string{"ip", "non_ip", "truncated", "malformed"}

// String returns the metric label value of the result.
func (r Result) String() string {
	if r < NumResults {
		return resultNames[r]
	}
	return "unknown"
}

// LinkType is a pcap LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type LinkType uint32

// Link types the decoder understands.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte address family, host byte order
	LinkEthernet  LinkType = 1   // Ethernet II / 802.3, with 802.1Q/802.1ad tags
	LinkRawBSD1   LinkType = 12  // DLT_RAW on most BSDs: raw IPv4/IPv6
	LinkRawBSD2   LinkType = 14  // DLT_RAW on OpenBSD: raw IPv4/IPv6
	LinkRaw       LinkType = 101 // raw IPv4/IPv6, version from the first nibble
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte address family, network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228 // raw IPv4 only
	LinkIPv6      LinkType = 229 // raw IPv6 only
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2

	// LinkNetwork is internal (never in a file): the frame starts at the network header and
	// the EtherType is passed separately (AF_PACKET SOCK_DGRAM delivers frames this way).
	LinkNetwork LinkType = 0xFFFF0001
)

// Known reports whether the decoder understands the link type.
func (l LinkType) Known() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRawBSD1, LinkRawBSD2, LinkRaw, LinkLoop,
		LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2, LinkNetwork:
		return true
	}
	return false
}

// TCP flag bits, in the order of the flags byte of the TCP header. The bit order is also
// the naming order of docs/DESIGN.md (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// FlagsName returns the combination name of a flags byte: the set bits joined by "-"
// in the order FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, or "none".
func FlagsName(f uint8) string { return flagsNameTable[f] }

var flagsNameTable = func() (t [256]string) {
	for f := 0; f < 256; f++ {
		s := ""
		for i := 0; i < 8; i++ {
			if f&(1<<i) != 0 {
				if s != "" {
					s += "-"
				}
				s += flagNames[i]
			}
		}
		if s == "" {
			s = "none"
		}
		t[f] = s
	}
	return t
}()

// IP protocol numbers used by the pipeline.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Fragment bits of Header.Frag.
const (
	FragMore     uint8 = 1 << iota // more fragments follow (IPv4 MF, IPv6 M)
	FragDontFrag                   // IPv4 DF
	FragNonFirst                   // fragment offset != 0: no transport header in this packet
	FragFragment                   // the packet is a fragment (first or not)
)

// TCPOptions summarises the TCP options of a segment (enough for tool fingerprints).
type TCPOptions struct {
	Kinds  uint32 // bit k set when option kind k (< 32) is present; NOP (1) and EOL (0) excluded
	Len    uint8  // bytes of options (data offset*4 - 20)
	Count  uint8  // options other than NOP/EOL
	MSS    uint16 // value of the MSS option, 0 when absent
	WScale uint8  // value of the window-scale option (valid when Kinds has bit 3)
}

// Quoted is the IP header (and first 8 transport bytes) quoted inside an ICMP error.
type Quoted struct {
	Valid            bool
	Proto            uint8
	Src, Dst         Addr
	SrcPort, DstPort uint16 // valid for TCP/UDP when the quote holds them
}

// PayloadMax is how many bytes of UDP payload a Header keeps.
const PayloadMax = 32

// MaxTS is the latest packet time, in ns since the Unix epoch: 2^62 ns, in 2116, past
// anything a classic pcap (2106) or a clock holds, and as far again below the int64
// limit, so that a window, a gap or a bucket added to a packet time never overflows. The
// sources keep packet times within [0, MaxTS] (ClampTS): a damaged pcapng's 64-bit
// timestamp or if_tsoffset can be any value, and the detectors' due times computed from
// one past it wrapped to the distant past, where an episode's end was retried forever.
const MaxTS = 1 << 62

// ClampTS returns ns within [0, MaxTS].
func ClampTS(ns int64) int64 { return min(max(ns, 0), MaxTS) }

// Header is everything the pipeline needs from one frame. It is a plain value: the
// decoder fills it without allocating and workers copy it freely.
type Header struct {
	TS      int64  // packet time, ns since the Unix epoch (set by the source), within [0, MaxTS]
	WireLen uint32 // original length on the wire
	CapLen  uint32 // bytes captured

	Result    Result
	IPVersion uint8 // 4 or 6 when Result == ResultIP
	Proto     uint8 // IP protocol of the transport header (after IPv6 extension headers)
	L4        bool  // the transport header (TCP 20+ bytes, UDP 8, ICMP 8) is complete
	TTL       uint8 // IPv4 TTL / IPv6 hop limit
	Frag      uint8 // FragMore | FragDontFrag | FragNonFirst | FragFragment
	VLANs     uint8 // 802.1Q/802.1ad tags seen (in the frame or restored from ring metadata)
	VLAN      uint16
	IPID      uint16 // IPv4 identification (low 16 bits of the IPv6 fragment id)
	FragOff   uint16 // fragment offset in 8-byte units
	IPLen     uint16 // IPv4 total length / IPv6 payload length + 40
	IPHdrLen  uint16 // bytes of IP header, IPv6 extension headers included

	Src, Dst         Addr
	SrcPort, DstPort uint16

	TCPFlags uint8
	Window   uint16
	Seq, Ack uint32
	Opts     TCPOptions

	ICMPType, ICMPCode uint8
	Inner              Quoted // the packet quoted by an ICMP/ICMPv6 error

	PayloadLen uint16 // UDP payload length per the UDP header (may exceed what was captured)
	PayloadCap uint8  // bytes of Payload filled (<= PayloadMax)
	// PayloadClass is PayloadDHT, PayloadUTP or PayloadOther, from the whole captured
	// UDP payload (ClassifyUDP).
	PayloadClass uint8
	Payload      [PayloadMax]byte

	// NetOff is where the network header starts in the frame (IP's, or another
	// EtherType's such as ARP), when Net: the decoder reached it (replay runs
	// capture.filter's program from there, as the kernel does live).
	// In the struct's tail padding: the header stays 176 bytes.
	NetOff uint16
	Net    bool
}

// SYNProbe reports whether the packet is a TCP SYN probe: SYN set, ACK clear.
func (h *Header) SYNProbe() bool {
	return h.Proto == ProtoTCP && h.L4 && h.TCPFlags&(FlagSYN|FlagACK) == FlagSYN
}

// ICMPEchoRequest reports whether the packet is an ICMP or ICMPv6 echo request.
func (h *Header) ICMPEchoRequest() bool {
	return h.L4 && ((h.Proto == ProtoICMP && h.ICMPType == 8) || (h.Proto == ProtoICMPv6 && h.ICMPType == 128))
}

// Probe reports whether the packet is a probe in the sense of the detection rules:
// a SYN probe, a UDP datagram, or an ICMP echo request.
func (h *Header) Probe() bool {
	return h.SYNProbe() || (h.Proto == ProtoUDP && h.L4) || h.ICMPEchoRequest()
}

// ICMPError reports whether an ICMP/ICMPv6 type quotes the offending packet
// (IPv4: unreachable, source quench, redirect, time exceeded, parameter problem;
// IPv6: unreachable, packet too big, time exceeded, parameter problem).
func ICMPError(ipVersion, typ uint8) bool {
	if ipVersion == 4 {
		return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
	}
	return typ >= 1 && typ <= 4
}

// AffinityKey folds the address that decides which worker owns a packet to 32 bits:
// the quoted destination of an ICMP error (the DoS victim, so all backscatter about one
// victim meets in one worker), the source address otherwise, 0 for non-IP frames.
// The live fanout program (capture/fanout_linux.go) computes exactly the same value in the
// kernel; keep the two in step.
func (h *Header) AffinityKey() uint32 {
	if h.Result != ResultIP {
		return 0
	}
	a := &h.Src
	if h.Inner.Valid && (h.IPVersion == 4 || h.IPHdrLen == 40) {
		a = &h.Inner.Dst
	}
	return FoldAddr(a, h.IPVersion == 4)
}

// FoldAddr folds an address to 32 bits: the IPv4 address itself, or the XOR of the four
// 32-bit words of an IPv6 address (also of an IPv4-mapped one seen in an IPv6 header,
// as the kernel program sees it).
func FoldAddr(a *Addr, v4 bool) uint32 {
	if v4 {
		return binary.BigEndian.Uint32(a[12:])
	}
	return binary.BigEndian.Uint32(a[0:]) ^ binary.BigEndian.Uint32(a[4:]) ^
		binary.BigEndian.Uint32(a[8:]) ^ binary.BigEndian.Uint32(a[12:])
}

// WorkerIndex maps an affinity key to one of n workers: a multiplicative hash whose
// middle bits pick the worker. It is cheap enough to express in classic BPF.
func WorkerIndex(key uint32, n int) int {
	if n <= 1 {
		return 0
	}
	return int(((key * 0x9E3779B1) >> 16) % uint32(n))
}
