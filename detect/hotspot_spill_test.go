package detect

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// TestDenseNeverSpilled: a destination with a dense index is never found spilled, even
// with every bit of the filter of spilled destinations set (they are not capped, so never
// spilled: a hashed bit would make them look spilled, their counts estimated), while each
// marked destination without one is found.
func TestDenseNeverSpilled(t *testing.T) {
	hw := hotWorker{ndense: 1 << 16}
	for i := range 1000 {
		a := packet.AddrFrom4([]byte{10, 0, byte(i >> 8), byte(i)})
		hw.dsts, hw.dhash = append(hw.dsts, a), append(hw.dhash, a.Hash(seedDstIP))
		markBit(&hw.back, hw.spillBit(hw.ndense+int32(i)))
	}
	for i := range hw.dsts {
		if !hw.spilled(hw.ndense + int32(i)) {
			t.Fatalf("destination %d without a dense index not found spilled", i)
		}
	}
	for i := range hw.back {
		hw.back[i] = ^uint64(0)
	}
	for ix := range hw.ndense {
		if hw.spilled(ix) {
			t.Fatalf("dense destination %d found spilled", ix)
		}
	}
}

// TestHotCounterExact counts random destinations' records (a few sources sending many
// packets among many sending one, random ports or all to one port, every kind) with one
// counter, whose scratch tables must be left empty from one destination to the next, and
// checks every summary against a count made with maps: packets, kinds, first and last,
// distinct sources, the two busiest ports and the top sources (most packets, then the
// lowest hash; listed in topLess's order). Each level is counted in one table (as below
// hotBigLevel), then by partitions (countParts: of a few records each, so that there are
// many; and one of all), with the same counter.
func TestHotCounterExact(t *testing.T) {
	defer func(big, part int) { hotBigLevel, hotPartRecs = big, part }(hotBigLevel, hotPartRecs)
	for _, mode := range []struct{ big, part int }{{1 << 30, hotPartRecs}, {64, 16}, {0, 1 << 20}} {
		hotBigLevel, hotPartRecs = mode.big, mode.part
		t.Run(fmt.Sprintf("big=%d,part=%d", mode.big, mode.part), testHotCounterExact)
	}
}

func testHotCounterExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	var hc hotCounter
	dst := packet.AddrFrom4([]byte{203, 0, 113, 7})
	for round := range 200 {
		n := 3 + rng.IntN(3000)
		if round%10 == 0 {
			n = 3 + rng.IntN(8)
		}
		heavy := rng.IntN(6)
		g := make([]hotRec, n)
		for i := range g {
			r := &g[i]
			r.TS = int64(rng.IntN(1 << 30))
			k := rng.IntN(1 << 20)
			if rng.IntN(3) == 0 {
				k = rng.IntN(heavy + 1) // a busy sender
			}
			r.Src = packet.AddrFrom4([]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
			r.Port = uint16(rng.IntN(6)) // 0: no port level
			if rng.IntN(4) == 0 {
				r.Port = uint16(rng.IntN(65536))
			}
			switch round % 5 {
			case 1: // every record to one port: the port's level is the address's
				r.Port = 23
			case 2: // one port and records without one
				r.Port = 23 * uint16(rng.IntN(10)/9^1)
			}
			r.Bits = uint8(rng.IntN(1 << 5))
			r.Proto = uint8(1 << rng.IntN(5))
		}
		out := hc.summarize(nil, g, &dst, round%7 == 0)
		// The ports by packets, then first seen.
		type pc struct {
			port  uint16
			n     int
			first int
		}
		var ports []pc
		at := map[uint16]int{}
		for i, r := range g {
			if r.Port == 0 {
				continue
			}
			if j, ok := at[r.Port]; ok {
				ports[j].n++
				continue
			}
			at[r.Port] = len(ports)
			ports = append(ports, pc{r.Port, 1, i})
		}
		slices.SortFunc(ports, func(a, b pc) int {
			if a.n != b.n {
				return b.n - a.n
			}
			return a.first - b.first
		})
		want := []uint16{0}
		for _, p := range ports[:min(len(ports), hotPorts)] {
			want = append(want, p.port)
		}
		if len(out) != len(want) {
			t.Fatalf("round %d: %d summaries, want %d", round, len(out), len(want))
		}
		for k, port := range want {
			s := out[k]
			var w HotSummary
			w.Dst, w.Port, w.Estimated, w.First, w.Last = dst, port, round%7 == 0, 1<<62, -1
			count := map[packet.Addr]uint64{}
			for _, r := range g {
				if port != 0 && r.Port != port {
					continue
				}
				w.Packets++
				w.First, w.Last = min(w.First, r.TS), max(w.Last, r.TS)
				w.Protos |= r.Proto
				w.SYN += uint64(r.Bits & hotBitSYN)
				if r.Bits&hotBitUDP != 0 {
					w.UDP++
					if r.Bits&hotBitP2P != 0 {
						w.P2P++
					}
				}
				if r.Bits&hotBitReply != 0 {
					w.Replies++
				}
				if r.Bits&hotBitPair != 0 {
					w.Pairs++
				}
				count[r.Src]++
			}
			w.Sources = uint64(len(count))
			var top []hotSrc
			for src, c := range count {
				top = append(top, hotSrc{Src: src, Packets: c})
			}
			// The most packets, then the lowest hash (the same list whatever the workers
			// the sources are split among; a worker kept the first seen before).
			slices.SortFunc(top, func(a, b hotSrc) int {
				if a.Packets != b.Packets {
					return int(b.Packets) - int(a.Packets)
				}
				return cmp.Compare(hotRank(&a.Src), hotRank(&b.Src))
			})
			w.NTop = uint8(copy(w.Top[:], top))
			slices.SortFunc(w.Top[:w.NTop], topCmp)
			if s != w {
				t.Fatalf("round %d, port %d:\n got %+v\nwant %+v", round, port, s, w)
			}
		}
	}
}

