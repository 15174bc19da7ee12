package pipeline

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
)

// recorder keeps every event and passes it to the report collector.
type recorder struct {
	mu     sync.Mutex
	events []*detect.Event
	next   *Episodes
}

func (r *recorder) Detection(ev *detect.Event) {
	r.mu.Lock()
	c := *ev // ev is reused after the call
	r.events = append(r.events, &c)
	r.mu.Unlock()
	r.next.Detection(ev)
}

// TestTelescopeDay replays a generated "telescope day" pcap through the whole pipeline
// (file reader, decoder, dispatch, workers, detectors) and requires every detector to find
// exactly the planted actors with the planted values: precision and recall 1.0.
func TestTelescopeDay(t *testing.T) {
	scale := 0.5
	if testing.Short() {
		scale = 0.1
	}
	path := filepath.Join(t.TempDir(), "day.pcap")
	truth, err := daygen.WriteFile(path, daygen.Options{Seed: 11, Scale: scale})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	// The day reaches more dark destinations than the default hotspot table holds per
	// worker; the comparison needs every table's state kept.
	cfg.Limits.MaxDestinations = 1 << 18
	var first []byte // the detections with one worker
	for _, workers := range []int{1, 2, 3} {
		rec := &recorder{next: NewEpisodes()}
		p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
		if len(res.Errors) != 0 || res.Records != uint64(truth.Packets) {
			t.Fatalf("workers=%d: %d records of %d, errors %v", workers, res.Records, truth.Packets, res.Errors)
		}
		if _, ev := p.Tracked(); ev != 0 {
			t.Fatalf("workers=%d: %d evictions; the comparison needs every state kept", workers, ev)
		}
		t.Logf("workers=%d: %d packets in %v", workers, res.Records, time.Since(start).Round(time.Millisecond))
		diffs, unpaired := daygen.Check(truth, rec.events)
		for _, d := range diffs {
			if d.Want == 0 {
				t.Errorf("%s: nothing planted", d.Name)
			}
			if !d.OK() {
				t.Errorf("workers=%d: %s", workers, d)
			}
		}
		if unpaired != 0 {
			t.Errorf("workers=%d: %d episodes without exactly one start and one end", workers, unpaired)
		}
		// The report lists each episode once: as many entries as End events.
		r := p.Report(rec.next)
		ends := map[string]int{}
		for _, ev := range rec.events {
			if ev.Phase == detect.End {
				ends[ev.Detector]++
			}
		}
		got := map[string]int{}
		for _, d := range detect.Descriptors() {
			got[d.Name] = len(r.Detections[d.ReportKey])
		}
		for det, n := range got {
			if n != ends[det] {
				t.Errorf("workers=%d: report has %d %s entries, %d episodes ended", workers, n, det, ends[det])
			}
		}
		checkDayWho(t, workers, truth, r)
		// The same detections whatever the workers (TestSurgeStartsWithTheInput: one that
		// differed).
		dets := mustJSON(t, r.Detections)
		if first == nil {
			first = dets
		} else if string(dets) != string(first) {
			t.Errorf("workers=%d: detections differ from those with 1 worker:\n%s\n%s", workers, dets, first)
		}
	}
}

// checkDayWho: the planted groups come out as the report's groups (and nothing else), and
// the heavy hitters among the top sources carry their planted summaries.
func checkDayWho(t *testing.T, workers int, truth *daygen.Truth, r *Report) {
	t.Helper()
	if len(r.Groups) != len(truth.Groups) {
		t.Errorf("workers=%d: %d groups, %d planted: %+v", workers, len(r.Groups), len(truth.Groups), r.Groups)
	}
	for _, want := range truth.Groups {
		var g *Group
		for i := range r.Groups {
			if r.Groups[i].Prefix == want.Prefix.String() {
				g = &r.Groups[i]
			}
		}
		if g == nil {
			t.Errorf("workers=%d: group %s not found", workers, want.Prefix)
			continue
		}
		var members []string
		for _, m := range g.Members {
			members = append(members, m.Src)
		}
		var wantMembers []string
		for _, m := range want.Members {
			wantMembers = append(wantMembers, m.String())
		}
		if g.Packets != want.Packets || g.Summary != want.Summary || !g.TakingTurns || fmt.Sprint(members) != fmt.Sprint(wantMembers) {
			t.Errorf("workers=%d: group %+v, want %+v", workers, *g, want)
		}
	}
	checked := 0
	for _, top := range r.Sources.Top {
		eps := truth.Scanners[netip.MustParseAddr(top.Addr)]
		if len(eps) != 1 || eps[0].Summary == "" {
			continue
		}
		checked++
		if top.Summary != eps[0].Summary || top.Technique != eps[0].Technique {
			t.Errorf("workers=%d: top source %s: %q (%s), planted %q (%s)", workers, top.Addr, top.Summary, top.Technique, eps[0].Summary, eps[0].Technique)
		}
	}
	if checked < 5 {
		t.Errorf("workers=%d: only %d heavy hitters with a planted summary among the top sources", workers, checked)
	}
}
