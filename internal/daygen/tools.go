package daygen

import (
	"time"
)

// nmapTopPorts are the first of nmap's most common ports (enough for every small nmap scan).
var nmapTopPorts = []uint16{80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111,
	995, 993, 5900, 1025, 587, 8888, 199, 1720, 465, 548, 113, 81, 6001, 10000, 514, 5060, 179, 1026, 2000,
	8443, 8000, 32768, 554, 26, 1433, 49152, 2001, 515, 8008, 49154, 1027, 5666, 646, 5000, 5631, 631, 49153,
	8081, 2049, 88, 79, 5800, 106, 2121, 1110, 49155, 6000, 513, 990, 5357, 427, 49156, 543, 544, 5101, 144, 7, 389}

// tools plants ZMap, Masscan and Nmap scanners: every probe carries the tool's fingerprint,
// so each source gets the label once it has enough matching probes. The big ZMap and Nmap
// scans also make the scanner threshold.
func (g *gen) tools() {
	for range g.count(12, 2) {
		port := []uint16{80, 443, 8080}[g.rng.IntN(3)]
		g.tool(zmap, 30+g.rng.IntN(61), time.Second, func(int) target { return target{g.randDark(false), port} })
	}
	g.tool(zmap, 400, 200*time.Millisecond, func(int) target { return target{g.randDark(false), 80} })
	for range g.count(12, 2) {
		g.tool(masscan, 30+g.rng.IntN(61), time.Second, func(int) target {
			return target{g.randDark(false), []uint16{80, 443, 8080, 8443}[g.rng.IntN(4)]}
		})
	}
	for range g.count(8, 2) {
		dst := g.randDark(false)
		perm := g.rng.Perm(len(nmapTopPorts))
		g.tool(nmap, 20+g.rng.IntN(41), 500*time.Millisecond, func(i int) target { return target{dst, nmapTopPorts[perm[i]]} })
	}
	dst := g.randDark(false)
	g.tool(nmap, 1000, 50*time.Millisecond, func(i int) target { return target{dst, uint16(1 + i)} })
}

var toolNames = map[style]string{mirai: "mirai", zmap: "zmap", masscan: "masscan", nmap: "nmap"}

// tool emits n SYN probes of style s from a new source and records its label (and its
// scanner episode when it makes the threshold).
func (g *gen) tool(s style, n int, gap time.Duration, where func(i int) target) {
	src := g.src(false)
	ts := g.spread(n, g.actorStart(time.Duration(n)*gap*3/2), gap)
	g.addScanner(src, g.scan(src, pSYN, ts, targets(n, where), s))
	g.truth.Tools[src] = append(g.truth.Tools[src],
		Tool{Tool: toolNames[s], Packets: uint64(n), Probes: uint64(n), First: tm(ts[0]), Last: tm(ts[n-1])})
}
