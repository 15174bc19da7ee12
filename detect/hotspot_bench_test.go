package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// BenchmarkHotspotPacket measures the hotspot detector's packet path alone (one engine, the
// other detectors off, destinations in a dense /16): "light", random sources to random
// destinations, about one packet per destination and window (a SYN-dominated telescope);
// "heavy", random sources to 64 destinations (hot receivers, full counts).
func BenchmarkHotspotPacket(b *testing.B) {
	for _, tc := range []struct {
		name string
		dsts int
	}{{"light", 1 << 16}, {"heavy", 64}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := only(testConfig(b), Hotspot)
			h := newHarness(b, cfg)
			hs := NewHotspots(1, h.sink, h.c)
			hs.SetConfig(cfg)
			h.e.SetHotspots(hs)
			px, err := aggregate.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.0.0/16")}, aggregate.NewPrefixSlots())
			if err != nil {
				b.Fatal(err)
			}
			h.e.SetDenseDsts(px)
			rng := rand.New(rand.NewPCG(1, 2))
			// Sources and destinations read in order (the harness stays out of the way).
			type pair struct {
				src, dst packet.Addr
				dense    int32
			}
			pairs := make([]pair, 1<<18)
			for i := range pairs {
				p := &pairs[i]
				p.src, p.dst = addr(ip4("100.64.0.0", int(rng.Uint32()>>8))), addr(ip4("203.0.0.0", rng.IntN(tc.dsts)))
				_, p.dense = px.MatchDst(&p.dst, true)
			}
			p := syn("100.64.0.1", "203.0.0.1", 23, 0)
			// One window per 1<<16 packets.
			step := int64(cfg.Window) >> 16
			var st SourceState
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				pr := &pairs[n&(len(pairs)-1)]
				p.Src, p.Dst, p.TS = pr.src, pr.dst, t0+int64(n)*step
				h.e.PacketAt(&p, &st, pr.dense)
			}
		})
	}
}
