package daygen

import (
	"fmt"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
)

// TestSurgeAtScale runs the telnet part of the telescope day (Mirai bots making the baseline,
// a 15-minute surge ramping up over three buckets) at 1x to 50x the sources through two
// engines: exactly the one planted surge, with the reference's start, end, peak and
// baseline (so the per-bucket distinct counts are exact too), at every scale.
func TestSurgeAtScale(t *testing.T) {
	scales := []float64{1, 10, 20, 50}
	if testing.Short() {
		scales = []float64{1, 20}
	}
	for _, scale := range scales {
		t.Run(fmt.Sprintf("%gx", scale), func(t *testing.T) {
			o := Options{Seed: 20, Scale: scale, Profile: ProfileTelescope, TelnetOnly: true}
			pkts, truth, err := Packets(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(truth.Surges) != 1 {
				t.Fatalf("the reference finds %d surges, want 1", len(truth.Surges))
			}
			want := truth.Surges[0]
			events, _ := runEngines(t, pkts, 2)
			var got []*detect.TelnetSurgeEntry
			for _, ev := range events {
				if ev.Detector == detect.TelnetSurge && ev.Phase == detect.End {
					got = append(got, ev.Entry.(*detect.TelnetSurgeEntry))
				}
			}
			if len(got) != 1 {
				t.Fatalf("%d packets: %d surges detected, want 1 (%+v)", len(pkts), len(got), want)
			}
			g := got[0]
			if time.Duration(g.Start) != time.Duration(want.Start.UnixNano()) || time.Duration(g.End) != time.Duration(want.End.UnixNano()) ||
				g.PeakSources != want.PeakSources || !closeTo(g.Baseline, want.Baseline) {
				t.Errorf("surge %+v, want %+v", g, want)
			}
			t.Logf("%d packets: surge %s to %s, peak %d sources, baseline %.1f (%.2fx)", len(pkts),
				want.Start.Format("15:04"), want.End.Format("15:04"), g.PeakSources, g.Baseline, float64(g.PeakSources)/g.Baseline)
		})
	}
}

func closeTo(a, b float64) bool { return a-b < 1e-6*b+1e-9 && b-a < 1e-6*b+1e-9 }
