package detect

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// toolMix is a workload for the tool episodes: Mirai bots of one to three probes, some
// coming back after more than a window (a second episode) and some probing the telnet port
// twenty times (a telnet sweep record beside the tool episode), ZMap sources, an Nmap
// source that later probes without its fingerprint (the label stays), and plain SYNs.
func toolMix() []packet.Header {
	var pkts []packet.Header
	mirai := func(src string, i int, ts int64) packet.Header {
		p := syn(src, ip4("203.0.113.0", i%256), 23, ts)
		p.Seq = p.Dst.V4()
		return p
	}
	for b := range 400 {
		src := ip4("100.64.0.0", b)
		ts := t0 + int64(b)*sec/10
		for k := range 1 + b%3 {
			pkts = append(pkts, mirai(src, b+k, ts+int64(k)*sec))
		}
		if b%7 == 0 { // back after more than a window: a new episode
			pkts = append(pkts, mirai(src, b, ts+win+5*sec))
		}
		if b%50 == 0 { // a sweeper too
			for k := range 20 {
				pkts = append(pkts, mirai(src, 100+k, ts+2*sec+int64(k)*sec/20))
			}
		}
	}
	for z := range 30 {
		for k := range 3 {
			p := syn(ip4("100.65.0.0", z), ip4("203.0.113.0", k), 80, t0+int64(z)*sec+int64(k))
			p.IPID = zmapIPID
			pkts = append(pkts, p)
		}
	}
	nmap := syn("100.66.0.1", "203.0.113.9", 22, t0+3*sec)
	nmap.Window, nmap.TTL = 1024, 50
	nmap.Opts.Count, nmap.Opts.Kinds, nmap.Opts.MSS, nmap.Opts.Len = 1, 1<<2, 1460, 4
	pkts = append(pkts, nmap, syn("100.66.0.1", "203.0.113.9", 22, t0+4*sec))
	for i := range 50 {
		pkts = append(pkts, syn(ip4("100.67.0.0", i), "203.0.113.7", 443, t0+int64(i)*sec))
	}
	slices.SortStableFunc(pkts, func(a, b packet.Header) int {
		switch {
		case a.TS < b.TS:
			return -1
		case a.TS > b.TS:
			return 1
		}
		return 0
	})
	return pkts
}

// playTools feeds pkts with an Advance every 256 packets (and calls mid, if not nil, once
// half of them went in), then finishes, and returns every event as sorted keys.
func playTools(t *testing.T, h *harness, pkts []packet.Header, mid func()) []string {
	t.Helper()
	for i := 0; i < len(pkts); i += 256 {
		part := pkts[i:min(i+256, len(pkts))]
		h.feed(part...)
		h.e.Advance(part[len(part)-1].TS)
		if mid != nil && i+256 >= len(pkts)/2 {
			mid()
			mid = nil
		}
	}
	h.e.Advance(pkts[len(pkts)-1].TS + win + sec)
	if a := h.c.Active[detFingerprint].Load(); a != 0 {
		t.Fatalf("%d tool episodes still active a window after the last probe", a)
	}
	h.finish(pkts[len(pkts)-1].TS + 2*win)
	evs := h.sink.take()
	checkCounters(t, h.c, evs)
	var keys []string
	for _, ev := range evs {
		b, err := json.Marshal(ev.Entry)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ev.Detector+" "+ev.Phase.String()+" "+ev.Class+" "+string(b))
	}
	slices.Sort(keys)
	return keys
}

// TestToolEpisodesInPlaceMatchRecords: tool episodes kept in the source's state give the
// same events, with the same final values, as tool episodes moved into the episode table,
// whether they end by time, by a later probe after a gap, by eviction or at Finish; and none
// of them takes a record.
func TestToolEpisodesInPlaceMatchRecords(t *testing.T) {
	pkts := toolMix()
	for _, slots := range []int{1024, 64} { // 64: sources are evicted with active episodes
		cfg := only(testConfig(t), Fingerprint, TelnetSweep)
		cfg.MaxFlows = 1 << 12
		newH := func() *harness {
			h := newHarness(t, cfg)
			h.srcs = newSourceTable(slots)
			h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
			h.e.SetSources(h.srcs)
			return h
		}
		legacy := newH()
		legacy.legacyTools()
		want := playTools(t, legacy, pkts, nil)

		h := newH()
		got := playTools(t, h, pkts, func() {
			// Midway, every active tool episode is in place: no record holds one.
			inPlace, records := 0, 0
			for i := range int32(h.srcs.Slots()) {
				if _, st := h.srcs.At(i); st.FP.Labels != 0 {
					inPlace++
				}
			}
			h.e.eps.Range(func(_ *packet.Addr, rec *episode) bool {
				if rec.Active&epFP != 0 {
					records++
				}
				return true
			})
			if inPlace == 0 || records != 0 {
				t.Fatalf("%d slots: %d tool episodes in place and %d in records midway, want some and none", slots, inPlace, records)
			}
		})
		if len(want) < 800 {
			t.Fatalf("%d slots: only %d events with records: the workload lost its episodes", slots, len(want))
		}
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%d slots: %d events in place, %d with records, the same up to the %dth; from there:\n in place %q\n records  %q",
				slots, len(got), len(want), i, got[i:min(i+1, len(got))], want[i:min(i+1, len(want))])
		}
		if a := h.c.Active[detFingerprint].Load(); a != 0 {
			t.Fatalf("%d slots: %d tool episodes active after Finish", slots, a)
		}
	}
}

