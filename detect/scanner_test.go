package detect

import (
	"math"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

const scanSrc = "192.0.2.1"

func scanEv(p Phase, class string, packets, targets, ports uint64, first, last int64) ev {
	return ev{Scanner, p, class, ScannerEntry{Src: scanSrc, Class: class, Packets: packets,
		Targets: targets, Ports: ports, FirstSeen: Time(first), LastSeen: Time(last)}}
}

func scanEv6(p Phase, class string, packets, targets, ports uint64, first, last int64) ev {
	e := scanEv(p, class, packets, targets, ports, first, last)
	x := e.entry.(ScannerEntry)
	x.Src = "2001:db8::1"
	e.entry = x
	return e
}

// horiz sends n SYNs to port 80 of n distinct dark IPs, one per second from `from`.
func horiz(n int, from int64) []packet.Header {
	return seq(n, from, sec, func(i int, ts int64) packet.Header {
		return syn(scanSrc, ip4("203.0.113.0", i), 80, ts)
	})
}

// grid sends n SYNs cycling over ips x ports targets.
func grid(n, ips, ports int, from int64) []packet.Header {
	return seq(n, from, sec, func(i int, ts int64) packet.Header {
		return syn(scanSrc, ip4("203.0.113.0", i%ips), uint16(1000+i/ips%ports), ts)
	})
}

func TestScanner(t *testing.T) {
	L := t0 + 99*sec // last of 100 probes one second apart
	cases := []struct {
		name  string
		steps []step
	}{
		{"min_packets-1", []step{{pkts: horiz(99, t0), finish: L + sec}}},
		{"min_packets", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L + sec, want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)}},
		}},
		{"min_targets-1", []step{{pkts: grid(100, 19, 1, t0), finish: L + sec}}},
		{"min_targets", []step{
			{pkts: grid(100, 20, 1, t0), want: []ev{scanEv(Start, "horizontal", 100, 20, 1, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 100, 20, 1, t0, L)}},
		}},
		{"probe at window start + window opens a new window", []step{
			{pkts: cat(horiz(99, t0), []packet.Header{syn(scanSrc, "198.51.100.1", 80, t0+win)}), finish: t0 + win},
		}},
		{"probe 1ns before the window end counts", []step{
			{pkts: cat(horiz(99, t0), []packet.Header{syn(scanSrc, "198.51.100.1", 80, t0+win-1)}),
				want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, t0+win-1)}},
			{finish: t0 + win, want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, t0+win-1)}},
		}},
		{"gap == window continues the episode past the window", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{pkts: []packet.Header{syn(scanSrc, "198.51.100.1", 80, L+win)}},
			{finish: L + win, want: []ev{scanEv(End, "horizontal", 101, 101, 1, t0, L+win)}},
		}},
		{"gap == window+1ns ends the episode", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{pkts: []packet.Header{syn(scanSrc, "198.51.100.1", 80, L+win+1)},
				want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L + win + 1},
		}},
		{"a new episode after the gap", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{pkts: horiz(100, L+win+1), want: []ev{
				scanEv(End, "horizontal", 100, 100, 1, t0, L),
				scanEv(Start, "horizontal", 100, 100, 1, L+win+1, L+win+1+99*sec)}},
			{finish: L + win + 1 + 99*sec, want: []ev{scanEv(End, "horizontal", 100, 100, 1, L+win+1, L+win+1+99*sec)}},
		}},
		{"vertical", []step{
			{pkts: grid(100, 1, 100, t0), want: []ev{scanEv(Start, "vertical", 100, 100, 100, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "vertical", 100, 100, 100, t0, L)}},
		}},
		{"5 IPs x 5 ports is mixed", []step{
			{pkts: grid(100, 5, 5, t0), want: []ev{scanEv(Start, "mixed", 100, 25, 5, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "mixed", 100, 25, 5, t0, L)}},
		}},
		{"6 IPs x 5 ports is horizontal", []step{
			{pkts: grid(100, 6, 5, t0), want: []ev{scanEv(Start, "horizontal", 100, 30, 5, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 100, 30, 5, t0, L)}},
		}},
		{"5 IPs x 6 ports is vertical", []step{
			{pkts: grid(100, 5, 6, t0), want: []ev{scanEv(Start, "vertical", 100, 30, 6, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "vertical", 100, 30, 6, t0, L)}},
		}},
		{"6 IPs x 6 ports is mixed", []step{
			{pkts: grid(100, 6, 6, t0), want: []ev{scanEv(Start, "mixed", 100, 36, 6, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "mixed", 100, 36, 6, t0, L)}},
		}},
		{"class recomputed at the end", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{pkts: seq(10, L+sec, sec, func(i int, ts int64) packet.Header {
				return syn(scanSrc, "198.51.100.7", uint16(2000+i), ts)
			})},
			{finish: L + 20*sec, want: []ev{scanEv(End, "mixed", 110, 110, 11, t0, L+10*sec)}},
		}},
		{"ICMP echo counts with port 0", []step{
			{pkts: seq(100, t0, sec, func(i int, ts int64) packet.Header { return echo(scanSrc, ip4("203.0.113.0", i%20), ts) }),
				want: []ev{scanEv(Start, "horizontal", 100, 20, 1, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 100, 20, 1, t0, L)}},
		}},
		{"ICMP echo and UDP to port 0 are the same target", []step{
			{pkts: cat(
				seq(50, t0, sec, func(i int, ts int64) packet.Header { return echo(scanSrc, ip4("203.0.113.0", i%20), ts) }),
				seq(50, t0+50*sec, sec, func(i int, ts int64) packet.Header {
					return udp(scanSrc, ip4("203.0.113.0", i%19), 0, ts, nil)
				})),
				want: []ev{scanEv(Start, "horizontal", 100, 20, 1, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 100, 20, 1, t0, L)}},
		}},
		{"UDP probes count", []step{
			{pkts: seq(100, t0, sec, func(i int, ts int64) packet.Header { return udp(scanSrc, ip4("203.0.113.0", i), 53, ts, nil) }),
				want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)}},
		}},
		{"non-probes do not count", []step{
			{pkts: cat(
				seq(100, t0, sec, func(i int, ts int64) packet.Header {
					return tcp(scanSrc, ip4("198.51.100.0", i), packet.FlagSYN|packet.FlagACK, ts)
				}),
				horiz(99, t0+100*sec)), finish: t0 + 200*sec},
		}},
		{"out-of-order probe counts without moving last_seen back", []step{
			{pkts: cat(horiz(100, t0), []packet.Header{syn(scanSrc, "198.51.100.1", 80, t0+50*sec)}),
				want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L, want: []ev{scanEv(End, "horizontal", 101, 101, 1, t0, L)}},
		}},
		{"IPv6", []step{
			{pkts: seq(100, t0, sec, func(i int, ts int64) packet.Header {
				return syn("2001:db8::1", ip6("2001:db8:1::", i+1), 80, ts)
			}), want: []ev{scanEv6(Start, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L, want: []ev{scanEv6(End, "horizontal", 100, 100, 1, t0, L)}},
		}},
		{"Advance at last+window keeps the episode, past it ends it", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{advance: L + win},
			{advance: L + win + 2*sec, want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)}},
			{finish: L + win + 3*sec},
		}},
		{"Advance exactly window+1ns after the last probe ends it", []step{
			{pkts: horiz(100, t0), want: []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)}},
			{advance: L + win + 1, want: []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)}},
			{pkts: []packet.Header{syn(scanSrc, "198.51.100.1", 80, L+win+2)}},
			{finish: L + win + 3},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, only(testConfig(t), Scanner), tc.steps)
		})
	}
}

