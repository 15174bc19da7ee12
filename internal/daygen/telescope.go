package daygen

import (
	"net/netip"
	"time"
)

// The telescope profile: the traffic mix of a small real telescope, per unit of Scale. At
// scale 20 over 2 h it is the day of issue 10: ~3.4 M packets, ~520 k sources (most send
// one to five packets), ~60 k Mirai bots sending a few telnet SYNs each, ~30 k UDP-then-SYN
// pairs, 45 heavy scanners, 30 telnet sweepers, a 15-minute telnet surge that ramps up
// over three minutes, and 3 DoS victims.
const (
	telBackground = 20500 // background sources per unit of scale
	telBots       = 3000  // Mirai bots below the sweep threshold
	telBT         = 1875  // BitTorrent sources (80 % make a pair)
	telScanners   = 2.25  // heavy scanners
	telSweepers   = 1.5   // telnet sweepers
	// surgeBuckets is how long the planted surge lasts; its first three buckets ramp up
	// (the baseline plus 30 %, 65 %, then 100 % of the extra sources).
	surgeBuckets = 15
	surgeExtra   = 2.9 // extra surge sources per bucket, times the measured baseline
)

var surgeRamp = []float64{0.3, 0.65}

func (g *gen) telescopeDay() {
	g.telnetBackground()
	g.miraiBots(g.count(telBots, 40))
	g.rampSurge()
	if g.o.TelnetOnly {
		return
	}
	g.backgroundN(g.count(telBackground, 200), 40, 4)
	g.heavyScanners(g.count(telScanners, 7))
	for i := range g.count(telSweepers, 2) {
		g.telnetActor(22+g.rng.IntN(69), i%2 == 0, 2*time.Second)
	}
	g.bittorrentN(g.count(telBT, 60), 80)
	for i := range 3 {
		spec := victimSpecs[i]
		rate := 1 + g.rng.IntN(4)
		gap := time.Second / time.Duration(rate)
		n := int((2*time.Minute + time.Duration(g.rng.Int64N(int64(13*time.Minute)))) / gap)
		g.victim(spec, n, gap, true)
	}
	for range g.count(15, 3) {
		spec := victimSpecs[g.rng.IntN(len(victimSpecs))]
		g.victim(spec, 1+g.rng.IntN(20), 6*time.Second, false)
	}
	g.tools()
}

// miraiBots plants n bots that each send 1 to 8 Mirai SYNs (seq == dst) to distinct dark
// addresses on the telnet ports, ~10 s apart, at a uniform time of the day: too few for a
// sweep or a scanner, each labelled mirai. They make the steady telnet baseline.
func (g *gen) miraiBots(n int) {
	for range n {
		src := g.src(false)
		k := 1 + g.rng.IntN(8)
		ts := g.spread(k, g.between(g.start, g.end-int64(5*time.Minute)), 10*time.Second)
		dsts := g.distinctDark(k)
		for i, at := range ts {
			g.emit(g.syn(at, src, dsts[i], telnetPort(g), mirai))
		}
		g.truth.Tools[src] = append(g.truth.Tools[src],
			Tool{Tool: "mirai", Packets: uint64(k), Probes: uint64(k), First: tm(ts[0]), Last: tm(ts[k-1])})
	}
}

// rampSurge plants the surge in the middle of the day: it measures the distinct telnet
// sources per bucket of the ten buckets before, then adds new sources (one or two plain
// SYNs to port 23 within one bucket) so that the surge buckets hold about (1 + 2.9) times
// that baseline once ramped up.
func (g *gen) rampSurge() {
	b := int64(surgeBucket)
	g.surgeAt = g.start + (g.end-g.start)/2/b*b
	g.surgeEnd = g.surgeAt + surgeBuckets*b
	sets := map[int64]map[netip.Addr]bool{}
	for i := range g.pkts {
		h := &g.pkts[i].h
		k := h.TS / b
		if h.TS < g.surgeAt-10*b || h.TS >= g.surgeAt || !h.SYNProbe() || (h.DstPort != 23 && h.DstPort != 2323) {
			continue
		}
		if sets[k] == nil {
			sets[k] = map[netip.Addr]bool{}
		}
		sets[k][h.Src.Netip()] = true
	}
	var sum int
	for _, s := range sets {
		sum += len(s)
	}
	base := float64(sum) / 10
	for i := range surgeBuckets {
		f := 1.0
		if i < len(surgeRamp) {
			f = surgeRamp[i]
		}
		bs := g.surgeAt + int64(i)*b
		for range max(int(f*surgeExtra*base+0.5), 25) {
			src := g.src(false)
			ts := g.between(bs, bs+b)
			g.emit(g.syn(ts, src, g.randDark(false), 23, plain))
			if g.rng.IntN(2) == 0 {
				g.emit(g.syn(g.between(ts, bs+b), src, g.randDark(false), 23, plain))
			}
		}
	}
}

// heavyScanners plants n scanners of ~45 k probes each, cycling through the kinds: SYN
// horizontal (445, then 3389/1433), vertical, mixed, UDP 1900, ICMP echo, IPv6 SYN 22.
func (g *gen) heavyScanners(n int) {
	for i := range n {
		kind, v6 := pSYN, false
		var where func(int) target
		switch i % 7 {
		case 0:
			where = func(int) target { return target{g.randDark(false), 445} }
		case 1:
			where = func(int) target { return target{g.randDark(false), []uint16{3389, 1433}[g.rng.IntN(2)]} }
		case 2:
			dst, base := g.randDark(false), uint16(1+g.rng.IntN(60000))
			where = func(i int) target { return target{dst, base + uint16(i)} }
		case 3:
			where = func(int) target { return target{darkV4(g.rng.IntN(20) * 25), 5000 + uint16(g.rng.IntN(40))} }
		case 4:
			kind = pUDP
			where = func(int) target { return target{g.randDark(false), 1900} }
		case 5:
			kind = pEcho
			where = func(i int) target { return target{darkV4(i % darkV4Count), 0} }
		case 6:
			v6 = true
			where = func(int) target { return target{g.randDark(true), 22} }
		}
		src := g.src(v6)
		cnt := 30000 + g.rng.IntN(30000)
		gap := g.fit(cnt, 100*time.Millisecond)
		ts := g.spread(cnt, g.actorStart(time.Duration(cnt)*gap*3/2), gap)
		g.addScanner(src, g.scan(src, kind, ts, targets(cnt, where), plain))
	}
}
