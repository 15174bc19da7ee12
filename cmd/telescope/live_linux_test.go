package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// liveTraffic builds Ethernet frames from many sources: SYN probes, UDP, IPv6, VLAN-tagged
// frames, ICMP errors quoting DoS victims, and one scanner that is also a Mirai-style telnet
// sweeper. first offsets the addresses so that two calls give different sources.
func liveTraffic(t *testing.T, first, sources int) []pcaptest.Packet {
	t.Helper()
	t0 := time.Now()
	var ps []pcaptest.Packet
	for s := first; s < first+sources; s++ {
		src := netip.AddrFrom4([4]byte{198, 18, byte(s >> 8), byte(s)})
		for k := 0; k <= s%5; k++ {
			p := pcaptest.Packet{TS: t0, Src: src, Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(k + s)}),
				SrcPort: 40000, DstPort: []uint16{23, 22, 445, 80, 8080}[k], Flags: 0x02}
			switch {
			case s%11 == 0:
				p.Proto, p.DstPort, p.Payload = "udp", 1900, []byte("M-SEARCH * HTTP/1.1")
			case s%13 == 0:
				p.Src = netip.MustParseAddr("2001:db8:ffff::" + strconv.FormatInt(int64(s), 16))
				p.Dst = netip.MustParseAddr("2001:db8:1::" + strconv.Itoa(k+1))
			case s%7 == 0:
				p.VLAN = 100
			case s%17 == 0:
				// A router's ICMP unreachable about a spoofed packet from the dark space to a
				// victim: the worker is chosen by the victim.
				victim := netip.AddrFrom4([4]byte{192, 0, 2, byte(s)})
				p.Proto, p.ICMPType, p.ICMPCode = "icmp", 3, 1
				p.Quote = &pcaptest.Packet{Src: p.Dst, Dst: victim, SrcPort: 80, DstPort: 1234, Flags: 0x12}
			}
			ps = append(ps, p)
		}
	}
	scanner := netip.AddrFrom4([4]byte{198, 19, byte(first >> 8), byte(first)})
	for i := 0; i < 120; i++ {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		ps = append(ps, pcaptest.Packet{TS: t0, Src: scanner, Dst: dst, SrcPort: 50000, DstPort: 23, Flags: 0x02,
			Seq: uint32(203)<<24 | 113<<8 | uint32(i)})
	}
	return ps
}

