package main

import (
	"testing"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
)

// Only a report or a page reads the spool: without either replay must not marshal and
// write every ended episode to disk; with either, no episode stays in memory, the
// scanners' included (the report's descriptions read them back from the spool).
func TestReplaySinksSpoolOnlyForReportOrPage(t *testing.T) {
	for _, tt := range []struct{ report, html bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		sink, spool := replaySinks(tt.report, tt.html)
		if (spool != nil) != (tt.report || tt.html) {
			t.Fatalf("report=%v html=%v: spool %v", tt.report, tt.html, spool != nil)
		}
		for _, s := range sink {
			if s != detect.Sink(spool) {
				t.Errorf("report=%v html=%v: the sink holds a %T besides the spool", tt.report, tt.html, s)
			}
		}
		sink.Detection(&detect.Event{Detector: detect.Fingerprint, Phase: detect.End, Class: "mirai",
			Entry: &detect.ToolEntry{Tool: "mirai", Packets: 1, Probes: 1}})
		sink.Detection(&detect.Event{Detector: detect.Scanner, Phase: detect.End, Class: "horizontal",
			Entry: &detect.ScannerEntry{Src: "198.51.100.1", Packets: 100, Targets: 100}})
		if spool != nil && spool.Entries() != 2 {
			t.Errorf("report=%v html=%v: the spool holds %d entries, want 2", tt.report, tt.html, spool.Entries())
		}
		if spool != nil {
			spool.Close()
		}
	}
}

var _ pipeline.EpisodeReader = (*pipeline.DetectionSpool)(nil)