// sharedHot returns two engines sharing a Hotspots (events to sink) over the dark space px.
func sharedHot(t testing.TB, cfg *Config, sink Sink, px *aggregate.Prefixes) (*Hotspots, []*harness) {
	hs := NewHotspots(2, sink, &Counters{})
	hs.SetConfig(cfg)
	engines := make([]*harness, 2)
	for w := range engines {
		h := newHarness(t, cfg)
		h.e = NewEngine(cfg, w, h.sink, h.surge, h.c)
		h.e.SetHotspots(hs)
		h.e.SetDenseDsts(px)
		engines[w] = h
	}
	return hs, engines
}

// packetTo gives the harness's engine packet p with its dense index in px.
func (h *harness) packetTo(p *packet.Header, px *aggregate.Prefixes) {
	_, ix := px.MatchDst(&p.Dst, true)
	st, _ := h.srcs.Touch(p.Src)
	h.e.PacketAt(p, st, ix)
}

// restoreHot saves hs, restores it into a new Hotspots and attaches the engines to that.
// It also checks that SaveState releases the workers (held) only with the lock taken, so
// that no hand-over slips into the copy, and that saving leaves the state as it was
// (a second save writes the same bytes).
func restoreHot(t *testing.T, hs *Hotspots, cfg *Config, sink Sink, engines []*harness) *Hotspots {
	t.Helper()
	var enc, again checkpoint.Encoder
	heldLocked := false
	hs.SaveState(&enc, func() {
		if heldLocked = !hs.mu.TryLock(); !heldLocked {
			hs.mu.Unlock()
		}
	})
	if !heldLocked {
		t.Fatal("SaveState released the workers before taking its lock")
	}
	hs.SaveState(&again, nil)
	if !bytes.Equal(enc.Bytes(), again.Bytes()) {
		t.Fatalf("a second save differs: %d bytes, then %d", enc.Size(), again.Size())
	}
	hs2 := NewHotspots(len(engines), sink, &Counters{})
	hs2.SetConfig(cfg)
	d := checkpoint.NewDecoder(enc.Bytes())
	if !hs2.LoadState(d) || d.Done() != nil {
		t.Fatalf("restore: %v", d.Done())
	}
	for _, h := range engines {
		h.e.SetHotspots(hs2)
	}
	return hs2
}

// lightShare is two engines sharing a Hotspots over a dark space, with min_sources 62,
// and the time of the last packet sent.
type lightShare struct {
	cfg     *Config
	sink    *recSink
	hs      *Hotspots
	engines []*harness
	px      *aggregate.Prefixes
	step    int64
	ts      int64
}

func newLightShare(t *testing.T, px *aggregate.Prefixes, step int64) *lightShare {
	cfg := only(testConfig(t), Hotspot)
	cfg.Hotspot.MinSources = 62
	ls := &lightShare{cfg: cfg, sink: &recSink{}, px: px, step: step, ts: t0}
	ls.hs, ls.engines = sharedHot(t, cfg, ls.sink, px)
	return ls
}

// send gives worker w a SYN probe from src to dst port 80, step after the last packet.
func (ls *lightShare) send(w int, src, dst string) {
	ls.ts += ls.step
	p := syn(src, dst, 80, ls.ts)
	ls.engines[w].packetTo(&p, ls.px)
}

// TestHotspotLightDenseShare: a dark IPv4 destination to which one worker counts 60
// packets from one-packet sources, fewer than min_sources (62), and another worker 2
// (both handed over as their records, light, not counted by the worker) is found hot with
// exactly the 62 sources of both: its packets over the workers make it a candidate, and
// the shares are counted from the records. The same with the shared counts saved and
// restored between the two workers' hand-overs, either worker's first: saved, the light
// share of 2 comes back as a light cell, that of 60 as a heavy cell and its summaries. The
// receiver distribution counts every destination once.
func TestHotspotLightDenseShare(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	for _, tc := range []struct {
		restore bool
		first   int // the worker handing over first
	}{{false, 1}, {true, 1}, {true, 0}} {
		ls := newLightShare(t, px, sec/100)
		cfg, sink, hs, engines, send := ls.cfg, ls.sink, ls.hs, ls.engines, ls.send
		for i := range 60 {
			send(0, ip4("10.0.0.0", i), "198.51.100.5")
		}
		send(0, "10.1.0.1", "198.51.100.6")
		send(1, "10.2.0.1", "198.51.100.5")
		send(1, "10.2.0.2", "198.51.100.5")
		send(1, "10.2.0.3", "198.51.100.6")
		for i := range 50 {
			send(1, "10.2.0.4", ip4("198.51.100.100", i))
		}
		engines[tc.first].e.Finish(ls.ts + sec)
		if tc.restore {
			hs = restoreHot(t, hs, cfg, sink, engines)
		}
		engines[1-tc.first].e.Finish(ls.ts + sec)
		hs.Finish()
		hot := hotStarts(sink.take())
		if len(hot) != 1 || hot[0].Dst != "198.51.100.5" || hot[0].Sources != 62 || hot[0].SourcesEstimated || hot[0].Packets != 62 {
			t.Fatalf("%+v: hotspot episodes %+v, want one of 198.51.100.5 with 62 sources and packets", tc, hot)
		}
		if n, p := hs.Hist.Count.Load(), hs.Hist.Sum.Load(); n != 52 || p != 114 {
			t.Errorf("%+v: receiver distribution of %d destinations, %d packets; want 52, 114", tc, n, p)
		}
	}
}

