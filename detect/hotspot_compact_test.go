package detect

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// swarmParts sends, at each of two engines sharing hs, `parts` parts of a window (each
// ended by hotFlush, as when a worker's records fill up): every part, every destination of
// the dark 198.51.0.0/23 gets up to four SYN probes from fresh sources of the engine's own
// range, to the ports port(part, dst, i) names (0: no such probe). After each hand-over it
// checks that the engine's pending heavy summaries stay within hs.maxFull and one part's
// (3 a destination), and it returns the hotspot episodes started, the evictions counted
// and hs. Before part restoreAt (-1: none) the shared side and each engine's hotspot
// state go through a checkpoint.
func swarmParts(t *testing.T, maxFull, parts int, restoreAt int, port func(part, dst, i int) uint16) (map[string]*HotspotEntry, uint64, *Hotspots) {
	return swarmPartsEval(t, maxFull, parts, restoreAt, false, port)
}

// swarmPartsEval is swarmParts, with (evaluator) the hand-overs' summaries summed and the
// window evaluated by the evaluator goroutine as the engines go on (no restore then).
func swarmPartsEval(t *testing.T, maxFull, parts int, restoreAt int, evaluator bool, port func(part, dst, i int) uint16) (map[string]*HotspotEntry, uint64, *Hotspots) {
	t.Helper()
	px := darkSpace(t, "198.51.0.0/23")
	hs, engines, sink := hotOnly(t, px, 30)
	if maxFull > 0 {
		hs.maxFull = maxFull
	}
	if evaluator {
		if restoreAt >= 0 {
			t.Fatal("swarmPartsEval: no restore with the evaluator")
		}
		defer hs.StartEvaluator()()
	}
	const dsts = 512
	ts := t0
	srcN := [2]int{}
	peak := 0
	for part := range parts {
		if part == restoreAt {
			hs = restoreHot(t, hs, engines[0].e.cfg, sink, engines)
			if maxFull > 0 {
				hs.maxFull = maxFull
			}
			for _, h := range engines { // the engines' open windows through a checkpoint too
				var enc checkpoint.Encoder
				h.e.SaveHotState(&enc)
				d := checkpoint.NewDecoder(enc.Bytes())
				if h.e.LoadHotState(d); d.Done() != nil {
					t.Fatalf("restore: %v", d.Done())
				}
			}
		}
		for w, h := range engines {
			for d := range dsts {
				dst := ip4("198.51.0.0", d)
				for i := range 4 {
					if port(part, d, i) == 0 {
						continue // no such probe
					}
					ts += sec / 100000
					p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], srcN[w]), dst, port(part, d, i), ts)
					srcN[w]++
					h.packetTo(&p, px)
				}
			}
			h.e.hotFlush()
			hs.mu.Lock()
			hs.settle() // the evaluator's sums done
			for _, p := range hs.pending {
				peak = max(peak, len(p.fullW[w]))
			}
			hs.mu.Unlock()
		}
	}
	if bound := hs.maxFull + 3*dsts; peak > bound {
		t.Errorf("maxFull %d: a worker's pending summaries reached %d, above %d", hs.maxFull, peak, bound)
	}
	got := map[string]*HotspotEntry{}
	for _, e := range finishHot(hs, engines, sink, ts+sec) {
		got[fmt.Sprintf("%s:%d", e.Dst, e.Port)] = e
	}
	ev := hs.c.Evictions.Load() // levels the evaluator pruned
	for _, h := range engines {
		ev += h.c.Evictions.Load()
	}
	return got, ev, hs
}

// TestHotspotEvaluatorSumsParts: with the evaluator on, the parts' heavy summaries are
// summed (and pruned, compacted) by the evaluator while the engines go on; the episodes
// and the evictions are those of summing them at the hand-over, for every shape of
// TestHotspotPendingSummariesBounded.
func TestHotspotEvaluatorSumsParts(t *testing.T) {
	fixed, random := portsFixed, portsRandom
	for _, tc := range []struct {
		name    string
		port    func(part, dst, i int) uint16
		maxFull int
	}{{"random ports", random, 2000}, {"too many destinations", fixed, 900}, {"kept whole", random, 1 << 30}} {
		inline, ev0, _ := swarmParts(t, tc.maxFull, 10, -1, tc.port)
		got, ev, _ := swarmPartsEval(t, tc.maxFull, 10, -1, true, tc.port)
		if len(inline) == 0 || len(got) != len(inline) || ev != ev0 {
			t.Errorf("%s: %d episodes, %d evictions with the evaluator; %d, %d at the hand-over", tc.name, len(got), ev, len(inline), ev0)
		}
		for k, w := range inline {
			if g := got[k]; g == nil || counts(g) != counts(w) || fmt.Sprint(g.TopSources) != fmt.Sprint(w.TopSources) {
				t.Errorf("%s: %s: %s with the evaluator, %s at the hand-over", tc.name, k, counts(g), counts(w))
			}
		}
	}
}

