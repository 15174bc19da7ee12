package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// eventKeys renders events as sorted JSON lines (detector, phase, class, entry) to compare
// runs as multisets.
func eventKeys(t *testing.T, evs []*detect.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		b, err := json.Marshal(ev.Entry)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Detector+" "+ev.Phase.String()+" "+ev.Class+" "+string(b))
	}
	slices.Sort(out)
	return out
}

// dayWithFlood writes a small generated day (every detector but the hotspot has episodes)
// followed by a SYN flood that makes one hotspot episode, and returns its path.
func dayWithFlood(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	day := filepath.Join(dir, "day.pcap")
	if _, err := daygen.WriteFile(day, daygen.Options{Seed: 5, Scale: 0.05}); err != nil {
		t.Fatal(err)
	}
	// The generated day has no hotspot episode: a SYN flood after it (300 spoofed sources
	// to one dark address:port, 00:11 to 00:18 the next day, so over two 5-minute windows)
	// makes one.
	flood := synFlood(1200, 300, 0x02, 50, 80, 7*time.Minute)(false)
	shift := time.Date(2024, 5, 2, 0, 11, 0, 0, time.UTC).Sub(hotT0)
	for i := range flood {
		flood[i].TS = flood[i].TS.Add(shift)
		flood[i].Dst = netip.AddrFrom4([4]byte{203, 0, 113, 50})
	}
	floodPath := filepath.Join(dir, "flood.pcap")
	if err := pcaptest.WriteFile(floodPath, flood); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(day)
	if err != nil {
		t.Fatal(err)
	}
	floodData, err := os.ReadFile(floodPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data[:24], floodData[:24]) {
		t.Fatalf("the day's pcap header %x differs from the flood's %x", data[:24], floodData[:24])
	}
	data = append(data, floodData[24:]...)
	if err := os.WriteFile(day, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return day
}

// TestReplaySplitMatchesWhole replays a generated day in one run, and in two runs split in
// the middle with the state carried over through a checkpoint file: the same events (every
// start and end, with their final values) come out.
func TestReplaySplitMatchesWhole(t *testing.T) {
	day := dayWithFlood(t)
	dir := filepath.Dir(day)
	data, err := os.ReadFile(day)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	// Cut the day in the middle of the first episode of every detector (found by a first
	// run), so each kind of episode is carried over a checkpoint.
	probe := &recorder{next: NewEpisodes()}
	p0, err := New(Options{Config: cfg, Workers: 1, Sink: probe})
	if err != nil {
		t.Fatal(err)
	}
	p0.Replay(context.Background(), ReplayOptions{Files: []string{day}})
	cuts := map[int64]bool{}
	seen := map[string]bool{}
	for _, ev := range probe.events {
		if ev.Phase != detect.End || seen[ev.Detector] {
			continue
		}
		first, last := entrySpan(t, ev.Entry)
		if last-first < int64(2*time.Second) {
			continue
		}
		seen[ev.Detector] = true
		cuts[first+(last-first)/2] = true
		if ev.Detector == detect.Hotspot {
			// Also in its second window, once its first is complete: an open episode in
			// the shared state, not only the workers' partial window.
			cuts[first+(last-first)*7/8] = true
		}
	}
	// Every detector.
	if want := len(detect.Descriptors()); len(seen) != want {
		t.Fatalf("episodes of %d detectors to cut in (%v), want %d", len(seen), seen, want)
	}
	var parts []string
	rest := data
	for i, cut := range slices.Sorted(maps.Keys(cuts)) {
		var part []byte
		part, rest = splitPcap(t, rest, time.Unix(0, cut))
		parts = append(parts, filepath.Join(dir, fmt.Sprintf("part%d.pcap", i)))
		if err := os.WriteFile(parts[i], part, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parts = append(parts, filepath.Join(dir, "last.pcap"))
	if err := os.WriteFile(parts[len(parts)-1], rest, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 3} {
		whole := &recorder{next: NewEpisodes()}
		p, err := New(Options{Config: cfg, Workers: workers, Sink: whole})
		if err != nil {
			t.Fatal(err)
		}
		p.Replay(context.Background(), ReplayOptions{Files: []string{day}})

		// One run per part, each continuing the previous one's checkpoint.
		state := filepath.Join(dir, "state")
		var split []*detect.Event
		carried := int64(0)
		for i, part := range parts {
			rec := &recorder{next: NewEpisodes()}
			p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				info, err := p.RestoreState(state, RestoreOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if info.Sources == 0 || !info.SurgeRestored || !info.HotspotRestored {
					t.Fatalf("part %d: nothing restored: %+v", i, info)
				}
				carried += info.Episodes
				t.Logf("workers=%d part %d: %d episodes open, %d sources, %d flows and victims, checkpoint %d bytes",
					workers, i, info.Episodes, info.Sources, info.Flows, info.Bytes)
			}
			replayKeeping(t, p, part, state, i == len(parts)-1)
			split = append(split, rec.events...)
		}
		if carried < int64(len(parts)-1) {
			t.Fatalf("workers=%d: only %d episodes open at the cuts: the test proves little", workers, carried)
		}
		want := eventKeys(t, whole.events)
		got := eventKeys(t, split)
		if !slices.Equal(got, want) {
			t.Errorf("workers=%d: split replay gives %d events, whole %d; first differences:", workers, len(got), len(want))
			shown := 0
			for _, s := range got {
				if !slices.Contains(want, s) && shown < 5 {
					t.Errorf("  only split: %s", s)
					shown++
				}
			}
			for _, s := range want {
				if !slices.Contains(got, s) && shown < 10 {
					t.Errorf("  only whole: %s", s)
					shown++
				}
			}
		}
		t.Logf("workers=%d: %d events, the same in one run and in %d", workers, len(want), len(parts))
	}
}

// replayKeeping replays file into p, failing on any replay error. Unless it is the last of
// the run's files, the episodes stay open and the state goes to a checkpoint at state,
// which the next file's pipeline restores.
func replayKeeping(t *testing.T, p *Pipeline, file, state string, last bool) {
	t.Helper()
	p.SetKeepState(!last)
	if res := p.Replay(context.Background(), ReplayOptions{Files: []string{file}}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	if !last {
		if _, err := p.Checkpoint(state); err != nil {
			t.Fatal(err)
		}
	}
}

// entrySpan returns the first and last packet time of an episode's entry.
func entrySpan(t *testing.T, e detect.Entry) (first, last int64) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	ts := func(keys ...string) int64 {
		for _, k := range keys {
			if s, ok := m[k].(string); ok {
				tm, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					t.Fatal(err)
				}
				return tm.UnixNano()
			}
		}
		t.Fatalf("entry %s has none of %v", b, keys)
		return 0
	}
	return ts("first_seen", "start"), ts("last_seen", "end")
}

// TestRestoreRefusesIncompatible: a checkpoint of another worker count, another state
// layout, or a damaged one is refused with its one-line message, and nothing restored.
func TestRestoreRefusesIncompatible(t *testing.T) {
	dir := t.TempDir()
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Config: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state")
	if _, err := p.Checkpoint(path); err != nil {
		t.Fatal(err)
	}
	p3, _ := New(Options{Config: cfg, Workers: 3})
	_, err = p3.RestoreState(path, RestoreOptions{})
	if checkpoint.KindOf(err) != checkpoint.Config {
		t.Errorf("3 workers restoring 2: %v", err)
	}
	t.Log(err)

	// Another layout: rewrite the header's fingerprint (and its checksum) as a binary with
	// another SourceState would have written it.
	c, err := checkpoint.Create(filepath.Join(dir, "other"), checkpoint.Header{Config: p.stateDesc()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	p2, _ := New(Options{Config: cfg, Workers: 2})
	_, err = p2.RestoreState(filepath.Join(dir, "other"), RestoreOptions{})
	if checkpoint.KindOf(err) != checkpoint.Layout {
		t.Errorf("other layout: %v", err)
	}
	t.Log(err)

	// A valid file whose worker section is cut short (checksums recomputed): the decoder
	// refuses it as corrupt instead of reading past it.
	good, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	good.Close()
	layout, _ := checkpoint.LayoutOf(stateTypes()...)
	c, _ = checkpoint.Create(filepath.Join(dir, "short"), checkpoint.Header{Layout: layout, Config: p.stateDesc()})
	_ = c.Section("worker/0", make([]byte, 100))
	if _, err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	p2, _ = New(Options{Config: cfg, Workers: 2})
	_, err = p2.RestoreState(filepath.Join(dir, "short"), RestoreOptions{})
	if checkpoint.KindOf(err) != checkpoint.Corrupt {
		t.Errorf("short section: %v", err)
	}
	t.Log(err)

	// A /8, counted per address by this binary and not by those before it: a checkpoint of
	// one described as they described it is refused for its config, not read as corrupt.
	// Spaces of up to 2^20 addresses keep their description (their checkpoints stay valid).
	if d := p.stateDesc(); strings.Contains(d, "dense_destinations") {
		t.Errorf("the default config's description names its dense destinations: %s", d)
	}
	wide := parseConfig(t, "dark_prefixes: [44.0.0.0/8]\n")
	p8, _ := New(Options{Config: wide, Workers: 2})
	desc := p8.stateDesc()
	old, ok := strings.CutSuffix(desc, " dense_destinations=16777216")
	if !ok {
		t.Fatalf("a /8's description %q does not end with its dense destinations", desc)
	}
	c, _ = checkpoint.Create(filepath.Join(dir, "old8"), checkpoint.Header{Layout: layout, Config: old})
	if _, err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err = p8.RestoreState(filepath.Join(dir, "old8"), RestoreOptions{})
	if checkpoint.KindOf(err) != checkpoint.Config {
		t.Errorf("a /8's checkpoint by an older binary: %v", err)
	}
	t.Log(err)
	// This binary's own checkpoint of a /8 (its per-address counts included) restores.
	if _, err := p8.Checkpoint(filepath.Join(dir, "new8")); err != nil {
		t.Fatal(err)
	}
	p8b, _ := New(Options{Config: wide, Workers: 2})
	if _, err := p8b.RestoreState(filepath.Join(dir, "new8"), RestoreOptions{}); err != nil {
		t.Errorf("a /8's checkpoint: %v", err)
	}
}

// TestRestoreUnderAnotherConfig: a checkpoint taken with the defaults in the middle of the
// day (its episodes open there) restores into a daemon
// whose configuration changed in every way a reload may change it (window length, a
// detector off, all off, thresholds, the log settings), as replay's --state-in and as run
// after a downtime or with its clock behind the state's (Resume), and the rest of the day replays on it: no error, no panic,
// every packet of the rest counted. A change of what the checkpoint's header fixes (the dark
// space, the tables' sizes) is refused with a Config error instead.
func TestRestoreUnderAnotherConfig(t *testing.T) {
	day := filepath.Join(t.TempDir(), "day.pcap")
	if _, err := daygen.WriteFile(day, daygen.Options{Seed: 5, Scale: 0.5}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(day)
	if err != nil {
		t.Fatal(err)
	}
	// The cut: the midpoint of an episode at which the most episodes are open (a first run
	// finds them).
	probe := &recorder{next: NewEpisodes()}
	p0, err := New(Options{Config: parseConfig(t, ""), Workers: 1, Sink: probe})
	if err != nil {
		t.Fatal(err)
	}
	p0.Replay(context.Background(), ReplayOptions{Files: []string{day}})
	var spans [][2]int64
	for _, ev := range probe.events {
		if ev.Phase == detect.End {
			first, last := entrySpan(t, ev.Entry)
			spans = append(spans, [2]int64{first, last})
		}
	}
	var cut int64
	open := 0
	for _, s := range spans {
		at, n := s[0]+(s[1]-s[0])/2, 0
		for _, o := range spans {
			if o[0] <= at && at < o[1] {
				n++
			}
		}
		if n > open {
			cut, open = at, n
		}
	}
	mid := time.Unix(0, cut)
	first, second := splitPcap(t, data, mid)
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "first.pcap"), filepath.Join(dir, "second.pcap")}
	for i, b := range [][]byte{first, second} {
		if err := os.WriteFile(files[i], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	base := parseConfig(t, "")
	p, err := New(Options{Config: base, Workers: 2, Sink: &recorder{next: NewEpisodes()}})
	if err != nil {
		t.Fatal(err)
	}
	replayKeeping(t, p, files[0], state, false)
	allOff, keys := "detect:\n", map[string]bool{}
	for _, d := range detect.Descriptors() {
		if !keys[d.ConfigKey] { // a section may hold several detectors
			keys[d.ConfigKey] = true
			allOff += "  " + d.ConfigKey + ": {enabled: false}\n"
		}
	}
	for _, tc := range []struct{ name, yaml string }{
		{"same", ""},
		{"window 1m", "window: 1m\n"},
		{"window 10m", "window: 10m\n"},
		{"hotspot off", "detect:\n  hotspot: {enabled: false}\n"},
		{"scanner and telnet off", "detect:\n  scanner: {enabled: false}\n  telnet: {enabled: false}\n"},
		{"every detector off", allOff},
		{"thresholds", "detect:\n  hotspot: {min_sources: 10}\n  scanner: {min_targets: 5}\n"},
		{"logs", "detect:\n  fingerprint: {log: false}\n  scanner: {log_min_packets: 50}\n"},
	} {
		for _, resume := range []time.Duration{0, 24 * time.Hour, -time.Hour} {
			cfg := parseConfig(t, tc.yaml)
			rec := &recorder{next: NewEpisodes()}
			q, err := New(Options{Config: cfg, Workers: 2, Sink: rec})
			if err != nil {
				t.Fatal(err)
			}
			// 0: as --state-in; else resumed as run does, after a day's downtime (every
			// episode ends at its last packet) or with the clock an hour before the
			// state's (a clock set back, or a capture's timestamps ahead of it).
			o := RestoreOptions{}
			if resume != 0 {
				o = RestoreOptions{Resume: true, Now: mid.Add(resume).UnixNano()}
			}
			info, err := q.RestoreState(state, o)
			if err != nil {
				t.Fatalf("%s (resume %v): %v", tc.name, resume, err)
			}
			if tc.name == "same" && resume == 0 {
				t.Logf("%d episodes restored, %d open at the cut", info.Episodes, open)
			}
			if tc.name == "same" && info.Episodes < int64(open)/2 {
				t.Fatalf("%d episodes restored, %d were open at the cut", info.Episodes, open)
			}
			if res := q.Replay(context.Background(), ReplayOptions{Files: files[1:]}); len(res.Errors) != 0 {
				t.Fatalf("%s (resume %v): %v", tc.name, resume, res.Errors)
			}
			// The counters are not state: they start again at zero, as after any restart.
			if got, want := q.Totals().Frames[packet.ResultIP], uint64(countPcap(t, second)); got != want {
				t.Errorf("%s (resume %v): %d IP packets counted, want %d", tc.name, resume, got, want)
			}
			q.Report(rec.next)
		}
	}
	for _, tc := range []struct{ name, yaml string }{
		{"dark space", "dark_prefixes: [203.0.113.0/24]\n"},
		{"table size", "limits: {max_sources: 1000}\n"},
	} {
		q, err := New(Options{Config: parseConfig(t, tc.yaml), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.RestoreState(state, RestoreOptions{}); checkpoint.KindOf(err) != checkpoint.Config {
			t.Errorf("%s changed: restore gives %v, want a Config error", tc.name, err)
		}
	}
}

// countPcap returns the number of packets of a little-endian pcap's bytes.
func countPcap(t *testing.T, data []byte) int {
	t.Helper()
	n := 0
	for off := 24; off+16 <= len(data); n++ {
		off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
	}
	return n
}