// TestHotspotLightDenseBounded: light destinations with a dense index are not capped by
// max_destinations in a worker's part (70 000 one-packet destinations, with a cap of 4),
// and the shared counts keep at most the records' cap of them per worker and window (65 536
// here, which also ends the part early): past it the worker counts the rest itself, as
// heavy (their summaries and one cell per address, bounded), so the 4 464 it hands over at
// the window's end are merged in the receiver distribution like the others (they used to
// be counted there on their own, unmerged, and to leave the hotspot counts), and another
// worker's 100 destinations among the first 65 536 with them. The same when the first
// hand-overs are saved (as cells, in arrays of at most twice max_destinations) and restored
// before the last.
func TestHotspotLightDenseBounded(t *testing.T) {
	px := darkSpace(t, "10.0.0.0/15")
	for _, restore := range []bool{false, true} {
		for _, engine := range []bool{false, true} {
			cfg := only(testConfig(t), Hotspot)
			cfg.MaxDestinations = 4 // cells: 8 per worker and window; records: 65 536
			sink := &recSink{}
			hs, engines := sharedHot(t, cfg, sink, px)
			ts := t0
			send := func(w, i int) {
				ts += sec / 1000000
				p := syn(ip4("172.16.0.0", w), "10.0.0.0", 80, ts)
				p.Dst = packet.AddrFrom4([]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				engines[w].packetTo(&p, px)
			}
			for i := range 100 {
				send(1, 2000+i)
			}
			for i := range 70000 {
				send(0, i)
				if engine && i == 66000 {
					// Worker 0 restarts after its first hand-over: its count of light
					// destinations handed over goes with its state.
					var enc checkpoint.Encoder
					engines[0].e.SaveHotState(&enc)
					d := checkpoint.NewDecoder(enc.Bytes())
					if engines[0].e.LoadHotState(d); d.Done() != nil {
						t.Fatalf("restore the engine: %v", d.Done())
					}
				}
			}
			engines[1].e.Finish(ts + sec)
			if restore {
				hs = restoreHot(t, hs, cfg, sink, engines)
			}
			engines[0].e.Finish(ts + sec)
			hs.Finish()
			if n, p, u := hs.Hist.Count.Load(), hs.Hist.Sum.Load(), hs.Unmerged.Load(); n != 70000 || p != 70100 || u != 0 {
				t.Errorf("restore %v, engine restored %v: receiver distribution of %d destinations, %d packets, %d unmerged; want 70 000, 70 100, 0",
					restore, engine, n, p, u)
			}
		}
	}
}

// TestHotIndexGrows: an index reset for a few keys takes many more (candidates adds a key
// per port of each candidate destination, more than it reserves: a full index probed
// forever) and finds each at its position.
func TestHotIndexGrows(t *testing.T) {
	x := hotIndex[packet.Addr]{hash: hashHotAddr}
	x.reset(16)
	for i := range 5000 {
		a := packet.AddrFrom4([]byte{10, 0, byte(i >> 8), byte(i)})
		if pos, isNew := x.get(&a, true); pos != int32(i) || !isNew {
			t.Fatalf("key %d added at %d (new %v)", i, pos, isNew)
		}
	}
	for i := range 5000 {
		a := packet.AddrFrom4([]byte{10, 0, byte(i >> 8), byte(i)})
		if pos, _ := x.get(&a, false); pos != int32(i) {
			t.Fatalf("key %d found at %d", i, pos)
		}
	}
	if a := packet.AddrFrom4([]byte{10, 1, 0, 0}); func() bool { pos, _ := x.get(&a, false); return pos != -1 }() {
		t.Fatal("a key never added was found")
	}
}

// TestHotspotDenseCountedAcrossSpills: a busy dark IPv4 destination's packets, counted at
// the hand-overs rather than as they come (countDense), are counted once each across the
// spills of the light IPv6 destinations that share its part (the records move at each spill)
// and across a save and restore of the worker's part in the middle: one episode of exactly
// its 300 sources and packets, not estimated, and a receiver distribution of every
// destination and packet.
func TestHotspotDenseCountedAcrossSpills(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24", "2001:db8::/32")
	for _, restore := range []bool{false, true} {
		cfg := only(testConfig(t), Hotspot)
		cfg.MaxDestinations = 8 // a spill every few IPv6 destinations
		cfg.Hotspot.MinSources = 300
		sink := &recSink{}
		hs, engines := sharedHot(t, cfg, sink, px)
		h := engines[0]
		ts := t0
		for i := range 300 {
			ts += sec / 1000
			p := syn(ip4("10.0.0.0", i), "198.51.100.7", 80, ts)
			h.packetTo(&p, px)
			q := syn("2001:db8:ffff::1", "2001:db8::1", 80, ts)
			q.Dst = addr(fmt.Sprintf("2001:db8::%x", i+1))
			_, ix := px.MatchDst(&q.Dst, false)
			st, _ := h.srcs.Touch(q.Src)
			h.e.PacketAt(&q, st, ix)
			if restore && i == 150 {
				var enc checkpoint.Encoder
				h.e.SaveHotState(&enc)
				d := checkpoint.NewDecoder(enc.Bytes())
				if h.e.LoadHotState(d); d.Done() != nil {
					t.Fatalf("restore: %v", d.Done())
				}
			}
		}
		engines[1].e.Finish(ts + sec)
		h.e.Finish(ts + sec)
		hs.Finish()
		hot := hotStarts(sink.take())
		if len(hot) != 1 || hot[0].Dst != "198.51.100.7" || hot[0].Sources != 300 || hot[0].Packets != 300 || hot[0].SourcesEstimated {
			t.Fatalf("restore %v: hotspot episodes %+v, want one of 198.51.100.7 with 300 sources and packets", restore, hot)
		}
		if n, p := hs.Hist.Count.Load(), hs.Hist.Sum.Load(); n != 301 || p != 600 {
			t.Errorf("restore %v: receiver distribution of %d destinations, %d packets; want 301, 600", restore, n, p)
		}
	}
}

// TestHotspotArraysReused: once warm, windows with spills (an IPv6 scan's one-packet
// destinations past max_destinations, beside busy dark IPv4 addresses) allocate less than
// a cell array of max_destinations cells per window: the arrays handed over come back
// (Hotspots keeps enough of them), a new one is as large as the one it replaces, the
// filter of spilled destinations is kept. (Made anew at most hand-overs, they were fresh
// memory: page faults, system time; 1 MB a window here.)
func TestHotspotArraysReused(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24", "2001:db8::/32")
	cfg := only(testConfig(t), Hotspot)
	cfg.MaxDestinations = 64 // a spill every 48 or so IPv6 destinations
	cfg.Hotspot.MinSources = 1 << 20
	hs, engines := sharedHot(t, cfg, &recSink{}, px)
	win := int64(cfg.Window)
	// The packets are built first: the test's own allocations are not counted.
	const windows, per = 26, 2000
	pkts := make([]packet.Header, 0, windows*per)
	ts := t0
	for n := range windows * per {
		ts += win / per
		p := syn(ip4("10.0.0.0", n%500), ip4("198.51.100.0", n%200), 80, ts)
		if n%3 == 0 {
			p.Src = addr("2001:db8:ffff::1")
			p.Src[15] = byte(n % 2) // each worker's own scanner
			p.Dst = addr("2001:db8::")
			binary.BigEndian.PutUint32(p.Dst[12:], uint32(n))
		}
		pkts = append(pkts, p)
	}
	next := 0
	window := func() {
		for range per {
			engines[next%2].packetTo(&pkts[next], px)
			next++
		}
	}
	for range 6 {
		window()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range windows - 6 {
		window()
	}
	runtime.ReadMemStats(&after)
	limit := uint64(engines[0].e.hot.cap) * uint64(unsafe.Sizeof(hotCell{}))
	got := (after.TotalAlloc - before.TotalAlloc) / (windows - 6)
	t.Logf("%d bytes allocated per window once warm (a cell array: %d)", got, limit)
	if got >= limit {
		t.Errorf("%d bytes allocated per window once warm, want fewer than a cell array's %d", got, limit)
	}
	for _, h := range engines {
		h.e.Finish(ts + win)
	}
	hs.Finish()
	if got, want := hs.Hist.Sum.Load(), uint64(windows*per); got != want {
		t.Errorf("receiver distribution of %d packets, want %d", got, want)
	}
}

// TestHotspotLightBothWays: a worker hands its light destinations' records over as its
// whole part when they are most of it, grouped when a busy destination's records are
// (handOver); either way a light destination whose packets over the workers make it a
// candidate is counted exactly from its records: 60 one-packet sources at one worker and 2
// at the other, min_sources 62, beside 0 or 300 packets from other sources to a busy dark
// address at the first worker (hot too, then). The same with the shared counts saved and
// restored between the hand-overs.
func TestHotspotLightBothWays(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	for _, busy := range []int{0, 300} {
		for _, restore := range []bool{false, true} {
			ls := newLightShare(t, px, sec/1000)
			cfg, sink, hs, engines, send := ls.cfg, ls.sink, ls.hs, ls.engines, ls.send
			for i := range 60 {
				send(0, ip4("10.0.0.0", i), "198.51.100.5")
				for j := range busy / 60 {
					send(0, ip4("10.1.0.0", i*8+j), "198.51.100.9")
				}
			}
			send(1, "10.2.0.1", "198.51.100.5")
			send(1, "10.2.0.2", "198.51.100.5")
			if got := engines[0].e.hot.light.grouped; got {
				t.Fatalf("busy %d: light records grouped before any hand-over", busy)
			}
			engines[0].e.Finish(ls.ts + sec)
			if got, want := engines[0].e.hot.light.grouped, busy > 0; got != want {
				t.Errorf("busy %d: light records grouped %v, want %v", busy, got, want)
			}
			if restore {
				hs = restoreHot(t, hs, cfg, sink, engines)
			}
			engines[1].e.Finish(ls.ts + sec)
			hs.Finish()
			hot := hotStarts(sink.take())
			var found *HotspotEntry
			for _, h := range hot {
				if h.Dst == "198.51.100.5" {
					found = h
				}
			}
			if found == nil || found.Sources != 62 || found.Packets != 62 || found.SourcesEstimated || len(hot) != 1+min(busy, 1) {
				var got []string
				for _, h := range hot {
					got = append(got, fmt.Sprintf("%s: %d sources, %d packets", h.Dst, h.Sources, h.Packets))
				}
				t.Fatalf("busy %d restore %v: hotspot episodes %q, want 198.51.100.5 with 62 sources and packets (and the busy one)",
					busy, restore, got)
			}
		}
	}
}

// topCmp is topLess as a comparison, for the generic sorts of the tests' expected lists.
func topCmp(x, y hotSrc) int {
	switch {
	case topLess(&x, &y):
		return -1
	case topLess(&y, &x):
		return 1
	}
	return 0
}

// TestHotTopRerank: a top list restored from an older release's checkpoint, whose sources
// with as many packets are in address order, is put in topLess's order (by hash), which
// addTop's merges expect.
func TestHotTopRerank(t *testing.T) {
	var a HotSummary
	for i := range hotTop {
		a.Top[i] = hotSrc{Src: packet.AddrFromNetip(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})), Packets: 7}
	}
	a.Top[0].Packets = 9
	a.NTop = hotTop
	want := slices.Clone(a.Top[:])
	slices.SortFunc(want, func(x, y hotSrc) int {
		if x.Packets != y.Packets {
			return cmp.Compare(y.Packets, x.Packets)
		}
		return cmp.Compare(hotRank(&x.Src), hotRank(&y.Src))
	})
	if slices.Equal(want, a.Top[:]) {
		t.Fatal("the addresses are in hash order already: the test shows nothing")
	}
	a.rerank()
	if !slices.Equal(want, a.Top[:]) {
		t.Errorf("reranked %v, want %v", a.Top, want)
	}
}

