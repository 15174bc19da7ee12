package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/floodgen"
)

// TestSpoolReportIdenticalToInMemory: the report written with its detections streamed
// from the disk spool is byte for byte the report the in-memory collector gives, for a
// generated telescope day (every detector) plus a flood of one-packet Mirai episodes;
// runs of 100 entries force several merge passes, and the spool never holds more than
// one run in memory.
func TestSpoolReportIdenticalToInMemory(t *testing.T) {
	dir := t.TempDir()
	day := filepath.Join(dir, "day.pcap")
	f, err := os.Create(day)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := daygen.Generate(f, daygen.Options{Seed: 7, Scale: 0.05, Duration: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	flood := filepath.Join(dir, "mirai.pcap")
	f, err = os.Create(flood)
	if err != nil {
		t.Fatal(err)
	}
	// After the day, so packet time only moves forward.
	if err := floodgen.WriteMirai(f, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 8000, time.Hour, 2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	col := NewEpisodes()
	spool := NewDetectionSpool(dir, 100)
	scans := NewScannerEpisodes()
	defer spool.Close()
	watch := &maxBuffered{s: spool}
	p, err := New(Options{Config: cfg, Workers: 3, Sink: Tee{col, watch, scans}})
	if err != nil {
		t.Fatal(err)
	}
	p.Replay(context.Background(), ReplayOptions{Files: []string{day, flood}})

	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p.Report(col)); err != nil {
		t.Fatal(err)
	}
	runs := spool.lists[5].Runs()
	var got bytes.Buffer
	if err := p.WriteReport(&got, spool, scans); err != nil {
		t.Fatal(err)
	}
	r := p.Report(col)
	for _, d := range detect.Descriptors() {
		if len(r.Detections[d.ReportKey]) == 0 && d.Name != detect.Hotspot {
			t.Errorf("no %s detections: the comparison would prove little", d.ReportKey)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		g, w := got.Bytes(), want.Bytes()
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		t.Fatalf("reports differ at byte %d of %d/%d:\ngot  …%.300s\nwant …%.300s", i, len(g), len(w), g[max(0, i-100):], w[max(0, i-100):])
	}
	if runs <= spoolFanIn {
		t.Errorf("tools: %d runs, want more than %d to exercise a merge pass", runs, spoolFanIn)
	}
	if watch.max > 100 {
		t.Errorf("the spool held %d entries in memory, its run length is 100", watch.max)
	}
}

// maxBuffered records the most entries any list of the spool held in memory.
type maxBuffered struct {
	mu  sync.Mutex
	s   *DetectionSpool
	max int
}

func (m *maxBuffered) Detection(ev *detect.Event) {
	m.s.Detection(ev)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.s.lists {
		if b := l.Buffered(); b > m.max {
			m.max = b
		}
	}
}
