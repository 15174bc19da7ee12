package daygen

import (
	"net/netip"
	"time"
)

// distinctDark returns n distinct dark IPv4 addresses in random order (n <= 512).
func (g *gen) distinctDark(n int) []netip.Addr {
	perm := g.rng.Perm(darkV4Count)[:n]
	out := make([]netip.Addr, n)
	for i, j := range perm {
		out[i] = darkV4(j)
	}
	return out
}

// telnetActors plants Mirai bots (SYNs with seq == dst to 23/2323: a telnet sweep when they
// reach 20 addresses, and always the mirai tool label), small bots below the sweep threshold,
// and sequential non-Mirai sweepers (one of which also makes the scanner threshold).
func (g *gen) telnetActors() {
	for range g.count(250, 5) {
		g.telnetActor(22+g.rng.IntN(69), true, 2*time.Second)
	}
	for range g.count(100, 3) {
		g.telnetActor(1+g.rng.IntN(15), true, 2*time.Second)
	}
	for range g.count(20, 2) {
		g.telnetActor(25+g.rng.IntN(71), false, time.Second)
	}
	g.telnetActor(150, false, 500*time.Millisecond)
}

// telnetActor emits n telnet SYNs of one new source to n distinct dark addresses (Mirai
// probes, or a sequential plain sweep) and records what they must be detected as.
func (g *gen) telnetActor(n int, isMirai bool, gap time.Duration) {
	src := g.src(false)
	ts := g.spread(n, g.actorStart(time.Duration(n)*gap*3/2), gap)
	var dsts []netip.Addr
	if isMirai {
		dsts = g.distinctDark(n)
	} else {
		base := g.rng.IntN(darkV4Count)
		for i := range n {
			dsts = append(dsts, darkV4((base+i)%darkV4Count))
		}
	}
	s := plain
	if isMirai {
		s = mirai
	}
	tgs := targets(n, func(i int) target {
		if isMirai {
			return target{dsts[i], telnetPort(g)}
		}
		return target{dsts[i], 23}
	})
	g.addScanner(src, g.scan(src, pSYN, ts, tgs, s))
	first, last := tm(ts[0]), tm(ts[n-1])
	if n >= 20 {
		g.truth.TelnetSweeps[src] = append(g.truth.TelnetSweeps[src],
			TelnetSweep{Mirai: isMirai, Targets: uint64(n), Packets: uint64(n), First: first, Last: last})
	}
	if isMirai {
		g.truth.Tools[src] = append(g.truth.Tools[src], Tool{Tool: "mirai", Packets: uint64(n), Probes: uint64(n), First: first, Last: last})
	}
}