// TestHotTopMerge merges random top lists (sources from a small pool of both families, so
// that lists share sources and tie on packets) and checks addTop, which moves the one
// source it adds or grows into place, against the same merge sorting the whole list after
// each change.
func TestHotTopMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	pool := make([]packet.Addr, 12)
	for i := range pool {
		if i%3 == 0 {
			pool[i] = packet.AddrFromNetip(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}))
		} else {
			pool[i] = packet.AddrFrom4([]byte{198, 51, 100, byte(255 - i)})
		}
	}
	list := func() []hotSrc {
		var l []hotSrc
		for _, k := range rng.Perm(len(pool))[:rng.IntN(hotTop+1)] {
			p := uint64(1 + rng.IntN(4))
			l = append(l, hotSrc{Src: pool[k], Packets: p, Err: uint64(rng.IntN(int(p)))})
		}
		slices.SortFunc(l, topCmp)
		return l
	}
	for round := range 2000 {
		var got, want HotSummary
		for range 1 + rng.IntN(6) {
			l := list()
			got.addTop(l)
			for _, s := range l { // the reference: a whole sort after each change
				i := slices.IndexFunc(want.Top[:want.NTop], func(x hotSrc) bool { return x.Src == s.Src })
				switch {
				case i >= 0:
					want.Top[i].Packets += s.Packets
					want.Top[i].Err += s.Err
				case want.NTop < hotTop:
					want.Top[want.NTop] = s
					want.NTop++
				case topCmp(s, want.Top[hotTop-1]) < 0:
					want.Top[hotTop-1] = s
				}
				slices.SortFunc(want.Top[:want.NTop], topCmp)
			}
		}
		if got.NTop != want.NTop || got.Top != want.Top {
			t.Fatalf("round %d:\n got %v\nwant %v", round, got.Top[:got.NTop], want.Top[:want.NTop])
		}
	}
}

