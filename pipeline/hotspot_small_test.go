package pipeline

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestHotspotFullTable: a worker whose cells of destinations without a dense index fill up
// (limits.max_destinations) with busy destinations (nothing to spill, see TestHotspotSpill)
// hands all its counts over early and keeps counting; the receiver distribution stays
// exact, a hot destination counted in two parts is still found, its packets exact and its
// sources (summed over the parts, which may share sources) labelled estimated. Dark IPv4
// addresses, which have a dense index, are not capped: the same packets to them give exact
// counts.
func TestHotspotFullTable(t *testing.T) {
	v6 := func(n int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(n >> 8), 15: byte(n)})
	}
	v6src := func(n int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xee, 14: byte(n >> 8), 15: byte(n)})
	}
	for _, tc := range []struct {
		dst, src func(int) netip.Addr
		exact    bool
	}{{v6, v6src, false}, {darkAddr, spoofed, true}} {
		var ps []pcaptest.Packet
		at := hotT0
		send := func(dst, from, to int) {
			for i := from; i < to; i++ {
				at = at.Add(time.Millisecond)
				ps = append(ps, pcaptest.Packet{TS: at, Src: tc.src(i), Dst: tc.dst(256 + dst), SrcPort: 4000, DstPort: 80, Flags: 0x02})
			}
		}
		send(9, 0, 15) // the hot destination: sources 0-14
		for d := range 4 {
			send(20+d, 100, 103) // four more destinations, 3 packets each: the fifth fills 4 cells
		}
		send(9, 10, 30) // sources 10-29 (10-14 again): 30 distinct sources, 35 packets
		path := filepath.Join(t.TempDir(), "full.pcap")
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		cfg := hotConfig(t, "detect: {hotspot: {min_sources: 25}}\nlimits: {max_destinations: 4}\n")
		r, res := replayReport(t, cfg, 1, path)
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		want := ReceiverDistribution{Window: "5m", Destinations: 5, Packets: 47, Buckets: []HistBucket{
			{"1", 0}, {"2", 0}, {"4", 4}, {"8", 0}, {"16", 0}, {"32", 0}, {"64", 1},
		}}
		if !equalDist(r.Receivers, want) {
			t.Errorf("%v: receiver distribution %+v, want %+v", tc.dst(9), r.Receivers, want)
		}
		hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
		if len(hot) != 1 {
			t.Fatalf("%v: %d hotspot episodes, want 1: %+v", tc.dst(9), len(hot), hot)
		}
		h := hot[0]
		wantDst := tc.dst(256 + 9).String()
		switch {
		case h.Dst != wantDst || h.Port != 80 || h.Packets != 35:
			t.Errorf("hotspot %+v, want %s:80 with 35 packets", h, wantDst)
		case tc.exact && (h.Sources != 30 || h.SourcesEstimated):
			t.Errorf("hotspot %+v, want exactly 30 sources (a dense destination is never capped)", h)
		case !tc.exact && (h.Sources < 30 || h.Sources > 35 || !h.SourcesEstimated):
			t.Errorf("hotspot %+v, want 30 to 35 sources labelled estimated", h)
		}
	}
}

// TestHotspotThresholdExact: exactly min_sources one-packet sources to one address:port
// make one episode with exactly that many sources, with 1, 2 and 3 workers (each worker holds
// a share; the pigeonhole candidate rule must still sum every share, the one- and
// two-packet destinations of a worker included); one source fewer makes none.
func TestHotspotThresholdExact(t *testing.T) {
	for _, n := range []int{100, 99} {
		var ps []pcaptest.Packet
		for i := range n {
			ps = append(ps, pcaptest.Packet{TS: hotT0.Add(time.Duration(i) * time.Millisecond), Src: spoofed(i * 13),
				Dst: darkAddr(256 + 5), SrcPort: 4000, DstPort: 8080, Flags: 0x02})
		}
		for _, workers := range []int{1, 2, 3} {
			hot := hotspotsIn(t, ps, workers)
			switch {
			case n < 100 && len(hot) != 0:
				t.Errorf("%d sources, workers=%d: %d episodes, want none: %+v", n, workers, len(hot), hot[0])
			case n >= 100 && len(hot) != 1:
				t.Errorf("%d sources, workers=%d: %d episodes, want 1", n, workers, len(hot))
			case n >= 100:
				if h := hot[0]; h.Sources != 100 || h.SourcesEstimated || h.Packets != 100 || h.Port != 8080 || h.Class != "syn_flood" {
					t.Errorf("workers=%d: %+v, want port 8080, exactly 100 sources and packets, syn_flood", workers, h)
				}
			}
		}
	}
}

