package pipeline

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/snapshot"
)

// TestSnapshotOfReplay replays the capture that metrics' hand-built fixture describes and
// checks the snapshot holds the same values: the collector's tests run on the fixture, so
// this ties the fixture to what the pipeline really produces.
func TestSnapshotOfReplay(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr
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
	p, err := New(Options{Config: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	s := p.Snapshot()
	tt := s.Totals
	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}
	check("tcp4 packets", tt.Packets[0][aggregate.IdxTCP], 32)
	check("tcp4 bytes", tt.Bytes[0][aggregate.IdxTCP], 1920)
	check("udp4 packets", tt.Packets[0][aggregate.IdxUDP], 3)
	check("tcp6 bytes", tt.Bytes[1][aggregate.IdxTCP], 74)
	check("SYN to 23", tt.Ports[aggregate.PortsTCPSYN][23], 30)
	check("UDP to 1900", tt.Ports[aggregate.PortsUDP][1900], 3)
	check("not dark", s.NotDark, 1)
	want := []snapshot.NamedCount{{Name: "203.0.113.0/24", Count: 34}, {Name: "2001:db8:1::/48", Count: 1}}
	if len(s.Prefixes) != 2 || s.Prefixes[0] != want[0] || s.Prefixes[1] != want[1] {
		t.Errorf("prefixes %+v, want %+v", s.Prefixes, want)
	}
	h := s.SourcesPerWindow
	check("histogram count", h.Count, 5)
	check("histogram sum", h.Sum, 36)
	check("histogram le 1", h.Counts[0], 3)
	if s.Window == nil || s.Window.Unique != 2 || len(s.Window.Top) != 2 {
		t.Errorf("last window %+v", s.Window)
	}
	if len(s.WorkerFrames) != 2 || s.WorkerFrames[0]+s.WorkerFrames[1] != 36 {
		t.Errorf("worker frames %v", s.WorkerFrames)
	}
	started := map[string]uint64{}
	for _, d := range s.Detectors {
		for _, c := range d.Started {
			started[d.Name+"/"+c.Name] += c.Count
		}
	}
	for k, n := range map[string]uint64{"scanner/horizontal": 1, "telnet_sweep/mirai": 1, "fingerprint/mirai": 1, "backscatter/syn_ack": 0} {
		check("started "+k, started[k], n)
	}
	if len(s.WatchedPortScanners) != 2 || s.WatchedPortScanners[0] != (snapshot.PortEpisodes{Port: 23, Episodes: 1}) {
		t.Errorf("watched port scanners %+v", s.WatchedPortScanners)
	}
	if len(s.Captures) != 1 || s.Captures[0].Interface != "replay" || s.Captures[0].Packets != 36 {
		t.Errorf("captures %+v", s.Captures)
	}
	check("tracked", uint64(s.Tracked), 7)
}
