package pipeline

import (
	"encoding/json"
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
)

// TestEveryDescriptorReachesReportSnapshotAndLog: each detector of detect.Descriptors()
// has its key in the report (and its entries read back with their type), its series in
// the snapshot, and its own log messages.
func TestEveryDescriptorReachesReportSnapshotAndLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	cfg := configs.Default()
	// The empty entries below have 0 packets: log them whatever the packet count.
	cfg.Detect.UDPThenSYN.LogMinPackets, cfg.Detect.Fingerprint.LogMinPackets = 1, 1
	p, err := New(Options{Config: cfg, Workers: 1, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	eps := NewEpisodes()
	for _, d := range detect.Descriptors() {
		for _, ph := range []detect.Phase{detect.Start, detect.End} {
			ev := &detect.Event{Detector: d.Name, Phase: ph, Class: d.Classes[0], Entry: d.NewEntry()}
			p.sink.Detection(ev)
			eps.Detection(ev)
		}
	}
	b, err := json.Marshal(p.Report(eps))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Detections map[string][]json.RawMessage `json:"detections"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	p.logq.Drain() // the lines go through the log queue's writer goroutine
	msgs := map[string]bool{}
	for _, e := range logs.All() {
		msgs[e.Message] = true
	}
	snap := p.Snapshot()
	for i, d := range detect.Descriptors() {
		if len(raw.Detections[d.ReportKey]) != 1 {
			t.Errorf("%s: report has %d entries under %q, want 1", d.Name, len(raw.Detections[d.ReportKey]), d.ReportKey)
		}
		got := back.Detections[d.ReportKey]
		if len(got) != 1 || reflect.TypeOf(got[0]) != reflect.TypeOf(d.NewEntry()) {
			t.Errorf("%s: report read back as %T", d.Name, got)
		}
		if !msgs[d.StartMsg] || !msgs[d.EndMsg] {
			t.Errorf("%s: log lacks %q or %q", d.Name, d.StartMsg, d.EndMsg)
		}
		if i >= len(snap.Detectors) || snap.Detectors[i].Name != d.Name || len(snap.Detectors[i].Started) != len(d.Classes) {
			t.Errorf("%s: not in the snapshot's detectors in order with its classes", d.Name)
		}
	}
	if len(raw.Detections) != len(detect.Descriptors()) {
		t.Errorf("report has %d detection keys, %d detectors", len(raw.Detections), len(detect.Descriptors()))
	}
}