// TestHotspotSourcesExactUnderChurn: a hot address:port and a hot address (a new port each
// packet) whose senders also probe four other addresses and other ports of the first (their
// memo of counted destinations overflows: IPv4 senders take a bitmap of dark addresses,
// IPv6 ones count through the sets; the port slots change hands), each sending three
// rounds; with a source table too small to keep them (every source evicted between its
// rounds, so it comes back without its memo) or large enough, and 1, 2 and 3 workers, the
// episodes' sources and packets are exact.
func TestHotspotSourcesExactUnderChurn(t *testing.T) {
	const senders, rounds = 300, 3
	v6 := func(n int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: byte(n)})
	}
	var ps []pcaptest.Packet
	at := hotT0
	add := func(src, dst netip.Addr, port uint16) {
		at = at.Add(100 * time.Microsecond)
		ps = append(ps, pcaptest.Packet{TS: at, Src: src, Dst: dst, SrcPort: 4000, DstPort: port, Flags: 0x02})
	}
	for r := range rounds {
		for i := range senders {
			for _, fam := range []struct {
				src netip.Addr
				dst func(int) netip.Addr
			}{
				{spoofed(i), func(n int) netip.Addr { return darkAddr(256 + n) }},
				{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 14: byte(i >> 8), 15: byte(i)}), v6},
			} {
				add(fam.src, fam.dst(9), 80)                  // the hot address:port
				add(fam.src, fam.dst(30), uint16(3000+3*i+r)) // the hot address
				if i%3 == r {
					add(fam.src, fam.dst(9), uint16(1000+i)) // another port of it: the slots change hands
				}
				for k := range 4 {
					add(fam.src, fam.dst(10+(i+k+r)%8), 22) // four other addresses
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "churn.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{120, 100000} {
		for _, workers := range []int{1, 2, 3} {
			cfg := hotConfig(t, fmt.Sprintf("detect: {hotspot: {min_sources: 250}}\nlimits: {max_sources: %d}\n", limit))
			p, r := replayPipeline(t, cfg, workers, path)
			if _, ev := p.Tracked(); (limit < 2*senders) != (ev > 0) {
				t.Fatalf("max_sources %d: %d evictions", limit, ev)
			}
			hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
			want := map[string]bool{"203.0.113.9:80": true, "203.0.113.30:0": true, "2001:db8:1::9:80": true, "2001:db8:1::1e:0": true}
			if len(hot) != len(want) {
				for _, h := range hot {
					t.Logf("%s:%d %d %d", h.Dst, h.Port, h.Sources, h.Packets)
				}
				t.Fatalf("max_sources %d, workers=%d: %d hotspot episodes, want %d: %+v", limit, workers, len(hot), len(want), hot)
			}
			for _, h := range hot {
				if !want[fmt.Sprintf("%s:%d", h.Dst, h.Port)] || h.Sources != senders || h.SourcesEstimated || h.Packets != senders*rounds {
					t.Errorf("max_sources %d, workers=%d: hotspot %s:%d, %d sources (estimated %v), %d packets; want one of %v, %d exact, %d packets",
						limit, workers, h.Dst, h.Port, h.Sources, h.SourcesEstimated, h.Packets, want, senders, senders*rounds)
				}
			}
		}
	}
}

// hotspotsIn replays ps (written to a capture in a temporary directory) with `workers`
// workers and the default detectors, and returns the hotspot episodes.
func hotspotsIn(t *testing.T, ps []pcaptest.Packet, workers int) []*detect.HotspotEntry {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hot.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	r, res := replayReport(t, hotConfig(t, ""), workers, path)
	if len(res.Errors) != 0 || res.Records != uint64(len(ps)) {
		t.Fatalf("workers=%d: %d of %d records, errors %v", workers, res.Records, len(ps), res.Errors)
	}
	return EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
}

// synsTo collects SYN probes to one dark address (darkAddr(dst)), a millisecond apart
// from hotT0.
type synsTo struct {
	dst int
	n   int
	ps  []pcaptest.Packet
}

