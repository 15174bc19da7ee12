package pipeline

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
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
