package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/floodgen"
	"github.com/telescope-dev/telescope/internal/logq"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// stalledWriter blocks every Write until released, like stderr on a pipe nobody reads.
type stalledWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
	entered chan struct{}
	once    sync.Once
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestStalledLogNeverBlocksCounting: with the log output blocked forever, a replay of a
// flood of one-packet episodes (two log lines each) still counts every frame and ends;
// the events that could not be logged are counted, /-/healthy's check reports the stall,
// and once the output works again the log says what was lost.
func TestStalledLogNeverBlocksCounting(t *testing.T) {
	const n = 20000
	path := filepath.Join(t.TempDir(), "mirai.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := floodgen.WriteMirai(f, floodgen.Start, n, time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w := &stalledWriter{release: make(chan struct{}), entered: make(chan struct{})}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel))
	cfg := testConfig(t)
	cfg.Detect.Fingerprint.LogMinPackets = 1 // every one-packet episode logs its two lines
	p, err := New(Options{Config: cfg, Workers: 2, Logger: log,
		LogQueue: logq.Options{Size: 64, Stall: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan ReplayResult, 1)
	go func() { done <- p.Replay(context.Background(), ReplayOptions{Files: []string{path}}) }()
	var res ReplayResult
	select {
	case res = <-done:
	case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("replay blocked behind the stalled log output")
	}
	<-w.entered
	if res.Records != n || p.Totals().Frames[packet.ResultIP] != n {
		t.Fatalf("records %d, ip frames %d, want %d", res.Records, p.Totals().Frames[packet.ResultIP], n)
	}
	// 2 events per episode, at most the queue and the one stuck write got through.
	if d := p.LogEntriesDropped(); d < 2*n-64-1 {
		t.Fatalf("dropped %d log entries, want at least %d", d, 2*n-65)
	}
	// The stall shows once the stuck write has lasted the queue's Stall (50 ms): wait for
	// it (a hang guard, not a timing assertion).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := p.LogHealthy()
		if err != nil && strings.Contains(err.Error(), "log output stalled") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LogHealthy() = %v while the output is stalled", err)
		}
	}
	close(w.release)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if strings.Contains(w.String(), "log output was stalled") && p.LogHealthy() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery line after the output came back; healthy: %v\n%.2000s", p.LogHealthy(), w.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEpisodeCountsOverWorkerSinks: every worker reports through its own sink (tallies,
// episode series); the summary's tallies and the report's series add them all up, with the
// shared detectors' events (hotspot), whatever the number of workers.
func TestEpisodeCountsOverWorkerSinks(t *testing.T) {
	const perMinute, minutes = 200, 3
	dst := netip.MustParseAddr("203.0.113.5")
	var ps []pcaptest.Packet
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range perMinute * minutes {
		ps = append(ps, pcaptest.Packet{
			TS:  t0.Add(time.Duration(i/perMinute)*time.Minute + time.Duration(i%perMinute)*time.Millisecond),
			Src: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), Dst: dst,
			SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: binary.BigEndian.Uint32(dst.AsSlice()), // Mirai: seq = dst
		})
	}
	path := filepath.Join(t.TempDir(), "mirai.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fp, hot := detect.DetectorIndex(detect.Fingerprint), detect.DetectorIndex(detect.Hotspot)
	for _, workers := range []int{1, 2, 3} {
		p, r := replayPipeline(t, cfg, workers, path)
		n := perMinute * minutes
		if got := len(EntriesOf[*detect.ToolEntry](r.Detections, "tools")); got != n {
			t.Fatalf("workers=%d: %d fingerprint episodes, want %d", workers, got, n)
		}
		if got, want := p.sink.tallied(fp), (tallyCounts{uint64(n), uint64(n), uint64(n), uint64(n)}); got != want {
			t.Errorf("workers=%d: fingerprint tally %+v, want %+v (one-packet episodes are not logged)", workers, got, want)
		}
		if got := p.sink.tallied(hot); got.started != 1 || got.ended != 1 {
			t.Errorf("workers=%d: hotspot tally %+v, want one episode", workers, got)
		}
		if r.Series == nil || r.Series.StepSeconds != 60 {
			t.Fatalf("workers=%d: series %+v, want a 60 s step", workers, r.Series)
		}
		if got := r.Series.EpisodesStarted["fingerprint"]; !slices.Equal(got, []uint64{perMinute, perMinute, perMinute}) {
			t.Errorf("workers=%d: fingerprint episodes started per minute %v, want %d each", workers, got, perMinute)
		}
		var hs uint64
		for _, c := range r.Series.EpisodesStarted["hotspot"] {
			hs += c
		}
		if hs != 1 {
			t.Errorf("workers=%d: %d hotspot episodes in the series, want 1", workers, hs)
		}
	}
}

// TestEntryStartKnowsEveryDetector: the report's series counts the episodes of every
// detector, so EntryStart must know each descriptor's entry type.
func TestEntryStartKnowsEveryDetector(t *testing.T) {
	for _, d := range detect.Descriptors() {
		if _, ok := EntryStart(d.NewEntry()); !ok {
			t.Errorf("EntryStart does not know %s's entry %T: its episodes are missing from the series", d.Name, d.NewEntry())
		}
	}
}
