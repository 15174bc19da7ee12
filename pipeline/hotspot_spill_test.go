package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// spillCapture: an IPv6 scanner (one source, so one worker) sends one packet to each of
// `random` distinct dark IPv6 addresses, and a second one to the first of them at the end,
// while 120 IPv4 sources reach 203.0.113.9:80 and 60 IPv6 sources 2001:db8:1::ab:443, all
// in one window. The returns: the packets, and the receiver distribution's exact
// destinations and packets.
func spillCapture(random int) ([]pcaptest.Packet, uint64, uint64) {
	scanner := netip.MustParseAddr("2001:db8:ffff::5ca")
	hotV6 := netip.MustParseAddr("2001:db8:1::ab")
	randomDst := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xff, 0xff, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	}
	var ps []pcaptest.Packet
	at := hotT0
	add := func(src, dst netip.Addr, port uint16) {
		at = at.Add(time.Millisecond)
		ps = append(ps, pcaptest.Packet{TS: at, Src: src, Dst: dst, SrcPort: 4000, DstPort: port, Flags: 0x02})
	}
	next := 0
	for i := range 120 {
		add(spoofed(i), darkAddr(256+9), 80)
		if i < 60 {
			add(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xee, 14: byte(i >> 8), 15: byte(i)}), hotV6, 443)
		}
		for ; next < random*(i+1)/120; next++ {
			add(scanner, randomDst(next), 22)
		}
	}
	add(scanner, randomDst(0), 22) // a destination spilled long ago, again
	return ps, uint64(2 + random), uint64(len(ps))
}

// TestHotspotSpill: a worker whose destination cells fill up with one-packet destinations
// hands those over and keeps the busy ones, which go on counting exactly: the hot IPv4
// address:port and IPv6 address:port are found with exact, unlabelled sources and packets,
// with 1, 2 and 3 workers. Spilled up to twice the limit, the receiver distribution stays
// exact (a spilled destination that comes back is summed with its first cell); past it the
// one-packet cells are counted on their own (unmerged) and no packet is lost. A capture cut
// after the spills and carried over a checkpoint gives the same episodes.
func TestHotspotSpill(t *testing.T) {
	for _, tc := range []struct {
		random   int
		unmerged bool
	}{
		{random: 100},                  // spills at 64 cells, all kept (fewer than 128)
		{random: 2000, unmerged: true}, // past twice the cap: counted on their own
	} {
		ps, dsts, packets := spillCapture(tc.random)
		path := filepath.Join(t.TempDir(), "spill.pcap")
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 3} {
			// 64 cells per worker
			cfg := hotConfig(t, fmt.Sprintf("detect: {hotspot: {min_sources: 50}}\nlimits: {max_destinations: %d}\n", 64*workers))
			name := fmt.Sprintf("random=%d workers=%d", tc.random, workers)
			col := NewEpisodes()
			p, err := New(Options{Config: cfg, Workers: workers, Sink: col})
			if err != nil {
				t.Fatal(err)
			}
			res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
			if len(res.Errors) != 0 || res.Records != packets {
				t.Fatalf("%s: %d of %d records, errors %v", name, res.Records, packets, res.Errors)
			}
			r := p.Report(col)
			// A spill evicts nothing (its counts stay exact); a cell the limit takes out of
			// the hotspot counts does (the source table holds every source here).
			if _, ev := p.Tracked(); ev != r.Receivers.Unmerged {
				t.Errorf("%s: %d evictions, want the %d unmerged cells", name, ev, r.Receivers.Unmerged)
			}
			hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
			slices.SortFunc(hot, func(a, b *detect.HotspotEntry) int { return int(a.Port) - int(b.Port) })
			if len(hot) != 2 {
				for _, h := range hot {
					t.Logf("%+v", *h)
				}
				t.Fatalf("%s: %d hotspot episodes, want 2", name, len(hot))
			}
			for i, want := range []struct {
				dst     string
				port    uint16
				sources uint64
			}{{"203.0.113.9", 80, 120}, {"2001:db8:1::ab", 443, 60}} {
				// One worker counts the hot destinations fully before its first spill: exact.
				// With more, the scanner's worker gets a packet or two of them between spills:
				// spilled once, they come back with their full counts, summed with the
				// spilled cell (which may share a source or two with it: estimated).
				h := hot[i]
				if h.Dst != want.dst || h.Port != want.port || h.Packets != want.sources || h.Sources < want.sources ||
					h.Sources > want.sources+2*uint64(workers) || workers == 1 && (h.SourcesEstimated || h.Sources != want.sources) ||
					h.Sources != want.sources && !h.SourcesEstimated { // summed from two cells: labelled
					t.Errorf("%s: hotspot %s:%d, %d sources (estimated %v), %d packets; want %s:%d with %d packets and sources (exact with one worker)",
						name, h.Dst, h.Port, h.Sources, h.SourcesEstimated, h.Packets, want.dst, want.port, want.sources)
				}
			}
			d := r.Receivers
			switch {
			case d.Packets != packets:
				t.Errorf("%s: receiver distribution of %d packets, want %d", name, d.Packets, packets)
			case !tc.unmerged && (d.Destinations != dsts || d.Unmerged != 0):
				t.Errorf("%s: receiver distribution of %d destinations (%d unmerged), want exactly %d", name, d.Destinations, d.Unmerged, dsts)
			case tc.unmerged && (d.Unmerged == 0 || d.Destinations < dsts || d.Destinations > dsts+1):
				// The one destination sent twice may be counted twice, once unmerged.
				t.Errorf("%s: receiver distribution of %d destinations (%d unmerged), want %d or %d and some unmerged", name, d.Destinations, d.Unmerged, dsts, dsts+1)
			}
		}
	}

	// Cut in the middle, after the first spills (free slots in the table, memos naming
	// spilled cells), and restored: the same events as in one run.
	ps, _, _ := spillCapture(300)
	cfg := hotConfig(t, "detect: {hotspot: {min_sources: 50}}\nlimits: {max_destinations: 96}\n")
	whole, split := hotEventsCut(t, cfg, ps, 0), hotEventsCut(t, cfg, ps, len(ps)/2)
	if n := len(slices.DeleteFunc(slices.Clone(whole), func(k string) bool { return !strings.HasPrefix(k, "hotspot ") })); n != 4 {
		t.Errorf("%d hotspot events in one run, want 4 (two episodes' start and end): %v", n, whole)
	}
	if !slices.Equal(whole, split) {
		t.Errorf("cut and restored: %d events, %d in one run\n%v\n%v", len(split), len(whole), split, whole)
	}
}