// hotOnly returns two engines counting only hotspots over px, with min_sources, their
// shared side and its sink.
func hotOnly(t testing.TB, px *aggregate.Prefixes, minSources int) (*Hotspots, []*harness, *recSink) {
	cfg := only(testConfig(t), Hotspot)
	cfg.Hotspot.MinSources = minSources
	sink := &recSink{}
	hs, engines := sharedHot(t, cfg, sink, px)
	return hs, engines, sink
}

// finishHot ends the input of every engine and of hs at `at` and returns the hotspot
// episodes started.
func finishHot(hs *Hotspots, engines []*harness, sink *recSink, at int64) []*HotspotEntry {
	for _, h := range engines {
		h.e.Finish(at)
	}
	hs.Finish()
	return hotStarts(sink.take())
}

// TestHotspotPairInEitherArray: a SYN probe that pairs with an earlier UDP datagram marks
// its own record, whichever of the part's two arrays holds it (a dark IPv4 address's, with
// a dense index, or an IPv6 address's), with the other array's last record a packet of
// another source: each receiver is a p2p hotspot (with its pairs unmarked it would be a
// syn_flood: half its packets SYNs, two from each source).
func TestHotspotPairInEitherArray(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24", "2001:db8::/32")
	for _, dst := range []string{"198.51.100.9", "2001:db8::9"} {
		cfg := only(testConfig(t), Hotspot, UDPThenSYN)
		sink := &recSink{}
		hs, engines := sharedHot(t, cfg, sink, px)
		h := engines[0]
		ts := t0
		for i := range 120 {
			src := ip4("10.0.0.0", i)
			ts += sec / 100
			u := udp(src, dst, 6881, ts, nil)
			h.packetTo(&u, px)
			// Filler in both arrays, from other sources, between the datagram and the probe.
			f4 := syn(ip4("10.1.0.0", i), "198.51.100.200", 80, ts+1)
			h.packetTo(&f4, px)
			f6 := syn(ip4("10.2.0.0", i), "2001:db8::200", 80, ts+2)
			h.packetTo(&f6, px)
			s := syn(src, dst, 6881, ts+sec/200)
			h.packetTo(&s, px)
		}
		var got []string
		ok := true
		for _, e := range finishHot(hs, engines, sink, ts+sec) {
			if e.Dst == dst {
				got = append(got, fmt.Sprintf("port %d %s %d sources", e.Port, e.Class, e.Sources))
				ok = ok && e.Class == "p2p" && e.Sources == 120
			}
		}
		if len(got) == 0 || !ok {
			t.Errorf("%s: hotspot episodes %q, want p2p ones with 120 sources", dst, got)
		}
	}
}

