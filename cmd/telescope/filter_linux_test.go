package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayAppliesFilter: capture.filter applies to a replay as to the live capture: the
// telnet SYNs of the small capture are counted, its UDP datagram is not, and the log says
// both.
func TestReplayAppliesFilter(t *testing.T) {
	pcap, ps := smallCapture(t)
	report := filepath.Join(t.TempDir(), "report.json")
	code, _, stderr := telescope(t, "replay", "--config", cfgFile(t, "capture: {filter: \"tcp port 23\"}\n"), "--report", report, pcap)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{`"msg":"capture.filter applies to the replayed packets, as it does to the live capture","filter":"tcp port 23"`,
		`"records":41,`, `"filtered_out":1}`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %s in the log\n%s", want, stderr)
		}
	}
	r := readJSONReport(t, report)
	if r.Frames != uint64(len(ps)-1) || r.Packets.IPv4.UDP != 0 {
		t.Errorf("%d frames, %d UDP packets; want %d and 0", r.Frames, r.Packets.IPv4.UDP, len(ps)-1)
	}
}
