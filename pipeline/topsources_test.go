package pipeline

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// sourcesReport replays ps with a source table of 1000 entries and returns the report.
func sourcesReport(t *testing.T, ps []pcaptest.Packet, workers int) *Report {
	t.Helper()
	return packetsReport(t, ps, "dark_prefixes: [203.0.113.0/24]\nlimits: {max_sources: 1000}\ndetect: {hotspot: {enabled: false}}\n", workers)
}

// packetsReport writes ps to a capture, replays it with the config yml (replayPipeline:
// no replay error) and returns the report.
func packetsReport(t *testing.T, ps []pcaptest.Packet, yml string, workers int) *Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "top.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse([]byte(yml), "top.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, r := replayPipeline(t, cfg, workers, path)
	if r.Frames != uint64(len(ps)) {
		t.Fatalf("replay: %d frames of %d", r.Frames, len(ps))
	}
	return r
}

// floodSource is the i-th source of a spoofed flood (distinct for i < 2^22).
func floodSource(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
}

// floodPackets is n flood sources, source i sending packets(i) SYNs in a row, a
// millisecond apart.
func floodPackets(n int, packets func(i int) int) []pcaptest.Packet {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for i := range n {
		for range packets(i) {
			ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(len(ps)) * time.Millisecond), Src: floodSource(i),
				Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 200)}), DstPort: 23, Flags: 0x02})
		}
	}
	return ps
}

// TestTopSourcesUnderSpoofedFlood: real sources whose stays in a small source table are
// cut short by a flood of one-packet spoofed sources, more than a worker's summary of
// evicted sources holds, keep their exact counts at the head of the report's top sources,
// and the flood's sources are listed with the one packet each sent, not with counts
// inherited in a full Space-Saving summary.
func TestTopSourcesUnderSpoofedFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a 200 k-packet flood, skipped in -short mode")
	}
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	var ps []pcaptest.Packet
	add := func(src netip.Addr, port int) {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(len(ps)) * time.Millisecond), Src: src,
			Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(len(ps))}), DstPort: uint16(port), Flags: 0x02})
	}
	next := 0
	for round := range 4 {
		for range 5 {
			add(a, 80) // four stays of 5 packets: 20
		}
		if round < 3 {
			for range 3 {
				add(b, 81) // three stays of 3: 9
			}
		}
		for range 50_000 { // the table (1000) evicts a and b: both are summarized
			add(floodSource(next), 23)
			next++
		}
	}
	for range 40 {
		add(c, 82) // one stay at the end, still in the table
	}
	for _, workers := range []int{1, 2} {
		top := sourcesReport(t, ps, workers).Sources.Top
		want := []AddrCount{{Addr: c.String(), Packets: 40}, {Addr: a.String(), Packets: 20}, {Addr: b.String(), Packets: 9}}
		if len(top) != reportTop || fmt.Sprint(addrPackets(top[:3])) != fmt.Sprint(want) {
			t.Fatalf("workers=%d: %d top sources %v..., want %d beginning %v", workers, len(top), addrPackets(top[:min(len(top), 6)]), reportTop, want)
		}
		for _, s := range top[3:] {
			if s.Packets != 1 {
				t.Fatalf("workers=%d: flood source %s listed with %d packets, sent 1", workers, s.Addr, s.Packets)
			}
		}
	}
}

// TestTopSourcesEvictedLowerBound: when the summary of evicted sources is full (sources of
// two packets each, more of them than it holds), every listed source still has exactly the
// packets it sent: the summary's guaranteed part, not the count an entry inherited.
func TestTopSourcesEvictedLowerBound(t *testing.T) {
	if testing.Short() {
		t.Skip("a 200 k-packet flood, skipped in -short mode")
	}
	r := sourcesReport(t, floodPackets(100_000, func(int) int { return 2 }), 1)
	// 1000 in the table, 65 536 in the summary of evicted sources, the rest dropped from
	// it: every one of them a source of two packets.
	if d := r.Distributions.PacketsPerSource; fmt.Sprint(d) != "[0 100000]" {
		t.Errorf("packets per source %v, want [0 100000]", d)
	}
	top := r.Sources.Top
	if len(top) != reportTop {
		t.Fatalf("%d top sources, want %d", len(top), reportTop)
	}
	for _, s := range top {
		if s.Packets != 2 {
			t.Fatalf("%s listed with %d packets, sent 2 (top: %v...)", s.Addr, s.Packets, addrPackets(top[:5]))
		}
	}
}

