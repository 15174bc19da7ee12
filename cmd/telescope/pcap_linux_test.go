//go:build pcap && cgo

package main

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/packet"
)

// TestLibPcapDaemon runs capture.method: pcap (the cgo build) with a filter only libpcap's
// compiler knows: every frame that passes the filter is counted once, spread over the
// workers by source exactly as the kernel fanout would.
func TestLibPcapDaemon(t *testing.T) {
	pair := netnstest.NewPair(t)
	cfg := filepath.Join(t.TempDir(), "telescope.yaml")
	writeConfig(t, cfg, "capture: {method: pcap, interface: "+pair.IfA+", workers: 2, filter: \"not udp and not ether broadcast\"}\n"+
		"web: {listen_address: \"127.0.0.1:9813\"}\n")
	d := startDaemon(t, pair.NsA, "127.0.0.1:9813", cfg)
	all := frames(t, liveTraffic(t, 1, 200))
	var kept [][]byte
	var h packet.Header
	for _, f := range all {
		packet.Decode(packet.LinkEthernet, f, &h)
		if h.Proto != packet.ProtoUDP {
			kept = append(kept, f)
		}
	}
	netnstest.NewSender(t, pair.NsB, pair.IfB).SendAll(t, all)
	want := float64(len(kept))
	d.waitFor(t, "frames counted", 15*time.Second, func() bool {
		return value(d.metrics(t), "telescope_frames_total", "result", "ip") >= want
	})
	time.Sleep(300 * time.Millisecond)
	m := d.metrics(t)
	if got := value(m, "telescope_frames_total", "result", "ip"); got != want || len(kept) == len(all) {
		t.Errorf("ip frames %v, want %v of %d sent", got, want, len(all))
	}
	for i, n := range perWorker(kept, 2) {
		if got := value(m, "telescope_worker_packets_total", "worker", strconv.Itoa(i)); got != float64(n) {
			t.Errorf("worker %d: %v frames, want %d", i, got, n)
		}
	}
	if value(m, "telescope_capture_up", "interface", pair.IfA) != 1 {
		t.Errorf("capture_up is not 1")
	}
}

// TestLibPcapFilterOnRings: in the pcap build, capture.filter for the AF_PACKET rings is
// compiled by libpcap for frames that start at the IP header.
func TestLibPcapFilterOnRings(t *testing.T) {
	pair := netnstest.NewPair(t)
	cfg := filepath.Join(t.TempDir(), "telescope.yaml")
	writeConfig(t, cfg, "capture: {interface: "+pair.IfA+", workers: 2, filter: \"tcp dst port 23\"}\n"+
		"web: {listen_address: \"127.0.0.1:9813\"}\n")
	d := startDaemon(t, pair.NsA, "127.0.0.1:9813", cfg)
	all := frames(t, liveTraffic(t, 1, 200))
	want := 0.0
	var h packet.Header
	for _, f := range all {
		packet.Decode(packet.LinkEthernet, f, &h)
		if h.Proto == packet.ProtoTCP && h.DstPort == 23 {
			want++
		}
	}
	netnstest.NewSender(t, pair.NsB, pair.IfB).SendAll(t, all)
	d.waitFor(t, "frames counted", 15*time.Second, func() bool {
		return value(d.metrics(t), "telescope_frames_total", "result", "ip") >= want
	})
	time.Sleep(300 * time.Millisecond)
	if got := value(d.metrics(t), "telescope_frames_total", "result", "ip"); got != want || want == float64(len(all)) {
		t.Errorf("ip frames %v, want %v of %d sent", got, want, len(all))
	}
}
