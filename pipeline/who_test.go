package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/mmdbtest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/metrics"
)

// whoTraffic plants the study's actors in a 10.7.0.0/16 telescope:
//   - 192.0.2.10 (a known research scanner, "UA"): SYN to TCP/1025-10000 of one address;
//   - 203.0.113.77 (no labels): SYN to TCP/3031 (60 %) and 546 other ports;
//   - 198.51.100.1-.4 ("IE", AS64500): each in its turn, SYN to TCP/53601-60800.
func whoTraffic(t *testing.T) string {
	t.Helper()
	var fs []pcaptest.Frame
	add := func(ts time.Time, src string, dst netip.Addr, port uint16) {
		p := pcaptest.Packet{Src: addr(src), Dst: dst, SrcPort: 40000, DstPort: port, Flags: 0x02}
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, pcaptest.Frame{TS: ts, Data: b})
	}
	dark := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}) }
	for i := 0; i < 8976; i++ {
		add(t0.Add(time.Duration(i)*time.Millisecond), "192.0.2.10", dark(5), uint16(1025+i))
	}
	other := 0
	for i := 0; i < 1367; i++ {
		port := uint16(3031)
		if i%5 >= 3 && other < 546 {
			port = uint16(20000 + 7*other)
			other++
		}
		add(t0.Add(time.Minute+time.Duration(i)*10*time.Millisecond), "203.0.113.77", dark(1000+i%300), port)
	}
	for m := 0; m < 4; m++ {
		start := t0.Add(time.Duration(10*(m+1)) * time.Minute)
		for i := 0; i < 7200; i++ {
			add(start.Add(time.Duration(i)*time.Millisecond), "198.51.100."+itoa(m+1), dark(2000+i%50), uint16(53601+i))
		}
	}
	return writePcap(t, fs)
}

