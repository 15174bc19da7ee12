package daygen

import (
	"time"
)

// commonPorts are ports background radiation favours (telnet excluded: telnet traffic is
// planted separately so the surge baseline stays under control).
var commonPorts = []uint16{445, 22, 80, 8080, 3389, 1433, 5555, 52869, 8545, 37215, 81, 443, 5060,
	123, 53, 1900, 161, 6379, 9200, 2375, 3306, 5900, 8443, 7547, 5000}

func (g *gen) randPort() uint16 {
	if g.rng.IntN(2) == 0 {
		return commonPorts[g.rng.IntN(len(commonPorts))]
	}
	for {
		p := uint16(1 + g.rng.IntN(65535))
		if p != 23 && p != 2323 {
			return p
		}
	}
}

// opaque returns a random UDP payload that is neither KRPC nor uTP (first byte 0xff).
func (g *gen) opaque(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	if n > 0 {
		b[0] = 0xff
	}
	return b
}

// background is the radiation: many sources sending one packet (some a handful) to random
// dark addresses and ports. Each source sticks to one protocol and sends fewer than ten
// probes, so no rule can hold: no scanner (100 probes), no sweep (no telnet), no UDP-then-SYN
// pair (no source mixes UDP and SYN), no fingerprint (plain probes), no backscatter.
func (g *gen) background() {
	g.backgroundN(g.count(110000, 200), 15, 3)
}

// backgroundN plants n background sources; multiPct percent of them send 2 to 1+maxExtra
// probes, the others one.
func (g *gen) backgroundN(n, multiPct, maxExtra int) {
	g.truth.Background += n
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = g.opaque(g.rng.IntN(48))
	}
	for i := range n {
		v6 := g.rng.IntN(10) == 0
		src := g.src(v6)
		k := 1
		if g.rng.IntN(100) < multiPct {
			k = 2 + g.rng.IntN(maxExtra)
		}
		kind := g.rng.IntN(100)
		ts := g.between(g.start, g.end)
		if i == 0 {
			ts = g.start // the day starts with a packet, on a bucket boundary
		}
		for range k {
			dst := g.randDark(v6)
			switch {
			case kind < 70:
				g.emit(g.syn(ts, src, dst, g.randPort(), plain))
			case kind < 92:
				g.emit(g.udp(ts, src, dst, uint16(1024+g.rng.IntN(64512)), g.randPort(), payloads[g.rng.IntN(len(payloads))]))
			default:
				g.emit(g.echo(ts, src, dst))
			}
			ts += g.rng.Int64N(int64(time.Minute))
			if ts >= g.end {
				break
			}
		}
	}
}

// telnetBackground makes the steady telnet baseline: every surge bucket of the day, 4 to 6
// new sources send one SYN to port 23 or 2323.
func (g *gen) telnetBackground() {
	b := int64(surgeBucket)
	for bs := g.start; bs+b <= g.end; bs += b {
		for range 4 + g.rng.IntN(3) {
			g.emit(g.syn(g.between(bs, bs+b), g.src(false), g.randDark(false), telnetPort(g), plain))
		}
	}
}

func telnetPort(g *gen) uint16 {
	if g.rng.IntN(10) == 0 {
		return 2323
	}
	return 23
}

// surge plants a telnet surge in the middle of the day: two buckets with many new telnet
// sources (each one or two plain SYNs, so no sweep and no fingerprint).
func (g *gen) surge() {
	b := int64(surgeBucket)
	g.surgeAt = g.start + (g.end-g.start)/2/b*b
	counts := []int{g.count(150, 60), g.count(100, 45)}
	for i, n := range counts {
		bs := g.surgeAt + int64(i)*b
		for range n {
			src := g.src(false)
			ts := g.between(bs, bs+b)
			g.emit(g.syn(ts, src, g.randDark(false), 23, plain))
			if g.rng.IntN(2) == 0 {
				g.emit(g.syn(g.between(ts, bs+b), src, g.randDark(false), 23, plain))
			}
		}
	}
}