// portsFixed and portsRandom are swarmParts' port choices: two fixed ports; and telnet for
// a destination's first two probes, one port of its own a part for the others.
func portsFixed(_, _, i int) uint16 { return []uint16{80, 443}[i%2] }

func portsRandom(part, d, i int) uint16 {
	if i < 2 {
		return 23
	}
	return uint16(1000 + (part*7919+d*104729)%60000)
}

// counts is what an episode's counts say (its top sources aside).
func counts(e *HotspotEntry) string {
	if e == nil {
		return "none"
	}
	return fmt.Sprintf("%s %d sources (estimated %v) %d packets %v-%v", e.Class, e.Sources, e.SourcesEstimated, e.Packets, e.FirstSeen, e.LastSeen)
}

// TestHotspotPendingSummariesBounded: a window that workers hand over in many parts (a
// swarm of bots scanning a dark /16 at a busy telescope's rate: every address heavy in every
// part) keeps at most maxFull heavy summaries a worker once compacted; before the fix each
// part's summaries were kept until the window's end, 50 MB a part and worker for a /16.
//   - levels that recur (two fixed ports a destination): summed, nothing dropped, every
//     episode's counts those of the window kept whole;
//   - a random port for each destination and part (two of four probes to port 23, two to
//     the random port: a port of one probe in a part is no level, hotPortMin): the random
//     ports' levels are pruned (each destination keeps its busiest, port 23), the pruning is
//     counted as evictions, and the episodes (hot by port 23) are unchanged;
//   - a random port in each probe but telnet's: a port of one probe in a part is no
//     level, so nothing is pruned and the episodes are unchanged;
//   - fewer summaries allowed than the destinations need: the destinations with fewer
//     packets go, counted; an episode of one of them has fewer sources and says estimated
//     (as every count of a window cut in parts does).
//
// Each also with a checkpoint restored between two parts.
func TestHotspotPendingSummariesBounded(t *testing.T) {
	const parts = 10
	fixed, random := portsFixed, portsRandom
	randomOne := func(part, d, i int) uint16 {
		if i < 2 {
			return 23
		}
		return uint16(1000 + (part*7919+d*104729+i*31)%60000)
	}
	for _, tc := range []struct {
		name    string
		port    func(part, dst, i int) uint16
		maxFull int
		pruned  bool // levels dropped
		dstsCut bool // destinations dropped
	}{
		{"fixed ports", fixed, 2000, false, false},
		{"random ports", random, 2000, true, false},
		{"random ports of one probe a part", randomOne, 2000, false, false},
		{"too many destinations", fixed, 900, true, true},
	} {
		for _, restoreAt := range []int{-1, parts / 2} {
			name := fmt.Sprintf("%s, restored at part %d", tc.name, restoreAt)
			whole, ev0, _ := swarmParts(t, 1<<30, parts, restoreAt, tc.port)
			got, ev, _ := swarmParts(t, tc.maxFull, parts, restoreAt, tc.port)
			if len(whole) == 0 {
				t.Fatalf("%s: no hotspot episode in the window kept whole", name)
			}
			if tc.pruned != (ev > ev0) {
				t.Errorf("%s: evictions %d, kept whole %d: want more only when levels are pruned (%v)", name, ev, ev0, tc.pruned)
			}
			keys := make([]string, 0, len(whole))
			for k := range whole {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			changed := 0
			for _, k := range keys {
				w, g := whole[k], got[k]
				if counts(g) == counts(w) {
					continue
				}
				changed++
				// Only a destination dropped may change, and only to fewer sources, labelled.
				if !tc.dstsCut || (g != nil && (!g.SourcesEstimated || g.Sources > w.Sources)) {
					t.Errorf("%s: %s: %s, kept whole %s", name, k, counts(g), counts(w))
				}
			}
			for k, g := range got {
				if whole[k] == nil {
					t.Errorf("%s: %s: %s, none kept whole", name, k, counts(g))
				}
			}
			if tc.dstsCut && changed == 0 {
				t.Errorf("%s: no episode changed, though destinations were dropped", name)
			}
		}
	}
}

// TestHotspotDenseAcrossManyParts: a swarm aimed at a dark /22 that both workers hand over
// in 12 parts, every address heavy in every part (three probes from fresh sources), with a
// table of 64 destinations a worker (maxCells 128): each address is one hotspot with its 72
// sources, and the receiver distribution sees each of the 1 024 addresses once, with all its
// packets. The heavy cells of dark addresses used to count against maxCells part by part:
// past it they all went to the distribution on their own (each address several times) and
// out of the hotspot counts.
func TestHotspotDenseAcrossManyParts(t *testing.T) {
	for _, restoreAt := range []int{-1, 7} {
		px := darkSpace(t, "198.51.0.0/22")
		cfg := only(testConfig(t), Hotspot)
		cfg.Hotspot.MinSources = 30
		cfg.MaxDestinations = 64
		sink := &recSink{}
		hs, engines := sharedHot(t, cfg, sink, px)
		const dsts, parts = 1024, 12
		ts := t0
		srcN := [2]int{}
		for part := range parts {
			if part == restoreAt {
				hs = restoreHot(t, hs, cfg, sink, engines)
			}
			for w, h := range engines {
				for d := range dsts {
					dst := ip4("198.51.0.0", d)
					for range 3 {
						ts += sec / 100000
						p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], srcN[w]), dst, 80, ts)
						srcN[w]++
						h.packetTo(&p, px)
					}
				}
				h.e.hotFlush()
			}
		}
		eps := finishHot(hs, engines, sink, ts+sec)
		bad := 0
		for _, e := range eps {
			if e.Port != 80 || e.Sources != 2*3*parts || e.Packets != 2*3*parts {
				bad++
				if bad < 4 {
					t.Errorf("restored at part %d: %s", restoreAt, counts(e))
				}
			}
		}
		if len(eps) != dsts || bad > 0 {
			t.Errorf("restored at part %d: %d hotspot episodes, %d of them wrong: want one of 72 sources on port 80 for each of %d addresses", restoreAt, len(eps), bad, dsts)
		}
		if n, u := hs.Hist.Count.Load(), hs.Unmerged.Load(); (restoreAt < 0 && (n != dsts || u != 0)) || hs.Hist.Sum.Load() != 2*3*parts*dsts {
			t.Errorf("restored at part %d: the receiver distribution saw %d destinations (%d unmerged), %d packets: want %d, 0, %d", restoreAt, n, u, hs.Hist.Sum.Load(), dsts, 2*3*parts*dsts)
		}
	}
}

