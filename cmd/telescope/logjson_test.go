package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/packet"
)

// testLine is an event line's inlined fields as the pipeline builds them (its logLine).
type testLine struct{ e detect.Entry }

func (l testLine) MarshalLogObject(enc zapcore.ObjectEncoder) error { return l.e.MarshalLogObject(enc) }
func (l testLine) AppendLogJSON(b []byte) ([]byte, bool)            { return detect.AppendLogJSON(b, l.e) }

// The event lines the JSON encoder writes itself are the bytes zap writes: random fingerprint
// and udp_then_syn entries, labelled or not, with strings to escape, under messages and
// phases to escape, at times in several zones; and lines of other shapes. Plain lines must
// take the short way (or the comparison would only compare zap with itself; a line with <, >
// or &, which the entry's appender escapes as encoding/json does and zap does not, is
// zap's), and a clone (a logger's With) never does.
func TestEventLinesMatchZap(t *testing.T) {
	ec := logEncoderConfig()
	fast, ref := newEventJSONEncoder(ec), zapcore.NewJSONEncoder(ec)
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := []string{"192.0.2.1", "2001:db8::1", "::", "0.0.0.0"}
	strs := []string{"dht", "", "Ünï", "q\"t", "<&>", "a\\b", "\x01"}
	msgs := []string{"fingerprinted source went quiet", "udp then syn pair detected", "q\"uote", "ünï", ""}
	zones := []*time.Location{time.UTC, time.FixedZone("X", 5*3600+1800), time.FixedZone("Y", -7*3600)}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	addr := func() detect.IP { return detect.IP(packet.AddrFromNetip(netip.MustParseAddr(pick(addrs)))) }
	short := 0
	for i := range 4000 {
		var who detect.Who
		if i%5 == 4 {
			who = detect.Who{Org: pick(strs), ASN: rng.Uint32N(3), ASName: pick(strs)}
		}
		var e detect.Entry = &detect.ToolEntry{Src: addr(), Tool: detect.Tools[rng.IntN(len(detect.Tools))],
			Packets: rng.Uint64(), Probes: rng.Uint64N(9), FirstSeen: detect.Time(rng.Int64()), LastSeen: detect.Time(rng.Int64N(1e18)), Who: who}
		if i%2 == 1 {
			e = &detect.UDPThenSYNEntry{Src: addr(), Dst: addr(), Port: uint16(rng.Uint32()), UDPPackets: rng.Uint64N(5),
				SYNPackets: rng.Uint64(), Payload: pick(strs), FirstSeen: detect.Time(rng.Int64()), Who: who}
		}
		if i%7 == 6 {
			e = &detect.ScannerEntry{Src: "192.0.2.9", Packets: 7}
		}
		ent := zapcore.Entry{Level: zapcore.InfoLevel, Message: pick(msgs),
			Time: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])}
		if i%11 == 10 {
			ent.Level = zapcore.WarnLevel
		}
		phase := "start"
		if i%13 == 12 {
			phase = "en\"d"
		}
		fields := []zapcore.Field{zap.String("event", "fingerprint"), zap.String("phase", phase), zap.Inline(testLine{e})}
		got, err := fast.EncodeEntry(ent, fields)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.EncodeEntry(ent, fields)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("line %d:\nwritten %s\nzap     %s", i, got, want)
		}
		if _, ok := appendEventLine(nil, ent, fields); ok {
			short++
		} else if w := want.String(); ent.Level == zapcore.InfoLevel && !strings.ContainsAny(w, `\<>&`) &&
			strings.IndexFunc(w, func(r rune) bool { return r > 0x7e }) < 0 && strings.HasPrefix(w, `{"level":"info","ts":"`) &&
			who == (detect.Who{}) && i%7 != 6 {
			t.Fatalf("line %d has nothing to escape but was left to zap: %s", i, w)
		}
	}
	if short < 500 {
		t.Errorf("%d of 4000 lines written the short way", short)
	}
	// A clone may hold a logger's fields: zap writes its lines, with them.
	c := fast.Clone()
	c.AddString("sensor", "s1")
	e := &detect.ToolEntry{Src: addr(), Tool: "mirai", Packets: 1, Probes: 1}
	buf, err := c.EncodeEntry(zapcore.Entry{Level: zapcore.InfoLevel, Message: "m", Time: time.Unix(0, 0)},
		[]zapcore.Field{zap.String("event", "fingerprint"), zap.String("phase", "end"), zap.Inline(testLine{e})})
	if err != nil || !strings.Contains(buf.String(), `"sensor":"s1"`) {
		t.Errorf("a clone's line %q (%v) lacks its field", buf, err)
	}
}

