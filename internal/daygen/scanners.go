package daygen

import (
	"fmt"
	"net/netip"
	"time"
)

// target is a dark (address, port) a probe goes to (port 0 for ICMP echo).
type target struct {
	dst  netip.Addr
	port uint16
}

type probeKind uint8

const (
	pSYN probeKind = iota
	pUDP
	pEcho
)

var ssdp = []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n")

// probe emits one probe of kind k.
func (g *gen) probe(k probeKind, ts int64, src netip.Addr, tg target, s style) {
	switch k {
	case pSYN:
		g.emit(g.syn(ts, src, tg.dst, tg.port, s))
	case pUDP:
		g.emit(g.udp(ts, src, tg.dst, uint16(1024+g.rng.IntN(64512)), tg.port, ssdp))
	case pEcho:
		g.emit(g.echo(ts, src, tg.dst))
	}
}

// scan emits probes at times ts to targets, and returns the scanner episode they make when
// they number at least 100 to at least 20 targets (every scan here reaches that within its
// first window and never pauses for a window), else nil.
func (g *gen) scan(src netip.Addr, k probeKind, ts []int64, tgs []target, s style) *Scanner {
	pairs := map[target]bool{}
	ips := map[netip.Addr]bool{}
	ports := map[uint16]bool{}
	for i, at := range ts {
		g.probe(k, at, src, tgs[i], s)
		pairs[tgs[i]], ips[tgs[i].dst], ports[tgs[i].port] = true, true, true
	}
	if len(ts) < 100 || len(pairs) < 20 {
		return nil
	}
	class := "mixed"
	switch {
	case len(ports) <= 5 && len(ips) > 5:
		class = "horizontal"
	case len(ips) <= 5 && len(ports) > 5:
		class = "vertical"
	}
	return &Scanner{Class: class, Packets: uint64(len(ts)), Targets: uint64(len(pairs)), Ports: uint64(len(ports)),
		First: tm(ts[0]), Last: tm(ts[len(ts)-1])}
}

func (g *gen) addScanner(src netip.Addr, sc *Scanner) {
	if sc != nil {
		g.truth.Scanners[src] = append(g.truth.Scanners[src], *sc)
	}
}

