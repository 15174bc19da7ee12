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
	// The second report continues from the first run's state (continued_from names a):
	// merged, the two are the report of one run over a and b, the episode once.
	merged := filepath.Join(dir, "m.json")
	code, _, stderr = telescope(t, "report", "--report", merged, first, report)
	if code != 0 {
		t.Fatalf("merging the two runs' reports: exit %d\n%s", code, stderr)
	}
	var cont, m struct {
		Frames        uint64 `json:"frames"`
		ContinuedFrom *struct {
			Inputs []struct {
				File    string `json:"file"`
				Records uint64 `json:"records"`
			} `json:"inputs"`
		} `json:"continued_from"`
		Sources struct {
			Top []struct {
				Packets uint64 `json:"packets"`
			} `json:"top"`
		} `json:"sources"`
		Detections map[string][]struct {
			Packets uint64 `json:"packets"`
		} `json:"detections"`
	}
	for f, r := range map[string]any{report: &cont, merged: &m} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, r); err != nil {
			t.Fatal(err)
		}
	}
	if c := cont.ContinuedFrom; c == nil || len(c.Inputs) != 1 || c.Inputs[0].File != a || c.Inputs[0].Records != 20 {
		t.Errorf("the continued run's continued_from: %+v, want %s of 20 records", c, a)
	}
	if m.Frames != 35 || m.ContinuedFrom != nil || len(m.Sources.Top) != 1 || m.Sources.Top[0].Packets != 35 || len(m.Detections["scanner"]) != 1 || m.Detections["scanner"][0].Packets != 35 {
		t.Errorf("merged: %d frames (want 35), continued_from %v (want none), top sources %+v (want one of 35), scanner episodes %+v (want one of 35)",
			m.Frames, m.ContinuedFrom, m.Sources.Top, m.Detections["scanner"])
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