func TestScannerReloadKeepsState(t *testing.T) {
	cfg := only(testConfig(t), Scanner)
	h := newHarness(t, cfg)
	h.feed(horiz(60, t0)...)
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("60 probes: %d events, want none", len(ev))
	}
	lower := *cfg
	lower.Scanner.MinPackets = 50
	h.e.SetConfig(&lower)
	h.feed(syn(scanSrc, "198.51.100.1", 80, t0+60*sec))
	checkEvents(t, h.sink.take(), []ev{scanEv(Start, "horizontal", 61, 61, 1, t0, t0+60*sec)})
	// The window moved into the engine's episode table: the source entry keeps none of it.
	if st := h.srcs.Get(addr(scanSrc)); st.Moved != epScan || st.Scan.Packets != 0 || st.Scan.Targets.Bytes() != 0 {
		t.Fatalf("after the start: moved %03b, window %+v", st.Moved, st.Scan)
	}
	// Turning the detector off ends the episode now.
	off := lower
	off.Scanner.Enabled = false
	h.e.SetConfig(&off)
	checkEvents(t, h.sink.take(), []ev{scanEv(End, "horizontal", 61, 61, 1, t0, t0+60*sec)})
	h.feed(horiz(100, t0+61*sec)...)
	h.finish(t0 + 200*sec)
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("disabled scanner: %d events", len(ev))
	}
	if a := h.c.Active[detScanner].Load(); a != 0 {
		t.Fatalf("active scanners %d after finish", a)
	}
}

