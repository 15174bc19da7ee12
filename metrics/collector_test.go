package metrics

import (
	"bytes"
	"context"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// goldenCapture: a scanner sweeping TCP/23, UDP to 1900, backscatter, IPv6, spread over
// two 1-minute windows so that one window is closed before the end.
func goldenCapture(t *testing.T) string {
	t.Helper()
	var ps []pcaptest.Packet
	for i := 0; i < 30; i++ {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Second),
			Src: a("192.0.2.1"), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}),
			SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: uint32(203)<<24 | 113<<8 | uint32(i+1)})
	}
	for i := 0; i < 3; i++ {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(40+i) * time.Second), Proto: "udp",
			Src: a("192.0.2.2"), Dst: a("203.0.113.200"), SrcPort: 5000, DstPort: 1900})
	}
	ps = append(ps,
		pcaptest.Packet{TS: t0.Add(50 * time.Second), Src: a("198.51.100.7"), Dst: a("203.0.113.9"), SrcPort: 80, DstPort: 4444, Flags: 0x12},
		pcaptest.Packet{TS: t0.Add(70 * time.Second), Src: a("2001:db8:ffff::1"), Dst: a("2001:db8:1::1"), SrcPort: 1234, DstPort: 22, Flags: 0x02},
		pcaptest.Packet{TS: t0.Add(80 * time.Second), Src: a("192.0.2.3"), Dst: a("198.51.100.1"), SrcPort: 1234, DstPort: 445, Flags: 0x02},
	)
	path := filepath.Join(t.TempDir(), "golden.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	return path
}

func replayed(t *testing.T) (*pipeline.Pipeline, *prometheus.Registry) {
	t.Helper()
	cfg, err := configs.Parse([]byte(`
sensor: lab-1
window: 1m
dark_prefixes: [203.0.113.0/24, 2001:db8:1::/48]
detect: {scanner: {min_packets: 25, min_targets: 20}}
metrics: {top_ports: 2, watch_ports: [23, 8080], top_sources: 2}
`), "golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Replay(context.Background(), pipeline.ReplayOptions{Files: []string{goldenCapture(t)}})
	if len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	reload := &ReloadStatus{}
	reload.Set(true, time.Unix(1700000000, 0))
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(Options{Sensor: cfg.Sensor, Version: "test", Pipeline: p, Reload: reload}))
	return p, reg
}

// TestCollectorGolden compares the whole exposition after a replay with a reviewed golden
// file (go test ./metrics -run Golden -update rewrites it; review the diff).
func TestCollectorGolden(t *testing.T) {
	_, reg := replayed(t)
	var buf bytes.Buffer
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if mf.GetName() == "telescope_build_info" {
			continue // carries the Go version
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "replay.golden.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), names(want)...); err != nil {
		t.Error(err)
	}
}

// names lists the metric families of an exposition.
func names(expo []byte) []string {
	var out []string
	for _, line := range strings.Split(string(expo), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out
}

// TestEverySeriesOfTheInterfaceExists checks the metric names of INTERFACE.md are all
// exposed, each with the sensor label.
func TestEverySeriesOfTheInterfaceExists(t *testing.T) {
	_, reg := replayed(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			ok := false
			for _, l := range m.GetLabel() {
				ok = ok || l.GetName() == "sensor" && l.GetValue() == "lab-1"
			}
			if !ok {
				t.Errorf("%s: a series without sensor=\"lab-1\"", mf.GetName())
			}
		}
	}
	for _, n := range []string{
		"telescope_packets_total", "telescope_bytes_total", "telescope_frames_total",
		"telescope_tcp_flags_packets_total", "telescope_dst_port_packets_total",
		"telescope_prefix_packets_total", "telescope_sources_unique",
		"telescope_source_packets_per_window", "telescope_top_source_packets",
		"telescope_detections_total", "telescope_detections_active", "telescope_telnet_sources",
		"telescope_fingerprint_packets_total", "telescope_udp_then_syn_sources_total",
		"telescope_backscatter_packets_total", "telescope_capture_packets_total",
		"telescope_capture_drops_total", "telescope_capture_up", "telescope_worker_packets_total",
		"telescope_config_last_reload_successful", "telescope_config_last_reload_success_timestamp_seconds",
		"telescope_tracked_sources", "telescope_evictions_total",
		"telescope_last_packet_timestamp_seconds", "telescope_build_info",
	} {
		if !got[n] {
			t.Errorf("metric %s is not exposed", n)
		}
	}
}

// TestPromtoolCheckMetrics runs promtool's linter over the exposition.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (apt-get install prometheus)")
		}
		t.Skip("SKIPPING: promtool is not installed (apt-get install prometheus); scripts/test.sh installs it")
	}
	_, reg := replayed(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
