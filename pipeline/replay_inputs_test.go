package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestReplayFileOrder: a file that begins more than orderSlack before the files replayed
// so far ended is warned about (file, its first packet, the file and packet it goes back
// from, by how much) and counted in OutOfOrder; files in time order, a rotated capture
// continuing where the last file ended, and a jitter within orderSlack are not. A replay
// after a restored state (After) goes on from its clock.
func TestReplayFileOrder(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	// file writes packets at t0+from, t0+from+step, ... t0+to.
	file := func(name string, from, to time.Duration) string {
		var ps []pcaptest.Packet
		for at := from; at <= to; at += time.Minute {
			ps = append(ps, pcaptest.Packet{TS: t0.Add(at), Src: netip.MustParseAddr("192.0.2.1"),
				Dst: netip.MustParseAddr("203.0.113.1"), SrcPort: 1000, DstPort: 80, Flags: 0x02})
		}
		path := filepath.Join(dir, name)
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		return path
	}
	h1 := file("hour1.pcap", 0, 59*time.Minute)
	h2 := file("hour2.pcap", 60*time.Minute, 119*time.Minute)
	h3 := file("hour3.pcap", 120*time.Minute, 179*time.Minute)
	jitter := file("jitter.pcap", 119*time.Minute+500*time.Millisecond, 130*time.Minute)
	for _, tc := range []struct {
		name  string
		files []string
		after time.Duration // ReplayOptions.After, from t0 (0: none)
		want  []string      // warnings: "file<previous_file back"
	}{
		{"in order", []string{h1, h2, h3}, 0, nil},
		{"jitter within a second", []string{h1, h2, jitter}, 0, nil},
		{"reversed", []string{h3, h2, h1}, 0, []string{"hour2.pcap<hour3.pcap 1h59m0s", "hour1.pcap<hour3.pcap 2h59m0s"}},
		{"one back", []string{h1, h3, h2}, 0, []string{"hour2.pcap<hour3.pcap 1h59m0s"}},
		{"the same twice", []string{h1, h1}, 0, []string{"hour1.pcap<hour1.pcap 59m0s"}},
		{"after a state", []string{h2, h3}, 119 * time.Minute, []string{"hour2.pcap<state 59m0s"}},
		{"after an older state", []string{h2, h3}, 59 * time.Minute, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			p, err := New(Options{Config: configs.Default(), Workers: 2, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			o := ReplayOptions{Files: tc.files}
			if tc.after != 0 {
				o.After, o.AfterName = t0.Add(tc.after).UnixNano(), "state"
			}
			res := p.Replay(context.Background(), o)
			if len(res.Errors) > 0 {
				t.Fatal(res.Errors)
			}
			p.logq.Drain()
			var got []string
			for _, e := range logs.FilterMessageSnippet("capture file begins before").All() {
				m := e.ContextMap()
				got = append(got, fmt.Sprintf("%s<%s %v", filepath.Base(m["file"].(string)), filepath.Base(m["previous_file"].(string)), m["back"]))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("warnings %q, want %q", got, tc.want)
			}
			// The same file twice is said in a line of its own too.
			if n := logs.FilterMessageSnippet("capture file counted already").Len(); n != map[bool]int{true: 1}[tc.name == "the same twice"] {
				t.Errorf("%d lines saying a file was counted already", n)
			}
			if res.OutOfOrder != len(tc.want) {
				t.Errorf("OutOfOrder %d, want %d", res.OutOfOrder, len(tc.want))
			}
		})
	}
}

// TestProgressLine: the share of input, the time left (from the rate so far) and, with
// several files, the file being read; a stream's size is unknown, so neither share nor
// time left is printed for it.
func TestProgressLine(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, make([]byte, 500), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "in.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	src := &replaySource{}
	src.records.Store(4000)
	for _, tc := range []struct {
		files []string
		read  int64
		name  string
		want  string // after "replay: 4000 packets, N packets/s"
	}{
		{[]string{a, b}, 250, b, ", 25.0% of input, about 30s left, file 2 of 2 (" + b + ")"},
		{[]string{a}, 1000, "", ", 100.0% of input"},
		{[]string{a, filepath.Join(dir, "missing.pcap")}, 250, a, ", 50.0% of input, about 10s left, file 2 of 2 (" + a + ")"},
		{[]string{a, fifo}, 250, fifo, ", file 2 of 2 (" + fifo + ")"},
	} {
		var out bytes.Buffer
		pr := newProgress(ReplayOptions{Files: tc.files, Progress: &out}, src)
		pr.files = len(tc.files) - 1
		pr.start = time.Now().Add(-10 * time.Second) // 400 packets/s
		pr.print(tc.read, tc.name)
		want := "replay: 4000 packets, 400 packets/s" + tc.want + "\n"
		if got := out.String(); got != want {
			t.Errorf("%v: %q, want %q", tc.files, got, want)
		}
	}
}

// TestReportInputs: the report lists the files read, in order, each with its records, its
// first and latest packet times, and why it ended early: a damaged file's error (what came
// before the damage counted), a missing file's.
func TestReportInputs(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	var ps []pcaptest.Packet
	for i := range 10 {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Second), Src: netip.MustParseAddr("192.0.2.1"),
			Dst: netip.MustParseAddr("203.0.113.1"), SrcPort: 1000, DstPort: 80, Flags: 0x02})
	}
	good := filepath.Join(dir, "good.pcap")
	if err := pcaptest.WriteFile(good, ps); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, b[:len(b)-10], 0o644); err != nil { // the last record cut short
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pcap")
	p, err := New(Options{Config: configs.Default(), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	p.Replay(context.Background(), ReplayOptions{Files: []string{good, cut, missing}})
	got, err := json.Marshal(p.Report(NewEpisodes()).Inputs)
	if err != nil {
		t.Fatal(err)
	}
	cutErr := fmt.Sprintf(`%s: byte offset %d: truncated record: header says 76 bytes, 66 present`, cut, len(b)-76)
	want := fmt.Sprintf(`[{"file":%q,"records":10,"first_packet":"2024-05-01T00:00:00Z","last_packet":"2024-05-01T00:00:09Z"},`+
		`{"file":%q,"records":9,"first_packet":"2024-05-01T00:00:00Z","last_packet":"2024-05-01T00:00:08Z","error":%q},`+
		`{"file":%q,"records":0,"first_packet":null,"last_packet":null,"error":%q}]`,
		good, cut, cutErr, missing, "open "+missing+": no such file or directory")
	if string(got) != want {
		t.Errorf("inputs\n%s\nwant\n%s", got, want)
	}
}
