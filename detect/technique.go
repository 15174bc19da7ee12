package detect

import "github.com/telescope-dev/telescope/packet"

// Scan techniques: how a source probes, named after nmap's scan types. Indexes of
// Techniques (and of the per-source technique counts).
const (
	TechSYN      = iota // -sS: SYN, ACK clear, not the option set of a stock OS
	TechConnect         // -sT: SYN with a stock OS's options (MSS, window scale, SACK-permitted)
	TechACK             // -sA/-sW: ACK alone
	TechFIN             // -sF: FIN alone
	TechNull            // -sN: no flag
	TechXmas            // -sX: FIN-PSH-URG
	TechMaimon          // -sM: FIN-ACK
	TechUDP             // -sU: any UDP datagram
	TechICMPEcho        // -sn/-PE: ICMP or ICMPv6 echo request
	TechOdd             // flag combinations no TCP stack sends: SYN with FIN or RST, FIN with RST, flags without ACK/SYN/RST other than the named scans
	NumTechniques
)

// Techniques are the technique names: the `technique` report/log field and the label of
// telescope_scan_technique_packets_total.
var Techniques = []string{"syn", "connect", "ack", "fin", "null", "xmas", "maimon", "udp", "icmp_echo", "odd"}

// noTech marks a packet that is no probe of any technique (backscatter, data of an
// established connection such as PSH-ACK, other protocols).
const noTech = -1

// tcpTech maps a TCP flags byte to its technique (TechSYN standing for SYN and connect alike,
// told apart by the options), or noTech. ECE and CWR (ECN) do not change a technique:
// SYN-ECE-CWR is an ECN-capable SYN.
var tcpTech = func() (t [256]int8) {
	const (
		fin, syn, rst, psh, ack, urg = packet.FlagFIN, packet.FlagSYN, packet.FlagRST,
			packet.FlagPSH, packet.FlagACK, packet.FlagURG
	)
	for i := range t {
		f := uint8(i) &^ (packet.FlagECE | packet.FlagCWR)
		t[i] = tcpFlagsTechnique(f, fin, syn, rst, psh, ack, urg)
	}
	return t
}()

func tcpFlagsTechnique(f, fin, syn, rst, psh, ack, urg uint8) int8 {
	// Backscatter (the backscatter rule looks at SYN, ACK and RST only): SYN-ACK, RST,
	// RST-ACK are replies of a victim, not probes, whatever else is set. Left to that rule.
	switch f & (syn | ack | rst) {
	case syn | ack, rst, rst | ack:
		return noTech
	}
	switch {
	case f&syn != 0 && f&(fin|rst) != 0:
		return TechOdd // SYN-FIN, SYN-RST, FIN-SYN-RST-PSH-ACK-URG, ...
	case f&syn != 0:
		return TechSYN // SYN with ACK clear (PSH or URG along do not make it another scan)
	}
	// No SYN and no RST from here on.
	switch f {
	case 0:
		return TechNull
	case fin:
		return TechFIN
	case fin | psh | urg:
		return TechXmas
	case fin | ack:
		return TechMaimon
	case ack:
		return TechACK
	}
	if f&ack == 0 {
		return TechOdd // PSH, URG, FIN-PSH, FIN-URG, PSH-URG: no stack sends these
	}
	return noTech // PSH-ACK, FIN-PSH-ACK, URG-ACK, ...: data of a connection, not a scan
}

// stockSYNOptions are the options every stock OS puts in a connect() SYN (Linux, BSD and
// macOS add timestamps; Windows does not by default): MSS (2), window scale (3) and
// SACK-permitted (4). Raw-socket scanners (nmap -sS, masscan, mirai, zmap by default) send
// none of them or MSS alone.
const stockSYNOptions = 1<<2 | 1<<3 | 1<<4

// TechniqueOf classifies one packet (to a dark destination) by scan technique, or returns
// -1 when it is no probe of any technique.
func TechniqueOf(h *packet.Header) int {
	if !h.L4 {
		return noTech
	}
	switch h.Proto {
	case packet.ProtoTCP:
		t := int(tcpTech[h.TCPFlags])
		if t == TechSYN && h.Opts.Kinds&stockSYNOptions == stockSYNOptions {
			return TechConnect
		}
		return t
	case packet.ProtoUDP:
		return TechUDP
	}
	if h.ICMPEchoRequest() {
		return TechICMPEcho
	}
	return noTech
}

// synTechnique is TechniqueOf for a SYN probe (syn, connect or odd), small enough to inline
// on the packet path.
func synTechnique(h *packet.Header) int {
	t := int(tcpTech[h.TCPFlags])
	if t == TechSYN && h.Opts.Kinds&stockSYNOptions == stockSYNOptions {
		t = TechConnect
	}
	return t
}

// TechCounts is a source's technique mix in a few bytes: one saturating counter per
// technique, all halved when one would overflow, so the proportions of its recent packets
// survive in 10 bytes of the per-source state.
type TechCounts [NumTechniques]uint8

func (c *TechCounts) add(t int) {
	if c[t] == 255 {
		for i := range c {
			c[i] >>= 1
		}
	}
	c[t]++
}

// Dominant returns the index of the technique with the most packets (the lowest index on a
// tie), or -1 when nothing was counted.
func (c *TechCounts) Dominant() int {
	best := -1
	for i, n := range c {
		if n > 0 && (best < 0 || n > c[best]) {
			best = i
		}
	}
	return best
}

// techName returns the name of a technique index, "" for -1.
func techName(t int) string {
	if t < 0 || t >= NumTechniques {
		return ""
	}
	return Techniques[t]
}

// dominant returns the technique with the most packets of exact counts, or -1.
func dominant(c *[NumTechniques]uint32) int {
	best := -1
	for i, n := range c {
		if n > 0 && (best < 0 || n > c[best]) {
			best = i
		}
	}
	return best
}

// techProto is the protocol a technique probes with.
func techProto(t int) uint8 {
	switch t {
	case TechUDP:
		return packet.ProtoUDP
	case TechICMPEcho:
		return packet.ProtoICMP
	}
	return packet.ProtoTCP
}

// SourceTechnique returns the dominant technique name of a source's state, "" when none.
func SourceTechnique(st *SourceState) string { return techName(st.Tech.Dominant()) }
