package pipeline

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestSurgeStartsWithTheInput replays a capture whose first packet is a telnet SYN on the
// first nanosecond of a surge bucket, and whose other packets come later, with 1, 2 and 3
// workers. The first bucket is whole (the input starts with it), so the baseline starts
// from its 12 sources, and a surge that follows soon after is judged against it. Each
// worker's engine used to take its first whole bucket from its own first packet: with 2 and
// 3 workers, the workers that did not get the first packet made the surge drop that bucket,
// and the baseline started from the next one's 2 sources (2, where it is 5.28).
func TestSurgeStartsWithTheInput(t *testing.T) {
	cfg := parseConfig(t, `dark_prefixes: [203.0.113.0/24]
detect:
  telnet: {surge_bucket: 10s, surge_factor: 3, surge_min_sources: 5}
`)
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC) // a bucket's start
	var ps []pcaptest.Packet
	src := 0
	for b := range 9 {
		n := 2 // sources in bucket b
		switch {
		case b == 0:
			n = 12
		case b >= 6:
			n = 20 // the surge
		}
		for i := range n {
			ps = append(ps, pcaptest.Packet{
				TS:  base.Add(time.Duration(b)*10*time.Second + time.Duration(i)*time.Millisecond),
				Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(src)}), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}),
				SrcPort: 50000, DstPort: 23, Flags: 0x02,
			})
			src++
		}
	}
	path := writeTraffic(t, filepath.Join(t.TempDir(), "surge.pcap"), ps)
	var want *detect.TelnetSurgeEntry
	for _, workers := range []int{1, 2, 3} {
		rec := &recorder{next: NewEpisodes()}
		p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
		if err != nil {
			t.Fatal(err)
		}
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 || res.Records != uint64(len(ps)) {
			t.Fatalf("workers=%d: %d records of %d, errors %v", workers, res.Records, len(ps), res.Errors)
		}
		es := p.Report(rec.next).Detections["telnet_surge"]
		if len(es) != 1 {
			t.Fatalf("workers=%d: %d telnet surges, want 1: %v", workers, len(es), es)
		}
		got := es[0].(*detect.TelnetSurgeEntry)
		t.Logf("workers=%d: %+v", workers, *got)
		if want == nil {
			want = got
			// The first bucket's 12 sources are in it: 2 sources a bucket since would
			// have left it at 2.
			if got.Baseline < 3 {
				t.Errorf("workers=1: baseline %.2f: the first bucket is not in it", got.Baseline)
			}
			continue
		}
		if *got != *want {
			t.Errorf("workers=%d: %+v, with 1 worker %+v", workers, *got, *want)
		}
	}
}

// TestTelescopeDayAnyWorkers replays the generated telescope day (the benchmark's day at
// scale 1: 166 k packets over 2 hours) with 1, 2 and 3 workers: the same detections each
// time, hotspots' top sources included. Before, the telnet surge's baseline differed (see
// TestSurgeStartsWithTheInput), and so did the top sources of both its hotspots: among
// sources with as many packets a worker listed those it saw first, and which those were
// depended on how the sources were split among the workers.
func TestTelescopeDayAnyWorkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "day.pcap")
	if _, err := daygen.WriteFile(path, daygen.Options{Seed: 1, Scale: 1, Profile: daygen.ProfileTelescope}); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, `dark_prefixes: [203.0.113.0/24, 198.51.100.0/24, '2001:db8:1::/48']`)
	var first []byte
	for _, workers := range []int{1, 2, 3} {
		rec := &recorder{next: NewEpisodes()}
		p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
		if err != nil {
			t.Fatal(err)
		}
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 {
			t.Fatalf("workers=%d: %v", workers, res.Errors)
		}
		r := p.Report(rec.next)
		for _, key := range []string{"telnet_surge", "hotspot"} {
			if len(r.Detections[key]) == 0 {
				t.Fatalf("workers=%d: no %s", workers, key)
			}
		}
		dets := mustJSON(t, r.Detections)
		if first == nil {
			first = dets
			continue
		}
		if string(dets) != string(first) {
			t.Errorf("workers=%d: the detections differ from those with 1 worker", workers)
			for _, key := range []string{"telnet_surge", "hotspot"} {
				t.Logf("%s: %s", key, mustJSON(t, r.Detections[key]))
			}
		}
	}
}

// mustJSON returns v as JSON.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
