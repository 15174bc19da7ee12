package daygen

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// Diff is the comparison of one detector's detections with the truth: what was missed,
// what was falsely detected, and what was detected with wrong values.
type Diff struct {
	Name          string
	Want, Got, TP int
	Missed, False []string
	Wrong         []string
}

// String summarises the comparison with precision and recall and lists the differences.
func (d *Diff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: planted %d, detected %d, matched %d (precision %.3f, recall %.3f)\n",
		d.Name, d.Want, d.Got, d.TP, ratio(d.TP, d.Got), ratio(d.TP, d.Want))
	list := func(what string, xs []string) {
		sort.Strings(xs)
		for i, x := range xs {
			if i == 10 {
				fmt.Fprintf(&b, "  ... %d more %s\n", len(xs)-10, what)
				break
			}
			fmt.Fprintf(&b, "  %s: %s\n", what, x)
		}
	}
	list("missed", d.Missed)
	list("false", d.False)
	list("wrong", d.Wrong)
	return b.String()
}

// OK reports precision and recall 1.0 with every value right.
func (d *Diff) OK() bool {
	return d.TP == d.Want && d.TP == d.Got && len(d.Wrong) == 0
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// compare matches detected entries to planted ones by key; check returns what differs.
func compare[W, G any](name string, want map[string]W, got map[string]G, check func(W, G) string) *Diff {
	d := &Diff{Name: name, Want: len(want), Got: len(got)}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			d.Missed = append(d.Missed, k)
			continue
		}
		d.TP++
		if msg := check(w, g); msg != "" {
			d.Wrong = append(d.Wrong, k+": "+msg)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d.False = append(d.False, k)
		}
	}
	return d
}

// approx accepts an estimated distinct count: exact up to 256, within 10 % beyond.
func approx(got, want uint64) bool {
	if want <= 256 {
		return got == want
	}
	return math.Abs(float64(got)-float64(want)) <= 0.1*float64(want)
}

func ts(t time.Time) detect.Time { return detect.Time(t.UnixNano()) }

func addr(a netip.Addr) string { return a.String() }

// ends returns the End entries of a detector, checking there is exactly one Start for each.
func ends[E any](events []*detect.Event, det string, key func(*E) string, d *int) map[string]*E {
	out := map[string]*E{}
	starts := map[string]int{}
	for _, ev := range events {
		if ev.Detector != det {
			continue
		}
		e, ok := any(ev.Entry).(*E)
		if !ok {
			continue
		}
		k := key(e)
		if ev.Phase == detect.Start {
			starts[k]++
			continue
		}
		if _, dup := out[k]; dup {
			k += " (duplicate)"
		}
		out[k] = e
	}
	for k, n := range starts {
		if _, ok := out[k]; !ok || n != 1 {
			*d++
		}
	}
	return out
}

