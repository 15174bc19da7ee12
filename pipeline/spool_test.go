package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/floodgen"
	"github.com/telescope-dev/telescope/packet"
)

// TestSpoolReportIdenticalToInMemory: the report written with its detections streamed
// from the disk spool is byte for byte the report the in-memory collector gives, for a
// generated telescope day (every detector) plus a flood of one-packet Mirai episodes;
// runs of 100 entries force several merge passes, and the spool never holds more than
// one run in memory. Both ways in: every worker through the shared runs, and each through
// its own part (the way a replay's report spool is fed).
func TestSpoolReportIdenticalToInMemory(t *testing.T) {
	dir := t.TempDir()
	day := filepath.Join(dir, "day.pcap")
	if _, err := daygen.WriteFile(day, daygen.Options{Seed: 7, Scale: 0.05, Duration: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	flood := filepath.Join(dir, "mirai.pcap")
	f, err := os.Create(flood)
	if err != nil {
		t.Fatal(err)
	}
	// After the day, so packet time only moves forward.
	if err := floodgen.WriteMirai(f, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 8000, time.Hour, 2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	// shared: every worker adds to the shared runs (the sink wraps the spool), whose size
	// is watched; parts: the spool is the workers' sink, so each adds through its own part.
	for _, mode := range []string{"shared", "parts"} {
		t.Run(mode, func(t *testing.T) { checkSpoolReport(t, cfg, dir, mode == "parts", day, flood) })
	}
}

// sameBytes fails t where got first differs from want, showing both around it.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s differs at byte %d of %d/%d:\ngot  …%.300s\nwant …%.300s", what, i, len(got), len(want), got[max(0, i-100):], want[max(0, i-100):])
}

func checkSpoolReport(t *testing.T, cfg *configs.Config, dir string, parts bool, files ...string) {
	col := NewEpisodes()
	spool := NewDetectionSpool(dir, 100)
	for _, l := range spool.lists {
		l.fanIn = 8 // merge passes with this test's hundreds of runs
	}
	defer spool.Close()
	watch := &maxBuffered{s: spool}
	sink := Tee{col, watch}
	if parts {
		sink = Tee{col, spool}
	}
	p, err := New(Options{Config: cfg, Workers: 3, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	p.Replay(context.Background(), ReplayOptions{Files: files})
	if n := len(spool.lists[5].parts); parts && n != 3 {
		t.Fatalf("%d parts of the tools' list for 3 workers", n)
	}

	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p.Report(col)); err != nil {
		t.Fatal(err)
	}
	runs := spool.lists[5].Runs()
	var got bytes.Buffer
	if err := p.WriteReport(&got, spool); err != nil {
		t.Fatal(err)
	}
	r := p.Report(col)
	for _, d := range detect.Descriptors() {
		if len(r.Detections[d.ReportKey]) == 0 && d.Name != detect.Hotspot {
			t.Errorf("no %s detections: the comparison would prove little", d.ReportKey)
		}
	}
	if len(r.Groups) == 0 { // written one at a time (writeGroups)
		t.Errorf("%d coordinated groups: the comparison would prove little", len(r.Groups))
	}
	sameBytes(t, "the spooled report", got.Bytes(), want.Bytes())
	// The in-memory report written entry by entry (telescope report's merge): the same bytes.
	var direct bytes.Buffer
	if err := WriteReportJSON(&direct, r); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "WriteReportJSON", direct.Bytes(), want.Bytes())
	if runs <= 8*8 {
		t.Errorf("tools: %d runs, want more than 64 to exercise two merge passes of 8 runs", runs)
	}
	if watch.max > 100 {
		t.Errorf("the spool held %d entries in memory, its run length is 100", watch.max)
	}
	for _, l := range spool.lists {
		for i, pt := range l.parts {
			if n := len(pt.buf.recs); n != 0 {
				t.Errorf("part %d holds %d entries after the report was written", i, n)
			}
		}
	}
}

// TestSpoolPartsConcurrent: three goroutines add 1 000 entries each through parts of one
// spool (runs of 50: each part writes its runs while the others add), a fourth through
// the spool itself; the array written holds every entry once, in key order, and entries
// of one part under one key in the order they were added.
func TestSpoolPartsConcurrent(t *testing.T) {
	type rec struct {
		K    string
		Part int
		I    int
	}
	s := NewSpool(t.TempDir(), 50)
	s.fanIn = 16 // a merge pass of five groups, at once
	defer s.Close()
	parts := []interface{ Add(string, any) }{s.Part(), s.Part(), s.Part(), s}
	var wg sync.WaitGroup
	for p, pt := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(p), 9))
			for i := range 1000 {
				k := fmt.Sprintf("k%02d", r.IntN(40)) // many entries share a key
				pt.Add(k, rec{k, p, i})
			}
		}()
	}
	wg.Wait()
	if n := s.Len(); n != 4000 {
		t.Fatalf("Len %d, want 4000", n)
	}
	if runs := s.Runs(); runs != 80 {
		t.Errorf("%d runs written for 4 000 entries in runs of 50, want 80", runs)
	}
	got := spooledAs[rec](t, s, 4000)
	seen := map[[2]int]bool{}
	last := map[[2]any]int{} // part, key -> last I
	for i, r := range got {
		if i > 0 && r.K < got[i-1].K {
			t.Fatalf("entry %d: key %s after %s", i, r.K, got[i-1].K)
		}
		if seen[[2]int{r.Part, r.I}] {
			t.Fatalf("entry %d of part %d written twice", r.I, r.Part)
		}
		seen[[2]int{r.Part, r.I}] = true
		k := [2]any{r.Part, r.K}
		if prev, ok := last[k]; ok && r.I < prev {
			t.Fatalf("part %d, key %s: entry %d after %d", r.Part, r.K, r.I, prev)
		}
		last[k] = r.I
	}
}