// TestGrow2 checks the growth of the summaries' arrays: the elements kept, room for what
// is asked, the array kept while it has room, and doubling (not the quarter append adds
// to large arrays), so that an array grown to N element by element allocates under 2 N.
func TestGrow2(t *testing.T) {
	s := []int{1, 2, 3}
	s = grow2(s, 5)
	if !slices.Equal(s, []int{1, 2, 3}) || cap(s) < 8 {
		t.Fatalf("grow2([1 2 3], 5) = %v cap %d, want [1 2 3] with cap ≥ 8", s, cap(s))
	}
	before := &s[:cap(s)][cap(s)-1]
	if s2 := grow2(s, cap(s)-len(s)); &s2[:cap(s2)][cap(s2)-1] != before {
		t.Fatal("grow2 made a new array though the old one had room")
	}
	var a []int
	allocated, last := 0, -1
	for i := range 1 << 20 {
		a = append(grow2(a, 1), i)
		if cap(a) != last {
			allocated += cap(a)
			last = cap(a)
		}
	}
	if allocated > 2*len(a) || a[len(a)-1] != 1<<20-1 || a[1000] != 1000 {
		t.Fatalf("1 Mi elements appended one by one allocated %d elements (want < 2 Mi), last %d", allocated, a[len(a)-1])
	}
}

