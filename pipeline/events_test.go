package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/internal/floodgen"
	"github.com/telescope-dev/telescope/internal/logq"
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