// TestSpoolWriteFails: a spool whose file cannot be created (its directory is missing)
// fails WriteJSON with that error, and neither it nor a part holds more than one run in
// memory meanwhile, however many entries come.
func TestSpoolWriteFails(t *testing.T) {
	s := NewSpool(filepath.Join(t.TempDir(), "missing"), 10)
	defer s.Close()
	p := s.Part()
	most := 0
	for i := range 1000 {
		s.Add(fmt.Sprint(i), i)
		p.Add(fmt.Sprint(i), i)
		most = max(most, s.Buffered(), len(p.buf.recs))
	}
	if most > 10 {
		t.Errorf("%d entries held in memory with runs of 10 that cannot be written", most)
	}
	err := s.WriteJSON(io.Discard, "", "  ")
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("WriteJSON: %v, want the spool file's error", err)
	}
}

// TestSpoolOnFail: the first entry or run that cannot be spooled calls OnFail once, at
// once (not at WriteJSON), with that error, from a part or the shared run alike; a
// detection spool names the list as the report does, and calls it once over all lists.
func TestSpoolOnFail(t *testing.T) {
	for _, viaPart := range []bool{false, true} {
		s := NewSpool(filepath.Join(t.TempDir(), "missing"), 10)
		var errs []error
		var mu sync.Mutex
		s.OnFail(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
		var add func(string, any) = s.Add
		if viaPart {
			add = s.Part().Add
		}
		for i := range 9 {
			add(fmt.Sprint(i), i)
		}
		if len(errs) != 0 {
			t.Fatalf("part %v: OnFail before any run was written: %v", viaPart, errs)
		}
		for i := range 100 { // ten runs, each failing
			add(fmt.Sprint(i), i)
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "missing") {
			t.Errorf("part %v: OnFail calls %v, want one with the spool file's error", viaPart, errs)
		}
		s.Close()
	}

	d := NewDetectionSpool(filepath.Join(t.TempDir(), "missing"), 1)
	defer d.Close()
	var errs []error
	d.OnFail(func(err error) { errs = append(errs, err) })
	for i := range 3 {
		d.Detection(&detect.Event{Detector: detect.TelnetSweep, Phase: detect.End, Class: "other", Entry: &detect.TelnetSweepEntry{Src: fmt.Sprintf("192.0.2.%d", i)}})
		d.Detection(&detect.Event{Detector: detect.Scanner, Phase: detect.End, Class: "mixed", Entry: &detect.ScannerEntry{Src: fmt.Sprintf("192.0.2.%d", i)}})
	}
	key := detect.Descriptors()[detect.DetectorIndex(detect.TelnetSweep)].ReportKey
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "detections."+key+": ") {
		t.Errorf("detection spool: OnFail calls %v, want one naming detections.%s", errs, key)
	}
}

