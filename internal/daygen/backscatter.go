package daygen

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/telescope-dev/telescope/packet"
)

// Reply kinds, named as in the report; kindOrder is the tie-break order of the detector.
const (
	kSynAck   = "syn_ack"
	kRst      = "rst"
	kRstAck   = "rst_ack"
	kUnreach  = "icmp_unreachable"
	kUnreach6 = "icmp6_unreachable"
)

var kindOrder = []string{kSynAck, kRst, kRstAck, kUnreach, kUnreach6}

var tcpKinds = map[string]uint8{
	kSynAck: packet.FlagSYN | packet.FlagACK,
	kRst:    packet.FlagRST,
	kRstAck: packet.FlagRST | packet.FlagACK,
}

// victimSpec is one planted DoS victim: its main reply kind and address family.
type victimSpec struct {
	kind string
	v6   bool
}

var victimSpecs = []victimSpec{
	{kSynAck, false}, {kRstAck, false}, {kUnreach, false}, {kSynAck, true}, {kRst, false}, {kUnreach6, true},
}

// backscatter plants DoS victims above every threshold (1-4 replies per second for 2-15
// minutes), plus victims that must not count: small ones (under 25 packets), a slow one
// (40 packets, one every ~50 s: never 30 in a minute) and a short burst (80 packets within
// 60 s: too short).
func (g *gen) backscatter() {
	for i := range g.count(10, len(victimSpecs)) {
		spec := victimSpecs[i%len(victimSpecs)]
		rate := 1 + g.rng.IntN(4)
		gap := time.Second / time.Duration(rate)
		n := int((2*time.Minute + time.Duration(g.rng.Int64N(int64(13*time.Minute)))) / gap)
		g.victim(spec, n, gap, true)
	}
	for range g.count(300, 10) {
		spec := victimSpecs[g.rng.IntN(len(victimSpecs))]
		g.victim(spec, 1+g.rng.IntN(20), 6*time.Second, false)
	}
	g.victim(victimSpec{kSynAck, false}, 40, 50*time.Second, false)
	g.victim(victimSpec{kRstAck, false}, 80, 500*time.Millisecond, false)
}

// victim emits n replies (mean gap apart) from one new victim to random dark addresses:
// 80 % of the main kind (TCP victims mix in the other TCP kinds), and records the attack
// when attack is set.
func (g *gen) victim(spec victimSpec, n int, gap time.Duration, attack bool) {
	victim := g.src(spec.v6)
	routers := []netip.Addr{g.src(spec.v6), g.src(spec.v6)}
	ts := g.spread(n, g.actorStart(time.Duration(n)*gap*3/2), gap)
	counts := map[string]uint64{}
	darks := map[netip.Addr]bool{}
	for _, at := range ts {
		kind := spec.kind
		if _, isTCP := tcpKinds[kind]; isTCP && g.rng.IntN(5) == 0 {
			kind = []string{kSynAck, kRst, kRstAck}[g.rng.IntN(3)]
		}
		dark := g.randDark(spec.v6)
		darks[dark] = true
		counts[kind]++
		if flags, isTCP := tcpKinds[kind]; isTCP {
			g.emit(g.reply(at, victim, dark, flags))
		} else {
			g.emit(g.unreachable(at, routers[g.rng.IntN(2)], dark, victim))
		}
	}
	span := ts[n-1] - ts[0]
	peak := peakPerMinute(ts)
	// One episode (every gap is far below the window), so the rule holds at some packet
	// exactly when it holds at the last one.
	holds := n >= 25 && span >= int64(time.Minute) && peak >= 30
	if holds != attack && g.err == nil {
		g.err = fmt.Errorf("daygen: internal error: victim %s (%d packets over %s, peak %d/min) planted as attack=%v",
			victim, n, time.Duration(span), peak, attack)
	}
	if !attack {
		return
	}
	main := kindOrder[0]
	for _, k := range kindOrder {
		if counts[k] > counts[main] {
			main = k
		}
	}
	g.truth.Backscatter = append(g.truth.Backscatter, Attack{Victim: victim, Kind: main, Packets: uint64(n),
		Targets: uint64(len(darks)), PeakRate: peak, First: tm(ts[0]), Last: tm(ts[n-1])})
}

// peakPerMinute is the largest number of the (sorted) times within any (t-60s, t].
func peakPerMinute(ts []int64) uint64 {
	best, i := 0, 0
	for j := range ts {
		for ts[i] <= ts[j]-int64(time.Minute) {
			i++
		}
		best = max(best, j-i+1)
	}
	return uint64(best)
}
