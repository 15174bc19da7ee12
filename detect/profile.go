package detect

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// Profile is what a source probed: the `profile` of scanner episodes and top sources.
//
// Ports and PortMin/PortMax cover the whole episode (its first window included); Addresses
// and TopPorts are counted in the engine's episode record, so from the moment the episode
// was recognised: the probes of the window before that (at least min_packets) add only their
// first five addresses and none of their ports to them.
type Profile struct {
	Ports     uint64 `json:"ports"`     // distinct destination ports (exact to 256, then ~3 %)
	Addresses uint64 `json:"addresses"` // distinct destination addresses (same accuracy)
	// AddressesAtLeast is true when Addresses is a lower bound: the episode probed several
	// ports and its first window more than five addresses, whose others are not counted.
	AddressesAtLeast bool        `json:"addresses_at_least,omitempty"`
	PortMin          uint16      `json:"port_min"`  // lowest destination port probed (0: ICMP echo only)
	PortMax          uint16      `json:"port_max"`  // highest
	TopPorts         []PortShare `json:"top_ports"` // up to 8 busiest (protocol, port), most packets first
	Protocols        []string    `json:"protocols"` // tcp, udp, icmp: most packets first
}

// PortShare is one of the busiest destination ports of a profile. Packets is a lower bound
// (exact for a port counted from the episode's start: a Space-Saving summary of 8 slots);
// Share is Packets over the probes counted in the episode record.
type PortShare struct {
	Proto   string  `json:"proto"`
	Port    uint16  `json:"port"`
	Packets uint64  `json:"packets"`
	Share   float64 `json:"share"`
}

// profileTop is the number of Space-Saving slots of an episode's top ports.
const profileTop = 8

// portSlot is one Space-Saving slot: key = protocol<<16 | port; Count overestimates the
// key's packets by at most Err.
type portSlot struct {
	Key        uint32
	Count, Err uint32
}

// portTop finds a source's busiest ports in fixed memory.
type portTop struct {
	Slots [profileTop]portSlot
	N     uint8  // slots in use
	Total uint32 // probes counted (saturating)
}

func (p *portTop) add(key uint32) {
	if p.Total < ^uint32(0) {
		p.Total++
	}
	// One pass finds the key or, in full slots, the first least one (a vertical scan's
	// probes are nearly all to ports without a slot).
	n, m := int(p.N), 0
	for i := range p.Slots[:n] {
		sl := &p.Slots[i]
		if sl.Key == key {
			if sl.Count < ^uint32(0) {
				sl.Count++
			}
			return
		}
		if sl.Count < p.Slots[m].Count {
			m = i
		}
	}
	if n < profileTop {
		sl := &p.Slots[n]
		sl.Key, sl.Count, sl.Err = key, 1, 0
		p.N++
		return
	}
	sl := &p.Slots[m]
	sl.Key, sl.Err = key, sl.Count
	sl.Count++
}

// profileRec is the profile part of a scanner episode in the engine's episode record.
type profileRec struct {
	Tech  [NumTechniques]uint32 // packets by technique (seeded from the source's mix)
	Addrs aggregate.Distinct    // destination addresses
	Top   portTop
	// PortMap refers to the episode's exact port set in the engine's pool (0: none, the
	// pool was exhausted); PortsExact is false when the window before the episode had
	// already left the exact phase of its distinct count (then ports it probed are missing).
	PortMap    int32
	PortsExact bool
	// Memo refers to the episode's memo in the engine's pool (memo.go; 0: none).
	Memo int32
	// AddrsComplete: the window before the episode probed at most five addresses, all
	// seeded into Addrs.
	AddrsComplete bool
}

// profileKey is the portTop key of a probe.
func profileKey(proto uint8, port uint16) uint32 { return uint32(proto)<<16 | uint32(port) }

// addrValue is the value a destination address adds to a profile's address set (from the
// low half of the dst hash the scanner window keeps).
func addrValue(dst32 uint32) uint64 { return packet.Mix64(uint64(dst32) + seedDstIP) }