// TestSpoolRunBytes: runs end at spoolRunBytes too, however many entries a run may hold:
// a part adding 3 000 entries of about 1 KiB never holds much more than 1 MiB, writes a
// run per MiB, and the array written holds every entry once, in key order.
func TestSpoolRunBytes(t *testing.T) {
	s := NewSpool(t.TempDir(), 1<<20)
	defer s.Close()
	p := s.Part()
	pad := strings.Repeat("x", 1000)
	most := 0
	for i := range 3000 {
		p.Add(fmt.Sprintf("%05d", (i*7919)%3000), pad)
		most = max(most, len(p.buf.mem))
	}
	if most > spoolRunBytes+2048 {
		t.Errorf("a part held %d bytes, want at most about %d", most, spoolRunBytes)
	}
	if runs := s.Runs(); runs < 2 || runs > 3 {
		t.Errorf("%d runs for 3 MiB of entries, want 2 written and the last in memory", runs)
	}
	var out bytes.Buffer
	if err := s.WriteJSON(&out, "", "  "); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 3000 {
		t.Fatalf("%d entries read back (%v), want 3000", len(got), err)
	}
}

// failAfter is a writer that fails once it has taken n bytes.
type failAfter struct{ n int }

var errOutput = errors.New("output failed")

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		return f.n, errOutput
	}
	f.n -= len(b)
	return len(b), nil
}

// TestSpoolOutputFails: a report output that fails in the middle of a spool's array (the
// merge goes on in a goroutine of its own, several blocks ahead) fails WriteJSON with the
// output's error, and WriteJSON returns.
func TestSpoolOutputFails(t *testing.T) {
	s := NewSpool(t.TempDir(), 100)
	defer s.Close()
	for i := range 20000 {
		s.Add(fmt.Sprintf("%06d", (i*7919)%20000), strings.Repeat("y", 100))
	}
	var all bytes.Buffer
	if err := s.WriteJSON(&all, "", "  "); err != nil {
		t.Fatal(err)
	}
	if all.Len() < 4*mergedBlock {
		t.Fatalf("%d bytes written, want several blocks of %d", all.Len(), mergedBlock)
	}
	for _, n := range []int{0, 10, mergedBlock + 5, all.Len() - 10} {
		if err := s.WriteJSON(&failAfter{n}, "", "  "); !errors.Is(err, errOutput) {
			t.Errorf("output failing after %d bytes: WriteJSON %v, want %v", n, err, errOutput)
		}
	}
}

// maxBuffered records the most entries any list of the spool held in memory.
type maxBuffered struct {
	mu  sync.Mutex
	s   *DetectionSpool
	max int
}

func (m *maxBuffered) Detection(ev *detect.Event) {
	m.s.Detection(ev)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.s.lists {
		if b := l.Buffered(); b > m.max {
			m.max = b
		}
	}
}

// TestAppendIndentMatchesJSONIndent: the spool's indenter gives json.Indent's bytes for
// every value json.Marshal writes: nested objects and arrays, empty ones, strings with
// quotes, backslashes, escapes and brackets, numbers, booleans and null, at any prefix.
func TestAppendIndentMatchesJSONIndent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "a", `q"uote`, `back\slash`, "{[,:]}", "tab\tnl\n", "<&>", "é✓", `\"`, "x\\"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := rng.IntN(8); {
		case depth < 4 && k < 2:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[strs[rng.IntN(len(strs))]] = gen(depth + 1)
			}
			return m
		case depth < 4 && k < 4:
			a := make([]any, rng.IntN(4))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		case k == 4:
			return rng.NormFloat64() * 1e6
		case k == 5:
			return rng.IntN(3) == 0
		case k == 6:
			return nil
		}
		return strs[rng.IntN(len(strs))]
	}
	for i := range 20000 {
		v := any(detect.ToolEntry{Src: detect.IP(packet.AddrFromNetip(netip.MustParseAddr("192.0.2.1"))), Tool: "mirai", Packets: uint64(i)})
		if i > 0 {
			v = gen(0)
		}
		src, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		prefix, indent := strings.Repeat(" ", i%3), []string{"  ", "\t", ""}[i%3]
		var want bytes.Buffer
		if err := json.Indent(&want, src, prefix, indent); err != nil {
			t.Fatal(err)
		}
		if got := appendIndent([]byte("x"), src, prefix, indent); string(got[1:]) != want.String() || got[0] != 'x' {
			t.Fatalf("%s indented (prefix %q, indent %q):\n%s\njson.Indent:\n%s", src, prefix, indent, got, want.String())
		}
	}
}