// TestToolEpisodesInPlaceStop: turning the fingerprint detector off by a reload ends the
// tool episodes kept in place (End events, the gauge back to zero), as it ends records.
func TestToolEpisodesInPlaceStop(t *testing.T) {
	h := newHarness(t, only(testConfig(t), Fingerprint))
	for b := range 10 {
		p := syn(ip4("100.64.0.0", b), ip4("203.0.113.0", b), 23, t0+int64(b))
		p.Seq = p.Dst.V4()
		h.feed(p)
	}
	if got := len(h.sink.take()); got != 10 || h.e.eps.Len() != 0 {
		t.Fatalf("%d start events and %d records, want 10 and none", got, h.e.eps.Len())
	}
	off := *h.cfg
	off.Fingerprint.Enabled = false
	h.e.SetConfig(&off)
	ends := h.sink.take()
	if len(ends) != 10 || h.c.Active[detFingerprint].Load() != 0 {
		t.Fatalf("%d end events, %d still active after turning the detector off, want 10 and 0",
			len(ends), h.c.Active[detFingerprint].Load())
	}
	for i := range int32(h.srcs.Slots()) {
		if _, st := h.srcs.At(i); st.FP.Labels != 0 {
			t.Fatalf("slot %d still holds tool labels %04b", i, st.FP.Labels)
		}
	}
}

// TestToolDueBoundedUnderFlood: a flood of one-probe Mirai sources through a small source
// table (every source evicted with its episode active) leaves at most dueLimit entries in
// the tool queue, and every episode ends exactly once.
func TestToolDueBoundedUnderFlood(t *testing.T) {
	h := newHarness(t, only(testConfig(t), Fingerprint))
	h.srcs = newSourceTable(16)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs)
	const n = 5000
	most := 0
	for b := range n {
		p := syn(ip4("100.64.0.0", b), ip4("203.0.113.0", b), 23, t0+int64(b)*1000)
		p.Seq = p.Dst.V4()
		h.feed(p)
		most = max(most, h.e.toolDue.len())
	}
	if lim := toolDueLimit(h.srcs.Slots()); most > lim {
		t.Fatalf("the tool queue reached %d entries, more than %d for %d slots", most, lim, h.srcs.Slots())
	}
	h.finish(t0 + n*1000)
	all := h.sink.take()
	checkCounters(t, h.c, all)
	if len(all) != 2*n {
		t.Fatalf("%d events, want a start and an end for each of %d sources", len(all), n)
	}
}

// TestToolRecordsGoOnInPlace: a tool episode already in the episode table (restored from a
// checkpoint of a version that kept them there) goes on there when the engine gets its
// source table: the source's next probe continues it, and it ends once, by time.
func TestToolRecordsGoOnInPlace(t *testing.T) {
	h := newHarness(t, only(testConfig(t), Fingerprint))
	h.legacyTools()
	mirai := func(i int, ts int64) packet.Header {
		p := syn("100.64.0.1", ip4("203.0.113.0", i), 23, ts)
		p.Seq = p.Dst.V4()
		return p
	}
	h.feed(mirai(0, t0))
	h.e.SetSources(h.srcs)
	h.feed(mirai(1, t0+sec))
	if st := h.srcs.Get(addr("100.64.0.1")); h.e.eps.Len() != 1 || st.FP.Labels != 0 {
		t.Fatalf("%d records, labels in place %04b: the record should go on", h.e.eps.Len(), st.FP.Labels)
	}
	h.e.Advance(t0 + sec + win + 1)
	all := h.sink.take()
	checkEvents(t, all, []ev{
		{Fingerprint, Start, "mirai", ToolEntry{Src: ipOf("100.64.0.1"), Tool: "mirai", Packets: 1, Probes: 1,
			FirstSeen: Time(t0), LastSeen: Time(t0)}},
		{Fingerprint, End, "mirai", ToolEntry{Src: ipOf("100.64.0.1"), Tool: "mirai", Packets: 2, Probes: 2,
			FirstSeen: Time(t0), LastSeen: Time(t0 + sec)}},
	})
	checkCounters(t, h.c, all)
}