// whoConfig writes the known-scanners list and the databases and returns the config.
func whoConfig(t *testing.T, alertKnown bool) *configs.Config {
	t.Helper()
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(known, []byte("# test list\n192.0.2.0/24 Example Research Scanner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	country := mmdbtest.Country(t, dir, map[string]string{"192.0.2.0/24": "UA", "198.51.100.0/24": "IE"})
	asn := mmdbtest.ASN(t, dir, map[string]mmdbtest.AS{"198.51.100.0/24": {Number: 64500, Org: "Example Cloud"}})
	y := "dark_prefixes: [10.7.0.0/16]\nenrich: {known_scanners: " + known + ", geoip_country: " + country +
		", geoip_asn: " + asn + ", alert_known: " + map[bool]string{true: "true", false: "false"}[alertKnown] + "}\n"
	cfg, err := configs.Parse([]byte(y), "who.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func near(got, want float64) bool { return math.Abs(got-want) <= 0.01*want }

func TestWhoIsScanning(t *testing.T) {
	pcap := whoTraffic(t)
	cfg := whoConfig(t, true)
	core, logs := observer.New(zap.InfoLevel)
	col := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: 2, Logger: zap.New(core), Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Replay(context.Background(), ReplayOptions{Files: []string{pcap}}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	r := p.Report(col)

	// Scanner episodes: technique, summary, labels, estimates.
	scans := map[string]*detect.ScannerEntry{}
	for _, e := range EntriesOf[*detect.ScannerEntry](r.Detections, "scanner") {
		scans[e.Src] = e
	}
	if len(scans) != 6 {
		t.Fatalf("%d scanners, want 6: %v", len(scans), scans)
	}
	a := scans["192.0.2.10"]
	if a.Technique != "syn" || a.Summary != "TCP-SYN to TCP/1025-10000" || a.Org != "Example Research Scanner" || a.Country != "UA" || a.ASN != 0 {
		t.Errorf("192.0.2.10: %+v", a)
	}
	// 8976 probes in 8.975 s to one address of a /16: × 2^16 probes/s, 8.975 s × 2^16 to sweep.
	if !near(a.ProbesPerSecondEstimated, 8976/8.975*65536) || !near(a.IPv4SweepSecondsEstimated, 8.975*65536) {
		t.Errorf("192.0.2.10 estimates: %+v", a.ScanEstimates)
	}
	if b := scans["203.0.113.77"]; b.Summary != "TCP-SYN to TCP/3031 and 546 other ports" || b.Who != (detect.Who{}) {
		t.Errorf("203.0.113.77: %q %+v", b.Summary, b.Who)
	}
	g1 := scans["198.51.100.1"]
	if g1.Summary != "TCP-SYN to TCP/53601-60800" || g1.Country != "IE" || g1.ASN != 64500 || g1.ASName != "Example Cloud" {
		t.Errorf("198.51.100.1: %q %+v", g1.Summary, g1.Who)
	}

	// The group of four taking turns.
	if len(r.Groups) != 1 {
		t.Fatalf("%d groups, want 1: %+v", len(r.Groups), r.Groups)
	}
	g := r.Groups[0]
	if g.Prefix != "198.51.100.0/24" || g.Sources != 4 || g.Packets != 4*7200 || !g.TakingTurns ||
		g.Summary != "TCP-SYN to TCP/53601-60800" || g.Country != "IE" || g.ASN != 64500 || len(g.Members) != 4 {
		t.Errorf("group %+v", g)
	}

	// Top sources: the scanner's profile and labels.
	top := r.Sources.Top[0]
	if top.Addr != "192.0.2.10" || top.Summary != a.Summary || top.Technique != "syn" || top.Org != "Example Research Scanner" || top.Profile == nil {
		t.Errorf("top source %+v", top)
	}

	// Log lines carry the labels.
	var logged bool
	for _, e := range logs.FilterMessage("scanner went quiet").All() {
		f := e.ContextMap()
		if f["src"] == "192.0.2.10" {
			logged = f["org"] == "Example Research Scanner" && f["country"] == "UA" && f["technique"] == "syn" &&
				f["summary"] == "TCP-SYN to TCP/1025-10000" && f["probes_per_second_estimated"] != nil
			if !logged {
				t.Errorf("log fields %v", f)
			}
		}
	}
	if !logged {
		t.Error("no scanner end logged for 192.0.2.10")
	}

	// Metrics, through the collector.
	got := gather(t, p)
	want := map[string]float64{
		`telescope_scan_technique_packets_total{technique="syn"}`:                                     8976 + 1367 + 4*7200,
		`telescope_scan_technique_packets_total{technique="fin"}`:                                     0,
		`telescope_known_scanner_packets_total{org="Example Research Scanner"}`:                       8976,
		`telescope_known_scanner_detections_total{detector="scanner",org="Example Research Scanner"}`: 1,
		`telescope_country_packets_total{country="UA"}`:                                               8976,
		`telescope_country_packets_total{country="IE"}`:                                               4 * 7200,
		`telescope_country_packets_total{country="unknown"}`:                                          1367,
		`telescope_top_asn_packets{as_name="Example Cloud",asn="64500",rank="1"}`:                     7200,
		`telescope_detections_total{class="vertical",detector="scanner"}`:                             1,
		`telescope_detections_total{class="mixed",detector="scanner"}`:                                5,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// A reload with a broken list is refused; the old labels stay.
	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("192.0.2.0/24 ok\nnot-a-cidr x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := *cfg
	c2.Enrich.KnownScanners = bad
	if err := p.Reload(&c2); err == nil || !strings.Contains(err.Error(), bad+":2:") || strings.Contains(err.Error(), "\n") {
		t.Errorf("reload with a bad list: %v", err)
	}
	c2.Enrich.KnownScanners = cfg.Enrich.KnownScanners
	c2.Enrich.GeoIPASN = filepath.Join(t.TempDir(), "missing.mmdb")
	if err := p.Reload(&c2); err == nil || !strings.Contains(err.Error(), "missing.mmdb") {
		t.Errorf("reload with a missing database: %v", err)
	}
	var l detect.Who
	p.who.label("198.51.100.3", &l)
	if l.ASN != 64500 {
		t.Errorf("after refused reloads the labels are %+v", l)
	}
}

// TestKnownScannersLeftOutOfAlerts: with alert_known false, the known scanner's episode is
// reported and logged but not in the alert series.
func TestKnownScannersLeftOutOfAlerts(t *testing.T) {
	pcap := whoTraffic(t)
	col := NewEpisodes()
	p, err := New(Options{Config: whoConfig(t, false), Workers: 1, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	p.Replay(context.Background(), ReplayOptions{Files: []string{pcap}})
	silenced := 0
	for _, e := range EntriesOf[*detect.ScannerEntry](p.Report(col).Detections, "scanner") {
		if e.Silenced != (e.Src == "192.0.2.10") {
			t.Errorf("%s: silenced %v", e.Src, e.Silenced)
		}
		if e.Silenced {
			silenced++
		}
	}
	if silenced != 1 {
		t.Errorf("%d silenced scanner episodes reported, want 1", silenced)
	}
	got := gather(t, p)
	for k, v := range map[string]float64{
		`telescope_detections_total{class="vertical",detector="scanner"}`:                             0,
		`telescope_detections_total{class="mixed",detector="scanner"}`:                                5,
		`telescope_detections_active{detector="scanner"}`:                                             0,
		`telescope_known_scanner_detections_total{detector="scanner",org="Example Research Scanner"}`: 1,
		`telescope_known_scanner_packets_total{org="Example Research Scanner"}`:                       8976,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestWhoStartErrorsAndEstimatesWithoutDarkSpace(t *testing.T) {
	cfg := configs.Default()
	cfg.Enrich.GeoIPCountry = filepath.Join(t.TempDir(), "nope.mmdb")
	if _, err := New(Options{Config: cfg, Workers: 1}); err == nil || !strings.Contains(err.Error(), "geoip country database") {
		t.Errorf("start with a missing database: %v", err)
	}
	// No dark prefixes: the dark space is unknown, no estimates.
	p, err := New(Options{Config: configs.Default(), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := &detect.ScannerEntry{Src: "192.0.2.1", Packets: 100, FirstSeen: 0, LastSeen: detect.Time(time.Second), Profile: &detect.Profile{Addresses: 100}}
	s := &detect.TelnetSurgeEntry{PeakSources: 40}
	p.sink.Detection(&detect.Event{Detector: detect.Scanner, Phase: detect.Start, Class: "horizontal", Entry: e})
	p.sink.Detection(&detect.Event{Detector: detect.TelnetSurge, Phase: detect.Start, Class: "surge", Entry: s})
	if e.ScanEstimates != (detect.ScanEstimates{}) || s.BotsEstimated != 0 {
		t.Errorf("estimates without a dark space: %+v, %v", e.ScanEstimates, s.BotsEstimated)
	}
	// A /24 and a /16 of IPv4 plus IPv6 (which does not count): 65792 addresses.
	cfg = configs.Default()
	cfg.DarkPrefixes = []netip.Prefix{netip.MustParsePrefix("10.7.0.0/16"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	if p, err = New(Options{Config: cfg, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	p.sink.Detection(&detect.Event{Detector: detect.TelnetSurge, Phase: detect.Start, Class: "surge", Entry: s})
	p.sink.Detection(&detect.Event{Detector: detect.Scanner, Phase: detect.Start, Class: "horizontal", Entry: e})
	if !near(s.BotsEstimated, 40*4294967296.0/65792) || !near(e.ProbesPerSecondEstimated, 100*4294967296.0/65792) ||
		!near(e.IPv4SweepSecondsEstimated, 65792.0/100) {
		t.Errorf("estimates: bots %v, scan %+v", s.BotsEstimated, e.ScanEstimates)
	}
	v6 := &detect.ScannerEntry{Src: "2001:db8::1", Packets: 100, LastSeen: detect.Time(time.Second)}
	p.sink.Detection(&detect.Event{Detector: detect.Scanner, Phase: detect.Start, Class: "horizontal", Entry: v6})
	if v6.ScanEstimates != (detect.ScanEstimates{}) {
		t.Errorf("IPv6 scanner has IPv4 estimates %+v", v6.ScanEstimates)
	}
}

// gather scrapes a collector over the pipeline into "name{labels}" -> value.
func gather(t *testing.T, p *Pipeline) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(metrics.Options{Snapshot: p.Snapshot}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "sensor" {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
			}
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return math.NaN()
}

// TestKnownVictimStillAlerts: a listed address that is a backscatter victim is labelled
// but not taken out of the alert series; a listed scanner source is.
func TestKnownVictimStillAlerts(t *testing.T) {
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(known, []byte("192.0.2.0/24 Example Research Scanner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	cfg.Enrich.KnownScanners, cfg.Enrich.AlertKnown = known, false
	p, err := New(Options{Config: cfg, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	victim := &detect.BackscatterEntry{Victim: "192.0.2.5", Kind: "syn_ack"}
	sweep := &detect.TelnetSweepEntry{Src: "192.0.2.6"}
	p.sink.Detection(&detect.Event{Detector: detect.Backscatter, Phase: detect.Start, Class: "syn_ack", Entry: victim})
	p.sink.Detection(&detect.Event{Detector: detect.TelnetSweep, Phase: detect.Start, Class: "other", Entry: sweep})
	if victim.Org != "Example Research Scanner" || sweep.Org != "Example Research Scanner" {
		t.Fatalf("labels: victim %+v, sweep %+v", victim.Who, sweep.Who)
	}
	ex := p.excludedCounts()
	if ex.active[detect.Backscatter] != 0 || ex.active[detect.TelnetSweep] != 1 ||
		ex.started[[2]string{detect.TelnetSweep, "other"}] != 1 || len(ex.started) != 1 {
		t.Errorf("excluded %+v", ex)
	}
	p.sink.Detection(&detect.Event{Detector: detect.TelnetSweep, Phase: detect.End, Class: "other", Entry: &detect.TelnetSweepEntry{Src: "192.0.2.6"}})
	if ex := p.excludedCounts(); ex.active[detect.TelnetSweep] != 0 {
		t.Errorf("after the end, %d excluded sweeps active", ex.active[detect.TelnetSweep])
	}
}

// TestBotsEstimate checks the surge's bots estimate against bots simulated the way it
// models them: each sends k probes in the bucket to random IPv4 addresses, a Poisson number
// of them (mean k x D / 2^32) into the dark space, and only those with one or more are seen.
func TestBotsEstimate(t *testing.T) {
	const space = 1 << 32
	rng := rand.New(rand.NewPCG(9, 10))
	poisson := func(l float64) uint64 { // Knuth's method: fine for the small means used here
		n, p := uint64(0), rng.Float64()
		for lim := math.Exp(-l); p > lim; p *= rng.Float64() {
			n++
		}
		return n
	}
	for _, tc := range []struct {
		bots  int
		lam   float64 // expected probes into the dark space per bot
		dark4 uint64
	}{
		{20000, 0.3, 1 << 16},
		{20000, 1.5, 512},
		{5000, 4, 1 << 24},
	} {
		var sources, probes uint64
		for range tc.bots {
			if n := poisson(tc.lam); n > 0 {
				sources++
				probes += n
			}
		}
		got := botsEstimate(sources, probes, tc.dark4)
		if math.Abs(got-float64(tc.bots)) > 0.05*float64(tc.bots) {
			t.Errorf("%d bots at lambda %v: %d sources, %d probes, estimate %.0f", tc.bots, tc.lam, sources, probes, got)
		}
	}
	// One probe per source: each bot sent at least one, the largest number of bots the
	// counts allow, sources x 2^32 / D.
	if got, want := botsEstimate(40, 40, 65792), 40.0*space/65792; math.Abs(got-want) > 1e-6*want+25 {
		t.Errorf("one probe per source: %v, want about %v", got, want)
	}
	// Never more bots than IPv4 addresses, none without sources.
	if got := botsEstimate(3210, 3210, 512); got != space {
		t.Errorf("3210 one-probe sources over 512 addresses: %v, want 2^32", got)
	}
	if got := botsEstimate(0, 0, 512); got != 0 {
		t.Errorf("no sources: %v", got)
	}
	// More probes per source: busier bots, more of them seen, fewer unseen.
	prev := math.Inf(1)
	for _, p := range []uint64{100, 101, 150, 300, 1000} {
		got := botsEstimate(100, p, 512)
		if got >= prev || got < 100 {
			t.Errorf("100 sources, %d probes: %v bots (previous %v)", p, got, prev)
		}
		prev = got
	}
}