// targets makes n targets with f(i).
func targets(n int, f func(i int) target) []target {
	out := make([]target, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// scanners plants the heavy hitters: horizontal, vertical and mixed SYN scanners, a UDP and
// an ICMP echo sweeper, an IPv6 scanner, and one scanner that comes back after a pause.
func (g *gen) scanners() {
	type spec struct {
		kind  probeKind
		v6    bool
		n     int
		gap   time.Duration
		where func(i int) target
	}
	vertBase := uint16(1 + g.rng.IntN(60000))
	vert := g.randDark(false)
	vert2 := [2]netip.Addr{g.randDark(false), g.randDark(false)}
	for vert2[1] == vert2[0] {
		vert2[1] = g.randDark(false)
	}
	mixedIPs := make([]netip.Addr, 20)
	for i := range mixedIPs {
		mixedIPs[i] = darkV4(i * 25) // 20 distinct addresses
	}
	specs := []spec{
		{pSYN, false, g.count(20000, 300), 100 * time.Millisecond, func(int) target { return target{g.randDark(false), 445} }},
		{pSYN, false, g.count(8000, 200), 200 * time.Millisecond, func(int) target {
			return target{g.randDark(false), []uint16{3389, 1433}[g.rng.IntN(2)]}
		}},
		{pSYN, false, g.count(3000, 150), 50 * time.Millisecond, func(i int) target { return target{vert, vertBase + uint16(i)} }},
		{pSYN, false, g.count(1000, 120), 100 * time.Millisecond, func(i int) target { return target{vert2[i%2], 1000 + uint16(i/2)} }},
		{pSYN, false, g.count(2400, 200), 100 * time.Millisecond, func(int) target {
			return target{mixedIPs[g.rng.IntN(20)], 5000 + uint16(g.rng.IntN(40))}
		}},
		{pUDP, false, g.count(5000, 150), 200 * time.Millisecond, func(int) target { return target{g.randDark(false), 1900} }},
		{pEcho, false, g.count(2000, 150), 100 * time.Millisecond, func(i int) target { return target{darkV4(i % darkV4Count), 0} }},
		{pSYN, true, g.count(2000, 150), 100 * time.Millisecond, func(int) target { return target{g.randDark(true), 22} }},
	}
	// The summaries an analyst writes (README, "Who is scanning"); the random mixed scan and
	// the ping sweep (whose address count is a sketch's past 256) have none.
	summaries := []string{
		"TCP-SYN to TCP/445",
		"TCP-SYN to TCP/1433 and TCP/3389",
		fmt.Sprintf("TCP-SYN to TCP/%d-%d", vertBase, int(vertBase)+specs[2].n-1),
		fmt.Sprintf("TCP-SYN to TCP/1000-%d", 1000+(specs[3].n-1)/2),
		"",
		"UDP to UDP/1900",
		"",
		"TCP-SYN to TCP/22",
	}
	techniques := map[probeKind]string{pSYN: "syn", pUDP: "udp", pEcho: "icmp_echo"}
	for i, s := range specs {
		src := g.src(s.v6)
		gap := g.fit(s.n, s.gap)
		ts := g.spread(s.n, g.actorStart(time.Duration(s.n)*gap*3/2), gap)
		sc := g.scan(src, s.kind, ts, targets(s.n, s.where), plain)
		if sc != nil {
			sc.Technique, sc.Summary = techniques[s.kind], summaries[i]
		}
		g.addScanner(src, sc)
	}
	// A scanner that pauses for 20 minutes (longer than a window): two episodes.
	src := g.src(false)
	at := g.actorStart(30 * time.Minute)
	for _, n := range []int{150, 200} {
		ts := g.spread(n, at, time.Second)
		base := g.rng.IntN(darkV4Count)
		sc := g.scan(src, pSYN, ts, targets(n, func(i int) target { return target{darkV4((base + i) % darkV4Count), 80} }), plain)
		sc.Technique, sc.Summary = "syn", "TCP-SYN to TCP/80"
		g.addScanner(src, sc)
		at = ts[n-1] + int64(20*time.Minute)
	}
	g.studyScanners()
}

// studyScanners plants the study's heavy hitters: a range scanner ("TCP-SYN to
// TCP/1025-10000"), one port among many ("TCP-SYN to TCP/3031 and 546 other ports") and
// sources of one /24 taking turns over one port range ("8 IPs, TCP-SYN to
// TCP/53601-60800"), scaled.
func (g *gen) studyScanners() {
	// A range of ports on one address.
	n := g.count(9000, 300)
	src, dst := g.src(false), g.randDark(false)
	gap := g.fit(n, 20*time.Millisecond)
	ts := g.spread(n, g.actorStart(time.Duration(n)*gap*3/2), gap)
	sc := g.scan(src, pSYN, ts, targets(n, func(i int) target { return target{dst, 1025 + uint16(i)} }), plain)
	sc.Technique, sc.Summary = "syn", fmt.Sprintf("TCP-SYN to TCP/1025-%d", 1025+n-1)
	g.addScanner(src, sc)

	// TCP/3031 for three probes in five, k other ports (each once) for the rest.
	k := g.count(546, 120) &^ 1
	n = k*5/2 + 2
	src = g.src(false)
	others := 0
	tgs := targets(n, func(i int) target {
		if i%5 >= 3 && others < k {
			others++
			return target{g.randDark(false), uint16(20000 + 7*others)}
		}
		return target{g.randDark(false), 3031}
	})
	gap = g.fit(n, 100*time.Millisecond)
	ts = g.spread(n, g.actorStart(time.Duration(n)*gap*3/2), gap)
	sc = g.scan(src, pSYN, ts, tgs, plain)
	sc.Technique, sc.Summary = "syn", fmt.Sprintf("TCP-SYN to TCP/3031 and %d other ports", k)
	g.addScanner(src, sc)

	// Four sources of one /24, one after the other, each over the same port range.
	first := g.src(false)
	for first.As4()[3] > 252 {
		first = g.src(false)
	}
	members := []netip.Addr{first, g.src(false), g.src(false), g.src(false)}
	m := g.count(2000, 150)
	gap = g.fit(4*m, 50*time.Millisecond)
	slot := time.Duration(m)*gap*3/2 + 10*time.Minute // more than a window between members
	at := g.actorStart(4 * slot)
	summary := fmt.Sprintf("TCP-SYN to TCP/53601-%d", 53601+m-1)
	grp := Group{Prefix: netip.PrefixFrom(first, 24).Masked(), Members: members, Summary: summary}
	for _, src := range members {
		dst := g.randDark(false)
		ts := g.spread(m, at, gap)
		sc := g.scan(src, pSYN, ts, targets(m, func(i int) target { return target{dst, 53601 + uint16(i)} }), plain)
		sc.Technique, sc.Summary = "syn", summary
		g.addScanner(src, sc)
		grp.Packets += uint64(m)
		at += int64(slot)
	}
	g.truth.Groups = append(g.truth.Groups, grp)
}