// TestHotspotPartsCountSourcesOnce: a window a worker hands over in three parts (hotFlush:
// its records filled up) counts each source once, not once per part in which it sends:
//   - 150 sources that send in every part (BitTorrent peers retrying a receiver): 150,
//     exact (the sum of the parts was 450);
//   - 1 000 and 5 000 such sources: within 7 % (two standard errors of the window's set,
//     a sketch past 192 sources), not 3 000 or 15 000;
//   - 2 000 new sources in each part (a spoofed flood): 6 000, the parts' exact sum.
//
// All are labelled estimated (a window in parts).
func TestHotspotPartsCountSourcesOnce(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	for _, tc := range []struct {
		name     string
		per      int  // sources a part
		fresh    bool // new sources in each part, else the same ones
		lo, hi   uint64
		wantSrcs string
	}{
		{"peers", 150, false, 150, 150, "150"},
		{"more peers", 1000, false, 930, 1070, "1000 ± 7 %"},
		{"crowd", 5000, false, 4650, 5350, "5000 ± 7 %"},
		{"flood", 2000, true, 6000, 6000, "6000"},
	} {
		for _, restore := range []bool{false, true} {
			hs, engines, sink := hotOnly(t, px, 100)
			h := engines[0]
			ts := t0
			for part := range 3 {
				if restore && part > 0 {
					// A checkpoint between the parts: the sets go with it.
					var enc checkpoint.Encoder
					h.e.SaveHotState(&enc)
					d := checkpoint.NewDecoder(enc.Bytes())
					if h.e.LoadHotState(d); d.Done() != nil {
						t.Fatalf("%s: restore: %v", tc.name, d.Done())
					}
				}
				for i := range tc.per {
					n := i
					if tc.fresh {
						n += part * tc.per
					}
					ts += sec / 1000
					p := syn(ip4("10.0.0.0", n), "198.51.100.7", 80, ts)
					h.packetTo(&p, px)
				}
				h.e.hotFlush()
			}
			var got []string
			ok := false
			for _, e := range finishHot(hs, engines, sink, ts+sec) {
				got = append(got, fmt.Sprintf("%s port %d: %d sources (estimated %v), %d packets", e.Dst, e.Port, e.Sources, e.SourcesEstimated, e.Packets))
				ok = e.Dst == "198.51.100.7" && e.Sources >= tc.lo && e.Sources <= tc.hi && e.SourcesEstimated &&
					e.Packets == uint64(3*tc.per) && len(got) == 1
			}
			if !ok {
				t.Errorf("%s, restored between parts %v: hotspot episodes %q, want one of 198.51.100.7 with %s sources (estimated), %d packets", tc.name, restore, got, tc.wantSrcs, 3*tc.per)
			}
		}
	}
}

// TestHotWinSetsBounded: a worker's sets of a window's sources hold at most maxKeys levels
// (a level past them keeps its parts' sum: ok=false), each at most 2 KiB of the slab
// (exact up to 192 sources, then a 1 KiB sketch), and reset empties them for the next
// window, their blocks back in the slab.
func TestHotWinSetsBounded(t *testing.T) {
	ws := hotWinSets{maxKeys: 4}
	xs := make([]uint64, 1000)
	for i := range xs {
		xs[i] = packet.Mix64(uint64(i)) | 1
	}
	for round := range 2 {
		for k := range 6 {
			key := hotKey{packet.AddrFrom4([]byte{198, 51, 100, byte(k)}), 80}
			n, ok := ws.gained(key, xs[:100+k*150])
			if ok != (k < 4) || ok && n != uint64(100+k*150) {
				t.Fatalf("round %d, level %d: gained %d, ok %v; want %d, %v", round, k, n, ok, 100+k*150, k < 4)
			}
		}
		if len(ws.sets) != 4 {
			t.Fatalf("round %d: %d sets, want 4", round, len(ws.sets))
		}
		for i := range ws.sets {
			if b := ws.sets[i].d.Bytes(); b > 2048 {
				t.Fatalf("round %d: set %d holds %d bytes of the slab", round, i, b)
			}
		}
		ws.reset()
		if len(ws.sets) != 0 || len(ws.idx) != 0 || ws.slab.Big != 0 {
			t.Fatalf("round %d: after reset %d sets, %d keys, %d big words", round, len(ws.sets), len(ws.idx), ws.slab.Big)
		}
	}
}

