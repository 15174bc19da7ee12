package pipeline

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// evalCapture is a minute of a dark /22 in 10-second windows: 24 dark addresses are each
// hit by 40 fresh sources a window for three windows, one starting every 2 seconds (so
// hotspot episodes start, go on and end at every window), amid one-probe noise to every
// address of the /22 that makes each worker hand its windows over in parts (a
// max_destinations of 64).
func evalCapture(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var ps []pcaptest.Packet
	src := 0
	for a := range 24 {
		start := time.Duration(a) * 2 * time.Second
		for i := range 120 {
			src++
			ps = append(ps, pcaptest.Packet{TS: hotT0.Add(start + time.Duration(i)*250*time.Millisecond), Src: spoofed(src),
				Dst: darkAddr(900 + a), SrcPort: 40000, DstPort: uint16(80 + a%3), Flags: 0x02, IPID: uint16(i)})
		}
	}
	for i := range 60_000 {
		ps = append(ps, pcaptest.Packet{TS: hotT0.Add(time.Duration(i) * time.Minute / 60_000), Src: spoofed(100_000 + rng.IntN(5000)),
			Dst: darkAddr(rng.IntN(1024)), SrcPort: 40001, DstPort: uint16(1 + rng.IntN(1000)), Flags: 0x02})
	}
	slices.SortStableFunc(ps, func(a, b pcaptest.Packet) int { return a.TS.Compare(b.TS) })
	path := filepath.Join(t.TempDir(), "eval.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHotspotEvaluatorMatchesInline: live, the hotspot windows are evaluated by a goroutine
// of their own (StartEvaluator) rather than by the worker whose hand-over completed them.
// Replayed both ways with 1, 2 and 3 workers, the hotspot events (every start and end, with
// their counts) and the receiver distribution are the same, and so they are when the
// capture is cut in two with a checkpoint taken while the evaluator runs (the windows it
// has queued are evaluated first; the hand-overs after the cut wait).
func TestHotspotEvaluatorMatchesInline(t *testing.T) {
	path := evalCapture(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, second := splitPcap(t, data, hotT0.Add(35*time.Second))
	halves := []string{filepath.Join(t.TempDir(), "a.pcap"), filepath.Join(t.TempDir(), "b.pcap")}
	for i, b := range [][]byte{first, second} {
		if err := os.WriteFile(halves[i], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := hotConfig(t, "window: 10s\nlimits: {max_destinations: 64}\ndetect:\n  hotspot: {min_sources: 30}\n")
	state := filepath.Join(t.TempDir(), "state")
	// run replays files, the first with the state of the run before and each but the last
	// leaving its state in a checkpoint; it returns the hotspot events and the last run's
	// distribution and hand-overs to the evaluator.
	run := func(workers int, async bool, files ...string) ([]string, ReceiverDistribution, uint64) {
		var evs []*detect.Event
		var dist ReceiverDistribution
		var queued uint64
		for i, f := range files {
			rec := &recorder{next: NewEpisodes()}
			p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				if _, err := p.RestoreState(state, RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			stop := func() {}
			if async {
				stop = p.hot.StartEvaluator()
			}
			replayKeeping(t, p, f, state, i == len(files)-1)
			stop()
			for _, ev := range rec.events {
				if ev.Detector == detect.Hotspot {
					evs = append(evs, ev)
				}
			}
			dist = p.Report(rec.next).Receivers
			queued += p.hot.EvaluatedWindows()
		}
		return eventKeys(t, evs), dist, queued
	}
	for _, workers := range []int{1, 2, 3} {
		inline, dist, q := run(workers, false, path)
		ends := 0
		for _, k := range inline {
			if strings.HasPrefix(k, "hotspot end") {
				ends++
			}
		}
		if ends < 24 || q != 0 {
			t.Fatalf("workers=%d: %d hotspot episodes inline (%d windows by an evaluator), want at least the 24 attacks'", workers, ends, q)
		}
		async, adist, q := run(workers, true, path)
		if !slices.Equal(async, inline) {
			t.Errorf("workers=%d: the evaluator's events differ:\n%s\ninline:\n%s", workers, strings.Join(async, "\n"), strings.Join(inline, "\n"))
		}
		if !equalDist(adist, dist) {
			t.Errorf("workers=%d: the evaluator's distribution %+v, inline %+v", workers, adist, dist)
		}
		if q < 5 {
			t.Errorf("workers=%d: the evaluator evaluated %d windows, want the minute's", workers, q)
		}
		split, _, q := run(workers, true, halves...)
		if !slices.Equal(split, inline) {
			t.Errorf("workers=%d: cut by a checkpoint, the evaluator's events differ:\n%s\ninline:\n%s", workers, strings.Join(split, "\n"), strings.Join(inline, "\n"))
		}
		t.Logf("workers=%d: %d hotspot events, %d episodes; the evaluator took %d windows of the halves", workers, len(inline), ends, q)
	}
}
