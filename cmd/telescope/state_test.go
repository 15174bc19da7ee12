package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// replay --state-out / --state-in: a scanner episode cut by the split has its start in the
// first run's log and its end (with every packet of both parts) in the second run's report.
func TestReplayStateFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("dark_prefixes: [203.0.113.0/24]\nwindow: 30s\ndetect: {scanner: {min_packets: 10, min_targets: 5}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	part := func(name string, from, to int) string {
		var ps []pcaptest.Packet
		for s := from; s < to; s++ {
			ps = append(ps, pcaptest.Packet{TS: base.Add(time.Duration(s) * time.Second),
				Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113." + strconv.Itoa(s)), SrcPort: 40000, DstPort: 80, Flags: 0x02})
		}
		path := filepath.Join(dir, name)
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := part("a.pcap", 0, 20), part("b.pcap", 25, 40)
	state := filepath.Join(dir, "state")
	first := filepath.Join(dir, "r1.json")
	code, _, stderr := telescope(t, "replay", "--config", cfg, "--state-out", state, "--report", first, a)
	if code != 0 || !strings.Contains(stderr, `"scanner started"`) && !strings.Contains(stderr, `"phase":"start"`) || strings.Contains(stderr, `"phase":"end"`) {
		t.Fatalf("first part: exit %d\n%s", code, stderr)
	}
	report := filepath.Join(dir, "r.json")
	code, _, stderr = telescope(t, "replay", "--config", cfg, "--state-in", state, "--report", report, b)
	if code != 0 || strings.Contains(stderr, `"phase":"start"`) || !strings.Contains(stderr, `"state restored"`) {
		t.Fatalf("second part: exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Detections map[string][]struct {
			Packets uint64 `json:"packets"`
		} `json:"detections"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	var found []uint64
	for _, list := range rep.Detections {
		for _, e := range list {
			found = append(found, e.Packets)
		}
	}
	if len(found) != 1 || found[0] != 35 {
		t.Errorf("episodes in the second report: packets %v, want one of 20+15", found)
	}
	// The second report continues from the first run's state: its top lists hold a's
	// packets already, so `report` refuses to merge the two, naming them and the file.
	want := report + " continues (--state-in) from a state that counted input " + a + " (20 records), which " + first + " counts"
	code, _, stderr = telescope(t, "report", "--report", filepath.Join(dir, "m.json"), first, report)
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("merging the two runs' reports: exit %d, %q, want one line with %q", code, stderr, want)
	}
	// Given a file its state counted already, or the same file twice, replay says so.
	for _, args := range [][]string{{"--state-in", state, a}, {b, b}} {
		code, _, stderr = telescope(t, append([]string{"replay", "--config", cfg}, args...)...)
		if code != 0 || !strings.Contains(stderr, `"capture file counted already: it has the name and first packet of a file `) ||
			!strings.Contains(stderr, map[bool]string{true: "the restored state (--state-in) counted", false: "read earlier in this replay"}[args[0] == "--state-in"]) {
			t.Errorf("replay %v: exit %d\n%s", args, code, stderr)
		}
	}
	// A damaged --state-in is an error naming the reason.
	if err := os.WriteFile(state, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = telescope(t, "replay", "--config", cfg, "--state-in", state, b)
	if code == 0 || !strings.Contains(stderr, "not a telescope state checkpoint") {
		t.Errorf("damaged --state-in: exit %d\n%s", code, stderr)
	}
}
