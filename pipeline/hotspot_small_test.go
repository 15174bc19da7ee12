package pipeline

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestHotspotFullTable: a worker whose destination cells fill up (limits.max_destinations)
// hands its counts over early and keeps counting; the receiver distribution stays exact, a
// hot destination counted in two parts is still found, its packets exact and its sources
// (summed over the parts, which may share sources) labelled estimated.
func TestHotspotFullTable(t *testing.T) {
	var ps []pcaptest.Packet
	at := hotT0
	send := func(dst, from, to int) {
		for i := from; i < to; i++ {
			at = at.Add(time.Millisecond)
			ps = append(ps, pcaptest.Packet{TS: at, Src: spoofed(i), Dst: darkAddr(256 + dst), SrcPort: 4000, DstPort: 80, Flags: 0x02})
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
		t.Errorf("receiver distribution %+v, want %+v", r.Receivers, want)
	}
	hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
	if len(hot) != 1 {
		t.Fatalf("%d hotspot episodes, want 1: %+v", len(hot), hot)
	}
	h := hot[0]
	if h.Dst != "203.0.113.9" || h.Port != 80 || h.Packets != 35 || h.Sources < 30 || h.Sources > 35 || !h.SourcesEstimated {
		t.Errorf("hotspot %+v, want 203.0.113.9:80, 35 packets, 30 to 35 sources labelled estimated", h)
	}
}
