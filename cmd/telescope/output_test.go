package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telescope-dev/telescope/internal/floodgen"
)

// TestOutputFIFOGetsDataAndStaysFIFO: a FIFO (what a shell's >(jq .) is) is written
// through, not replaced by a regular file.
func TestOutputFIFOGetsDataAndStaysFIFO(t *testing.T) {
	pcap, _ := smallCapture(t)
	fifo := filepath.Join(t.TempDir(), "report.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo) // waits for the writer
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	code, _, stderr := telescope(t, "replay", "--report", fifo, pcap)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	st, err := os.Lstat(fifo)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("%s is now %v, want a FIFO", fifo, st.Mode()) // (the reader is left waiting)
	}
	b := <-got
	var r struct{ Frames uint64 }
	if err := json.Unmarshal(b, &r); err != nil || r.Frames != 41 {
		t.Fatalf("reader got %d bytes, frames %d, err %v", len(b), r.Frames, err)
	}
}

// TestOutputKeepsMode: an existing report's permission bits survive the atomic replace.
func TestOutputKeepsMode(t *testing.T) {
	pcap, _ := smallCapture(t)
	dir := t.TempDir()
	report, expo := filepath.Join(dir, "r.json"), filepath.Join(dir, "m.prom")
	for _, p := range []string{report, expo} {
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := telescope(t, "replay", "--report", report, "--metrics-out", expo, pcap)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, p := range []string{report, expo} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != 0o640 {
			t.Errorf("%s: mode %v, want -rw-r-----", p, st.Mode())
		}
		if b, _ := os.ReadFile(p); string(b) == "old" {
			t.Errorf("%s not rewritten", p)
		}
	}
	// A symlink to the report stays a symlink; its target is replaced.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(report, link); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := telescope(t, "replay", "--report", link, pcap); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("symlink replaced: %v %v", st.Mode(), err)
	}
}

// TestOutputCheckedBeforeInput: an output that cannot be written fails before any input
// is read (the capture file here does not even exist), naming the flag.
func TestOutputCheckedBeforeInput(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such.pcap")
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing directory", []string{"--report", filepath.Join(dir, "nodir", "r.json")}, "--report " + filepath.Join(dir, "nodir", "r.json") + ": cannot create files in"},
		{"directory as file", []string{"--metrics-out", dir}, "--metrics-out " + dir + ": is a directory"},
		{"same file twice", []string{"--report", filepath.Join(dir, "x"), "--metrics-out", filepath.Join(dir, ".", "x")},
			"--report " + filepath.Join(dir, "x") + " and --metrics-out " + filepath.Join(dir, ".", "x") + " are the same file"},
		{"stdout twice", []string{"--report", "-", "--metrics-out", "-"}, "--report - and --metrics-out - are the same file"},
	}
	if os.Geteuid() != 0 { // root may write into a 0555 directory
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"unwritable directory", []string{"--report", filepath.Join(ro, "r.json")}, "cannot create files in " + ro})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := telescope(t, append(append([]string{"replay"}, tc.args...), missing)...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr lacks %q:\n%s", code, tc.want, stderr)
			}
			if strings.Contains(stderr, "no-such.pcap") || strings.Contains(stderr, "replay finished") {
				t.Fatalf("input was read before the output was checked:\n%s", stderr)
			}
		})
	}
	// Same file through a symlink.
	real := filepath.Join(dir, "real.json")
	if err := os.WriteFile(real, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "alias.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := telescope(t, "replay", "--report", real, "--metrics-out", link, missing)
	if code == 0 || !strings.Contains(stderr, "are the same file") {
		t.Fatalf("symlinked twin accepted: exit %d\n%s", code, stderr)
	}
}

// blockedWriter blocks every Write forever, like stderr on a pipe nobody reads.
type blockedWriter struct{ block chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.block; return len(p), nil }

// TestReplayWithStalledStderr: a replay whose stderr never accepts a byte still reads
// every packet (a flood of one-packet episodes, two log lines each: the config logs
// one-packet fingerprint episodes, which the defaults do not), writes its report and exits.
func TestReplayWithStalledStderr(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	pcap := filepath.Join(dir, "mirai.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if err := floodgen.WriteMirai(f, floodgen.Start, n, time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	report := filepath.Join(dir, "r.json")
	cfg := filepath.Join(dir, "telescope.yaml")
	if err := os.WriteFile(cfg, []byte("detect: {fingerprint: {log_min_packets: 1}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := blockedWriter{block: make(chan struct{})}
	defer close(w.block)
	code := make(chan int, 1)
	go func() { code <- run([]string{"replay", "--config", cfg, "--report", report, pcap}, io.Discard, w) }()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d", c)
		}
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		t.Fatal("replay blocked behind its stalled stderr")
	}
	var r struct {
		Frames     uint64
		Detections struct{ Tools []json.RawMessage }
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Frames != n || len(r.Detections.Tools) != n {
		t.Fatalf("report: frames %d, tools %d, err %v", r.Frames, len(r.Detections.Tools), err)
	}
}