// TestTopSourcesAcrossCheckpoint: the summary of evicted sources and its dropped keys
// (those evicted after one packet among them) go through a checkpoint: a replay split in two with the state
// carried over reports the same top sources and packets-per-source distribution as one run.
func TestTopSourcesAcrossCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("a 300 k-packet flood, skipped in -short mode")
	}
	// One-, two- and three-packet sources, most evicted: 100 000 summarized by one worker,
	// so some are dropped from its summary too.
	ps := floodPackets(150_000, func(i int) int { return 1 + i%3 })
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.pcap")
	if err := pcaptest.WriteFile(whole, ps); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	first, second := splitPcap(t, data, ps[len(ps)*3/4].TS) // after the summary filled up
	parts := []string{filepath.Join(dir, "first.pcap"), filepath.Join(dir, "second.pcap")}
	for i, b := range [][]byte{first, second} {
		if err := os.WriteFile(parts[i], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\nlimits: {max_sources: 1000}\n"), "top.yaml")
	if err != nil {
		t.Fatal(err)
	}
	report := func(files []string, state string, restore, keep bool) *Report {
		col := NewEpisodes()
		p, err := New(Options{Config: cfg, Workers: 1, Sink: col})
		if err != nil {
			t.Fatal(err)
		}
		if restore {
			if _, err := p.RestoreState(state, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		p.SetKeepState(keep)
		p.Replay(context.Background(), ReplayOptions{Files: files})
		if keep {
			if _, err := p.Checkpoint(state); err != nil {
				t.Fatal(err)
			}
		}
		return p.Report(col)
	}
	want := report([]string{whole}, "", false, false)
	state := filepath.Join(dir, "state")
	report(parts[:1], state, false, true)
	got := report(parts[1:], state, true, false)
	d := want.Distributions.PacketsPerSource
	if fmt.Sprint(d) != "[50000 100000]" {
		t.Fatalf("packets per source %v: want 50 000 one-packet and 100 000 two- and three-packet sources", d)
	}
	if fmt.Sprint(got.Distributions.PacketsPerSource) != fmt.Sprint(d) || fmt.Sprint(addrPackets(got.Sources.Top)) != fmt.Sprint(addrPackets(want.Sources.Top)) {
		t.Fatalf("split: packets per source %v, top %v...; whole: %v, %v...", got.Distributions.PacketsPerSource,
			addrPackets(got.Sources.Top[:3]), d, addrPackets(want.Sources.Top[:3]))
	}
}

// TestDestinationsOfADarkIPv6Prefix: packets to 100 000 distinct addresses of a dark IPv6
// prefix (no dense index: a Space-Saving summary of 65 536 per worker) are 100 000
// one-packet destinations in the distribution, and every listed one has 1 packet.
func TestDestinationsOfADarkIPv6Prefix(t *testing.T) {
	if testing.Short() {
		t.Skip("100 k packets, skipped in -short mode")
	}
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("2001:db8:99::1")
	var ps []pcaptest.Packet
	for i := range 100_000 {
		dst := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Millisecond), Src: src, Dst: dst, DstPort: 22, Flags: 0x02})
	}
	r := packetsReport(t, ps, "dark_prefixes: ['2001:db8:1::/48']\n", 1)
	if d := r.Distributions.PacketsPerDestination; fmt.Sprint(d) != "[100000]" {
		t.Errorf("packets per destination %v, want [100000]", d)
	}
	for _, c := range r.Destinations.Top {
		if c.Packets != 1 {
			t.Fatalf("destination %s listed with %d packets, got 1", c.Addr, c.Packets)
		}
	}
	if len(r.Destinations.Top) != reportTop {
		t.Errorf("%d top destinations, want %d", len(r.Destinations.Top), reportTop)
	}
}

