package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/pipeline"
)

var tcpdumpCount = regexp.MustCompile(`(?m)^(\d+) packets?\b`)

// tcpdumpRecords returns how many records tcpdump reads from file, and whether it read the
// whole file without an error.
func tcpdumpRecords(tcpdump, file string) (uint64, bool) {
	cmd := exec.Command(tcpdump, "-n", "-r", file, "--count")
	out, err := cmd.CombinedOutput()
	m := tcpdumpCount.FindSubmatch(out)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n, err == nil
}

// TestCorpusReplays replays every capture of tcpdump's test suite (real traffic of hundreds
// of protocols and link types, many files deliberately damaged): each must end with exit 0
// and a report, or exit 1 with a one-line error naming the file, never a panic or a hang;
// where both telescope and tcpdump read the whole file, the frame counts are equal.
func TestCorpusReplays(t *testing.T) {
	if testing.Short() {
		t.Skip("corpus sweep skipped in -short mode")
	}
	tcpdump := requireTool(t, "tcpdump", "tcpdump")
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "tcpdump-tests", "*.pcap*"))
	if err != nil || len(files) < 800 {
		t.Fatalf("corpus: %d files (%v); expected the 831 captures in testdata/tcpdump-tests", len(files), err)
	}
	cfg := filepath.Join(t.TempDir(), "small.yaml")
	// A small source cap keeps 831 pipelines cheap; it changes no count.
	if err := os.WriteFile(cfg, []byte("limits: {max_sources: 4096}\ncapture: {workers: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		file                 string
		code                 int
		line                 string
		frames, tcpdumpCount uint64
		tcpdumpOK            bool
	}
	results := make([]result, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, f := range files {
		wg.Add(1)
		go func(i int, f string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := result{file: f}
			res.tcpdumpCount, res.tcpdumpOK = tcpdumpRecords(tcpdump, f)
			report := filepath.Join(t.TempDir(), "r.json")
			done := make(chan struct{})
			go func() {
				defer close(done)
				var code int
				var stderr string
				code, _, stderr = telescope(t, "replay", "--config", cfg, "--report", report, f)
				res.code, res.line = code, lastLine(stderr)
			}()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("%s: replay still running after 60 s (hang)", f)
				return
			}
			if b, err := os.ReadFile(report); err == nil {
				var r pipeline.Report
				if err := json.Unmarshal(b, &r); err != nil {
					t.Errorf("%s: report is not JSON: %v", f, err)
				}
				res.frames = r.Frames
			} else {
				t.Errorf("%s: no report written (exit %d): %s", f, res.code, res.line)
			}
			results[i] = res
		}(i, f)
	}
	wg.Wait()

	var ok, rejected, matched, weRead, theyRead []string
	for _, r := range results {
		name := filepath.Base(r.file)
		switch r.code {
		case 0:
			ok = append(ok, name)
			if r.tcpdumpOK {
				if r.frames != r.tcpdumpCount {
					t.Errorf("%s: %d frames, tcpdump reads %d records", name, r.frames, r.tcpdumpCount)
				} else {
					matched = append(matched, name)
				}
			} else {
				weRead = append(weRead, name+" ("+strconv.FormatUint(r.frames, 10)+" frames; tcpdump stops at "+strconv.FormatUint(r.tcpdumpCount, 10)+")")
			}
		case 1:
			rejected = append(rejected, name+": "+r.line)
			if !strings.Contains(r.line, name) || strings.Contains(r.line, "\n") {
				t.Errorf("%s: exit 1 without a one-line error naming the file: %q", name, r.line)
			}
			if r.tcpdumpOK {
				theyRead = append(theyRead, name)
			}
		default:
			t.Errorf("%s: exit status %d (%s)", name, r.code, r.line)
		}
	}
	sort.Strings(rejected)
	t.Logf("%d files: %d replayed (%d with tcpdump's exact record count), %d rejected with an error", len(results), len(ok), len(matched), len(rejected))
	t.Logf("read to the end by telescope but not by tcpdump (%d): %s", len(weRead), strings.Join(weRead, "; "))
	t.Logf("rejected (%d):\n  %s", len(rejected), strings.Join(rejected, "\n  "))
	if len(theyRead) > 0 {
		t.Errorf("tcpdump reads these files to the end but telescope rejects them: %s", strings.Join(theyRead, ", "))
	}
}
