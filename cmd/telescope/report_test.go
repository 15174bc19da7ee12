package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestReplayHTMLAndReportMerge: replay --html writes the page; `report` renders a saved
// report and merges two (counters add up, uniques from the merged sketches).
func TestReplayHTMLAndReportMerge(t *testing.T) {
	dir := t.TempDir()
	first, _ := smallCapture(t)
	t1 := time.Date(2024, 5, 1, 1, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for i := 0; i < 30; i++ {
		ps = append(ps, pcaptest.Packet{TS: t1.Add(time.Duration(i) * time.Second), Src: addr4(192, 0, 2, byte(100+i%3)),
			Dst: addr4(203, 0, 113, byte(i)), SrcPort: 40000, DstPort: 445, Flags: 0x02})
	}
	second := filepath.Join(dir, "second.pcap")
	if err := pcaptest.WriteFile(second, ps); err != nil {
		t.Fatal(err)
	}
	r1, r2, h1 := filepath.Join(dir, "r1.json"), filepath.Join(dir, "r2.json"), filepath.Join(dir, "r1.html")
	if code, _, errs := telescope(t, "replay", first, "--report", r1, "--html", h1, "--log.level", "error"); code != 0 {
		t.Fatalf("replay: %d %s", code, errs)
	}
	if code, _, errs := telescope(t, "replay", second, "--report", r2, "--log.level", "error"); code != 0 {
		t.Fatalf("replay: %d %s", code, errs)
	}
	page, err := os.ReadFile(h1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(page), "<!DOCTYPE html>") || !strings.Contains(string(page), "<svg") {
		t.Fatalf("replay --html wrote no page: %.200s", page)
	}
	// A report given alone is written again as it was (its episodes through the spool,
	// its groups kept), and its page made.
	again, ah := filepath.Join(dir, "again.json"), filepath.Join(dir, "again.html")
	if code, _, errs := telescope(t, "report", r1, "--report", again, "--html", ah); code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	x1, err1 := os.ReadFile(r1)
	x2, err2 := os.ReadFile(again)
	if err1 != nil || err2 != nil || !bytes.Equal(x1, x2) || !bytes.Contains(x1, []byte(`"src": `)) {
		t.Errorf("a report given alone is not written again as it was (%d and %d bytes)", len(x1), len(x2))
	}
	if hp, err := os.ReadFile(ah); err != nil || !strings.Contains(string(hp), "<svg") {
		t.Errorf("a report's page: %v", err)
	}
	merged, mh := filepath.Join(dir, "merged.json"), filepath.Join(dir, "merged.html")
	if code, _, errs := telescope(t, "report", r1, r2, "--report", merged, "--html", mh); code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	// The report is the same without --html (the page reads the spool back too).
	spooled := filepath.Join(dir, "spooled.json")
	if code, _, errs := telescope(t, "report", r1, r2, "--report", spooled); code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	x, errx := os.ReadFile(merged)
	y, erry := os.ReadFile(spooled)
	if errx != nil || erry != nil || !bytes.Equal(x, y) || len(x) == 0 {
		t.Errorf("the merge with --html and without differ (%d and %d bytes)", len(x), len(y))
	}
	var a, b, m pipeline.Report
	for f, r := range map[string]*pipeline.Report{r1: &a, r2: &b, merged: &m} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, r); err != nil {
			t.Fatal(err)
		}
	}
	if m.Frames != a.Frames+b.Frames || m.Packets.IPv4.TCP != a.Packets.IPv4.TCP+b.Packets.IPv4.TCP {
		t.Errorf("merged frames %d, tcp %d; parts %d+%d, %d+%d", m.Frames, m.Packets.IPv4.TCP, a.Frames, b.Frames, a.Packets.IPv4.TCP, b.Packets.IPv4.TCP)
	}
	if m.Sources.Unique != 5 || m.Merged == nil || m.Merged.Reports != 2 {
		t.Errorf("merged: %d unique sources (want 5), merged %+v", m.Sources.Unique, m.Merged)
	}
	if hp, err := os.ReadFile(mh); err != nil || !strings.Contains(string(hp), "merged from 2 reports") {
		t.Errorf("merged page: %v", err)
	}
	// Mistakes.
	if code, _, _ := telescope(t, "report", r1); code != 2 {
		t.Errorf("report without an output: exit %d, want 2", code)
	}
	if code, _, errs := telescope(t, "report", "--html", mh, first); code != 1 || !strings.Contains(errs, "not a telescope report") {
		t.Errorf("report of a pcap: exit %d, %q", code, errs)
	}
	want := fmt.Sprintf("%s and %s both count input %s (%d records): merged, its packets would count twice", r1, r1, first, a.Frames)
	if code, _, errs := telescope(t, "report", "--report", merged, r1, r2, r1); code != 1 || !strings.Contains(errs, want) {
		t.Errorf("a report merged twice: exit %d, %q, want %q", code, errs, want)
	}
	// Named as soon as the second copy is read: the files after it are not read (the
	// capture given last would be "not a telescope report").
	if code, _, errs := telescope(t, "report", "--report", merged, r1, r2, r1, first); code != 1 || !strings.Contains(errs, want) {
		t.Errorf("a report merged twice, then a capture: exit %d, %q, want %q", code, errs, want)
	}
}

