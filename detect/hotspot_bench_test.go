package detect

import (
	"math/rand/v2"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// BenchmarkHotspotDay times the hotspot detector alone (one worker, every other detector
// off) on windows of packets built beforehand, with most sources sending one packet, a
// crowd of scanners, the busy telnet ports and random others, and SYN probes mixed with
// UDP datagrams and replies. ipv4 is shaped like the generated day at scale 20 in a /23:
// 512 dark addresses that each get about 120 packets a window (each counted as summaries,
// and hot). ipv6-scan is the same with a third of the packets to random addresses of a
// dark /32 (an IPv6 scan: one-packet destinations, spills); ipv6-tenth has four times the
// packets a window, a tenth of them to the /32 (spills in parts of many busy IPv4
// records, which a spill once walked). scanned-16 is shaped like
// bench.sh's SYN file: 17 000 packets a window spread over a dark /16 (light destinations
// of a packet or two, none hot). flood is shaped like its burst: 600 000 SYNs in one window,
// each from a fresh random source to a random port of a /24 (every address hot, thousands
// of ports each, flushed parts).
//
//	go test -run '^$' -bench HotspotDay -count 6 ./detect/
func BenchmarkHotspotDay(b *testing.B) {
	for _, tc := range []struct {
		name     string
		windows  int
		per      int // packets a window
		v6       int // one packet in v6 goes to a random IPv6 address (0: none)
		scan16   bool
		flood    bool
		wantHots bool
	}{
		{"ipv4", 8, 60000, 0, false, false, true},
		{"ipv6-scan", 8, 60000, 3, false, false, true},
		{"ipv6-tenth", 2, 240000, 10, false, false, true},
		{"scanned-16", 24, 17000, 0, true, false, false},
		{"flood", 1, 600000, 0, false, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			px := darkSpace(b, "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "10.64.0.0/16")
			cfg := only(testConfig(b), Hotspot)
			cfg.MaxDestinations = 8192
			win := int64(cfg.Window)
			rng := rand.New(rand.NewPCG(3, 4))
			scanners := make([]packet.Addr, 2000)
			for i := range scanners {
				scanners[i] = packet.AddrFrom4([]byte{45, byte(i >> 8), byte(i), 1})
			}
			ports := []uint16{23, 23, 23, 2323, 80, 445, 22, 8080}
			pkts := make([]packet.Header, tc.windows*tc.per)
			dense := make([]int32, len(pkts))
			ts := t0
			for i := range pkts {
				ts += win / int64(tc.per)
				// Mostly SYN probes, some UDP (a few with a DHT query), some replies: the kinds
				// come in no order, as on the day.
				var p packet.Header
				switch k := rng.IntN(10); {
				case k < 7:
					p = syn("10.0.0.1", "198.51.100.1", 80, ts)
				case k < 9:
					p = udp("10.0.0.1", "198.51.100.1", 80, ts, nil)
					if rng.IntN(4) == 0 {
						p = udp("10.0.0.1", "198.51.100.1", 80, ts, []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
					}
				default:
					p = tcp("10.0.0.1", "198.51.100.1", 0x12, ts)
				}
				if rng.IntN(10) < 3 {
					p.Src = scanners[rng.IntN(len(scanners))]
				} else {
					p.Src = packet.AddrFrom4([]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				}
				p.Dst = packet.AddrFrom4([]byte{198, 51, 100, byte(rng.IntN(256))})
				switch {
				case tc.scan16:
					p.Dst = packet.AddrFrom4([]byte{10, 64, byte(rng.IntN(256)), byte(rng.IntN(256))})
				case rng.IntN(2) == 0:
					p.Dst = packet.AddrFrom4([]byte{203, 0, 113, byte(rng.IntN(256))})
				}
				if rng.IntN(5) < 2 {
					p.DstPort = uint16(1 + rng.IntN(65535))
				} else {
					p.DstPort = ports[rng.IntN(len(ports))]
				}
				if tc.flood {
					// bench.sh's burst: SYNs from fresh random sources to random ports of a
					// /24, more in the window than a part's records (flushes).
					p = syn("10.0.0.1", "198.51.100.1", 80, ts)
					p.Src = packet.AddrFrom4([]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
					p.Dst = packet.AddrFrom4([]byte{203, 0, 113, byte(rng.IntN(256))})
					p.DstPort = uint16(1 + rng.IntN(65535))
				}
				if tc.v6 > 0 && i%tc.v6 == 0 {
					p.Src = addr("2001:db8:ffff::1")
					p.Dst = addr("2001:db8::")
					for k := 4; k < 16; k++ {
						p.Dst[k] = byte(rng.IntN(256))
					}
				}
				pkts[i] = p
				_, dense[i] = px.MatchDst(&p.Dst, p.Dst.Is4())
			}
			// One engine for every round of windows, as in a long run: the arrays it makes
			// in the first round are reused.
			var st SourceState
			sink := &recSink{}
			hs := NewHotspots(1, sink, &Counters{})
			hs.SetConfig(cfg)
			e := NewEngine(cfg, 0, sink, NewSurge(1, sink), &Counters{})
			e.SetHotspots(hs)
			e.SetDenseDsts(px)
			events := 0
			for b.Loop() {
				for i := range pkts {
					e.PacketAt(&pkts[i], &st, dense[i])
				}
				for i := range pkts {
					pkts[i].TS += int64(tc.windows) * win
				}
				events += len(sink.take())
			}
			e.Finish(pkts[len(pkts)-1].TS + win)
			hs.Finish()
			events += len(sink.take())
			if got := events > 0; got != tc.wantHots {
				b.Fatalf("%d hotspot events, want some: %v", events, tc.wantHots)
			}
			if hs.Hist.Sum.Load() == 0 {
				b.Fatal("no packet in the receiver distribution")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(pkts)), "ns/packet")
		})
	}
}

// floodRecs returns n records of SYNs from fresh random sources to one port of ndst
// destinations (dense indexes 0..ndst-1): grouped by destination when grouped, else in
// arrival order (random destinations).
func floodRecs(n, ndst int, grouped bool) []hotRec {
	rng := rand.New(rand.NewPCG(5, 6))
	g := make([]hotRec, n)
	for i := range g {
		id := rng.IntN(ndst)
		if grouped {
			id = i * ndst / n
		}
		g[i] = hotRec{TS: t0 + int64(i), ID: int32(id), Port: 23, Bits: hotBitSYN, Proto: hotTCP,
			Src: packet.AddrFrom4([]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})}
	}
	return g
}

// BenchmarkHotspotFloor measures what counting a busy destination's sources costs a record,
// against issue 9's budget (docs/DESIGN.md, "The cost goals against this design"), on a
// flood's shape: 256 destinations of 1 000 records each in a part, every source new.
// summarize is the workers' count as built (exact per part, the window's sets across
// parts), each destination's records in turn: cold reads them from 8 MiB of records as a
// hand-over does, warm counts one destination's records again and again; big counts a
// part of a flood to one address (256 000 records of one destination), by partitions as
// built or in one table as below hotBigLevel. sketch is one
// HyperLogLog of 1 024 registers per destination (aggregate.HLL) with the records in
// arrival order: the least a count of every destination's sources can cost a record, with
// no top sources and no exact phase. read only reads the records and hashes their sources.
//
//	go test -run '^$' -bench HotspotFloor -count 3 ./detect/
func BenchmarkHotspotFloor(b *testing.B) {
	const per, ndst = 1000, 256
	perRec := func(b *testing.B, n int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
	}
	summarize := func(b *testing.B, g []hotRec, groups int) {
		var hw hotWorker
		hw.cnt.win, hw.wsets.maxKeys = &hw.wsets, 1<<15
		var out []HotSummary
		n := 0
		for b.Loop() {
			// The same parts again: new sources only in a window's first part.
			first := n%6 == 0
			for d := range groups {
				dst := packet.AddrFrom4([]byte{203, 0, 113, byte(d)})
				out = hw.cnt.summarize(out[:0], g[d*per:(d+1)*per], &dst, true)
				if first && out[0].Sources < per*9/10 || out[0].Packets != per {
					b.Fatalf("destination %d: %d sources, %d packets", d, out[0].Sources, out[0].Packets)
				}
			}
			if n++; n%6 == 0 {
				hw.wsets.reset() // a window of six parts
			}
		}
		perRec(b, groups*per)
	}
	b.Run("summarize-cold", func(b *testing.B) { summarize(b, floodRecs(per*ndst, ndst, true), ndst) })
	// A part of a flood to one address: a level past hotBigLevel, counted by partitions
	// (countParts), or in one table as below it.
	big := func(b *testing.B, bigLevel int) {
		defer func(v int) { hotBigLevel = v }(hotBigLevel)
		hotBigLevel = bigLevel
		var hw hotWorker
		hw.cnt.win, hw.wsets.maxKeys = &hw.wsets, 1<<15
		g := floodRecs(per*ndst, 1, true)
		dst := packet.AddrFrom4([]byte{203, 0, 113, 7})
		var out []HotSummary
		for b.Loop() {
			out = hw.cnt.summarize(out[:0], g, &dst, false)
			if out[0].Sources < uint64(len(g))*9/10 || out[0].Packets != uint64(len(g)) {
				b.Fatalf("%d sources, %d packets", out[0].Sources, out[0].Packets)
			}
		}
		perRec(b, len(g))
	}
	b.Run("summarize-big-parts", func(b *testing.B) { big(b, hotBigLevel) })
	b.Run("summarize-big-table", func(b *testing.B) { big(b, 1<<30) })
	b.Run("summarize-warm", func(b *testing.B) { summarize(b, floodRecs(per, 1, true), 1) })
	b.Run("sketch", func(b *testing.B) {
		g := floodRecs(per*ndst, ndst, false)
		sk := make([]*aggregate.HLL, ndst)
		for i := range sk {
			sk[i] = aggregate.NewHLL(10)
		}
		for b.Loop() {
			for i := range g {
				sk[g[i].ID].AddHash(g[i].Src.Hash(seedHotSrc))
			}
		}
		if est := sk[0].Estimate(); est < per/2 {
			b.Fatalf("destination 0: %d sources estimated", est)
		}
		perRec(b, len(g))
	})
	b.Run("read", func(b *testing.B) {
		g := floodRecs(per*ndst, ndst, false)
		var sum uint64
		for b.Loop() {
			for i := range g {
				sum += g[i].Src.Hash(seedHotSrc)
			}
		}
		if sum == 0 {
			b.Fatal("no hash")
		}
		perRec(b, len(g))
	})
}