// TestHotspotBusyFloodBounded: destinations that each get three packets (full counts at
// once) refill a worker's table again and again, so it hands everything over (nothing light
// to spill). Past twice its table in a window the shared counts keep at most as many cells
// again, then count the rest in the receiver distribution on their own: memory stays bounded
// by the config, and no packet leaves the distribution.
func TestHotspotBusyFloodBounded(t *testing.T) {
	const dsts = 200
	var ps []pcaptest.Packet
	at := hotT0
	for d := range dsts {
		dst := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xee, 14: byte(d >> 8), 15: byte(d)})
		for k := range 3 {
			at = at.Add(time.Millisecond)
			src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xdd, 13: byte(k), 14: byte(d >> 8), 15: byte(d)})
			ps = append(ps, pcaptest.Packet{TS: at, Src: src, Dst: dst, SrcPort: 4000, DstPort: 80, Flags: 0x02})
		}
	}
	// One worker, 8 cells: parts of 8 busy cells; 16 kept within twice the table, 16 more
	// past it, the other 168 each on their own.
	r := packetsReport(t, ps, hotDark+"limits: {max_destinations: 8}\n", 1)
	if d := r.Receivers; d.Packets != 3*dsts || d.Destinations != dsts || d.Unmerged != dsts-32 {
		t.Errorf("receiver distribution of %d packets to %d destinations, %d unmerged; want %d to %d, %d unmerged",
			d.Packets, d.Destinations, d.Unmerged, 3*dsts, dsts, dsts-32)
	}
}

// TestHotspotSpillFilterFull: an IPv6 scanner sends one packet to each of 70 000 random
// dark addresses in one window, with 8 destinations a part: the filter of spilled
// destinations fills with tens of thousands of marks, and its false positives keep new
// destinations as if they had come back. A spill that would free too few hands everything
// over instead (it recursed forever once nothing was left to spill). Every packet is in
// the receiver distribution.
func TestHotspotSpillFilterFull(t *testing.T) {
	const dsts = 70000
	r := rand.New(rand.NewPCG(7, 9))
	var ps []pcaptest.Packet
	at := hotT0
	scanner := netip.MustParseAddr("2001:db8:ffff::5ca")
	for range dsts {
		at = at.Add(time.Millisecond)
		d := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1}
		for k := 6; k < 16; k++ {
			d[k] = byte(r.Uint32())
		}
		ps = append(ps, pcaptest.Packet{TS: at, Src: scanner, Dst: netip.AddrFrom16(d), SrcPort: 4000, DstPort: 22, Flags: 0x02})
	}
	rep := packetsReport(t, ps, hotDark+"limits: {max_destinations: 8}\n", 1)
	if d := rep.Receivers; d.Packets != dsts || d.Destinations != dsts {
		t.Errorf("receiver distribution of %d packets to %d destinations, want %d to %d", d.Packets, d.Destinations, dsts, dsts)
	}
}
