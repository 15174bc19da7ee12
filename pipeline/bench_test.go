package pipeline

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
)

var (
	benchDayOnce sync.Once
	benchDayPath string
	benchDayErr  error
)

// benchDay writes a scale-2 telescope day (~470k packets) once per test binary.
func benchDay(b *testing.B) string {
	b.Helper()
	benchDayOnce.Do(func() {
		dir, err := os.MkdirTemp("", "telescope-bench-")
		if err != nil {
			benchDayErr = err
			return
		}
		benchDayPath = filepath.Join(dir, "day.pcap")
		_, benchDayErr = daygen.WriteFile(benchDayPath, daygen.Options{Seed: 1, Scale: 2})
	})
	if benchDayErr != nil {
		b.Fatal(benchDayErr)
	}
	return benchDayPath
}

// BenchmarkReplayDay replays the same generated day with every detector on, then off, and
// reports packets/s: the detectors' share of the pipeline's cost.
//
//	go test -run '^$' -bench ReplayDay -benchtime 5x ./pipeline/
//
// TELESCOPE_BENCH_PCAP=FILE replays that file instead (e.g. to profile bench.sh's files
// with -cpuprofile), and TELESCOPE_BENCH_DARK=PREFIXES (YAML flow list items, e.g. bench.sh's
// "203.0.113.0/24, 198.51.100.0/24") sets its dark_prefixes, as bench.sh's configs do.
func BenchmarkReplayDay(b *testing.B) {
	path := os.Getenv("TELESCOPE_BENCH_PCAP")
	if path == "" {
		path = benchDay(b)
	}
	// Every detector off, whatever detectors there are (a section may hold several).
	off := map[string]bool{}
	for _, d := range detect.Descriptors() {
		off[d.ConfigKey] = true
	}
	offYAML := "detect:\n"
	for _, k := range slices.Sorted(maps.Keys(off)) {
		offYAML += "  " + k + ": {enabled: false}\n"
	}
	b.Run("alternating", func(b *testing.B) { benchAlternating(b, path, offYAML) })
	for _, tc := range []struct{ name, yaml string }{
		{"detectors=on", ""},
		{"detectors=nohot", "detect:\n  hotspot: {enabled: false}\n"}, // the hotspot's cost is on - nohot
		{"detectors=off", offYAML},
	} {
		b.Run(tc.name, func(b *testing.B) {
			y := tc.yaml
			if dark := os.Getenv("TELESCOPE_BENCH_DARK"); dark != "" {
				y = "dark_prefixes: [" + dark + "]\n" + y
			}
			cfg, err := configs.Parse([]byte(y), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			var records uint64
			cpu0 := cpuTime()
			for b.Loop() {
				p, err := New(Options{Config: cfg, Workers: 2})
				if err != nil {
					b.Fatal(err)
				}
				res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
				if len(res.Errors) != 0 {
					b.Fatal(res.Errors)
				}
				records += res.Records
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "packets/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(records), "cpu-ns/packet")
		})
	}
}

// benchAlternating replays the file with every detector off, with all but hotspot, and
// with all, in turn in each iteration, and reports each one's CPU time per packet and
// the shares bench.sh reports, from CPU time: a machine whose speed drifts over the
// minutes (a shared host) weighs on the three alike, where separate benchmarks run
// minutes apart compare different machines.
//
//	TELESCOPE_BENCH_PCAP=bench/day-20.pcap TELESCOPE_BENCH_DARK=... go test -run '^$' \
//	    -bench ReplayDay/alternating -benchtime 10x ./pipeline/
func benchAlternating(b *testing.B, path, offYAML string) {
	dark := ""
	if d := os.Getenv("TELESCOPE_BENCH_DARK"); d != "" {
		dark = "dark_prefixes: [" + d + "]\n"
	}
	yamls := []string{offYAML, "detect:\n  hotspot: {enabled: false}\n", ""}
	cfgs := make([]*configs.Config, len(yamls))
	for i, y := range yamls {
		var err error
		if cfgs[i], err = configs.Parse([]byte(dark+y), "bench.yaml"); err != nil {
			b.Fatal(err)
		}
	}
	cpu := make([]int64, len(cfgs))
	var records uint64
	for b.Loop() {
		for i, cfg := range cfgs {
			p, err := New(Options{Config: cfg, Workers: 2})
			if err != nil {
				b.Fatal(err)
			}
			c0 := cpuTime()
			res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
			cpu[i] += cpuTime() - c0
			if len(res.Errors) != 0 {
				b.Fatal(res.Errors)
			}
			if i == 0 {
				records += res.Records
			}
		}
	}
	off, nohot, on := float64(cpu[0]), float64(cpu[1]), float64(cpu[2])
	n := float64(records)
	b.ReportMetric(off/n, "off-cpu-ns/packet")
	b.ReportMetric(nohot/n, "nohot-cpu-ns/packet")
	b.ReportMetric(on/n, "on-cpu-ns/packet")
	b.ReportMetric(100*off/on, "on-keeps-%")
	b.ReportMetric(100*(off/nohot-off/on), "hotspot-costs-%")
}

// TestMain removes the benchmark day written by benchDay (tens of MB) once the binary is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchDayPath != "" {
		os.RemoveAll(filepath.Dir(benchDayPath))
	}
	os.Exit(code)
}
