package main

import (
	"testing"

	"github.com/telescope-dev/telescope/detect"
)

// Only a report or a page reads the spool: without either replay must not marshal and
// write every ended episode to disk; with either, no episode but the scanners' (which
// describe the top sources) stays in memory: the page reads them back from the spool.
func TestReplaySinksSpoolOnlyForReportOrPage(t *testing.T) {
	for _, tt := range []struct{ report, html bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		sink, spool, episodes := replaySinks(tt.report, tt.html)
		if (spool != nil) != (tt.report || tt.html) {
			t.Fatalf("report=%v html=%v: spool %v", tt.report, tt.html, spool != nil)
		}
		sink.Detection(&detect.Event{Detector: detect.Fingerprint, Phase: detect.End, Class: "mirai",
			Entry: &detect.ToolEntry{Tool: "mirai", Packets: 1, Probes: 1}})
		if spool != nil && spool.Entries() != 1 {
			t.Errorf("report=%v html=%v: the spool holds %d entries, want 1", tt.report, tt.html, spool.Entries())
		}
		if n := len(episodes.Detections()["tools"]); n != 0 {
			t.Errorf("report=%v html=%v: %d fingerprint episodes in memory", tt.report, tt.html, n)
		}
		if spool != nil {
			spool.Close()
		}
	}
}
