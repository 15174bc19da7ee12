package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/packet"
)

// splitPcap splits a classic pcap (nanosecond or microsecond, little-endian, as daygen
// writes) into the records before mid and the rest.
func splitPcap(t testing.TB, data []byte, mid time.Time) (a, b []byte) {
	t.Helper()
	if len(data) < 24 {
		t.Fatal("short pcap")
	}
	scale := int64(1000)
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		scale = 1
	default:
		t.Fatalf("not a little-endian pcap: %x", data[:4])
	}
	var fa, fb bytes.Buffer
	fa.Write(data[:24])
	fb.Write(data[:24])
	for off := 24; off < len(data); {
		sec := int64(binary.LittleEndian.Uint32(data[off:]))
		frac := int64(binary.LittleEndian.Uint32(data[off+4:]))
		n := int(binary.LittleEndian.Uint32(data[off+8:]))
		rec := data[off : off+16+n]
		if time.Unix(sec, frac*scale).Before(mid) {
			fa.Write(rec)
		} else {
			fb.Write(rec)
		}
		off += 16 + n
	}
	return fa.Bytes(), fb.Bytes()
}

func replayJSONReport(t testing.TB, cfg *configs.Config, files ...string) *Report {
	t.Helper()
	c := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: 2, Sink: c})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Replay(context.Background(), ReplayOptions{Files: files})
	if len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	return throughJSON(t, p.Report(c))
}