// BenchmarkIndentEntry: indenting one report entry as the spool writes it, with the
// spool's indenter and with json.Indent.
func BenchmarkIndentEntry(b *testing.B) {
	src, err := json.Marshal(&detect.UDPThenSYNEntry{Src: detect.IP(packet.AddrFromNetip(netip.MustParseAddr("2001:db8::1234:5678"))),
		Dst: detect.IP(packet.AddrFromNetip(netip.MustParseAddr("203.0.113.77"))), Port: 51413,
		UDPPackets: 3, SYNPackets: 1, Payload: "utp", FirstSeen: 1714521600123456789, LastSeen: 1714521660123456789})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("appendIndent", func(b *testing.B) {
		var dst []byte
		for b.Loop() {
			dst = appendIndent(dst[:0], src, "    ", "  ")
		}
	})
	b.Run("json.Indent", func(b *testing.B) {
		var dst bytes.Buffer
		for b.Loop() {
			dst.Reset()
			if err := json.Indent(&dst, src, "    ", "  "); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// spooledAs returns the n entries s writes (WriteJSON), read back as T.
func spooledAs[T any](t *testing.T, s *Spool, n int) []T {
	t.Helper()
	var out bytes.Buffer
	if err := s.WriteJSON(&out, "", "  "); err != nil {
		t.Fatal(err)
	}
	var got []T
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %.200s", err, out.Bytes())
	}
	if len(got) != n {
		t.Fatalf("%d entries written, want %d", len(got), n)
	}
	return got
}

// TestSpoolPartsInOrder: among entries of equal keys, a part's come after those of the
// parts of a lower order (PartAt) and in the order added, however their runs were written
// (the higher orders' first here) and merged (passes of four runs at a time).
func TestSpoolPartsInOrder(t *testing.T) {
	type rec struct {
		K      string
		Ord, I int
	}
	s := NewSpool(t.TempDir(), 50)
	s.fanIn = 4
	defer s.Close()
	for _, ord := range []int{2, 0, 1} {
		p := s.PartAt(ord)
		r := rand.New(rand.NewPCG(uint64(ord), 3))
		for i := range 500 {
			k := fmt.Sprintf("k%d", r.IntN(10))
			p.Add(k, rec{k, ord, i})
		}
	}
	got := spooledAs[rec](t, s, 1500)
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.K > b.K || a.K == b.K && (a.Ord > b.Ord || a.Ord == b.Ord && a.I > b.I) {
			t.Fatalf("entry %d: %+v after %+v", i, b, a)
		}
	}
}

// TestSpoolClosedRefusesRuns: a run spilled by a part after Close (a merge's reader still
// decoding when the merge gave up) fails, and makes no new file.
func TestSpoolClosedRefusesRuns(t *testing.T) {
	dir := t.TempDir()
	s := NewSpool(dir, 2)
	p := s.PartAt(1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p.Add("a", 1)
	p.Add("b", 2) // a whole run
	if !errors.Is(p.err, errSpoolClosed) {
		t.Errorf("a run after Close: %v, want errSpoolClosed", p.err)
	}
	if s.f != nil {
		t.Error("the closed spool made a file for the run")
	}
}

// TestWriteReportGroupsAsEncoder: a report's groups, written a group at a time, are the
// bytes json.Encoder with SetIndent("", "  ") writes (escapes included), with no groups
// (null), an empty list and several.
func TestWriteReportGroupsAsEncoder(t *testing.T) {
	ts := detect.Time(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	group := func(i int) Group {
		return Group{Prefix: fmt.Sprintf("192.0.2.%d/32", i), Sources: 2, Packets: uint64(10 * i), FirstSeen: ts, LastSeen: ts,
			Technique: "syn", Summary: "ports <23> & 2323", Profile: &detect.Profile{},
			Members: []GroupMember{{Src: "192.0.2.1", Packets: 5, Episodes: 1, FirstSeen: ts, LastSeen: ts}, {Src: "192.0.2.2", Packets: 5, Episodes: 1}}}
	}
	for _, groups := range [][]Group{nil, {}, {group(1)}, {group(1), group(2), group(3)}} {
		r := &Report{TCPFlags: map[string]uint64{"S": 3}, Detections: NewEpisodes().Detections(), Groups: groups}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := WriteReportJSON(&got, r); err != nil {
			t.Fatal(err)
		}
		sameBytes(t, fmt.Sprintf("%d groups", len(groups)), got.Bytes(), want.Bytes())
	}
}
