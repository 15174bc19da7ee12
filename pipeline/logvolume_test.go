package pipeline

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// miraiSYNs returns n Mirai-style SYN probes (seq == destination address) from src to
// 203.0.113.(1..n), one every `every` from start.
func miraiSYNs(src string, n int, start time.Time, every time.Duration) []pcaptest.Packet {
	var ps []pcaptest.Packet
	for i := 0; i < n; i++ {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)})
		d := dst.As4()
		ps = append(ps, pcaptest.Packet{TS: start.Add(time.Duration(i) * every), Src: netip.MustParseAddr(src), Dst: dst,
			SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]),
			Window: 5840, TTL: 64})
	}
	return ps
}

// logReplay replays ps with cfg on one worker and returns the log and the report.
func logReplay(t *testing.T, cfg *configs.Config, ps []pcaptest.Packet) (*observer.ObservedLogs, *Report, *Pipeline) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	col := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: 1, Logger: zap.New(core), Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	p.logq.Drain()
	return logs, p.Report(col), p
}

// eventLines returns the detection event lines (start, end) of detector name by src.
func eventLines(logs *observer.ObservedLogs, name string) map[string][]string {
	got := map[string][]string{}
	for _, e := range logs.All() {
		m := e.ContextMap()
		if m["event"] == name && (m["phase"] == "start" || m["phase"] == "end") {
			src, _ := m["src"].(string)
			got[src] = append(got[src], m["phase"].(string))
		}
	}
	return got
}

// summed adds up the summary lines of detector name.
type summed struct {
	lines                                            int
	started, ended, startedNotLogged, endedNotLogged uint64
}

func summaries(t *testing.T, logs *observer.ObservedLogs, name string) summed {
	t.Helper()
	var s summed
	for _, e := range logs.All() {
		m := e.ContextMap()
		if e.Message != summaryMsg || m["detector"] != name {
			continue
		}
		if _, ok := m["event"]; ok {
			t.Errorf("summary line with an event field: %v", m)
		}
		s.lines++
		s.started += m["started"].(uint64)
		s.ended += m["ended"].(uint64)
		s.startedNotLogged += m["started_not_logged"].(uint64)
		s.endedNotLogged += m["ended_not_logged"].(uint64)
	}
	return s
}

// TestLogVolumeByConfig: which fingerprint episodes reach the log under detect.fingerprint.log
// and log_min_packets, with the summary lines counting every episode and the report and
// the metrics keeping every one whatever is logged.
func TestLogVolumeByConfig(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 10, 0, time.UTC)
	// One source sends one fingerprinted SYN, another three.
	ps := append(miraiSYNs("192.0.2.1", 1, t0, time.Second), miraiSYNs("192.0.2.3", 3, t0.Add(time.Second), time.Second)...)
	tests := []struct {
		name   string
		change func(c *configs.Config)
		// want: the lines of each source's episode.
		want    map[string][]string
		summary summed // lines: at least this many
	}{
		{"defaults: the one-packet episode is not logged; the other has its end line",
			func(c *configs.Config) {},
			map[string][]string{"192.0.2.3": {"end"}},
			summed{1, 2, 2, 2, 1}},
		{"log_min_packets 1: every line",
			func(c *configs.Config) { c.Detect.Fingerprint.LogMinPackets = 1 },
			map[string][]string{"192.0.2.1": {"start", "end"}, "192.0.2.3": {"start", "end"}},
			summed{1, 2, 2, 0, 0}},
		{"log_min_packets 4: no episode has 4 packets",
			func(c *configs.Config) { c.Detect.Fingerprint.LogMinPackets = 4 },
			map[string][]string{},
			summed{1, 2, 2, 2, 2}},
		{"log false: nothing, whatever log_min_packets says",
			func(c *configs.Config) { c.Detect.Fingerprint.Log = false; c.Detect.Fingerprint.LogMinPackets = 1 },
			map[string][]string{},
			summed{1, 2, 2, 2, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.change(cfg)
			logs, rep, p := logReplay(t, cfg, ps)
			got := eventLines(logs, detect.Fingerprint)
			if len(got) != len(tc.want) {
				t.Errorf("fingerprint lines %v, want %v", got, tc.want)
			}
			for src, w := range tc.want {
				if g := got[src]; len(g) != len(w) || len(g) > 0 && g[0] != w[0] || len(g) > 1 && g[1] != w[1] {
					t.Errorf("%s: lines %v, want %v", src, g, w)
				}
			}
			s := summaries(t, logs, detect.Fingerprint)
			if s.lines < tc.summary.lines || s.started != tc.summary.started || s.ended != tc.summary.ended ||
				s.startedNotLogged != tc.summary.startedNotLogged || s.endedNotLogged != tc.summary.endedNotLogged {
				t.Errorf("summary lines sum to %+v, want %+v", s, tc.summary)
			}
			// Every other enabled detector has its summary line too, with nothing in it.
			if sc := summaries(t, logs, detect.Scanner); sc.lines == 0 || sc.started != 0 {
				t.Errorf("scanner summary %+v, want lines with 0 episodes", sc)
			}
			// The report and the metrics keep both episodes.
			if n := len(rep.Detections["tools"]); n != 2 {
				t.Errorf("report has %d tools entries, want 2", n)
			}
			var started uint64
			for _, d := range p.Snapshot().Detectors {
				if d.Name == detect.Fingerprint {
					for _, n := range d.Started {
						started += n.Count
					}
				}
			}
			if started != 2 {
				t.Errorf("telescope_detections_total{detector=fingerprint} = %d, want 2", started)
			}
		})
	}
}

