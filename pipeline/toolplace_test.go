package pipeline

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// miraiBots builds one Mirai-fingerprinted SYN (seq = destination) from each of n sources,
// a millisecond apart from at.
func miraiBots(at time.Time, n int) []pcaptest.Packet {
	var ps []pcaptest.Packet
	for i := range n {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		src := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		ps = append(ps, pcaptest.Packet{TS: at.Add(time.Duration(i) * time.Millisecond), Src: src, Dst: dst,
			SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: uint32(203)<<24 | 113<<8 | uint32(byte(i))})
	}
	return ps
}

// fingerprintActive is the fingerprint detector's active episodes in p's snapshot.
func fingerprintActive(t *testing.T, p *Pipeline) int64 {
	t.Helper()
	for _, d := range p.Snapshot().Detectors {
		if d.Name == detect.Fingerprint {
			return d.Active
		}
	}
	t.Fatal("no fingerprint detector in the snapshot")
	return 0
}

// TestToolEpisodesInPlaceSurviveRestart: the pipeline keeps tool episodes in its source
// table (detect/toolplace.go); a checkpoint carries them over, the restored daemon counts
// them as active, and ends each once, a window after its probe.
func TestToolEpisodesInPlaceSurviveRestart(t *testing.T) {
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\nwindow: 30s\n"), "tools.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p1, before := keptPipeline(t, cfg)
	p1.Replay(context.Background(), ReplayOptions{Files: []string{writeTraffic(t, filepath.Join(dir, "a.pcap"), miraiBots(base, 200))}})
	if got := phases(before.events)["fingerprint"]; got != [2]int{200, 0} {
		t.Fatalf("before the checkpoint: fingerprint %v, want 200 started and none ended", got)
	}
	if a := fingerprintActive(t, p1); a != 200 {
		t.Fatalf("%d tool episodes active before the checkpoint, want 200", a)
	}
	for _, w := range p1.workers {
		if n := w.engine.Records(); n != 0 {
			t.Fatalf("worker %d holds %d episode records: tool episodes should stay in place", w.id, n)
		}
	}
	if _, err := p1.Checkpoint(state); err != nil {
		t.Fatal(err)
	}

	p2, after := keptPipeline(t, cfg) // no Finish: the episodes can only end by time
	if _, err := p2.RestoreState(state, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if a := fingerprintActive(t, p2); a != 200 {
		t.Fatalf("%d tool episodes active after the restore, want 200", a)
	}
	// 20 s later: within the window, nothing ends; 40 s later every episode has.
	p2.Replay(context.Background(), ReplayOptions{Files: []string{writeTraffic(t, filepath.Join(dir, "b.pcap"), []pcaptest.Packet{
		{TS: base.Add(20 * time.Second), Src: addr("198.51.100.7"), Dst: addr("203.0.113.250"), SrcPort: 1, DstPort: 80, Flags: 0x02},
		{TS: base.Add(40 * time.Second), Src: addr("198.51.100.7"), Dst: addr("203.0.113.250"), SrcPort: 1, DstPort: 80, Flags: 0x02},
	})}})
	if got := phases(after.events)["fingerprint"]; got != [2]int{0, 200} {
		t.Fatalf("after the restore: fingerprint %v, want the 200 episodes ended and none started", got)
	}
	if a := fingerprintActive(t, p2); a != 0 {
		t.Fatalf("%d tool episodes still active at the end", a)
	}
}