// Check compares detection events (Start and End) with the planted truth, detector by
// detector: every planted episode must be detected once with the planted values, nothing
// else may be detected, and every episode must have exactly one Start and one End.
// unpaired counts the episodes that break the last rule.
func Check(truth *Truth, events []*detect.Event) (diffs []*Diff, unpaired int) {
	var bad int

	// scanner
	wantScan := map[string]Scanner{}
	for src, eps := range truth.Scanners {
		for _, e := range eps {
			wantScan[addr(src)+" "+e.First.Format(time.RFC3339Nano)] = e
		}
	}
	gotScan := ends(events, detect.Scanner, func(e *detect.ScannerEntry) string { return e.Src + " " + e.FirstSeen.String() }, &bad)
	diffs = append(diffs, compare(detect.Scanner, wantScan, gotScan, func(w Scanner, g *detect.ScannerEntry) string {
		if g.Class != w.Class || g.Packets != w.Packets || !approx(g.Targets, w.Targets) || !approx(g.Ports, w.Ports) || g.LastSeen != ts(w.Last) ||
			w.Technique != "" && g.Technique != w.Technique || w.Summary != "" && g.Summary != w.Summary {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	// telnet_sweep
	wantTel := map[string]TelnetSweep{}
	for src, eps := range truth.TelnetSweeps {
		for _, e := range eps {
			wantTel[addr(src)+" "+e.First.Format(time.RFC3339Nano)] = e
		}
	}
	gotTel := ends(events, detect.TelnetSweep, func(e *detect.TelnetSweepEntry) string { return e.Src + " " + e.FirstSeen.String() }, &bad)
	diffs = append(diffs, compare(detect.TelnetSweep, wantTel, gotTel, func(w TelnetSweep, g *detect.TelnetSweepEntry) string {
		if g.Mirai != w.Mirai || g.Packets != w.Packets || g.Targets != w.Targets || g.LastSeen != ts(w.Last) {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	// telnet_surge
	wantSurge := map[string]Surge{}
	for _, s := range truth.Surges {
		wantSurge[s.Start.Format(time.RFC3339Nano)] = s
	}
	gotSurge := ends(events, detect.TelnetSurge, func(e *detect.TelnetSurgeEntry) string { return e.Start.String() }, &bad)
	diffs = append(diffs, compare(detect.TelnetSurge, wantSurge, gotSurge, func(w Surge, g *detect.TelnetSurgeEntry) string {
		if g.End != ts(w.End) || g.PeakSources != w.PeakSources || math.Abs(g.Baseline-w.Baseline) > 1e-6*max(1, w.Baseline) {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	// udp_then_syn
	wantPair := map[string]Pair{}
	for _, p := range truth.UDPThenSYN {
		wantPair[fmt.Sprintf("%s -> %s", addr(p.Src), netip.AddrPortFrom(p.Dst, p.Port))] = p
	}
	gotPair := ends(events, detect.UDPThenSYN, func(e *detect.UDPThenSYNEntry) string {
		return fmt.Sprintf("%s -> %s", e.Src, netip.AddrPortFrom(packet.Addr(e.Dst).Netip(), e.Port))
	}, &bad)
	diffs = append(diffs, compare(detect.UDPThenSYN, wantPair, gotPair, func(w Pair, g *detect.UDPThenSYNEntry) string {
		if g.UDPPackets != w.UDP || g.SYNPackets != w.SYN || g.Payload != w.Payload || g.FirstSeen != ts(w.First) || g.LastSeen != ts(w.Last) {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	// backscatter
	wantBS := map[string]Attack{}
	for _, a := range truth.Backscatter {
		wantBS[addr(a.Victim)+" "+a.First.Format(time.RFC3339Nano)] = a
	}
	gotBS := ends(events, detect.Backscatter, func(e *detect.BackscatterEntry) string { return e.Victim + " " + e.FirstSeen.String() }, &bad)
	diffs = append(diffs, compare(detect.Backscatter, wantBS, gotBS, func(w Attack, g *detect.BackscatterEntry) string {
		// The peak is counted over 60 one-second slots: never above the exact value.
		if g.Kind != w.Kind || g.Packets != w.Packets || !approx(g.Targets, w.Targets) || g.LastSeen != ts(w.Last) ||
			g.PeakRate > w.PeakRate || float64(g.PeakRate) < 0.9*float64(w.PeakRate) {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	// tools
	wantTool := map[string]Tool{}
	for src, tools := range truth.Tools {
		for _, tl := range tools {
			wantTool[addr(src)+" "+tl.Tool+" "+tl.First.Format(time.RFC3339Nano)] = tl
		}
	}
	gotTool := ends(events, detect.Fingerprint, func(e *detect.ToolEntry) string {
		return e.Src.String() + " " + e.Tool + " " + e.FirstSeen.String()
	}, &bad)
	diffs = append(diffs, compare("tools", wantTool, gotTool, func(w Tool, g *detect.ToolEntry) string {
		if g.Packets != w.Packets || g.Probes != w.Probes || g.LastSeen != ts(w.Last) {
			return fmt.Sprintf("got %+v, want %+v", *g, w)
		}
		return ""
	}))

	return diffs, bad
}