// profileProto is the lower-case protocol name of profiles.
func profileProto(p uint8) string {
	switch p {
	case packet.ProtoTCP:
		return "tcp"
	case packet.ProtoUDP:
		return "udp"
	case packet.ProtoICMP, packet.ProtoICMPv6:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}

// buildProfile makes the report profile of a scanner episode.
func (e *Engine) buildProfile(w *ScanWindow, pr *profileRec, ports uint64) *Profile {
	p := &Profile{Ports: ports, PortMin: w.PortLo, PortMax: w.PortHi, TopPorts: []PortShare{}, Protocols: []string{}}
	if pr.PortMap != 0 && pr.PortsExact {
		p.Ports = e.ports.at(pr.PortMap).count()
	}
	p.Addresses = max(pr.Addrs.Count(&e.slab), min(uint64(w.NIPs), uint64(len(w.IPs))))
	switch {
	case p.Ports == 1:
		p.Addresses = w.Targets.Count(&e.slab) // one port: a target is an address
	case !pr.AddrsComplete:
		p.AddressesAtLeast = true
	}
	slots := append([]portSlot(nil), pr.Top.Slots[:pr.Top.N]...)
	sort.Slice(slots, func(i, j int) bool {
		a, b := slots[i].Count-slots[i].Err, slots[j].Count-slots[j].Err
		return a > b || a == b && slots[i].Key < slots[j].Key
	})
	for _, s := range slots {
		n := uint64(s.Count - s.Err)
		if n == 0 || n*100 < uint64(pr.Top.Total) {
			continue // under 1 %: no port worth naming
		}
		p.TopPorts = append(p.TopPorts, PortShare{
			Proto: profileProto(uint8(s.Key >> 16)), Port: uint16(s.Key),
			Packets: n, Share: round3(float64(n) / float64(max(pr.Top.Total, 1))),
		})
	}
	var byProto [3]uint64 // tcp, udp, icmp
	for t, n := range pr.Tech {
		switch techProto(t) {
		case packet.ProtoTCP:
			byProto[0] += uint64(n)
		case packet.ProtoUDP:
			byProto[1] += uint64(n)
		default:
			byProto[2] += uint64(n)
		}
	}
	names := []string{"tcp", "udp", "icmp"}
	idx := []int{0, 1, 2}
	sort.SliceStable(idx, func(i, j int) bool { return byProto[idx[i]] > byProto[idx[j]] })
	for _, i := range idx {
		if byProto[i] > 0 {
			p.Protocols = append(p.Protocols, names[i])
		}
	}
	return p
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// techPhrases are the technique words of a summary.
var techPhrases = map[string]string{
	"syn": "TCP-SYN", "connect": "TCP connect", "ack": "TCP-ACK", "fin": "TCP-FIN",
	"null": "TCP-NULL", "xmas": "TCP-XMAS", "maimon": "TCP-FIN-ACK", "udp": "UDP",
	"icmp_echo": "ICMP echo", "odd": "odd TCP flags",
}

// Summary is the one-line analyst's sentence of a technique and a profile (README,
// "Who is scanning"):
//
//	summary   = technique " to " targets [" (also " protocols ")"]
//	technique = "TCP-SYN" | "TCP connect" | "TCP-ACK" | "TCP-FIN" | "TCP-NULL" | "TCP-XMAS"
//	          | "TCP-FIN-ACK" | "UDP" | "ICMP echo" | "odd TCP flags"
//	targets   = N " addresses"                      (ICMP echo)
//	          | P "/" port                          (one port)
//	          | P "/" a [", " P "/" b] " and " P "/" c   (2 or 3 ports)
//	          | P "/" port " and " N " other ports" (one port has at least half the probes)
//	          | P "/" low "-" high                  (4+ ports covering >= 90 % of low..high)
//	          | N " ports in " P "/" low "-" high   (otherwise)
//
// (the first form that applies, in this order).
//
// where P is TCP or UDP (the technique's protocol) and protocols are the profile's other
// protocols in upper case, joined by ", ".
func Summary(technique string, p *Profile) string {
	if p == nil || technique == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(techPhrases[technique])
	b.WriteString(" to ")
	main := "tcp"
	switch technique {
	case "udp":
		main = "udp"
	case "icmp_echo":
		main = "icmp"
	}
	P := strings.ToUpper(main)
	pp := func(port uint16) string { return P + "/" + strconv.Itoa(int(port)) }
	span := uint64(p.PortMax) - uint64(p.PortMin) + 1
	ports := p.Ports // ICMP echo counts as port 0 (as in the scanner rule): not a port here
	if main != "icmp" && slices.Contains(p.Protocols, "icmp") && ports > 1 {
		ports--
	}
	var top *PortShare
	if len(p.TopPorts) > 0 {
		top = &p.TopPorts[0]
	}
	switch {
	case main == "icmp":
		b.WriteString(plural(p.Addresses, "address", "addresses"))
	case ports <= 1:
		b.WriteString(pp(p.PortMin))
	case ports <= 3 && listed(p, main) == int(ports):
		var list []int
		for _, s := range p.TopPorts {
			if s.Proto == main {
				list = append(list, int(s.Port))
			}
		}
		sort.Ints(list)
		for i, port := range list {
			switch {
			case i == 0:
			case i == len(list)-1:
				b.WriteString(" and ")
			default:
				b.WriteString(", ")
			}
			b.WriteString(pp(uint16(port)))
		}
	case top != nil && top.Share >= 0.5:
		b.WriteString(pp(top.Port) + " and " + plural(ports-1, "other port", "other ports"))
	case ports >= 4 && float64(ports) >= 0.9*float64(span):
		b.WriteString(P + "/" + strconv.Itoa(int(p.PortMin)) + "-" + strconv.Itoa(int(p.PortMax)))
	default:
		b.WriteString(strconv.FormatUint(ports, 10) + " ports in " + P + "/" +
			strconv.Itoa(int(p.PortMin)) + "-" + strconv.Itoa(int(p.PortMax)))
	}
	var others []string
	for _, proto := range p.Protocols {
		if proto != main {
			others = append(others, strings.ToUpper(proto))
		}
	}
	if len(others) > 0 {
		b.WriteString(" (also " + strings.Join(others, ", ") + ")")
	}
	return b.String()
}

// listed counts the distinct ports of protocol proto in the profile's top list.
func listed(p *Profile, proto string) int {
	seen := map[uint16]bool{}
	for _, s := range p.TopPorts {
		if s.Proto == proto {
			seen[s.Port] = true
		}
	}
	return len(seen)
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatUint(n, 10) + " " + many
}