func (b *synsTo) add(src int, port uint16) {
	b.n++
	b.ps = append(b.ps, pcaptest.Packet{TS: hotT0.Add(time.Duration(b.n) * time.Millisecond), Src: spoofed(src),
		Dst: darkAddr(b.dst), SrcPort: 4000, DstPort: port, Flags: 0x02})
}

// TestHotspotBusiestPortsExact: the ports counted at a destination are its busiest over
// the whole part of the window (a worker counts them when it hands the part over), however
// their packets interleave: a port that is busy early, then quiet while another port
// outnumbers it, then busy again is counted with all its senders and packets, exactly.
func TestHotspotBusiestPortsExact(t *testing.T) {
	b := synsTo{dst: 256 + 9}
	for i := range 300 {
		b.add(i%3, 80) // the busiest port: 3 sources, 300 packets
	}
	for i := range 110 {
		b.add(1000+i, 81) // 110 senders to port 81
	}
	for range 111 {
		b.add(5000, 82) // a third port outnumbers 81 for a while
	}
	for range 2 {
		for i := range 110 {
			b.add(1000+i, 81) // the same senders again: 81 is the busiest port, 330 packets
		}
	}
	for _, workers := range []int{1, 2, 3} {
		hot := hotspotsIn(t, b.ps, workers)
		if len(hot) != 1 || hot[0].Dst != "203.0.113.9" || hot[0].Port != 81 || hot[0].Sources != 110 ||
			hot[0].SourcesEstimated || hot[0].Packets != 330 {
			for _, h := range hot {
				t.Logf("episode %s:%d, %d sources (estimated %v), %d packets", h.Dst, h.Port, h.Sources, h.SourcesEstimated, h.Packets)
			}
			t.Fatalf("workers=%d: %d hotspot episodes, want one at 203.0.113.9:81 with exactly 110 sources, 330 packets", workers, len(hot))
		}
	}
}

// TestHotspotBusyPortsStay: a crowd of one-packet ports, fewer packets than either busy
// port's, takes no slot: both busy ports stay counted exactly, with 1, 2 and 3 workers.
func TestHotspotBusyPortsStay(t *testing.T) {
	b := synsTo{dst: 256 + 11}
	for i := range 300 {
		b.add(i%150, 23) // 150 senders, two packets each
	}
	for i := range 120 {
		b.add(1000+i, 80) // 120 senders, one each
	}
	for i := range 100 {
		b.add(2000+i, uint16(10000+i)) // 100 ports, one packet each
	}
	for _, workers := range []int{1, 2, 3} {
		got := map[uint16]*detect.HotspotEntry{}
		for _, h := range hotspotsIn(t, b.ps, workers) {
			got[h.Port] = h
		}
		for _, w := range []struct {
			port             uint16
			sources, packets uint64
		}{{23, 150, 300}, {80, 120, 120}} {
			h := got[w.port]
			if len(got) != 2 || h == nil || h.Dst != "203.0.113.11" || h.Sources != w.sources || h.SourcesEstimated || h.Packets != w.packets {
				for _, h := range got {
					t.Logf("episode %s:%d, %d sources (estimated %v), %d packets", h.Dst, h.Port, h.Sources, h.SourcesEstimated, h.Packets)
				}
				t.Fatalf("workers=%d: want 2 episodes, port %d with %d exact sources and %d packets", workers, w.port, w.sources, w.packets)
			}
		}
	}
}

// TestHotspotTopKeepsRepeatSender: a source that sent a few packets before a crowd of
// one-packet sources and a few after stays the top source with all its packets. The other
// repeat senders follow it, in order, each with all its packets (a worker counts each
// source's packets exactly), with 1, 2 and 3 workers.
func TestHotspotTopKeepsRepeatSender(t *testing.T) {
	b := synsTo{dst: 256 + 12}
	for range 3 {
		b.add(7, 8080)
	}
	for i := range 500 {
		b.add(1000+i, 8080)
	}
	for range 2 {
		b.add(7, 8080)
	}
	for src := 8; src <= 10; src++ {
		for range 12 - src { // 4, 3, 2 packets
			b.add(src, 8080)
		}
	}
	want := []string{}
	for src, n := range []int{7: 5, 8: 4, 9: 3, 10: 2} {
		if n > 0 {
			want = append(want, fmt.Sprintf("%s:%d", spoofed(src), n))
		}
	}
	for _, workers := range []int{1, 2, 3} {
		hot := hotspotsIn(t, b.ps, workers)
		if len(hot) != 1 || hot[0].Port != 8080 || len(hot[0].TopSources) == 0 {
			t.Fatalf("workers=%d: %d hotspot episodes, want one at port 8080 with top sources: %+v", workers, len(hot), hot)
		}
		if top := hot[0].TopSources[0]; top.Src != spoofed(7).String() || top.Packets != 5 {
			t.Errorf("workers=%d: top source %s with %d packets, want %s with 5", workers, top.Src, top.Packets, spoofed(7))
		}
		var got []string
		for _, s := range hot[0].TopSources[:min(len(want), len(hot[0].TopSources))] {
			got = append(got, fmt.Sprintf("%s:%d", s.Src, s.Packets))
		}
		if !slices.Equal(got, want) {
			t.Errorf("workers=%d: top sources %v, want %v first", workers, got, want)
		}
	}
}