func TestScannerEviction(t *testing.T) {
	cfg := only(testConfig(t), Scanner)
	h := newHarness(t, cfg)
	h.srcs = newSourceTable(1)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs)
	h.feed(horiz(100, t0)...)
	L := t0 + 99*sec
	checkEvents(t, h.sink.take(), []ev{scanEv(Start, "horizontal", 100, 100, 1, t0, L)})
	// Another source takes the only slot: the scanner's episode ends with its final values.
	h.feed(syn("192.0.2.99", "203.0.113.1", 80, L+sec))
	checkEvents(t, h.sink.take(), []ev{scanEv(End, "horizontal", 100, 100, 1, t0, L)})
	if n := h.e.eps.Len(); n != 0 {
		t.Fatalf("evicted source still has an episode record (%d records)", n)
	}
	// The reused slot starts from scratch: the old counts do not leak into the new source.
	st := h.srcs.Get(addr("192.0.2.99"))
	if st == nil || st.Scan.Packets != 1 || st.Moved != 0 {
		t.Fatalf("new source state %+v", st)
	}
	h.finish(L + 2*sec)
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("finish after eviction: %v", evs(ev))
	}
}

// TestWatchedPortScanners: a scanner episode counts once under each watched port it
// probed, before or after it started; unwatched ports and non-scanners count nowhere.
func TestWatchedPortScanners(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchPorts = []uint16{22, 23, 445}
	h := newHarness(t, cfg)
	// Below the threshold: a source probing port 22 that never becomes a scanner.
	h.feed(seq(10, t0, sec, func(i int, ts int64) packet.Header {
		return syn("192.0.2.99", ip4("203.0.113.0", i), 22, ts)
	})...)
	// A scanner: 50 probes of 22 (twice per target), then 100 of port 80 (the episode
	// starts), then port 445 during the episode, then 22 again.
	pkts := cat(
		seq(50, t0, sec, func(i int, ts int64) packet.Header { return syn(scanSrc, ip4("203.0.113.0", i%25), 22, ts) }),
		horiz(100, t0+50*sec),
		seq(5, t0+150*sec, sec, func(i int, ts int64) packet.Header { return syn(scanSrc, ip4("203.0.113.0", i), 445, ts) }),
		seq(5, t0+155*sec, sec, func(i int, ts int64) packet.Header { return syn(scanSrc, ip4("203.0.113.0", i), 22, ts) }),
	)
	h.feed(pkts...)
	want := map[uint16]uint64{22: 1, 23: 0, 445: 1, 80: 0}
	for p, n := range want {
		if got := h.c.WatchedScanners(p); got != n {
			t.Errorf("watched port %d: %d scanner episodes, want %d", p, got, n)
		}
	}
	// A second episode of the same source after a quiet window counts again.
	h.feed(seq(100, t0+170*sec+win+sec, sec, func(i int, ts int64) packet.Header {
		return syn(scanSrc, ip4("203.0.114.0", i), 22, ts)
	})...)
	if got := h.c.WatchedScanners(22); got != 2 {
		t.Errorf("after a second episode: port 22 counted %d times, want 2", got)
	}
	h.finish(t0 + time30m)
}