// throughJSON returns r written as JSON and read back, as `telescope report` reads saved
// reports.
func throughJSON(t testing.TB, r *Report) *Report {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeReport(b)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestMergeHalves replays a generated day whole and in two halves (split at a minute
// boundary) and requires the merged halves to give the whole day's counters, series and
// unique counts (the merged sketches are the whole day's, register for register).
func TestMergeHalves(t *testing.T) {
	whole, halves := dayParts(t, 5, 4*time.Hour, 2*time.Hour+17*time.Minute)
	h1, h2 := halves[0], halves[1]
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	w := replayJSONReport(t, cfg, whole)
	r1, r2 := replayJSONReport(t, cfg, h1), replayJSONReport(t, cfg, h2)
	if r1.Frames == 0 || r2.Frames == 0 {
		t.Fatalf("a half is empty: %d, %d frames", r1.Frames, r2.Frames)
	}
	m, err := MergeReports([]*Report{r1, r2})
	if err != nil {
		t.Fatal(err)
	}
	if m.Frames != w.Frames || m.Packets != w.Packets || m.DecodeErrors != w.DecodeErrors {
		t.Errorf("counters: merged %d frames %+v, whole %d frames %+v", m.Frames, m.Packets, w.Frames, w.Packets)
	}
	// A report merged with itself, or with another of the same file read elsewhere, is
	// refused: its packets would count twice.
	moved := *r1
	moved.Inputs = []InputFile{r1.Inputs[0]}
	moved.Inputs[0].File = filepath.Join("elsewhere", filepath.Base(h1))
	for _, rs := range [][]*Report{{r1, r1}, {r1, r2, &moved}} {
		_, err := MergeReports(rs)
		var dup *DuplicateInputError
		if !errors.As(err, &dup) || dup.A != 0 || dup.B != len(rs)-1 || filepath.Base(dup.Input.File) != "h1.pcap" ||
			err.Error() != fmt.Sprintf("merge: reports 1 and %d both count input %s (%d records): merged, its packets would count twice", len(rs), dup.Input.File, r1.Inputs[0].Records) {
			t.Errorf("merging %d reports, one twice: %v", len(rs), err)
		}
	}
	// The inputs: the halves' files in order, their records adding up to the whole's.
	if len(m.Inputs) != 2 || m.Inputs[0].File != h1 || m.Inputs[1].File != h2 || len(w.Inputs) != 1 ||
		m.Inputs[0].Records+m.Inputs[1].Records != w.Inputs[0].Records || w.Inputs[0].Records != w.Frames {
		t.Errorf("inputs: merged %+v, whole %+v (%d frames)", m.Inputs, w.Inputs, w.Frames)
	}
	// The receiver distribution: every packet once; the window the cut falls in counts its
	// destinations once per half.
	if d, wd := m.Receivers, w.Receivers; d.Window != wd.Window || d.Packets != wd.Packets || d.Packets == 0 ||
		d.Destinations < wd.Destinations || d.Destinations != r1.Receivers.Destinations+r2.Receivers.Destinations {
		t.Errorf("receiver distribution: merged %s, %d packets to %d destinations; whole %s, %d to %d; halves %d + %d destinations",
			d.Window, d.Packets, d.Destinations, wd.Window, wd.Packets, wd.Destinations, r1.Receivers.Destinations, r2.Receivers.Destinations)
	} else {
		var sum uint64
		for _, b := range d.Buckets {
			sum += b.Destinations
		}
		if sum != d.Destinations {
			t.Errorf("receiver distribution: buckets sum to %d destinations, want %d", sum, d.Destinations)
		}
	}
	if *m.FirstPacket != *w.FirstPacket || *m.LastPacket != *w.LastPacket {
		t.Errorf("time span: merged %v-%v, whole %v-%v", m.FirstPacket, m.LastPacket, w.FirstPacket, w.LastPacket)
	}
	if len(m.TCPFlags) != len(w.TCPFlags) {
		t.Errorf("flags: merged %d combinations, whole %d", len(m.TCPFlags), len(w.TCPFlags))
	}
	for f, n := range w.TCPFlags {
		if m.TCPFlags[f] != n {
			t.Errorf("flags %s: merged %d, whole %d", f, m.TCPFlags[f], n)
		}
	}
	// Ports: every merged entry in both halves' lists is exact.
	ports := func(l []PortCount) map[uint16]uint64 {
		out := map[uint16]uint64{}
		for _, c := range l {
			out[c.Port] = c.Packets
		}
		return out
	}
	for _, c := range []struct {
		name       string
		m, w, a, b []PortCount
	}{{"tcp_syn", m.DstPorts.TCPSYN, w.DstPorts.TCPSYN, r1.DstPorts.TCPSYN, r2.DstPorts.TCPSYN},
		{"udp", m.DstPorts.UDP, w.DstPorts.UDP, r1.DstPorts.UDP, r2.DstPorts.UDP}} {
		pw, pa, pb := ports(c.w), ports(c.a), ports(c.b)
		checked := 0
		for _, e := range c.m {
			_, inA := pa[e.Port]
			_, inB := pb[e.Port]
			if n, ok := pw[e.Port]; ok && inA && inB {
				checked++
				if n != e.Packets {
					t.Errorf("%s port %d: merged %d, whole %d", c.name, e.Port, e.Packets, n)
				}
			}
		}
		if checked < 5 {
			t.Errorf("%s: only %d ports in both halves' lists", c.name, checked)
		}
	}
	// Top sources: every merged entry that is in both halves' lists is exact.
	in := func(l []AddrCount) map[string]uint64 {
		out := map[string]uint64{}
		for _, c := range l {
			out[c.Addr] = c.Packets
		}
		return out
	}
	s1, s2, sw := in(r1.Sources.Top), in(r2.Sources.Top), in(w.Sources.Top)
	checked := 0
	for _, c := range m.Sources.Top {
		_, ok1 := s1[c.Addr]
		_, ok2 := s2[c.Addr]
		if n, ok := sw[c.Addr]; ok && ok1 && ok2 {
			checked++
			if n != c.Packets {
				t.Errorf("top source %s: merged %d, whole %d", c.Addr, c.Packets, n)
			}
		}
	}
	if checked == 0 {
		t.Error("no top source is in both halves' lists; the check checked nothing")
	}
	// Uniques: the union of the halves' sketches is the whole day's sketch.
	if m.Sketches == nil || w.Sketches == nil {
		t.Fatal("no sketches")
	}
	if m.Sketches.SourcesHLL != w.Sketches.SourcesHLL || m.Sketches.DestinationsHLL != w.Sketches.DestinationsHLL {
		t.Error("merged sketches differ from the whole day's")
	}
	if m.Sources.Unique != w.Sources.Unique {
		t.Errorf("unique sources: merged %d, whole %d", m.Sources.Unique, w.Sources.Unique)
	}
	if d := float64(m.Destinations.Unique) - float64(w.Destinations.Unique); d*d > 0.02*0.02*float64(w.Destinations.Unique*w.Destinations.Unique) {
		t.Errorf("unique destinations: merged %d, whole %d (beyond 2 %%)", m.Destinations.Unique, w.Destinations.Unique)
	}
	// Series: exact point by point (split at a minute boundary, same step).
	ms, ws := m.Series, w.Series
	if ms == nil || ws == nil || ms.Start != ws.Start || ms.StepSeconds != ws.StepSeconds || ms.Len() != ws.Len() {
		t.Fatalf("series shape: merged %+v, whole %+v", shape(ms), shape(ws))
	}
	eq := func(name string, a, b []uint64) {
		for i := range b {
			if a[i] != b[i] {
				t.Errorf("series %s[%d]: merged %d, whole %d", name, i, a[i], b[i])
				return
			}
		}
	}
	for name, v := range ws.Packets {
		eq("packets."+name, ms.Packets[name], v)
	}
	eq("tcp_syn", ms.TCPSYN, ws.TCPSYN)
	eq("telnet_source_minutes", ms.TelnetSourceMinutes, ws.TelnetSourceMinutes)
	var tel uint64
	for _, v := range ws.TelnetSourceMinutes {
		tel += v
	}
	if tel == 0 {
		t.Error("no telnet sources in the series")
	}
	var total uint64
	for _, v := range ws.Packets {
		for _, n := range v {
			total += n
		}
	}
	wp := w.Packets
	if want := wp.IPv4.TCP + wp.IPv4.UDP + wp.IPv4.ICMP + wp.IPv4.Other + wp.IPv6.TCP + wp.IPv6.UDP + wp.IPv6.ICMPv6 + wp.IPv6.Other; total != want {
		t.Errorf("series packets sum to %d, the counters to %d", total, want)
	}
	if m.Merged == nil || m.Merged.Reports != 2 {
		t.Errorf("merged: %+v", m.Merged)
	}
}

func shape(s *Series) any {
	if s == nil {
		return nil
	}
	return struct {
		Start      string
		Step, Len  int64
		FirstValue uint64
	}{s.Start.String(), s.StepSeconds, int64(s.Len()), s.TCPSYN[0]}
}

// TestSeriesCoarsens feeds a worker series more minutes than it keeps and requires the
// step to double with no packet lost.
func TestSeriesCoarsens(t *testing.T) {
	var s workerSeries
	var tm uint32
	h := testSYN(t)
	n := 3*MaxSeriesPoints + 7
	for i := 0; i < n; i++ {
		h.TS = int64(i)*SeriesMinStep + 1
		s.packet(&h, &tm, true, []uint16{23})
	}
	if len(s.pts) > MaxSeriesPoints || s.step != 4*SeriesMinStep {
		t.Fatalf("%d points at step %d", len(s.pts), s.step/1e9)
	}
	var syn, tel uint64
	for _, p := range s.pts {
		syn += p.syn
		tel += p.telnet
	}
	if syn != uint64(n) || tel != uint64(n) {
		t.Fatalf("syn %d, telnet source-minutes %d, want %d", syn, tel, n)
	}
}

func testSYN(t *testing.T) packet.Header {
	t.Helper()
	return packet.Header{Result: packet.ResultIP, IPVersion: 4, Proto: packet.ProtoTCP, L4: true,
		TCPFlags: packet.FlagSYN, DstPort: 23}
}

// TestMergeReceiversWindows: receiver distributions of different windows are not summed
// (a (destination, window) pair means something else in each); the note says so.
func TestMergeReceiversWindows(t *testing.T) {
	part := func(window string, dsts uint64) *Report {
		return &Report{TCPFlags: map[string]uint64{}, Receivers: ReceiverDistribution{Window: window,
			Destinations: dsts, Packets: 3 * dsts, Buckets: []HistBucket{{"1", 0}, {"2", 0}, {"4", dsts}}}}
	}
	m, err := MergeReports([]*Report{part("5m", 2), part("5m", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Receivers; d.Window != "5m" || d.Destinations != 5 || d.Packets != 15 || len(d.Buckets) != 3 || d.Buckets[2] != (HistBucket{"4", 5}) ||
		!slices.Contains(m.Merged.Notes, noteRecv) {
		t.Errorf("same windows: %+v, notes %q", d, m.Merged.Notes)
	}
	m, err = MergeReports([]*Report{part("5m", 2), part("1m", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Receivers; d.Window != "" || d.Destinations != 0 || len(d.Buckets) != 0 || !slices.Contains(m.Merged.Notes, noteNoRecv) {
		t.Errorf("different windows: %+v, notes %q", d, m.Merged.Notes)
	}
}

// TestMergeFilters: parts replayed with the same capture.filter merge into a report with
// it and their rejected records summed; parts without one into none; parts with
// different ones (or one without) into none, with a note naming each part's.
func TestMergeFilters(t *testing.T) {
	f := func(expr string, n uint64) *Report {
		return &Report{Filter: &ReportFilter{Expression: expr, FilteredOut: n}}
	}
	for _, c := range []struct {
		name  string
		parts []*Report
		want  *ReportFilter
		note  string
	}{
		{"the same", []*Report{f("not port 22", 5), f("not port 22", 7)}, &ReportFilter{"not port 22", 12}, ""},
		{"none", []*Report{{}, {}}, nil, ""},
		{"different", []*Report{f("not port 22", 5), f("tcp", 1)}, nil,
			`the parts were replayed with different capture filters ("not port 22", "tcp"): their counts are of different traffic`},
		{"one without", []*Report{{}, f("tcp", 1)}, nil,
			`the parts were replayed with different capture filters (none, "tcp"): their counts are of different traffic`},
	} {
		got, note := mergeFilters(c.parts)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want || note != c.note {
			t.Errorf("%s: %+v, %q; want %+v, %q", c.name, got, note, c.want, c.note)
		}
	}
}

// TestMergerSpooledIdenticalToInMemory: a merge whose episodes go to a spool on disk (runs
// of a few entries, so that they are merged back from many) writes the same bytes as the
// merge that holds them in memory, and keeps none of the reports' episodes itself.
func TestMergerSpooledIdenticalToInMemory(t *testing.T) {
	rs := threeParts(t)
	mem, want := mergedInMemory(t, rs)
	spool := NewDetectionSpool(t.TempDir(), 7)
	defer spool.Close()
	m := NewMerger(spool)
	for _, r := range rs {
		if err := m.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range m.rs {
		if r.Detections != nil {
			t.Errorf("the merger keeps report %d's episodes", i+1)
		}
	}
	got := mergedSpooled(t, m, spool)
	n := 0
	for _, l := range mem.Detections {
		n += len(l)
	}
	if n < 100 || spool.Entries() != n {
		t.Fatalf("%d episodes merged, %d spooled: too few to merge runs of 7", n, spool.Entries())
	}
	sameBytes(t, "the spooled merge", got, want)
}

// threeParts returns the reports of a generated 3-hour day cut in three parts (at 1 h and
// 2 h 7 min).
func threeParts(t *testing.T) []*Report {
	_, parts := dayParts(t, 9, 3*time.Hour, time.Hour, 2*time.Hour+7*time.Minute)
	cfg := parseConfig(t, "")
	var rs []*Report
	for _, f := range parts {
		rs = append(rs, replayJSONReport(t, cfg, f))
	}
	return rs
}

// mergedInMemory merges rs in memory (MergeReports) and returns the report and its JSON.
func mergedInMemory(t *testing.T, rs []*Report) (*Report, []byte) {
	t.Helper()
	mem, err := MergeReports(rs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteReportJSON(&b, mem); err != nil {
		t.Fatal(err)
	}
	return mem, b.Bytes()
}

// mergedSpooled returns the JSON of m's report, its episodes from spool.
func mergedSpooled(t *testing.T, m *Merger, spool *DetectionSpool) []byte {
	t.Helper()
	merged, err := m.Report()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteReportSpooled(&b, merged, spool); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// dayParts writes a generated day of length d (scale 0.1, from seed) whole and cut at each
// of cuts (offsets from its start, ascending): the whole file and the parts' files, h1.pcap,
// h2.pcap and on.
func dayParts(t *testing.T, seed int64, d time.Duration, cuts ...time.Duration) (whole string, parts []string) {
	t.Helper()
	var buf bytes.Buffer
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	if _, err := daygen.Generate(&buf, daygen.Options{Seed: seed, Scale: 0.1, Start: start, Duration: d}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	whole = filepath.Join(dir, "whole.pcap")
	write := func(f string, b []byte) {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(whole, buf.Bytes())
	rest := buf.Bytes()
	for i, c := range append(cuts, d) {
		part := rest
		if i < len(cuts) {
			part, rest = splitPcap(t, rest, start.Add(c))
		}
		parts = append(parts, filepath.Join(dir, fmt.Sprintf("h%d.pcap", i+1)))
		write(parts[i], part)
	}
	return whole, parts
}

// TestMergedGroupsAndDescriptions: a merge finds the coordinated groups across its parts
// (two sources of one /24 scanning the same ports on two days: a group neither day's
// report has), labelled as its first member's episode was (not its alert state), and
// describes each merged top source by its scanner episode with the most packets among
// the parts'.
func TestMergedGroupsAndDescriptions(t *testing.T) {
	h := time.Hour
	day := func(name string, src string, at time.Duration, packets uint64, org string) *Report {
		e := scanEntry(src, 53601, 60800, at, at+h, packets)
		e.Who = detect.Who{Org: org, Silenced: true}
		first, last := detect.Time(at), detect.Time(at+h)
		return &Report{
			Inputs:     []InputFile{{File: name, Records: packets, FirstPacket: &first, LastPacket: &last}},
			Sources:    AddrSummary{Unique: 1, Top: []AddrCount{{Addr: src, Packets: packets, Technique: "syn", Who: detect.Who{Org: org}}}},
			Detections: Detections{"scanner": {e}},
		}
	}
	a, b := day("a.pcap", "198.51.100.1", 0, 300, "Example Scans"), day("b.pcap", "198.51.100.9", 24*h, 200, "")
	if len(groups(EntriesOf[*detect.ScannerEntry](a.Detections, "scanner"))) != 0 {
		t.Fatal("one day has a group already")
	}
	m, err := MergeReports([]*Report{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Groups) != 1 {
		t.Fatalf("merged groups %+v, want one", m.Groups)
	}
	g := m.Groups[0]
	if g.Prefix != "198.51.100.0/24" || g.Sources != 2 || g.Packets != 500 || !g.TakingTurns || g.Members[0].Src != "198.51.100.1" ||
		g.Who != (detect.Who{Org: "Example Scans"}) {
		t.Errorf("merged group %+v", g)
	}
	if len(m.Sources.Top) != 2 {
		t.Fatalf("merged top sources %+v", m.Sources.Top)
	}
	for _, s := range m.Sources.Top {
		if s.Profile == nil || s.Profile.PortMin != 53601 || s.Technique != "syn" {
			t.Errorf("merged top source %s: technique %q, profile %+v", s.Addr, s.Technique, s.Profile)
		}
	}
	if s := m.Sources.Top[0]; s.Addr != "198.51.100.1" || s.Org != "Example Scans" || s.Silenced {
		t.Errorf("the busiest merged top source %+v, want 198.51.100.1 labelled Example Scans", s)
	}
}

// TestMergerFromDecodingReaders: reports decoded by a ReportDecoder, each into a part of
// the spool of its own order (PartAt), merge into the report the in-memory merge writes,
// byte for byte, though they are decoded last first. A copy of the first report from
// another sensor (its inputs renamed, its scanner episodes one packet more: the same sort
// keys) makes the order of equal keys show: it must come after the first report's. The
// reports the merger is handed hold no episode.
func TestMergerFromDecodingReaders(t *testing.T) {
	rs := threeParts(t)
	other := throughJSON(t, rs[0])
	for i := range other.Inputs {
		other.Inputs[i].File += ".sensor-b"
	}
	scans := EntriesOf[*detect.ScannerEntry](other.Detections, "scanner")
	if len(scans) == 0 {
		t.Fatal("the first part has no scanner episode to copy")
	}
	for _, e := range scans {
		e.Packets++
	}
	rs = append(rs, other)
	_, want := mergedInMemory(t, rs)
	spool := NewDetectionSpool(t.TempDir(), 7)
	defer spool.Close()
	light := make([]*Report, len(rs))
	for i := len(rs) - 1; i >= 0; i-- { // the last report's runs are written first
		b, err := json.Marshal(rs[i])
		if err != nil {
			t.Fatal(err)
		}
		if light[i], err = (ReportDecoder{Sink: spool.PartAt(i), SkipGroups: true}).Decode(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		for key, l := range light[i].Detections {
			if len(l) != 0 {
				t.Errorf("report %d: the decoder kept %d episodes of %s", i+1, len(l), key)
			}
		}
		if len(light[i].Groups) != 0 {
			t.Errorf("report %d: the decoder kept %d groups", i+1, len(light[i].Groups))
		}
	}
	m := NewMerger(spool)
	for _, r := range light {
		if err := m.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	sameBytes(t, "the merge of decoding readers", mergedSpooled(t, m, spool), want)
}

// TestReportDecoder: the episodes go to the sink, the groups are kept or skipped (a
// list, or null; anything else is an error), and a closed stop channel ends the decoding
// at the next episode.
func TestReportDecoder(t *testing.T) {
	b := []byte(`{"frames": 1, "detections": {"scanner": [{"src": "192.0.2.1", "packets": 7}, {"src": "192.0.2.2"}]}, "groups": [{"prefix": "192.0.2.0/24", "members": [{"src": "192.0.2.1"}]}, {}]}`)
	c := NewEpisodes()
	r, err := ReportDecoder{Sink: c, SkipGroups: true}.Decode(bytes.NewReader(b))
	got := EntriesOf[*detect.ScannerEntry](c.Detections(), "scanner")
	if err != nil || r.Frames != 1 || len(got) != 2 || got[0].Packets != 7 || len(r.Groups) != 0 || len(r.Detections["scanner"]) != 0 {
		t.Fatalf("Decode: %v, %+v, %d scanner episodes handed over (want 2)", err, r, len(got))
	}
	if r, err := (ReportDecoder{Sink: NewEpisodes()}).Decode(bytes.NewReader(b)); err != nil || len(r.Groups) != 2 || r.Groups[0].Prefix != "192.0.2.0/24" {
		t.Errorf("groups kept: %v, %+v", err, r)
	}
	skip := ReportDecoder{Sink: c, SkipGroups: true}
	if _, err := skip.Decode(strings.NewReader(`{"frames": 1, "groups": null}`)); err != nil {
		t.Errorf("groups null: %v", err)
	}
	if _, err := skip.Decode(strings.NewReader(`{"frames": 1, "groups": 3}`)); err == nil || !strings.Contains(err.Error(), "groups: not a list") {
		t.Errorf("groups 3: %v, want groups: not a list", err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := (ReportDecoder{Sink: NewEpisodes(), Stop: stop}).Decode(bytes.NewReader(b)); !errors.Is(err, ErrDecodeStopped) {
		t.Errorf("stopped: %v, want ErrDecodeStopped", err)
	}
}