// TestHotspotManySources: 300 scanners each probing the same 600 dark IPv6 addresses (no
// dense index): every destination is found with its 300 sources and packets, exactly, and
// cut at 250 of the 300 scanners and carried over a checkpoint (the open part's records
// restored), the run gives the same episodes as in one.
func TestHotspotManySources(t *testing.T) {
	const scanners, dsts = 300, 600
	var ps []pcaptest.Packet
	at := hotT0
	for i := range scanners {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 14: byte(i >> 8), 15: byte(i)})
		for d := range dsts {
			at = at.Add(time.Microsecond)
			dst := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(d >> 8), 15: byte(d)})
			ps = append(ps, pcaptest.Packet{TS: at, Src: src, Dst: dst, SrcPort: 4000, DstPort: 80, Flags: 0x02})
		}
	}
	const extra = "detect: {hotspot: {min_sources: 250}}\n"
	r := packetsReport(t, ps, hotDark+extra, 1)
	hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
	if len(hot) != dsts {
		t.Fatalf("%d hotspot episodes, want %d", len(hot), dsts)
	}
	for _, h := range hot {
		if h.Packets != scanners || h.Port != 80 || h.Sources != scanners || h.SourcesEstimated {
			t.Errorf("hotspot %s:%d: %d sources (estimated %v), %d packets, want port 80 and exactly %d of each",
				h.Dst, h.Port, h.Sources, h.SourcesEstimated, h.Packets, scanners)
		}
	}
	cfg := hotConfig(t, extra)
	if whole, split := hotEventsCut(t, cfg, ps, 0), hotEventsCut(t, cfg, ps, len(ps)*5/6); !slices.Equal(whole, split) {
		t.Errorf("cut and restored: %d events, %d in one run", len(split), len(whole))
	}
}

// hotEventsCut replays ps with one worker, in one run (cut 0) or cut before ps[cut] with the
// detector state carried over a checkpoint (the hotspot's restored), and returns the
// events' keys.
func hotEventsCut(t *testing.T, cfg *configs.Config, ps []pcaptest.Packet, cut int) []string {
	t.Helper()
	rec := &recorder{next: NewEpisodes()}
	replayCut(t, cfg, 1, ps, cut, rec)
	return eventKeys(t, rec.events)
}

// replayCut replays ps on `workers` workers into sink, in one run (cut 0) or cut before
// ps[cut] with the detector state carried over a checkpoint (as replay --state-out and
// --state-in carry it; the hotspot's restored), and returns the pipeline of the last run.
func replayCut(t *testing.T, cfg *configs.Config, workers int, ps []pcaptest.Packet, cut int, sink detect.Sink) *Pipeline {
	t.Helper()
	dir := t.TempDir()
	parts := [][]pcaptest.Packet{ps}
	if cut > 0 {
		parts = [][]pcaptest.Packet{ps[:cut], ps[cut:]}
	}
	state := filepath.Join(dir, "state")
	var p *Pipeline
	for i, part := range parts {
		path := filepath.Join(dir, fmt.Sprintf("part%d.pcap", i))
		if err := pcaptest.WriteFile(path, part); err != nil {
			t.Fatal(err)
		}
		var err error
		if p, err = New(Options{Config: cfg, Workers: workers, Sink: sink}); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if info, err := p.RestoreState(state, RestoreOptions{}); err != nil || !info.HotspotRestored {
				t.Fatalf("restore: %+v, %v", info, err)
			}
		}
		replayKeeping(t, p, path, state, i == len(parts)-1)
	}
	return p
}