// TestSummaryLinesAndReload drives the summary clock by hand: lines fall on multiples of
// log.summary_interval and count every event since the previous line; a reload changes
// which events are logged at once and the interval from the next line; 0 stops the lines.
func TestSummaryLinesAndReload(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	cfg := testConfig(t)
	p, err := New(Options{Config: cfg, Workers: 1, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) int64 {
		ts, err := time.Parse(time.RFC3339, "2024-05-01T"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return ts.UnixNano()
	}
	fp := func(ph detect.Phase, src string, packets uint64) {
		p.sink.Detection(&detect.Event{Detector: detect.Fingerprint, Phase: ph, Class: "mirai",
			Entry: &detect.ToolEntry{Src: detect.IP(packet.AddrFromNetip(netip.MustParseAddr(src))), Tool: "mirai", Packets: packets}})
	}
	// take returns the lines written since the last call: fingerprint event lines by
	// src, and the summary lines by detector.
	seen := 0
	take := func() (events map[string]string, sums map[string]map[string]any) {
		p.logq.Drain()
		events, sums = map[string]string{}, map[string]map[string]any{}
		all := logs.All()
		for _, e := range all[seen:] {
			m := e.ContextMap()
			switch {
			case e.Message == summaryMsg:
				if _, dup := sums[m["detector"].(string)]; dup {
					t.Errorf("two summary lines for %s in one interval", m["detector"])
				}
				sums[m["detector"].(string)] = m
			case m["phase"] == "start" || m["phase"] == "end":
				events[m["src"].(string)] = m["phase"].(string)
			}
		}
		seen = len(all)
		return events, sums
	}
	reload := func(change func(c *configs.Config)) {
		t.Helper()
		n := cloneConfig(t, p.rc.Load().cfg)
		change(n)
		keys := configs.Diff(p.rc.Load().cfg, n)
		if len(keys) == 0 {
			t.Fatal("the reload changes nothing")
		}
		for _, k := range keys {
			if configs.IsRestartOnly(k) {
				t.Fatalf("%s needs a restart", k)
			}
		}
		if err := p.Reload(n); err != nil {
			t.Fatal(err)
		}
	}

	p.summary.tick(at("00:00:30"))
	fp(detect.Start, "192.0.2.1", 1) // below log_min_packets 2
	fp(detect.Start, "192.0.2.2", 5)
	p.summary.tick(at("00:00:50"))
	if ev, sums := take(); len(sums) != 0 || len(ev) != 1 || ev["192.0.2.2"] != "start" {
		t.Fatalf("before the first minute ends: events %v, summaries %v", ev, sums)
	}
	p.summary.tick(at("00:01:05"))
	_, sums := take()
	if len(sums) != len(detect.Descriptors()) {
		t.Fatalf("%d summary lines, want one per detector (%d): %v", len(sums), len(detect.Descriptors()), sums)
	}
	f := sums[detect.Fingerprint]
	if f["from"] != "2024-05-01T00:00:30Z" || f["to"] != "2024-05-01T00:01:00Z" ||
		f["started"] != uint64(2) || f["started_not_logged"] != uint64(1) || f["ended"] != uint64(0) ||
		f["log"] != true || f["log_min_packets"] != int64(2) {
		t.Errorf("first fingerprint summary %v", f)
	}
	if s := sums[detect.Scanner]; s["started"] != uint64(0) || s["ended"] != uint64(0) {
		t.Errorf("scanner summary %v, want zeros", s)
	}

	// Reload: fingerprint lines off, scanner off, lines every 10 s.
	reload(func(c *configs.Config) {
		c.Detect.Fingerprint.Log = false
		c.Detect.Scanner.Enabled = false
		c.Log.SummaryInterval = configs.Duration(10 * time.Second)
	})
	fp(detect.End, "192.0.2.2", 9)
	p.summary.tick(at("00:01:12"))
	if ev, sums := take(); len(ev) != 0 || len(sums) != 0 {
		t.Fatalf("after the reload: events %v (want none: log false), summaries %v (want none before 00:01:20)", ev, sums)
	}
	p.summary.tick(at("00:01:21"))
	_, sums = take()
	f = sums[detect.Fingerprint]
	if f["from"] != "2024-05-01T00:01:00Z" || f["to"] != "2024-05-01T00:01:20Z" ||
		f["started"] != uint64(0) || f["ended"] != uint64(1) || f["ended_not_logged"] != uint64(1) || f["log"] != false {
		t.Errorf("fingerprint summary after the reload %v", f)
	}
	if _, ok := sums[detect.Scanner]; ok || len(sums) != len(detect.Descriptors())-1 {
		t.Errorf("summary lines after disabling the scanner: %v", sums)
	}

	// A gap of many intervals gives one line per detector covering it.
	p.summary.tick(at("00:09:03"))
	if _, sums = take(); sums[detect.Fingerprint]["from"] != "2024-05-01T00:01:20Z" || sums[detect.Fingerprint]["to"] != "2024-05-01T00:09:00Z" {
		t.Errorf("gap summary %v", sums[detect.Fingerprint])
	}

	// 0 stops the lines, the last one too.
	reload(func(c *configs.Config) { c.Log.SummaryInterval = 0 })
	p.summary.tick(at("00:20:00"))
	p.summary.final(at("00:21:00"))
	if _, sums = take(); len(sums) != 0 {
		t.Errorf("summary lines with summary_interval 0: %v", sums)
	}
}

// cloneConfig returns an independent copy of c (a reload must not share the old config).
func cloneConfig(t *testing.T, c *configs.Config) *configs.Config {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	n, err := configs.Parse(b, "clone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSummaryLinesExactPerInterval: in a replay each summary line counts the episode events
// of its own interval of packet time, with any number of workers and whatever their
// progress when the reader crosses the interval's end. Each of 36 000 sources sends one
// Mirai-fingerprinted SYN to 203.0.113.1, 3 000 a second for 12 s, with 1 s lines and a
// 2 s window, so the lines are known by hand: a fingerprint episode starts at its probe
// and ends at the first packet more than 2 s later; the hotspot (36 000 sources to one
// address) starts as its first window closes, at 2 s, and ends with the replay. The
// reader runs up to 16 batches (16 Ki packets with 3 workers) ahead of the workers: the
// lines used to take whatever the workers had counted when the reader passed the end, and
// the first line started at the first batch's last packet.
func TestSummaryLinesExactPerInterval(t *testing.T) {
	const (
		seconds   = 12
		perSecond = 3000 // sources a second, one fingerprinted SYN each
	)
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for k := range seconds {
		for j := range perSecond {
			n := k*perSecond + j
			src := netip.AddrFrom4([4]byte{100, 64 + byte(n>>16), byte(n >> 8), byte(n)}).String()
			at := t0.Add(time.Duration(k)*time.Second + time.Duration(j)*(time.Second/perSecond))
			ps = append(ps, miraiSYNs(src, 1, at, time.Second)...)
		}
	}
	path := filepath.Join(t.TempDir(), "in.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	// By hand, line k (from t0 + k s): the probes of second k-2 but its last end in it
	// (more than 2 s after them comes a packet of second k), the last one of second k-3 too
	// (its next packet 2 s on is the first of second k); the rest end with the replay.
	type line struct{ started, ended, hotStarted, hotEnded uint64 }
	want := make([]line, seconds)
	var ended uint64
	for k := range want {
		want[k].started = perSecond
		if k >= 2 {
			want[k].ended += perSecond - 1
		}
		if k >= 3 {
			want[k].ended++
		}
		ended += want[k].ended
	}
	want[seconds-1].ended += seconds*perSecond - ended
	want[2].hotStarted, want[seconds-1].hotEnded = 1, 1
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Log.SummaryInterval = configs.Duration(time.Second)
			cfg.Window = configs.Duration(2 * time.Second)
			core, logs := observer.New(zap.InfoLevel)
			p, err := New(Options{Config: cfg, Workers: workers, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) > 0 {
				t.Fatal(res.Errors)
			}
			p.logq.Drain()
			var froms []string
			var got []line
			for _, e := range logs.All() {
				m := e.ContextMap()
				if e.Message != summaryMsg {
					continue
				}
				switch m["detector"] {
				case detect.Fingerprint:
					froms = append(froms, m["from"].(string))
					got = append(got, line{started: m["started"].(uint64), ended: m["ended"].(uint64)})
				case detect.Hotspot:
					if len(got) == 0 {
						t.Fatal("a hotspot summary line before the first fingerprint line")
					}
					got[len(got)-1].hotStarted, got[len(got)-1].hotEnded = m["started"].(uint64), m["ended"].(uint64)
				}
			}
			if len(got) != seconds {
				t.Fatalf("%d fingerprint summary lines, want %d (from %v)", len(got), seconds, froms)
			}
			for k := range want {
				if w := t0.Add(time.Duration(k) * time.Second).Format(time.RFC3339Nano); froms[k] != w {
					t.Errorf("line %d from %s, want %s", k, froms[k], w)
				}
				if got[k] != want[k] {
					t.Errorf("line %d (from %s): started/ended %+v, want %+v", k, froms[k], got[k], want[k])
				}
			}
		})
	}
}

// TestSummaryLinesSecondReplay: a pipeline that replays twice keeps counting the shared
// detectors' events from where the first replay left them: each replay's 300 sources to
// one address make one hotspot episode, so the lines add up to two starts and two ends,
// never a line with a count that wrapped below zero.
func TestSummaryLinesSecondReplay(t *testing.T) {
	cfg := testConfig(t)
	cfg.Log.SummaryInterval = configs.Duration(time.Second)
	cfg.Window = configs.Duration(2 * time.Second)
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{Config: cfg, Workers: 2, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	for r, start := range []time.Time{
		time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 5, 1, 1, 0, 0, 0, time.UTC),
	} {
		var ps []pcaptest.Packet
		for n := range 300 {
			src := netip.AddrFrom4([4]byte{100, 64, byte(n >> 8), byte(n)}).String()
			ps = append(ps, miraiSYNs(src, 1, start.Add(time.Duration(n)*10*time.Millisecond), time.Second)...)
		}
		path := filepath.Join(t.TempDir(), fmt.Sprintf("in%d.pcap", r))
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
	}
	p.logq.Drain()
	var started, ended uint64
	for _, e := range logs.All() {
		m := e.ContextMap()
		if e.Message != summaryMsg || m["detector"] != detect.Hotspot {
			continue
		}
		s, en := m["started"].(uint64), m["ended"].(uint64)
		if s > 2 || en > 2 {
			t.Errorf("hotspot line from %s: started %d, ended %d", m["from"], s, en)
		}
		started += s
		ended += en
	}
	if started != 2 || ended != 2 {
		t.Errorf("hotspot lines add up to %d started, %d ended; want 2 and 2", started, ended)
	}
}

// A summary line encoded for the log queue (AppendLogJSON) is what zap's JSON encoder
// writes of its fields, and one with a string to escape is left to zap.
func TestSummaryLineJSONMatchesZap(t *testing.T) {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	for _, l := range []summaryLine{
		{detector: "scanner", from: "2024-05-01T00:00:00Z", to: "2024-05-01T00:01:00Z", log: true, minPackets: 1},
		{detector: "udp_then_syn", from: "2024-05-01T00:00:00.5Z", to: "2024-05-01T00:01:00Z",
			counts: tallyCounts{1, 2, 3, math.MaxUint64}, minPackets: -1, dropped: 1 << 40},
	} {
		buf, err := enc.EncodeEntry(zapcore.Entry{}, l.fields())
		if err != nil {
			t.Fatal(err)
		}
		got, ok := l.AppendLogJSON([]byte("x"))
		if want := "x" + strings.TrimSuffix(buf.String(), "\n"); !ok || string(got) != want {
			t.Errorf("AppendLogJSON = %s, %v; zap writes %s", got, ok, want)
		}
	}
	l := summaryLine{detector: `a"b`, from: "2024-05-01T00:00:00Z", to: "2024-05-01T00:01:00Z"}
	if _, ok := l.AppendLogJSON(nil); ok {
		t.Error("a detector name with a quote was encoded, not left to zap")
	}
}
