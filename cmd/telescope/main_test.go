package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/pipeline"
)

// telescope runs the command in-process and returns its exit status and output.
func telescope(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeConfig writes a config file for a test.
func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// requireTool returns the path of a tool, skipping loudly (failing under CI=true) when missing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, pkg)
		}
		t.Skipf("SKIPPING: %s is not installed (apt-get install %s); scripts/test.sh installs it", name, pkg)
	}
	return p
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func smallCapture(t *testing.T) (string, []pcaptest.Packet) {
	t.Helper()
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for i := 0; i < 40; i++ {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Second), Src: addr("192.0.2.10"),
			Dst: addr4(203, 0, 113, byte(i)), SrcPort: 50000, DstPort: 23, Flags: 0x02})
	}
	ps = append(ps, pcaptest.Packet{TS: t0.Add(41 * time.Second), Proto: "udp", Src: addr("192.0.2.11"),
		Dst: addr("203.0.113.50"), SrcPort: 1, DstPort: 1900})
	path := filepath.Join(t.TempDir(), "small.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	return path, ps
}

func TestReplayWritesReportAndExposition(t *testing.T) {
	pcap, _ := smallCapture(t)
	dir := t.TempDir()
	report, expo := filepath.Join(dir, "report.json"), filepath.Join(dir, "final.prom")
	code, _, stderr := telescope(t, "replay", pcap, "--report", report, "--metrics-out", expo)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	r := readJSONReport(t, report)
	if r.Frames != 41 || r.Packets.IPv4.TCP != 40 || r.Packets.IPv4.UDP != 1 || r.TCPFlags["SYN"] != 40 {
		t.Errorf("report: frames %d tcp %d udp %d SYN %d", r.Frames, r.Packets.IPv4.TCP, r.Packets.IPv4.UDP, r.TCPFlags["SYN"])
	}
	if sw := pipeline.EntriesOf[*detect.TelnetSweepEntry](r.Detections, "telnet_sweep"); len(sw) != 1 || sw[0].Src != "192.0.2.10" || sw[0].Targets != 40 {
		t.Errorf("telnet sweeps: %+v", sw)
	}
	// The detection events went to the log as JSON lines.
	var starts, ends int
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, `"event":"telnet_sweep"`) {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		switch ev["phase"] {
		case "start":
			starts++
		case "end":
			ends++
			if ev["src"] != "192.0.2.10" || ev["targets"] != float64(40) || ev["last_seen"] != "2024-05-01T00:00:39Z" {
				t.Errorf("end event fields: %v", ev)
			}
		}
	}
	if starts != 1 || ends != 1 {
		t.Errorf("telnet_sweep log lines: %d starts, %d ends\n%s", starts, ends, stderr)
	}
	e, err := os.ReadFile(expo)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`telescope_packets_total{ip="4",protocol="tcp",sensor=""} 40`,
		`telescope_dst_port_packets_total{kind="tcp_syn",port="23",sensor=""} 40`,
		`telescope_detections_total{class="other",detector="telnet_sweep",sensor=""} 1`,
		`telescope_build_info{goversion=`,
		`go_goroutines{sensor=""}`,
	} {
		if !bytes.Contains(e, []byte(want)) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	promtool := requireTool(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(e)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestReplayReportToStdout(t *testing.T) {
	pcap, _ := smallCapture(t)
	code, stdout, stderr := telescope(t, "replay", "--report", "-", pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	for _, k := range []string{"first_packet", "last_packet", "frames", "non_ip_frames", "decode_errors", "packets", "tcp_flags", "dst_ports", "sources", "destinations", "detections"} {
		if _, ok := r[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
}

func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	good, _ := smallCapture(t)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A record longer than the snap length: rewrite the snaplen field of the header to 40.
	longRec := append([]byte(nil), data...)
	longRec[16], longRec[17], longRec[18], longRec[19] = 40, 0, 0, 0
	// A link type the decoder does not know (LINKTYPE_USER0 = 147).
	unknown := append([]byte(nil), data...)
	unknown[20], unknown[21], unknown[22], unknown[23] = 147, 0, 0, 0
	cases := []struct {
		name     string
		path     string
		code     int
		frames   uint64 // frames in the report
		errWants []string
		logWants []string
	}{
		{"empty file", write("empty.pcap", nil), 1, 0, []string{"empty.pcap", "empty file"}, nil},
		{"text file", write("notes.txt", []byte("this is not a capture\n")), 1, 0, []string{"notes.txt", "byte offset 0", "not a pcap or pcapng file"}, nil},
		{"truncated global header", write("hdr.pcap", data[:13]), 1, 0, []string{"hdr.pcap", "byte offset 0"}, nil},
		{"record cut at end of file", write("cut.pcap", data[:len(data)-7]), 1, 40, []string{"cut.pcap", "byte offset", "truncated record"}, nil},
		{"record longer than snaplen", write("long.pcap", longRec), 0, 41, nil, []string{"long.pcap", "snap"}},
		{"unknown link type", write("user0.pcap", unknown), 0, 41, nil, []string{"user0.pcap", "LINKTYPE_USER0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "r.json")
			code, _, stderr := telescope(t, "replay", "--report", report, tc.path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			if len(tc.errWants) > 0 {
				line := lastLine(stderr)
				for _, w := range tc.errWants {
					if !strings.Contains(line, w) {
						t.Errorf("last stderr line %q lacks %q", line, w)
					}
				}
			}
			for _, w := range tc.logWants {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			// The report is written in every case, with what was read before the damage.
			r := readJSONReport(t, report)
			if r.Frames != tc.frames {
				t.Errorf("frames %d, want %d", r.Frames, tc.frames)
			}
			if tc.name == "unknown link type" && r.NonIPFrames != 41 {
				t.Errorf("non_ip_frames %d, want 41", r.NonIPFrames)
			}
			if tc.name == "unknown link type" && strings.Count(stderr, "LINKTYPE_USER0") != 1 {
				t.Errorf("want exactly one warning naming the link type:\n%s", stderr)
			}
		})
	}
}

func TestReplayGzipByMagicNotName(t *testing.T) {
	pcap, _ := smallCapture(t)
	data, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "capture.bin") // no .gz suffix on purpose
	f, err := os.Create(gz)
	if err != nil {
		t.Fatal(err)
	}
	if err := gzipTo(f, data); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := telescope(t, "replay", "--report", "-", gz)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pipeline.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Frames != 41 {
		t.Errorf("frames %d, want 41", r.Frames)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"replay"}, 2, "no capture files given"},
		{[]string{"replay", "--bogus", "x.pcap"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"check-config"}, 2, "expected exactly one config file"},
		{[]string{"run", "extra"}, 2, "unexpected argument"},
		{[]string{"replay", "--config", "/nonexistent.yaml", "x.pcap"}, 1, "/nonexistent.yaml"},
		{[]string{"replay", "--log.level", "loud", "x.pcap"}, 1, "log.level"},
	} {
		code, _, stderr := telescope(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q lacks %q", tc.args, code, tc.code, stderr, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := telescope(t, "version")
	if code != 0 || !strings.HasPrefix(out, "telescope ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("sensor: edge-1\ndetect: {scanner: {min_packets: 50}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := telescope(t, "check-config", good)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"sensor: edge-1", "min_packets: 50", "min_targets: 20", "window: 5m"} {
		if !strings.Contains(out, w) {
			t.Errorf("effective config lacks %q:\n%s", w, out)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("capture:\n  filter: \"tcp prot 23\"\n  workerz: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = telescope(t, "check-config", bad)
	if code != 1 || out != "" || !strings.Contains(stderr, `bad.yaml:3: unknown key "capture.workerz"`) {
		t.Errorf("bad config: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// --config FILE, as run and replay take it, is the same; with FILE too, one too many.
	if code, out2, _ := telescope(t, "check-config", "--config", good); code != 0 || out2 != out0(t, good) {
		t.Errorf("check-config --config: exit %d, output\n%s", code, out2)
	}
	if code, _, stderr := telescope(t, "check-config", "--config", bad); code != 1 || !strings.Contains(stderr, `unknown key "capture.workerz"`) {
		t.Errorf("check-config --config of a bad file: exit %d, %q", code, stderr)
	}
	if code, _, stderr := telescope(t, "check-config", "--config", good, bad); code != 2 || !strings.Contains(stderr, "expected exactly one config file, got 2") {
		t.Errorf("check-config --config FILE FILE: exit %d, %q", code, stderr)
	}
	badFilter := filepath.Join(dir, "badfilter.yaml")
	if err := os.WriteFile(badFilter, []byte("capture: {filter: \"tcp prot 23\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = telescope(t, "check-config", badFilter)
	if code != 1 || !strings.Contains(stderr, "capture.filter") {
		t.Errorf("bad filter: exit %d, stderr %q", code, stderr)
	}
	// The embedded default is itself a valid config file.
	def := filepath.Join(dir, "default.yaml")
	if err := os.WriteFile(def, mustDefault(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = telescope(t, "check-config", def); code != 0 {
		t.Errorf("embedded default: exit %d: %s", code, stderr)
	}
}

// out0 is check-config's output for path, given as FILE.
func out0(t *testing.T, path string) string {
	t.Helper()
	code, out, stderr := telescope(t, "check-config", path)
	if code != 0 {
		t.Fatalf("check-config %s: exit %d: %s", path, code, stderr)
	}
	return out
}

func TestReplayProgress(t *testing.T) {
	pcap, _ := smallCapture(t)
	code, _, stderr := telescope(t, "replay", "--progress", pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "replay: 41 packets, ") || !strings.Contains(stderr, "packets/s, 100.0% of input") {
		t.Errorf("no final progress line on stderr:\n%s", stderr)
	}
	code, _, stderr = telescope(t, "replay", pcap)
	if code != 0 || strings.Contains(stderr, "replay: 41 packets") {
		t.Errorf("progress printed without --progress on a non-terminal stderr:\n%s", stderr)
	}
}

func TestLogFormats(t *testing.T) {
	pcap, _ := smallCapture(t)
	code, _, stderr := telescope(t, "replay", "--log.format", "logfmt", pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sweep string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "event=telnet_sweep") && strings.Contains(line, "phase=end") {
			sweep = line
		}
	}
	for _, want := range []string{"level=info", `msg="telnet sweep went quiet"`, "src=192.0.2.10", "targets=40", "mirai=false", "last_seen=2024-05-01T00:00:39Z"} {
		if !strings.Contains(sweep, want) {
			t.Errorf("logfmt line %q lacks %q", sweep, want)
		}
	}
	if strings.Contains(stderr, "{") {
		t.Errorf("logfmt output holds JSON:\n%s", stderr)
	}
	code, _, stderr = telescope(t, "replay", "--log.format", "yaml", pcap)
	if code != 1 || !strings.Contains(stderr, `log.format: must be one of "json", "logfmt", "console", got "yaml"`) {
		t.Errorf("bad log format: exit %d, %s", code, stderr)
	}
}

// readJSONReport reads the JSON report a replay wrote to path.
func readJSONReport(t *testing.T, path string) *pipeline.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r pipeline.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}