// TestHotspotSplitPortRemembered: in a window handed over in parts, a port of one packet in
// a part is a level there only if it is the port its address last had as its busiest with
// hotPortMin packets (hotPortMin, hotWorker.portMem). Every address of a dark /23 gets, in
// each of 10 parts a worker, a telnet probe, a second one in the even parts only, and
// probes to ports of their own: its port 23 must be hot with all its 30 sources (both
// workers, min_sources 30), the odd parts' single probes included, also with a checkpoint
// restored before an odd part (the remembered ports are in it). Without the memory the
// odd parts' telnet probes are not counted (20 sources: the address is hot, not its port).
func TestHotspotSplitPortRemembered(t *testing.T) {
	port := func(part, d, i int) uint16 {
		if i == 0 || i == 1 && part%2 == 0 {
			return 23
		}
		return uint16(1000 + (part*7919+d*104729+i*31)%60000)
	}
	for _, restoreAt := range []int{-1, 5} {
		got, _, _ := swarmParts(t, 0, 10, restoreAt, port)
		bad := 0
		for k, e := range got {
			if e.Port != 23 || e.Sources != 30 || e.Packets != 30 || !e.SourcesEstimated {
				if bad++; bad < 4 {
					t.Errorf("restored at part %d: %s: %s, want port 23's 30 sources (estimated)", restoreAt, k, counts(e))
				}
			}
		}
		if len(got) != 512 || bad > 0 {
			t.Errorf("restored at part %d: %d episodes, %d wrong: want one for port 23 of each of 512 addresses", restoreAt, len(got), bad)
		}
	}
}

// TestHotspotLightPartsPortKnown: the shared side counts a port of one packet in a light
// part of a window in parts only where its level is already summed (hotPortMin), as the
// workers do with their remembered ports. Every address of a dark /23 is heavy in the first
// of 15 parts a worker (two telnet probes and one to a port of its own), light in the others
// (one telnet probe, one to a port of its own): each must be hot by port 23 with all its 32
// sources, the light parts' single probes included, and no port of one probe may be a level
// of the window's sums (each was one, summed and evaluated for nothing).
func TestHotspotLightPartsPortKnown(t *testing.T) {
	const dsts, parts = 512, 15
	got, _, hs := swarmParts(t, 0, parts, -1, func(part, d, i int) uint16 {
		switch {
		case i == 0 || i == 2 && part == 0:
			return 23
		case i == 1:
			return uint16(1000 + (part*7919+d*104729)%60000)
		}
		return 0
	})
	eps := slices.Collect(maps.Values(got))
	bad := 0
	for _, e := range eps {
		if e.Port != 23 || e.Sources != 2*(parts+1) || e.Packets != 2*(parts+1) {
			if bad++; bad < 4 {
				t.Errorf("%s", counts(e))
			}
		}
	}
	if len(eps) != dsts || bad > 0 {
		t.Errorf("%d hotspot episodes, %d wrong: want one of port 23 with 32 sources for each of %d addresses", len(eps), bad, dsts)
	}
	levels := 0
	for i := range hs.sums {
		if p := hs.sums[i].Port; p != 0 && p != 23 {
			levels++
		}
	}
	if levels > 0 || len(hs.sums) == 0 {
		t.Errorf("the window's sums hold %d levels (%d of ports of one probe), want 2 a destination", len(hs.sums), levels)
	}
}

// TestHotspotSplitIPv6KeepsPorts: a busy destination without a dense index (IPv6) keeps
// every port's level in a window handed over in parts, as before hotPortMin (its ports are
// not remembered): 15 parts a worker, each with a probe to port 80 and two to ports of
// their own, make port 80 hot with its 30 sources (min_sources 30). With the one-packet
// rule applied to it, port 80 would count nothing and the address be hot instead.
func TestHotspotSplitIPv6KeepsPorts(t *testing.T) {
	px := darkSpace(t, "198.51.0.0/23", "2001:db8:1::/48")
	hs, engines, sink := hotOnly(t, px, 30)
	const parts = 15
	ts := t0
	srcN := [2]int{}
	for part := range parts {
		for w, h := range engines {
			for _, port := range []uint16{80, uint16(1000 + part*2), uint16(1001 + part*2)} {
				ts += sec / 100000
				p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], srcN[w]), "2001:db8:1::7", port, ts)
				srcN[w]++
				h.packetTo(&p, px)
			}
			h.e.hotFlush()
		}
	}
	eps := finishHot(hs, engines, sink, ts+sec)
	if len(eps) != 1 || eps[0].Port != 80 || eps[0].Sources != 2*parts || eps[0].Packets != 2*parts {
		for _, e := range eps {
			t.Errorf("%s:%d %s", e.Dst, e.Port, counts(e))
		}
		t.Fatalf("%d hotspot episodes, want one of 2001:db8:1::7 port 80 with %d sources", len(eps), 2*parts)
	}
}

