package daygen

import (
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
	for _, s := range specs {
		src := g.src(s.v6)
		gap := g.fit(s.n, s.gap)
		ts := g.spread(s.n, g.actorStart(time.Duration(s.n)*gap*3/2), gap)
		g.addScanner(src, g.scan(src, s.kind, ts, targets(s.n, s.where), plain))
	}
	// A scanner that pauses for 20 minutes (longer than a window): two episodes.
	src := g.src(false)
	at := g.actorStart(30 * time.Minute)
	for _, n := range []int{150, 200} {
		ts := g.spread(n, at, time.Second)
		base := g.rng.IntN(darkV4Count)
		g.addScanner(src, g.scan(src, pSYN, ts, targets(n, func(i int) target { return target{darkV4((base + i) % darkV4Count), 80} }), plain))
		at = ts[n-1] + int64(20*time.Minute)
	}
}