// TestReportCompressed: a report archived with gzip or zstd is read as it is (the same
// merge as of the plain files); a damaged one is a one-line error naming it.
func TestReportCompressed(t *testing.T) {
	dir := t.TempDir()
	pcap, _ := smallCapture(t)
	plain := filepath.Join(dir, "r.json")
	if code, _, errs := telescope(t, "replay", pcap, "--report", plain, "--log.level", "error"); code != 0 {
		t.Fatalf("replay: %d %s", code, errs)
	}
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzipped(t, b)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := enc.EncodeAll(b, nil)
	files := map[string][]byte{"r.json.gz": gz, "r.json.zst": zst, "cut.json.gz": gz[:len(gz)/2],
		"cut.json.zst": zst[:len(zst)/2], "bad.json.gz": gzipped(t, []byte(`{"frames": 3, "packets": [`))}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, name := range []string{"r.json.gz", "r.json.zst"} {
		if code, _, errs := telescope(t, "report", filepath.Join(dir, name), "--report", filepath.Join(dir, name+".out")); code != 0 {
			t.Fatalf("report %s: %d %s", name, code, errs)
		}
	}
	if code, _, errs := telescope(t, "report", plain, "--report", filepath.Join(dir, "plain.out")); code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	if out("r.json.gz.out") != out("plain.out") || out("r.json.zst.out") != out("plain.out") {
		t.Error("a compressed report read differs from the plain one")
	}
	cut := filepath.Join(dir, "cut.json.gz")
	if code, _, errs := telescope(t, "report", cut, "--report", filepath.Join(dir, "cut.out")); code != 1 || !strings.Contains(errs, cut+": corrupt gzip stream: unexpected EOF") {
		t.Errorf("a cut gzip report: exit %d, %q", code, errs)
	}
	// Read as a stream, a report's decompression failing is told apart from its JSON's.
	cut = filepath.Join(dir, "cut.json.zst")
	if code, _, errs := telescope(t, "report", cut, "--report", filepath.Join(dir, "cut.out")); code != 1 || !strings.Contains(errs, cut+": corrupt zstd stream: ") {
		t.Errorf("a cut zstd report: exit %d, %q", code, errs)
	}
	bad := filepath.Join(dir, "bad.json.gz")
	if code, _, errs := telescope(t, "report", bad, "--report", filepath.Join(dir, "bad.out")); code != 1 || !strings.Contains(errs, bad+": not a telescope report: packets: ") {
		t.Errorf("a gzip report of bad JSON: exit %d, %q", code, errs)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes()
}
