package pipeline

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/floodgen"
)

// TestHotspotSwarmManyParts: 20 000 bots scanning a dark /20 in one window, 600 000 SYNs
// (every other one to TCP/23), with max_destinations 512: each worker hands the window over
// in several parts (its records fill at 65 536), every address heavy in each (a dozen
// probes), eight times as many as its table of destinations. Through the whole
// pipeline with 1, 2 and 3 workers, every one of the 4 096 addresses is a hotspot (by port
// 23, or as a whole where port 23 has fewer than min_sources 50), and the receiver
// distribution sees each address once with all the packets. The dark addresses' heavy
// cells used to count against the workers' table of destinations part by part: past it
// they went to the distribution on their own and out of the hotspot counts (a handful of
// hotspots, and tens of thousands of "destinations" in the distribution).
func TestHotspotSwarmManyParts(t *testing.T) {
	const packets, addrs = 600_000, 4096
	path := filepath.Join(t.TempDir(), "swarm.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sw := floodgen.Swarm{Start: hotT0, N: packets, Bots: 20_000, Span: time.Minute, Seed: 9,
		Dark: netip.MustParsePrefix("203.0.112.0/20")}
	if err := floodgen.WriteSwarm(f, sw); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.112.0/20]\nlimits: {max_destinations: 512}\n"+
		"detect:\n  hotspot: {min_sources: 50}\n"), "swarm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3} {
		r, res := replayReport(t, cfg, workers, path)
		if len(res.Errors) != 0 || res.Records != packets {
			t.Fatalf("workers=%d: %d records, errors %v", workers, res.Records, res.Errors)
		}
		hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
		seen := map[string]bool{}
		whole := 0
		for _, h := range hot {
			if seen[h.Dst] || (h.Port != 23 && h.Port != 0) || h.Sources < 50 || h.Sources > h.Packets {
				t.Fatalf("workers=%d: hotspot %+v (twice, or not port 23 or the address)", workers, *h)
			}
			seen[h.Dst] = true
			if h.Port == 0 {
				whole++
			}
		}
		rd := r.Receivers
		t.Logf("workers=%d: %d hotspots (%d as a whole address); distribution: %d destinations, %d unmerged, %d packets",
			workers, len(hot), whole, rd.Destinations, rd.Unmerged, rd.Packets)
		if len(seen) != addrs {
			t.Errorf("workers=%d: %d addresses hot, want all %d", workers, len(seen), addrs)
		}
		if rd.Destinations != addrs || rd.Unmerged != 0 || rd.Packets != packets {
			t.Errorf("workers=%d: receiver distribution of %d destinations (%d unmerged), %d packets: want %d, 0, %d",
				workers, rd.Destinations, rd.Unmerged, rd.Packets, addrs, packets)
		}
	}
}