// TestHotspotLightPartsCountSourcesOnce: in a window a worker hands over in ten parts, a
// destination that gets one packet from each of the same two sources in every part (a
// light part: at most two packets, counted on the shared side) has 2 sources, not 20, and
// is no hotspot with min_sources 10 (the parts' sum made it one); one that gets two new
// sources a part has 20 and is.
func TestHotspotLightPartsCountSourcesOnce(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	hs, engines, sink := hotOnly(t, px, 10)
	h := engines[0]
	ts := t0
	for part := range 10 {
		for i := range 2 {
			ts += sec / 1000
			same := syn(ip4("10.0.0.0", i), "198.51.100.9", 80, ts)
			h.packetTo(&same, px)
			fresh := syn(ip4("10.1.0.0", 2*part+i), "198.51.100.10", 80, ts)
			h.packetTo(&fresh, px)
		}
		h.e.hotFlush()
	}
	var got []string
	for _, e := range finishHot(hs, engines, sink, ts+sec) {
		got = append(got, fmt.Sprintf("%s port %d: %d sources, %d packets", e.Dst, e.Port, e.Sources, e.Packets))
	}
	if len(got) != 1 || got[0] != "198.51.100.10 port 80: 20 sources, 20 packets" {
		t.Errorf("hotspot episodes %q, want only 198.51.100.10 port 80 with 20 sources and packets", got)
	}
}

