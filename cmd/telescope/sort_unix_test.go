//go:build unix

package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestReplaySort: --sort replays the files in the order of their first packets (the
// report's inputs say so, the log line says how many moved, and no file is out of order,
// which it is without the flag); standard input and a FIFO are usage errors.
func TestReplaySort(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	file := func(name string, from time.Duration) string {
		var ps []pcaptest.Packet
		for i := range 30 {
			ps = append(ps, pcaptest.Packet{TS: t0.Add(from + time.Duration(i)*time.Second), Src: netip.MustParseAddr("192.0.2.10"),
				Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), SrcPort: 50000, DstPort: 23, Flags: 0x02})
		}
		path := filepath.Join(dir, name)
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		return path
	}
	early, late := file("cap", 0), file("cap1", time.Hour)
	report := filepath.Join(dir, "report.json")
	for _, sorted := range []bool{false, true} {
		args := []string{"replay", "--report", report, late, early}
		if sorted {
			args = append(args, "--sort")
		}
		code, _, stderr := telescope(t, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, code, stderr)
		}
		if got := strings.Contains(stderr, `"msg":"inputs sorted by their first packet's time","files":2,"moved":2`); got != sorted {
			t.Errorf("--sort %v: sorted log line %v\n%s", sorted, got, stderr)
		}
		if got := strings.Contains(stderr, "capture file begins before the files replayed so far ended"); got == sorted {
			t.Errorf("--sort %v: out-of-order warning %v\n%s", sorted, got, stderr)
		}
		r := readJSONReport(t, report)
		want := []string{late, early}
		if sorted {
			want = []string{early, late}
		}
		if len(r.Inputs) != 2 || r.Inputs[0].File != want[0] || r.Inputs[1].File != want[1] {
			t.Errorf("--sort %v: inputs %+v, want %q", sorted, r.Inputs, want)
		}
	}

	fifo := filepath.Join(dir, "cap.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ input, msg string }{
		{"-", "--sort reads each file's first packet before the replay: - (standard input) can be read only once"},
		{fifo, "--sort reads each file's first packet before the replay: " + fifo + " is not a regular file (p---------): it can be read only once"},
	} {
		if tc.input == "-" && isTerminal(os.Stdin) {
			t.Log("standard input is a terminal, which replay refuses first: the - case is not run")
			continue
		}
		code, _, stderr := telescope(t, "replay", "--sort", early, tc.input)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("--sort %s: exit %d, stderr %q; want 2 and %q", tc.input, code, stderr, tc.msg)
		}
	}
}