// The lines the pipeline's workers encode themselves (pipeline.EventLineEncoder, handed to
// the log queue a batch at a time) are the lines zap writes of the same events: a replay
// of a generated day (tens of thousands of fingerprint and udp_then_syn lines, from two
// workers) logs the same lines both ways, but for their times, and each worker's lines
// keep their order (their events' order in the report's stream). Lines of the shared
// detectors and the summary lines go through zap either way.
func TestWorkerLinesMatchZap(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "day.pcap")
	if _, err := daygen.WriteFile(pcap, daygen.Options{Seed: 3, Scale: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "day.yaml")
	writeConfig(t, cfg, "dark_prefixes: [203.0.113.0/24, 198.51.100.0/24, '2001:db8:1::/48']\ncapture: {workers: 2}\n")
	replay := func(encoded bool) []string {
		t.Helper()
		old := workerLines
		workerLines = encoded
		defer func() { workerLines = old }()
		code, _, stderr := telescope(t, "replay", "--config", cfg, pcap)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var lines []string
		ts := regexp.MustCompile(`"ts":"[^"]*"`)
		for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
			if !json.Valid([]byte(l)) {
				t.Fatalf("not a JSON line: %q", l)
			}
			if strings.Contains(l, `"msg":"replay finished"`) {
				continue // its elapsed time differs
			}
			lines = append(lines, ts.ReplaceAllString(l, `"ts":""`))
		}
		return lines
	}
	zapLines, encLines := replay(false), replay(true)
	events := 0
	for _, l := range encLines {
		if strings.Contains(l, `"event":"fingerprint"`) || strings.Contains(l, `"event":"udp_then_syn"`) {
			events++
		}
	}
	if events < 1000 {
		t.Fatalf("%d fingerprint and udp_then_syn lines: the day should log thousands", events)
	}
	// The summary lines (encoded by the pipeline too): 7 detectors a minute of packet time
	// (10 080 for the generated day), in the same order both ways.
	summaries := func(lines []string) []string {
		var s []string
		for _, l := range lines {
			if strings.Contains(l, `"msg":"detector summary"`) {
				s = append(s, l)
			}
		}
		return s
	}
	if zs, es := summaries(zapLines), summaries(encLines); len(es) < 7*60 || !slices.Equal(zs, es) {
		t.Fatalf("summary lines: %d through zap, %d encoded, equal in order: %v", len(zs), len(es), slices.Equal(zs, es))
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if a, b := sorted(zapLines), sorted(encLines); !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("%d lines through zap, %d encoded; first difference:\nzap     %s\nencoded %s", len(a), len(b), a[i], b[i])
			}
		}
		t.Fatalf("%d lines through zap, %d encoded", len(a), len(b))
	}
	// Each source's lines come in the same order both ways (a source's events are its
	// worker's, in packet order).
	bySrc := func(lines []string) map[string][]string {
		m := map[string][]string{}
		src := regexp.MustCompile(`"src":"[^"]*"`)
		for _, l := range lines {
			if s := src.FindString(l); s != "" {
				m[s] = append(m[s], l)
			}
		}
		return m
	}
	zs, es := bySrc(zapLines), bySrc(encLines)
	for s, want := range zs {
		if !slices.Equal(es[s], want) {
			t.Fatalf("source %s: lines in another order:\nzap     %q\nencoded %q", s, want, es[s])
		}
	}
}
