package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"

	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// evalCapture is a minute of a dark /22 in 10-second windows: 24 dark addresses are each
// hit by 40 fresh sources a window for three windows, one starting every 2 seconds (so
// hotspot episodes start, go on and end at every window), amid one-probe noise to every
// address of the /22 that makes each worker hand its windows over in parts (a
// max_destinations of 64).
func evalCapture(t testing.TB) string {
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

// TestHotspotEvaluatorUnderReloadsAndCheckpoints runs the evaluator (as run does) while
// another goroutine reloads the configuration (the hotspot on and off, its min_sources, the
// window length, the dark space: each change ends or restarts the windows queued to the
// evaluator), scrapes (Snapshot) and takes checkpoints, as fast as it can, for the whole
// replay. The evaluator's queue is
// waited for by reloads and checkpoints and waits for hand-overs in turn; a cycle in those
// waits would hang here (a hang guard, not a timing: it fails only after minutes). Every
// packet is counted, every checkpoint restores into a fresh pipeline, and the shared
// hotspot state of the last one restores the open episodes it holds.
func TestHotspotEvaluatorUnderReloadsAndCheckpoints(t *testing.T) {
	const minutes = 10
	files := evalMinutes(t, minutes)
	const packets = minutes * (24*120 + 60_000)
	cfgs := []*configs.Config{
		hotConfig(t, "window: 10s\nlimits: {max_destinations: 64}\ndetect:\n  hotspot: {min_sources: 30}\n"),
		hotConfig(t, "window: 10s\nlimits: {max_destinations: 64}\ndetect:\n  hotspot: {min_sources: 50}\n"),
		hotConfig(t, "window: 20s\nlimits: {max_destinations: 64}\ndetect:\n  hotspot: {min_sources: 30}\n"),
		hotConfig(t, "window: 10s\nlimits: {max_destinations: 64}\ndetect:\n  hotspot: {enabled: false}\n"),
		// Another dark space: its dense index numbers the addresses differently (the
		// workers hand their open parts over first).
		parseConfig(t, "dark_prefixes: [203.0.112.0/23, 203.0.114.0/23, 198.51.100.0/24]\nwindow: 10s\nlimits: {max_destinations: 64}\n"),
	}
	state := filepath.Join(t.TempDir(), "state")
	// Rounds until enough reloads and checkpoints have overlapped a replay (how many fit in
	// one depends on the machine's speed, not what is checked).
	var reloads, checkpoints, restores int
	for round := 0; reloads < 24 || checkpoints < 12; round++ {
		if round == 40 {
			t.Fatalf("%d reloads and %d checkpoints during 40 replays: too few to check anything", reloads, checkpoints)
		}
		workers := 1 + round%3
		p, err := New(Options{Config: cfgs[0], Workers: workers, Sink: &recorder{next: NewEpisodes()}})
		if err != nil {
			t.Fatal(err)
		}
		current := cfgs[0]
		res := replayWhile(t, p, files, func(i int) {
			switch i % 3 {
			case 0:
				current = cfgs[(i/3)%len(cfgs)]
				if err := p.Reload(current); err != nil {
					t.Fatal(err)
				}
				reloads++
				return
			case 1: // a scrape
				if s := p.Snapshot(); s.Totals.Frames[packet.ResultIP] > packets {
					t.Fatalf("round %d: a scrape counts %d IP packets of %d", round, s.Totals.Frames[packet.ResultIP], packets)
				}
				return
			}
			if _, err := p.Checkpoint(state); err != nil {
				t.Fatalf("round %d: checkpoint %d: %v", round, checkpoints, err)
			}
			checkpoints++
			if checkpoints%5 != 1 {
				return
			}
			q, err := New(Options{Config: current, Workers: workers}) // a checkpoint holds its dark space
			if err != nil {
				t.Fatal(err)
			}
			if _, err := q.RestoreState(state, RestoreOptions{}); err != nil {
				t.Fatalf("round %d: checkpoint %d, taken during the replay, does not restore: %v", round, checkpoints, err)
			}
			restores++
		})
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		if got := p.Totals().Frames[packet.ResultIP]; res.Records != packets || got != packets {
			t.Fatalf("round %d: %d records read, %d IP packets counted, want %d", round, res.Records, got, packets)
		}
		t.Logf("round %d, %d workers: %d reloads, %d checkpoints (%d restored) so far; the evaluator took %d windows", round, workers, reloads, checkpoints, restores, p.hot.EvaluatedWindows())
	}
}

// evalMinutes writes n minutes of packet time: evalCapture's minute, then copies each a
// minute later.
func evalMinutes(t *testing.T, n int) []string {
	t.Helper()
	one, err := os.ReadFile(evalCapture(t))
	if err != nil {
		t.Fatal(err)
	}
	files := make([]string, n)
	for m := range n {
		files[m] = filepath.Join(t.TempDir(), fmt.Sprintf("m%d.pcap", m))
		if err := os.WriteFile(files[m], shiftPcap(t, one, uint32(60*m)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// shiftPcap returns a little-endian pcap's bytes with every packet sec seconds later.
func shiftPcap(t *testing.T, data []byte, sec uint32) []byte {
	t.Helper()
	out := bytes.Clone(data)
	if len(out) < 24 || binary.LittleEndian.Uint32(out) != 0xa1b2c3d4 && binary.LittleEndian.Uint32(out) != 0xa1b23c4d {
		t.Fatal("not a little-endian pcap")
	}
	for off := 24; off+16 <= len(out); {
		binary.LittleEndian.PutUint32(out[off:], binary.LittleEndian.Uint32(out[off:])+sec)
		off += 16 + int(binary.LittleEndian.Uint32(out[off+8:]))
	}
	return out
}

func parseConfig(t *testing.T, y string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckpointsDuringReplayChangeNothing: checkpoints and scrapes taken while the workers
// and the evaluator run are invisible in the results. The small generated day with its
// SYN flood (an episode of every detector) and then the minute of evalCapture (hotspot
// windows in parts), replayed with 2 workers and the evaluator on, while another goroutine
// checkpoints and scrapes as fast as it can, gives the same events (every start and end of
// every detector, with their final values), receiver distribution and packet counts as the
// same replay left alone.
func TestCheckpointsDuringReplayChangeNothing(t *testing.T) {
	files := []string{dayWithFlood(t), evalCapture(t)}
	cfg := parseConfig(t, "limits: {max_destinations: 64}\n")
	state := filepath.Join(t.TempDir(), "state")
	run := func(busy bool) ([]string, ReceiverDistribution, uint64, int) {
		rec := &recorder{next: NewEpisodes()}
		p, err := New(Options{Config: cfg, Workers: 2, Sink: rec})
		if err != nil {
			t.Fatal(err)
		}
		checkpoints := 0
		var op func(int)
		if busy {
			op = func(int) {
				if _, err := p.Checkpoint(state); err != nil {
					t.Fatal(err)
				}
				checkpoints++
				p.Snapshot()
			}
		}
		res := replayWhile(t, p, files, op)
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		return eventKeys(t, rec.events), p.Report(rec.next).Receivers, p.Totals().Frames[packet.ResultIP], checkpoints
	}
	quiet, qdist, qpackets, _ := run(false)
	detectors := map[string]bool{}
	for _, k := range quiet {
		detectors[strings.Fields(k)[0]] = true
	}
	if len(detectors) != len(detect.Descriptors()) {
		t.Fatalf("events of %d detectors (%v), want all %d: the test checks less than it says", len(detectors), detectors, len(detect.Descriptors()))
	}
	// Replays until 20 checkpoints have overlapped one (how many fit in one replay depends
	// on the machine's speed, not what is checked).
	total := 0
	for round := 0; total < 20; round++ {
		if round == 40 {
			t.Fatalf("%d checkpoints during 40 replays: too few to check anything", total)
		}
		busy, bdist, bpackets, checkpoints := run(true)
		total += checkpoints
		if !slices.Equal(busy, quiet) {
			t.Errorf("round %d: with %d checkpoints during the replay, %d events differ from the quiet replay's %d:\n%s", round, checkpoints, len(diffKeys(busy, quiet)), len(quiet), strings.Join(diffKeys(busy, quiet), "\n"))
		}
		if !equalDist(bdist, qdist) || bpackets != qpackets {
			t.Errorf("round %d: with checkpoints %d packets, distribution %+v; quiet %d, %+v", round, bpackets, bdist, qpackets, qdist)
		}
		t.Logf("round %d: %d checkpoints during the replay (%d in all); %d events", round, checkpoints, total, len(busy))
	}
}

// diffKeys returns the keys of a not in b and of b not in a (sorted inputs), marked - and +.
func diffKeys(a, b []string) []string {
	var out []string
	for _, k := range a {
		if _, found := slices.BinarySearch(b, k); !found {
			out = append(out, "- "+k)
		}
	}
	for _, k := range b {
		if _, found := slices.BinarySearch(a, k); !found {
			out = append(out, "+ "+k)
		}
	}
	return out
}

// TestHostAddrsChangeDuringReplay: with no dark prefix the sensor's own addresses are not
// dark, and run publishes them again whenever they change (SetHostAddrs), racing with the
// workers, reloads and checkpoints. Ten minutes of evalCapture replayed while the host's
// addresses switch between two sets of its dark destinations: every packet is counted,
// either dark or not (a packet counted twice or lost would show), and the race detector
// sees the switches.
func TestHostAddrsChangeDuringReplay(t *testing.T) {
	files := evalMinutes(t, 10)
	const packets = 10 * (24*120 + 60_000)
	cfg := parseConfig(t, "window: 10s\nlimits: {max_destinations: 64}\n")
	sets := [][]netip.Addr{{darkAddr(900), darkAddr(5)}, {darkAddr(901), netip.MustParseAddr("2001:db8::1")}, nil}
	state := filepath.Join(t.TempDir(), "state")
	switches, notDark := 0, uint64(0)
	for round := 0; switches < 30; round++ {
		if round == 40 {
			t.Fatalf("%d switches of the host's addresses during 40 replays: too few to check anything", switches)
		}
		p, err := New(Options{Config: cfg, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		res := replayWhile(t, p, files, func(i int) {
			switch i % 4 {
			case 0, 2:
				if _, err := p.SetHostAddrs(sets[(i/2)%len(sets)]); err != nil {
					t.Fatal(err)
				}
				switches++
			case 1:
				if err := p.Reload(cfg); err != nil {
					t.Fatal(err)
				}
			case 3:
				if _, err := p.Checkpoint(state); err != nil {
					t.Fatal(err)
				}
			}
		})
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		tot := p.Totals()
		var dark uint64
		for _, n := range tot.Prefix[1:] {
			dark += n
		}
		if ip := tot.Frames[packet.ResultIP]; ip != packets || dark+tot.Prefix[0] != packets {
			t.Fatalf("round %d: %d IP packets, %d dark and %d not: want %d in all", round, ip, dark, tot.Prefix[0], packets)
		}
		notDark += tot.Prefix[0]
	}
	if notDark == 0 {
		t.Fatal("no packet to the host's addresses counted as not dark: the switches changed nothing")
	}
	t.Logf("%d switches; %d packets to the host's addresses of the moment not dark", switches, notDark)
}

// replayWhile replays files into p with the hotspot evaluator on (as run has it) while
// another goroutine, this one, calls op(0), op(1), ... as fast as it can until the replay
// ends (op nil: waits). A replay that has not ended after 3 minutes fails the test with
// every goroutine's stack: a hang guard (a cycle of waits), not a timing.
func replayWhile(t *testing.T, p *Pipeline, files []string, op func(i int)) ReplayResult {
	t.Helper()
	defer p.hot.StartEvaluator()()
	done := make(chan ReplayResult, 1)
	go func() { done <- p.Replay(context.Background(), ReplayOptions{Files: files}) }()
	guard := time.After(3 * time.Minute)
	hung := func() {
		buf := make([]byte, 1<<20)
		t.Fatalf("the replay has not ended after 3 minutes:\n%s", buf[:runtime.Stack(buf, true)])
	}
	for i := 0; ; i++ {
		if op == nil {
			select {
			case res := <-done:
				return res
			case <-guard:
				hung()
			}
		}
		select {
		case res := <-done:
			return res
		case <-guard:
			hung()
		default:
		}
		op(i)
	}
}

// TestCheckpointDuringReloadOfTheDarkSpace: a checkpoint and a reload that renumbers the
// dark space (and changes the window, the surge bucket and a threshold), on two goroutines
// (run's periodic writer and a SIGHUP), while the workers count. Each checkpoint must be one cut under one configuration and say which: restored
// under the configuration its header names, it is never refused as corrupt.
func TestCheckpointDuringReloadOfTheDarkSpace(t *testing.T) {
	// Four minutes of hotspot windows in parts, then the small day with its flood (every
	// detector, the telnet surge among them).
	files := append(evalMinutes(t, 4), dayWithFlood(t))
	cfgs := []*configs.Config{
		hotConfig(t, "window: 10s\nlimits: {max_sources: 20000, max_destinations: 64}\n"),
		parseConfig(t, "dark_prefixes: [203.0.112.0/23, 203.0.114.0/23, 198.51.100.0/24]\nwindow: 20s\n"+
			"limits: {max_sources: 20000, max_destinations: 64}\ndetect: {telnet: {surge_bucket: 30s}, scanner: {min_targets: 10}}\n"),
	}
	dir := t.TempDir()
	checked := 0
	for round := 0; checked < 20; round++ {
		if round == 40 {
			t.Fatalf("%d checkpoints checked in 40 replays: too few", checked)
		}
		p, err := New(Options{Config: cfgs[0], Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		reloaded := make(chan int)
		go func() { // SIGHUPs
			n := 0
			defer func() { reloaded <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n++
				if err := p.Reload(cfgs[n%2]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		var states []string
		replayWhile(t, p, files, func(i int) {
			if len(states) == 8 {
				return
			}
			path := filepath.Join(dir, fmt.Sprintf("state-%d-%d", round, i))
			if _, err := p.Checkpoint(path); err != nil {
				t.Fatal(err)
			}
			states = append(states, path)
		})
		close(stop)
		if n := <-reloaded; n < 2 {
			t.Logf("round %d: %d reloads", round, n)
		}
		for _, path := range states {
			var errs []error
			for _, cfg := range cfgs {
				q, err := New(Options{Config: cfg, Workers: 2})
				if err != nil {
					t.Fatal(err)
				}
				_, err = q.RestoreState(path, RestoreOptions{})
				if err == nil {
					break
				}
				errs = append(errs, err)
			}
			if len(errs) == len(cfgs) {
				t.Fatalf("round %d: a checkpoint taken during reloads restores under neither configuration: %v", round, errs)
			}
			checked++
		}
	}
}