// TestDestinationCountedBeforeAndAfterItTurnedDark: packets to an address before a reload
// made its prefix dark are in the destinations' Space-Saving summary, the packets after it
// in its dense count; the report lists the address once, with both, beside the summary's
// other addresses, with 1, 2 and 3 workers (each holds part of the summary's counts).
func TestDestinationCountedBeforeAndAfterItTurnedDark(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var before, after []pcaptest.Packet
	add := func(ps *[]pcaptest.Packet, n int, dst string) {
		d := netip.MustParseAddr(dst)
		for range n {
			i := len(before) + len(after)
			src := floodSource(i)
			if d.Is6() {
				src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x99, 15: byte(i)})
			}
			*ps = append(*ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Millisecond),
				Src: src, Dst: d, DstPort: 22, Flags: 0x02})
		}
	}
	add(&before, 3, "198.51.100.7")
	add(&before, 2, "198.51.100.8")
	add(&before, 6, "2001:db8:5::1")
	add(&after, 4, "198.51.100.7")
	add(&after, 1, "203.0.113.9")
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "before.pcap"), filepath.Join(dir, "after.pcap")}
	for i, ps := range [][]pcaptest.Packet{before, after} {
		if err := pcaptest.WriteFile(files[i], ps); err != nil {
			t.Fatal(err)
		}
	}
	want := "198.51.100.7:7 2001:db8:5::1:6 198.51.100.8:2 203.0.113.9:1"
	for _, workers := range []int{1, 2, 3} {
		r := reportAcrossReload(t, workers, "[203.0.113.0/24]", "[203.0.113.0/24, 198.51.100.0/24]", files[0], files[1])
		var got []string
		for _, c := range r.Destinations.Top {
			got = append(got, fmt.Sprintf("%s:%d", c.Addr, c.Packets))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("workers=%d: top destinations %s, want %s", workers, strings.Join(got, " "), want)
		}
		// By log2 of their packets: 1; 2; 6 and 7.
		if got := fmt.Sprint(r.Distributions.PacketsPerDestination); got != "[1 1 2]" {
			t.Errorf("workers=%d: packets per destination %s, want [1 1 2]", workers, got)
		}
	}
}

// TestReloadKeepsTheBusiestDarkDestinationsExact: a reload that replaces a dark space whose
// every address was hit (a /13, eight times the destination summary's capacity) hands
// the summary the busiest addresses, not every address in dense order. Added one by one,
// the busy addresses at the space's start were pushed out by the many after them, and the
// report lost them. With 1, 2 and 3 workers.
func TestReloadKeepsTheBusiestDarkDestinationsExact(t *testing.T) {
	const space, busy, busyPackets = 1 << 19, 10, 4
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	add := func(dst netip.Addr) {
		i := len(ps)
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Microsecond),
			Src: floodSource(i), Dst: dst, DstPort: 23, Flags: 0x02})
	}
	dst := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range space {
		add(dst(i))
	}
	var want []string
	for b := range busy { // the space's first addresses
		a := dst(b)
		for range busyPackets - 1 {
			add(a)
		}
		want = append(want, fmt.Sprintf("%s:%d", a, busyPackets))
	}
	file := writeTraffic(t, filepath.Join(t.TempDir(), "space.pcap"), ps)
	slices.Sort(want)
	// The reload is adopted between batches: one more packet after it, outside both spaces.
	more := writeTraffic(t, filepath.Join(t.TempDir(), "more.pcap"), []pcaptest.Packet{{TS: t0.Add(time.Hour),
		Src: floodSource(0), Dst: netip.MustParseAddr("192.0.2.1"), DstPort: 23, Flags: 0x02}})
	for _, workers := range []int{1, 2, 3} {
		r := reportAcrossReload(t, workers, "[10.0.0.0/13]", "[10.0.0.0/16]", file, more)
		var got []string
		for _, c := range r.Destinations.Top[:busy] {
			got = append(got, fmt.Sprintf("%s:%d", c.Addr, c.Packets))
		}
		slices.Sort(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("workers=%d: top destinations %s, want %s", workers, strings.Join(got, " "), strings.Join(want, " "))
		}
		// Every address of the space once in the distribution, by what it was known to get.
		var n uint64
		for _, c := range r.Distributions.PacketsPerDestination {
			n += c
		}
		if n < space || n > space+uint64(workers)*busy {
			t.Errorf("workers=%d: %d destinations in the distribution, want %d (a busy one counted by each worker at most)", workers, n, space)
		}
	}
}

// reportAcrossReload replays first under the dark prefixes before (a YAML list), reloads
// to after, replays second and returns the report.
func reportAcrossReload(t *testing.T, workers int, before, after, first, second string) *Report {
	t.Helper()
	col := NewEpisodes()
	p, err := New(Options{Config: parseConfig(t, "dark_prefixes: "+before+"\n"), Workers: workers, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Replay(context.Background(), ReplayOptions{Files: []string{first}}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	if err := p.Reload(parseConfig(t, "dark_prefixes: "+after+"\n")); err != nil {
		t.Fatal(err)
	}
	if res := p.Replay(context.Background(), ReplayOptions{Files: []string{second}}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	return p.Report(col)
}