func frames(t *testing.T, ps []pcaptest.Packet) [][]byte {
	t.Helper()
	out, err := pcaptest.EthernetFrames(ps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// perWorker predicts the frames each of n workers handles: the kernel's fanout program
// picks the worker exactly as packet.WorkerIndex(AffinityKey) does.
func perWorker(fs [][]byte, n int) []int {
	counts := make([]int, n)
	var h packet.Header
	for _, f := range fs {
		packet.Decode(packet.LinkEthernet, f, &h)
		counts[packet.WorkerIndex(h.AffinityKey(), n)]++
	}
	return counts
}

// TestLiveDaemon runs `telescope run` with two workers (source tables prefaulted:
// limits.prefault) on one end of a veth pair inside a network namespace, injects known traffic at the other end with tcpreplay and with a Go
// sender, and checks through /metrics that every packet was counted exactly, by the worker
// that owns its source; then reloads (valid and invalid), deletes and re-creates the
// interface, and stops the daemonProc with SIGTERM.
func TestLiveDaemon(t *testing.T) {
	tcpreplay := requireTool(t, "tcpreplay", "tcpreplay")
	pair := netnstest.NewPair(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "telescope.yaml")
	base := "sensor: nstest\ndark_prefixes: [203.0.113.0/24, 2001:db8:1::/48]\n" +
		"capture: {interface: " + pair.IfA + ", workers: 2, ring_mb: 8}\n" +
		"web: {listen_address: \"127.0.0.1:9813\"}\n" +
		"limits: {max_sources: 100000, prefault: true}\n"
	writeConfig(t, cfgPath, base)
	d := startDaemon(t, pair.NsA, "127.0.0.1:9813", cfgPath)
	// Prefaulted source tables (50 000 slots of 360 bytes a worker; their indexes of 1 MiB
	// are on the heap) count and detect as the others do (below).
	d.waitLog(t, `"msg":"source tables' memory committed","bytes":36000000`)
	if m := d.metrics(t); value(m, "telescope_capture_up", "interface", pair.IfA) != 1 {
		t.Fatalf("capture_up is not 1 once ready")
	}

	// 1. tcpreplay a pcap into the far end, then the Go sender: every frame counted, once.
	replayed := frames(t, liveTraffic(t, 1, 300))
	pcap := filepath.Join(dir, "inject.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcaptest.NewWriter(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range replayed {
		if err := w.WriteFrame(pcaptest.Frame{TS: time.Now(), Data: fr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", pair.NsB, tcpreplay, "-q", "--topspeed", "-i", pair.IfB, pcap).CombinedOutput(); err != nil {
		t.Fatalf("tcpreplay: %v\n%s", err, out)
	}
	sent := frames(t, liveTraffic(t, 1000, 300))
	netnstest.NewSender(t, pair.NsB, pair.IfB).SendAll(t, sent)
	all := append(append([][]byte(nil), replayed...), sent...)
	want := float64(len(all))
	d.waitFor(t, "every frame counted", 15*time.Second, func() bool {
		return value(d.metrics(t), "telescope_frames_total", "result", "ip") >= want
	})
	time.Sleep(300 * time.Millisecond) // anything extra would show up by now
	m := d.metrics(t)
	if got := value(m, "telescope_frames_total", "result", "ip"); got != want {
		t.Errorf("ip frames %v, want %v", got, want)
	}
	for _, r := range []string{"non_ip", "truncated", "malformed"} {
		if got := value(m, "telescope_frames_total", "result", r); got != 0 {
			t.Errorf("%s frames %v, want 0", r, got)
		}
	}
	if got := value(m, "telescope_capture_packets_total", "interface", pair.IfA); got != want {
		t.Errorf("capture_packets_total %v, want %v", got, want)
	}
	if got := value(m, "telescope_capture_drops_total", "interface", pair.IfA, "where", "kernel"); got != 0 {
		t.Errorf("kernel drops %v", got)
	}
	split := perWorker(all, 2)
	if split[0] == 0 || split[1] == 0 {
		t.Fatalf("the traffic does not exercise both workers: %v", split)
	}
	for i, n := range split {
		if got := value(m, "telescope_worker_packets_total", "worker", strconv.Itoa(i)); got != float64(n) {
			t.Errorf("worker %d handled %v frames, want %d (all packets of each source on its worker)", i, got, n)
		}
	}
	d.waitLog(t, `"msg":"scanner detected"`)
	d.waitLog(t, `"mirai":true`)

	// 2. A valid reload (SIGHUP) changes the config without closing the sockets or
	// resetting counters: a new watched port appears.
	writeConfig(t, cfgPath, base+"metrics: {watch_ports: [23, 4242]}\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, `"msg":"config reloaded"`)
	m = d.metrics(t)
	if value(m, "telescope_config_last_reload_successful") != 1 || value(m, "telescope_frames_total", "result", "ip") != want ||
		value(m, "telescope_capture_up", "interface", pair.IfA) != 1 {
		t.Errorf("after a valid reload: reload ok %v, frames %v, capture_up %v", value(m, "telescope_config_last_reload_successful"),
			value(m, "telescope_frames_total", "result", "ip"), value(m, "telescope_capture_up", "interface", pair.IfA))
	}
	if _, body, _ := d.get("/metrics"); !strings.Contains(body, `port="4242"`) {
		t.Errorf("the reloaded watch port 4242 is not exposed")
	}

	// 3. An invalid reload (POST /-/reload) is refused; the old config keeps running.
	writeConfig(t, cfgPath, base+"detect: {scanner: {min_packets: -1}}\n")
	code, body, err := d.post("/-/reload")
	if err != nil || code != 500 || !strings.Contains(body, "min_packets") {
		t.Errorf("POST /-/reload with a bad file: %d %q %v", code, body, err)
	}
	d.waitLog(t, `"msg":"config reload failed; the running config stays"`)
	more := frames(t, liveTraffic(t, 2000, 20))
	netnstest.NewSender(t, pair.NsB, pair.IfB).SendAll(t, more)
	want += float64(len(more))
	d.waitFor(t, "frames after the failed reload", 10*time.Second, func() bool {
		return value(d.metrics(t), "telescope_frames_total", "result", "ip") == want
	})
	if value(d.metrics(t), "telescope_config_last_reload_successful") != 0 {
		t.Errorf("config_last_reload_successful is not 0 after a failed reload")
	}

	// 4. The interface disappears: capture_up goes to 0; when it is back, capture resumes
	// on the same workers and the counters continue.
	pair.Unlink(t)
	d.waitFor(t, "capture_up 0", 10*time.Second, func() bool {
		return value(d.metrics(t), "telescope_capture_up", "interface", pair.IfA) == 0
	})
	d.waitLog(t, `"msg":"capture stopped; reopening"`)
	pair.Link(t)
	d.waitFor(t, "capture_up 1 again", 40*time.Second, func() bool {
		return value(d.metrics(t), "telescope_capture_up", "interface", pair.IfA) == 1
	})
	again := frames(t, liveTraffic(t, 3000, 50))
	netnstest.NewSender(t, pair.NsB, pair.IfB).SendAll(t, again)
	want += float64(len(again))
	d.waitFor(t, "frames after the interface came back", 10*time.Second, func() bool {
		return value(d.metrics(t), "telescope_frames_total", "result", "ip") == want
	})

	// 5. SIGTERM: stop, drain, log the final totals, exit 0.
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	logs := d.logs.String()
	if !strings.Contains(logs, `"msg":"telescope stopped"`) || !strings.Contains(logs, `"ip_packets":`+strconv.Itoa(int(want))) {
		t.Errorf("no final totals with ip_packets %d in the log:\n%s", int(want), lastLine(logs))
	}
	if !strings.Contains(logs, `"msg":"scanner went quiet"`) {
		t.Errorf("open scanner episodes were not ended at shutdown")
	}
}
