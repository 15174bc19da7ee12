package metrics

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// fixture is a hand-built snapshot: a scanner sweeping TCP/23 (a Mirai-fingerprinted
// telnet sweeper), UDP to 1900, one SYN-ACK of backscatter, an IPv6 SYN and a SYN outside
// the dark space, over two 1-minute windows with two workers.
func fixture() *snapshot.Snapshot {
	t := new(aggregate.Totals)
	t.Frames[packet.ResultIP] = 36
	t.Packets[0][aggregate.IdxTCP], t.Bytes[0][aggregate.IdxTCP] = 32, 1920
	t.Packets[0][aggregate.IdxUDP], t.Bytes[0][aggregate.IdxUDP] = 3, 180
	t.Packets[1][aggregate.IdxTCP], t.Bytes[1][aggregate.IdxTCP] = 1, 74
	t.Flags[packet.FlagSYN], t.Flags[packet.FlagSYN|packet.FlagACK] = 32, 1
	t.Ports[aggregate.PortsTCPSYN][23] = 30
	t.Ports[aggregate.PortsTCPSYN][22] = 1
	t.Ports[aggregate.PortsTCPSYN][445] = 1
	t.Ports[aggregate.PortsUDP][1900] = 3
	t.FirstTS = t0.UnixNano()
	t.LastTS = t0.Add(80 * time.Second).UnixNano()
	s := &snapshot.Snapshot{
		Totals:       t,
		Prefixes:     []snapshot.NamedCount{{Name: "203.0.113.0/24", Count: 34}, {Name: "2001:db8:1::/48", Count: 1}},
		NotDark:      1,
		WindowLength: "1m",
		Window: &aggregate.WindowStats{Index: 28487888, Unique: 2, Packets: 2, Top: []aggregate.SourceCount{
			{Addr: packet.AddrFromNetip(a("192.0.2.3")), Packets: 1},
			{Addr: packet.AddrFromNetip(a("2001:db8:ffff::1")), Packets: 1},
		}},
		TelnetSources:       0,
		WatchedPortScanners: []snapshot.PortEpisodes{{Port: 23, Episodes: 1}, {Port: 8080, Episodes: 0}},
		Captures:            []snapshot.CaptureCounts{{Interface: "replay", Packets: 36}},
		WorkerFrames:        []uint64{35, 1},
		Tracked:             7,
		LastPacketTS:        t.LastTS,
		TopPorts:            2,
		WatchPorts:          []uint16{23, 8080},
	}
	h := &s.SourcesPerWindow
	h.Counts[0], h.Counts[2], h.Counts[5], h.Sum, h.Count = 3, 1, 1, 36, 5
	// 31 dark destinations with one packet, two with two (the sweep's retries).
	dh := &s.DestinationsPerWindow
	dh.Counts[0], dh.Counts[1], dh.Sum, dh.Count = 31, 2, 35, 33
	started := map[string]map[string]uint64{
		"scanner": {"horizontal": 1}, "telnet_sweep": {"mirai": 1}, "fingerprint": {"mirai": 1},
	}
	for _, d := range detect.Descriptors() {
		ds := snapshot.DetectorSnapshot{Name: d.Name}
		for _, c := range d.Classes {
			ds.Started = append(ds.Started, snapshot.NamedCount{Name: c, Count: started[d.Name][c]})
		}
		s.Detectors = append(s.Detectors, ds)
	}
	for _, tool := range detect.Tools {
		n := uint64(0)
		if tool == "mirai" {
			n = 30
		}
		s.FingerprintPackets = append(s.FingerprintPackets, snapshot.NamedCount{Name: tool, Count: n})
	}
	for _, k := range detect.PayloadKinds {
		s.UDPThenSYNSources = append(s.UDPThenSYNSources, snapshot.NamedCount{Name: k})
	}
	for _, k := range detect.BackscatterKinds {
		n := uint64(0)
		if k == "syn_ack" {
			n = 1
		}
		s.BackscatterPackets = append(s.BackscatterPackets, snapshot.NamedCount{Name: k, Count: n})
	}
	return s
}

// registry registers a collector over snapshots from get.
func registry(get func() *snapshot.Snapshot) *prometheus.Registry {
	reload := &ReloadStatus{}
	reload.Set(true, time.Unix(1700000000, 0))
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(Options{Sensor: "lab-1", Version: "test", Snapshot: get, Reload: reload}))
	return reg
}

func replayed(t *testing.T) (*snapshot.Snapshot, *prometheus.Registry) {
	t.Helper()
	s := fixture()
	return s, registry(func() *snapshot.Snapshot { return s })
}

// TestCollectorGolden compares the whole exposition of the fixture with a reviewed golden
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

// TestEverySeriesOfTheInterfaceExists checks the metric names of the README's metrics table are all
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
		"telescope_detection_shed_packets_total",
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

// TestPortSeriesMonotonic drives the collector with a shuffling port ranking over many
// scrapes: every exposed series (ports and "other") never goes backwards, "other" grows by
// exactly the packets of the ports not exposed at both scrapes, and the exposed set stays
// bounded.
func TestPortSeriesMonotonic(t *testing.T) {
	s := fixture()
	s.TopPorts = 3
	s.WatchPorts = []uint16{23}
	reg := registry(func() *snapshot.Snapshot { return s })
	rng := rand.New(rand.NewPCG(1, 2))
	last := map[string]float64{}
	prevExposed := map[string]bool{}
	prevCounts := s.Totals.Ports[aggregate.PortsTCPSYN]
	for scrape := 0; scrape < 300; scrape++ {
		// A burst on a few random ports (of 40), so the top 3 keeps changing.
		for i := 0; i < 5; i++ {
			s.Totals.Ports[aggregate.PortsTCPSYN][1000+rng.IntN(40)] += uint64(rng.IntN(50))
		}
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "telescope_dst_port_packets_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var kind, port string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "kind":
						kind = l.GetValue()
					case "port":
						port = l.GetValue()
					}
				}
				if kind == "tcp_syn" {
					got[port] = m.GetCounter().GetValue()
				}
			}
		}
		if n := len(got) - 1; n > 2*s.TopPorts+len(s.WatchPorts) {
			t.Fatalf("scrape %d: %d ports exposed, bound %d", scrape, n, 2*s.TopPorts+len(s.WatchPorts))
		}
		var unexposedGrowth float64
		for p := 0; p < 65536; p++ {
			name := strconv.Itoa(p)
			if _, now := got[name]; !now || !prevExposed[name] {
				unexposedGrowth += float64(s.Totals.Ports[aggregate.PortsTCPSYN][p] - prevCounts[p])
			}
		}
		for name, v := range got {
			if old, ok := last[name]; ok && prevExposed[name] && v < old {
				t.Fatalf("scrape %d: port %s went backwards %v -> %v", scrape, name, old, v)
			}
		}
		if scrape > 0 && got["other"] != last["other"]+unexposedGrowth {
			t.Fatalf("scrape %d: other %v -> %v, want +%v", scrape, last["other"], got["other"], unexposedGrowth)
		}
		last, prevExposed = got, map[string]bool{}
		for name := range got {
			prevExposed[name] = true
		}
		prevExposed["other"] = true
		prevCounts = s.Totals.Ports[aggregate.PortsTCPSYN]
	}
}
