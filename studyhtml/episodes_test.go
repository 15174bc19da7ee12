package studyhtml

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestRenderFromSpool: the page read from a spool of the report's episodes (as replay and
// telescope report now write it) is the page of the report's own detections, byte for
// byte, with the tables cut to a few rows so that the selections are what differs.
func TestRenderFromSpool(t *testing.T) {
	r := generatedDay(t)
	spool := pipeline.NewDetectionSpool(t.TempDir(), 20) // many runs to merge back
	defer spool.Close()
	n := 0
	for _, d := range detect.Descriptors() {
		for _, e := range r.Detections[d.ReportKey] {
			spool.Detection(&detect.Event{Detector: d.Name, Phase: detect.End, Entry: e})
			n++
		}
	}
	if n < 100 {
		t.Fatalf("the generated day has %d episodes", n)
	}
	for _, rows := range []int{5, 500} {
		var want, got bytes.Buffer
		if err := Render(&want, r, Options{MaxEpisodeRows: rows}); err != nil {
			t.Fatal(err)
		}
		light := *r
		light.Detections = nil // the page must not read them
		if err := Render(&got, &light, Options{MaxEpisodeRows: rows, Episodes: spool.Each}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("rows %d: the page from the spool differs (%d bytes, %d from the report)", rows, got.Len(), want.Len())
		}
	}
}

// TestSelectionsKeepTheLargest: a table keeps the largest episodes as a stable sort by size
// would, shown in time order, and a timeline row the longest bars, ties by report order,
// however many come (random sizes with many ties).
func TestSelectionsKeepTheLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for _, n := range []int{0, 1, 7, 299, 300, 301, 1000, 9000} {
		const max = 300
		var sel rowSel
		var bars barSel
		var all []tableEntry
		var spans []timeBar
		for i := range n {
			size, start := uint64(rng.IntN(20)), detect.Time(rng.IntN(50))
			e := tableEntry{&detect.ScannerEntry{Packets: size}, size, start, i + 1}
			sel.add(e.e, size, start, i+1, max)
			all = append(all, e)
			from := int64(rng.IntN(1000))
			to := from + int64(rng.IntN(30))
			bars.add(from, to, i+1)
			spans = append(spans, timeBar{from, to, i + 1})
		}
		want := all
		if n > max {
			want = slices.Clone(all)
			slices.SortStableFunc(want, func(x, y tableEntry) int { return cmp.Compare(y.size, x.size) })
			want = want[:max]
			slices.SortStableFunc(want, func(x, y tableEntry) int { return cmp.Compare(x.start, y.start) })
		}
		got := sel.entries(max)
		if sel.total != n || len(got) != len(want) {
			t.Fatalf("n=%d: %d of %d kept, want %d", n, len(got), sel.total, len(want))
		}
		for i := range want {
			if got[i].seq != want[i].seq {
				t.Fatalf("n=%d: row %d is episode %d, want %d", n, i, got[i].seq, want[i].seq)
			}
		}
		wantBars := spans
		if n > maxTimelineBars {
			wantBars = slices.Clone(spans)
			slices.SortStableFunc(wantBars, func(x, y timeBar) int { return cmp.Compare(y.to-y.from, x.to-x.from) })
			wantBars = wantBars[:maxTimelineBars]
		}
		gotBars := bars.episodes()
		if bars.total != n || len(gotBars) != len(wantBars) {
			t.Fatalf("n=%d: %d bars of %d, want %d", n, len(gotBars), bars.total, len(wantBars))
		}
		for i := range wantBars {
			if gotBars[i] != [2]int64{wantBars[i].from, wantBars[i].to} {
				t.Fatalf("n=%d: bar %d is %v, want %v", n, i, gotBars[i], wantBars[i])
			}
		}
	}
}

// TestProfilesOfTopSources: each top source's profile counts its episodes by label,
// counted here from the report's lists, for the detectors that name it by string and by
// address alike; the generated day has top sources of both kinds.
func TestProfilesOfTopSources(t *testing.T) {
	r := generatedDay(t)
	top := map[string]bool{}
	for _, s := range r.Sources.Top {
		top[s.Addr] = true
	}
	want := map[string]map[string]int{}
	add := func(a, label string) {
		if top[a] {
			if want[a] == nil {
				want[a] = map[string]int{}
			}
			want[a][label]++
		}
	}
	d := typed(r.Detections)
	for _, e := range d.Scanner {
		add(e.Src, "scanner "+e.Class)
	}
	for _, e := range d.TelnetSweep {
		add(e.Src, map[bool]string{false: "telnet sweep", true: "telnet sweep (mirai)"}[e.Mirai])
	}
	for _, e := range d.Tools {
		add(e.Src.String(), "tool "+e.Tool)
	}
	for _, e := range d.UDPThenSYN {
		add(e.Src.String(), "udp→syn "+e.Payload)
	}
	for _, e := range d.Backscatter {
		add(e.Victim, "backscatter "+e.Kind)
	}
	pe, err := gatherEpisodes(r, Options{MaxEpisodeRows: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pe.prof, want) {
		t.Errorf("profiles %v, want %v", pe.prof, want)
	}
	tools := 0
	for _, labels := range want {
		for l := range labels {
			if len(l) > 5 && l[:5] == "tool " {
				tools++
			}
		}
	}
	if tools == 0 || len(want) < 2 {
		t.Errorf("the day's top sources have %d profiles, %d with a tool: the test proves little", len(want), tools)
	}
}