const time30m = 30 * mn

// TestScannerTargetsExactOrLabelled: a masscan-like scan of n SYNs to n distinct (address,
// port) pairs reports exactly n targets up to the exact limit (4 096), unlabelled; past it
// an estimate labelled targets_estimated, never more than the packets.
func TestScannerTargetsExactOrLabelled(t *testing.T) {
	for _, n := range []int{1001, 4096, 4097, 6000} {
		h := newHarness(t, only(testConfig(t), Scanner))
		h.feed(seq(n, t0, int64(1e6), func(i int, ts int64) packet.Header {
			return syn(scanSrc, ip4("198.51.0.0", i%4000), uint16(1+i/4000), ts)
		})...)
		h.finish(t0 + int64(n)*int64(1e6) + 2*win)
		var end *ScannerEntry
		for _, ev := range h.sink.take() {
			if ev.Detector == Scanner && ev.Phase == End {
				end = ev.Entry.(*ScannerEntry)
			}
		}
		if end == nil {
			t.Fatalf("n=%d: no scanner episode", n)
		}
		exact := n <= 4096
		if end.Packets != uint64(n) || end.TargetsEstimated == exact || (exact && end.Targets != uint64(n)) ||
			end.Targets > end.Packets || end.Targets < 4097 && !exact {
			t.Errorf("n=%d: packets %d, targets %d, estimated %v", n, end.Packets, end.Targets, end.TargetsEstimated)
		}
	}
}

// TestScannerSetsBounded: a swarm of 300 bots each scanning 300 distinct targets, with the
// engine's sets limited to 64 KiB (limits.max_sets_mb): the sets' memory never passes the
// limit, every bot is still a scanner episode with its exact packets, and each either counts
// its targets exactly (unlabelled) or estimates them inline (targets_estimated, within 3 ×
// 13 % and never above its packets). With no limit every bot counts exactly.
func TestScannerSetsBounded(t *testing.T) {
	const bots, probes = 300, 300
	for _, limit := range []uint64{0, 8 << 10} {
		cfg := only(testConfig(t), Scanner)
		cfg.MaxSetWords = limit
		cfg.MaxFlows = 2 * bots
		h := newHarness(t, cfg)
		h.srcs = newSourceTable(2 * bots)
		h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
		h.e.SetSources(h.srcs)
		ts := t0
		for i := range probes {
			for b := range bots {
				ts += 1e5
				h.feed(syn(ip4("10.9.0.0", b), ip4("198.51.0.0", (i*7+b)%65536), uint16(1+i), ts))
			}
			if limit > 0 && uint64(h.e.slab.Next) > limit {
				t.Fatalf("limit %d words: the sets hold %d", limit, h.e.slab.Next)
			}
		}
		h.finish(ts + 2*win)
		ends, estimated := 0, 0
		for _, ev := range h.sink.take() {
			if ev.Detector != Scanner || ev.Phase != End {
				continue
			}
			e := ev.Entry.(*ScannerEntry)
			ends++
			if e.TargetsEstimated {
				estimated++
			}
			rel := math.Abs(float64(e.Targets)-probes) / probes
			if e.Packets != probes || e.Targets > e.Packets || (!e.TargetsEstimated && e.Targets != probes) || rel > 0.39 {
				t.Errorf("limit %d words: %s: packets %d, targets %d (estimated %v)", limit, e.Src, e.Packets, e.Targets, e.TargetsEstimated)
			}
		}
		if ends != bots || (limit == 0) != (estimated == 0) || (limit > 0 && h.e.SetsRefused() == 0) {
			t.Errorf("limit %d words: %d scanner episodes (want %d), %d estimated, %d blocks refused", limit, ends, bots, estimated, h.e.SetsRefused())
		}
	}
}