// TestCheckWinSets: a checkpoint's window source sets are refused when inconsistent, each
// with its reason.
func TestCheckWinSets(t *testing.T) {
	var slab aggregate.Slab
	k1 := hotKey{packet.AddrFrom4([]byte{198, 51, 100, 7}), 80}
	k2 := hotKey{packet.AddrFrom4([]byte{198, 51, 100, 8}), 0}
	var good hotWinSet
	for i := range uint64(10) {
		good.d.Add(&slab, packet.Mix64(i+1))
	}
	good.sum, good.reported = 12, 10
	badRef := good
	badRef.d.Ref += 1 << 20
	for _, tc := range []struct {
		name string
		keys []hotKey
		sets []hotWinSet
		open bool
		want string
	}{
		{"ok", []hotKey{k1, k2}, []hotWinSet{good, good}, true, ""},
		{"none closed", nil, nil, false, ""},
		{"lengths", []hotKey{k1}, []hotWinSet{good, good}, true, "2 source sets for 1 levels"},
		{"closed", []hotKey{k1}, []hotWinSet{good}, false, "1 source sets without an open window"},
		{"twice", []hotKey{k1, k1}, []hotWinSet{good, good}, true, "source set of 198.51.100.7 port 80 twice"},
		{"reported", []hotKey{k1}, []hotWinSet{{d: good.d, sum: 3, reported: 4}}, true, "source set of 198.51.100.7 port 80 reported 4 of a sum of 3"},
		{"block", []hotKey{k2}, []hotWinSet{badRef}, true, "source set of 198.51.100.8 port 0: distinct: slab: block"},
	} {
		idx, err := checkWinSets(tc.keys, tc.sets, &slab, tc.open)
		if err == nil && len(idx) != len(tc.keys) {
			t.Errorf("%s: index of %d levels, want %d", tc.name, len(idx), len(tc.keys))
		}
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestHotCounterPartsWindowSets counts the parts of windows handed over in parts (the
// window's sets count each source once across them) both ways, in one table and by
// partitions, and requires the same summaries: countParts lists a level's sources for the
// sets in another order, which a set must not see.
func TestHotCounterPartsWindowSets(t *testing.T) {
	defer func(big, part int) { hotBigLevel, hotPartRecs = big, part }(hotBigLevel, hotPartRecs)
	rng := rand.New(rand.NewPCG(3, 5))
	var table, parts hotWorker
	for _, hw := range []*hotWorker{&table, &parts} {
		hw.cnt.win, hw.wsets.maxKeys = &hw.wsets, 64
	}
	dsts := []packet.Addr{packet.AddrFrom4([]byte{203, 0, 113, 7}), packet.AddrFrom4([]byte{203, 0, 113, 8})}
	for window := range 4 {
		for part := range 5 {
			for d := range dsts {
				// A flood's part: most sources new, some from earlier parts, a few busy.
				g := make([]hotRec, 500+rng.IntN(3000))
				for i := range g {
					k := rng.IntN(1 << 24)
					switch rng.IntN(4) {
					case 0:
						k = rng.IntN(400) // seen in other parts too
					case 1:
						k = rng.IntN(5) // busy
					}
					g[i] = hotRec{TS: int64(window<<20 + part<<10 + i), Src: packet.AddrFrom4([]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}),
						Port: uint16(23 + rng.IntN(2)*rng.IntN(3)), Bits: hotBitSYN, Proto: hotTCP}
				}
				hotBigLevel, hotPartRecs = 1<<30, 1<<11
				want := table.cnt.summarize(nil, g, &dsts[d], true)
				hotBigLevel, hotPartRecs = 100, 64
				got := parts.cnt.summarize(nil, g, &dsts[d], true)
				if !slices.Equal(got, want) {
					t.Fatalf("window %d, part %d, destination %d:\n got %+v\nwant %+v", window, part, d, got, want)
				}
				if window == 0 && part == 0 && want[0].Sources < 100 {
					t.Fatalf("%d sources in the first part: the test counts too few", want[0].Sources)
				}
			}
		}
		table.wsets.reset()
		parts.wsets.reset()
	}
}

// inTwoOrders hands each worker's parts (parts[w][k]: the packets of worker w's k-th
// part, each ended by a hand-over) to two engines sharing a Hotspots (min_sources
// minSources), once worker 0's parts before worker 1's, once in turn, and returns the
// hotspot episodes of each run (started, with their top sources), finished at `at`.
func inTwoOrders(t *testing.T, px *aggregate.Prefixes, minSources int, parts [2][][]packet.Header, at int64) (one, turn []string) {
	run := func(order [][2]int) []string {
		hs, engines, sink := hotOnly(t, px, minSources)
		for _, wk := range order {
			h := engines[wk[0]]
			for _, q := range parts[wk[0]][wk[1]] {
				_, ix := px.MatchDst(&q.Dst, q.Dst.Is4()) // -1: no dense index
				st, _ := h.srcs.Touch(q.Src)
				h.e.PacketAt(&q, st, ix)
			}
			h.e.hotFlush()
		}
		var got []string
		for _, e := range finishHot(hs, engines, sink, at) {
			got = append(got, fmt.Sprintf("%s port %d: %d sources, %d packets, top %v", e.Dst, e.Port, e.Sources, e.Packets, e.TopSources))
		}
		return got
	}
	var first, alternate [][2]int
	for w := range 2 {
		for k := range parts[w] {
			first = append(first, [2]int{w, k})
		}
	}
	for k := range parts[0] {
		alternate = append(alternate, [2]int{0, k}, [2]int{1, k})
	}
	return run(first), run(alternate)
}

// TestHotspotPartsOrderFree: two workers hand a window over in four parts each (a flood to
// one address from sources each worker sees in several parts, their packets changing from
// part to part), once one worker's parts before the other's, once in turn: the episodes
// are the same, top sources included. Summed in the order the parts came, a source
// pushed out of the top five by the other worker's parts lost its earlier parts' packets
// in one order and not in the other.
func TestHotspotPartsOrderFree(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	rng := rand.New(rand.NewPCG(11, 12))
	var parts [2][][]packet.Header
	ts := t0
	for k := range 4 {
		for w := range 2 {
			var pkts []packet.Header
			for j := range 12 { // busy sources, 1-40 packets each part
				for range 1 + rng.IntN(40) {
					ts += sec / 10000
					pkts = append(pkts, syn(ip4(fmt.Sprintf("10.%d.0.0", w), j), "198.51.100.7", 80, ts))
				}
			}
			for j := range 150 { // one-packet sources, new in each part
				ts += sec / 10000
				pkts = append(pkts, syn(ip4(fmt.Sprintf("10.%d.0.0", 10+w), k*1000+j), "198.51.100.7", 80, ts))
			}
			parts[w] = append(parts[w], pkts)
		}
	}
	one, turn := inTwoOrders(t, px, 100, parts, ts+sec)
	if len(one) == 0 {
		t.Fatal("no hotspot episode")
	}
	if !slices.Equal(one, turn) {
		t.Errorf("one worker's parts first:\n%s\nin turn:\n%s", strings.Join(one, "\n"), strings.Join(turn, "\n"))
	}
}

// TestHotspotLightPartsOrderFree: the same for a destination without a dense index (an
// IPv6 address) that gets two packets from each worker in each of eight parts (light
// cells, counted on the shared side from their logs), from a few sources each worker sees
// again and again: the episodes do not depend on the order the parts came in (20 draws of
// the sources; with the light cells summed in arrival order, 11 of them gave other top
// sources).
func TestHotspotLightPartsOrderFree(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24", "2001:db8::/32")
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 12))
		var parts [2][][]packet.Header
		ts := t0
		for range 8 {
			for w := range 2 {
				var pkts []packet.Header
				for range 2 {
					ts += sec / 1000
					pkts = append(pkts, syn(fmt.Sprintf("10.%d.0.%d", w, rng.IntN(6)), "2001:db8::7", 80, ts))
				}
				parts[w] = append(parts[w], pkts)
			}
		}
		one, turn := inTwoOrders(t, px, 4, parts, ts+sec)
		if len(one) != 1 || !strings.HasPrefix(one[0], "2001:db8::7 port 80:") {
			t.Fatalf("seed %d: episodes %q, want one of 2001:db8::7 port 80", seed, one)
		}
		if !slices.Equal(one, turn) {
			t.Errorf("seed %d, one worker's parts first:\n%s\nin turn:\n%s", seed, strings.Join(one, "\n"), strings.Join(turn, "\n"))
		}
	}
}
