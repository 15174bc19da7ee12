package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReplayStdin: "replay -" reads the capture from standard input, piped (plain and
// gzip) or redirected from a file, and gives the report that replaying the file by its name
// gives.
func TestReplayStdin(t *testing.T) {
	pcap, ps := smallCapture(t)
	data, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzipped(t, data)
	dir := t.TempDir()
	replay := func(name string, stdin func(*exec.Cmd), args ...string) string {
		t.Helper()
		out := filepath.Join(dir, name+".json")
		cmd := exec.Command(executable(t), append([]string{"replay", "--report", out}, args...)...)
		cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if stdin != nil {
			stdin(cmd)
		}
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// The report less its inputs, which name the file as given; that name checked.
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r["frames"] != float64(len(ps)) {
			t.Errorf("%s: %v frames, want %d", name, r["frames"], len(ps))
		}
		inputs, _ := r["inputs"].([]any)
		file := args[len(args)-1]
		if len(inputs) != 1 || inputs[0].(map[string]any)["file"] != file {
			t.Errorf("%s: inputs %v, want one, %s", name, r["inputs"], file)
		}
		delete(r, "inputs")
		if b, err = json.Marshal(r); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := replay("by-name", nil, pcap)
	for _, tc := range []struct {
		name  string
		stdin func(*exec.Cmd)
	}{
		{"pipe", func(c *exec.Cmd) { c.Stdin = bytes.NewReader(data) }},
		{"gzip pipe", func(c *exec.Cmd) { c.Stdin = bytes.NewReader(gz) }},
		{"redirected file", func(c *exec.Cmd) {
			f, err := os.Open(pcap)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			c.Stdin = f
		}},
	} {
		if got := replay(tc.name, tc.stdin, "-"); got != want {
			t.Errorf("%s: report differs from the replay by name:\n%s\nwant\n%s", tc.name, got, want)
		}
	}
}

// TestReplayStdinRefused: standard input given twice, or a terminal, is a usage error.
func TestReplayStdinRefused(t *testing.T) {
	pcap, _ := smallCapture(t)
	code, _, stderr := telescope(t, "replay", "-", pcap, "-")
	if code != 2 || !strings.Contains(stderr, "- (standard input) is given twice") {
		t.Errorf("twice: exit %d, stderr %q", code, stderr)
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("SKIPPING the terminal case: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	err = checkStdinInput([]string{pcap, "-"}, tty)
	if err == nil || !strings.Contains(err.Error(), "standard input, which is a terminal") {
		t.Errorf("terminal: %v", err)
	}
	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkStdinInput([]string{"-"}, f); err != nil {
		t.Errorf("a file on standard input: %v", err)
	}
}