// TestHotspotDarkSpaceChangeForgetsPorts: a reload that changes the dark space renumbers
// the dense indexes, so the ports busy addresses remember in a window handed over in parts
// (portMem, by index) are forgotten. Kept, a checkpoint after the change wrote a port of an
// index the new space does not have (198.51.2.7 is index 519 of a /23 and a /24, the new
// space a /23 has 512), and its restore refused the worker's state as corrupt.
func TestHotspotDarkSpaceChangeForgetsPorts(t *testing.T) {
	wide, narrow := darkSpace(t, "198.51.0.0/23", "198.51.2.0/24"), darkSpace(t, "198.51.0.0/23")
	_, engines, _ := hotOnly(t, wide, 30)
	h := engines[0]
	dst := "198.51.1.7"
	a := packet.AddrFrom4(netip.MustParseAddr(dst).AsSlice())
	_, ix := wide.MatchDst(&a, true)
	if int(ix) < narrow.ExactSize() {
		t.Fatalf("%s has dense index %d of %d: the test checks nothing", dst, ix, narrow.ExactSize())
	}
	ts := t0
	for part := range 2 { // two parts: the window goes in parts, its busy port remembered
		for i := range 8 { // more than hotLog: counted as summaries
			ts += sec / 1000
			p := syn(ip4("10.0.0.0", 8*part+i), dst, 23, ts)
			h.packetTo(&p, wide)
		}
		h.e.hotFlush()
	}
	if mem := h.e.hot.portMem; len(mem) != wide.ExactSize() || mem[ix] != 23 {
		t.Fatalf("%s's remembered port: %v, want 23: the test checks nothing", dst, mem[ix:ix+1])
	}
	h.e.SetDenseDsts(narrow)
	var enc checkpoint.Encoder
	h.e.SaveHotState(&enc)
	restored := newHarness(t, h.e.cfg)
	restored.e = NewEngine(h.e.cfg, 0, restored.sink, restored.surge, restored.c)
	restored.e.SetHotspots(NewHotspots(2, restored.sink, &Counters{}))
	restored.e.SetDenseDsts(narrow)
	d := checkpoint.NewDecoder(enc.Bytes())
	if restored.e.LoadHotState(d); d.Done() != nil {
		t.Fatalf("the state saved after the dark space changed does not restore: %v", d.Done())
	}
}

// TestHotspotWideDarkSpaceUndense: a dark space past maxHotDense addresses (a /8, which the
// workers count by dense index) is counted by the hotspot as one without dense indexes: no
// per-address arrays (~170 MiB a worker for a /8), and a destination whose index lies far
// past maxHotDense is found with exact counts.
func TestHotspotWideDarkSpaceUndense(t *testing.T) {
	px := darkSpace(t, "203.0.0.0/8")
	hs, engines, sink := hotOnly(t, px, 50)
	h := engines[0]
	if hw := &h.e.hot; hw.px != nil || hw.ndense != 0 || len(hw.dcount)+len(hw.slot) != 0 {
		t.Fatalf("a /8: the hotspot's dense space %d addresses, %d counts, %d slots; want none", hw.ndense, len(hw.dcount), len(hw.slot))
	}
	dst := "203.200.0.9"
	a := packet.AddrFrom4(netip.MustParseAddr(dst).AsSlice())
	if _, ix := px.MatchDst(&a, true); ix <= maxHotDense {
		t.Fatalf("%s has dense index %d: the test checks nothing", dst, ix)
	}
	ts := t0
	for i := range 80 {
		ts += sec / 100
		p := syn(ip4("10.0.0.0", i), dst, 80, ts)
		h.packetTo(&p, px)
	}
	eps := finishHot(hs, engines, sink, ts+sec)
	if len(eps) != 1 || eps[0].Dst != dst || eps[0].Port != 80 || eps[0].Sources != 80 || eps[0].SourcesEstimated || eps[0].Packets != 80 {
		for _, e := range eps {
			t.Errorf("%s:%d %s", e.Dst, e.Port, counts(e))
		}
		t.Fatalf("%d hotspot episodes, want one of %s port 80 with 80 sources and packets", len(eps), dst)
	}
	narrow := darkSpace(t, "203.0.0.0/12") // 2^20 addresses: still dense
	h.e.SetDenseDsts(narrow)
	if hw := &h.e.hot; hw.px != narrow || int(hw.ndense) != narrow.ExactSize() {
		t.Errorf("a /12: the hotspot's dense space %d addresses, want %d", hw.ndense, narrow.ExactSize())
	}
}
