package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestReplayStopsWhenSpoolFails: with --report, a replay whose detection spool cannot be
// written (TMPDIR missing here; a full disk in life) logs it and stops at the first run
// that fails (the replay looks every 65 536 records), not at the end of its input, and
// exits 1 naming the spool's error. 150 000 Mirai-fingerprinted SYNs from as many sources
// over 4 hours of packet time end their episodes as they go: the first run (16 384
// entries) fails well before the end.
func TestReplayStopsWhenSpoolFails(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	const n = 150000
	ps := make([]pcaptest.Packet, n)
	for i := range ps {
		dst := addr4(203, 0, 113, byte(i))
		ps[i] = pcaptest.Packet{TS: t0.Add(time.Duration(i) * 4 * time.Hour / n), Src: addr4(10, byte(i>>16), byte(i>>8), byte(i)),
			Dst: dst, SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: binary.BigEndian.Uint32(dst.AsSlice())}
	}
	dir := t.TempDir()
	pcap := filepath.Join(dir, "mirai.pcap")
	if err := pcaptest.WriteFile(pcap, ps); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(executable(t), "replay", "--report", filepath.Join(dir, "report.json"), pcap)
	cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1", "TMPDIR="+filepath.Join(dir, "missing"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	logs := stderr.String()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1\n%s", code, err, logs)
	}
	if !strings.Contains(logs, "the report and page can no longer be written: their detection spool failed; stopping the replay") {
		t.Errorf("no log line at the spool's failure:\n%s", logs)
	}
	if !strings.Contains(logs, "telescope replay: --report: detections.") || !strings.Contains(logs, "missing") {
		t.Errorf("the exit error does not name the spool's error:\n%s", logs)
	}
	var fin struct {
		Records uint64 `json:"records"`
	}
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"msg":"replay finished"`) {
			if err := json.Unmarshal([]byte(line), &fin); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fin.Records == 0 || fin.Records >= n {
		t.Errorf("replay finished after %d records, want it stopped before the %d of the file", fin.Records, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); !os.IsNotExist(err) {
		t.Errorf("a report was written: %v", err)
	}
}
