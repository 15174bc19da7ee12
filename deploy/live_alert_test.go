//go:build linux

package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// liveConfig is the daemon's config in TestLiveAlerts: short windows so that a surge and a
// backscatter attack start and end within seconds. Everything else keeps its default.
const liveConfig = `sensor: live
dark_prefixes: [203.0.113.0/24]
window: 3s
capture: {interface: %s, workers: 2, ring_mb: 4}
detect:
  telnet: {surge_bucket: 1s, surge_factor: 3, surge_min_sources: 20}
  backscatter: {min_packets: 10, min_duration: 2s, min_rate_per_minute: 10}
web: {listen_address: "%s"}
`

// liveListen is the daemon's listen address inside its namespace.
const liveListen = "127.0.0.1:9813"

// forward listens on root-namespace loopback and copies each connection to addr inside
// namespace ns, so that Prometheus scrapes the daemon without either leaving loopback.
func forward(t *testing.T, ns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := netnstest.Dial(ns, "tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				track(c, true)
				track(up, true)
				defer track(c, false)
				defer track(up, false)
				done := make(chan struct{})
				go func() { _, _ = io.Copy(up, c); up.Close(); close(done) }()
				_, _ = io.Copy(c, up)
				c.Close()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// injector sends a batch of frames every 100 ms from its own goroutine until stopped.
type injector struct {
	stop chan struct{}
	done chan error
}

func inject(t *testing.T, s *netnstest.Sender, batch [][]byte) *injector {
	t.Helper()
	in := &injector{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, f := range batch {
				if err := s.Send(f); err != nil {
					in.done <- err
					return
				}
			}
			select {
			case <-in.stop:
				in.done <- nil
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { in.end(t) })
	return in
}

// end stops the injector (once) and fails the test on a send error.
func (in *injector) end(t *testing.T) {
	t.Helper()
	select {
	case <-in.stop:
		return
	default:
	}
	close(in.stop)
	if err := <-in.done; err != nil {
		t.Errorf("inject: %v", err)
	}
}

func ethFrames(t *testing.T, ps []pcaptest.Packet) [][]byte {
	t.Helper()
	out, err := pcaptest.EthernetFrames(ps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// telnetSYNs: n sources (198.18.hi.0 …) each sending one SYN to TCP/23 of a dark address.
func telnetSYNs(t *testing.T, hi byte, n int) [][]byte {
	var ps []pcaptest.Packet
	for i := range n {
		ps = append(ps, pcaptest.Packet{
			Src: netip.AddrFrom4([4]byte{198, 18, hi, byte(i)}), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}),
			SrcPort: uint16(40000 + i), DstPort: 23, Flags: 0x02, Seq: uint32(1000 + i),
		})
	}
	return ethFrames(t, ps)
}

// firingInProm reports whether Prometheus holds alert name in state firing for sensor.
func firingInProm(t *testing.T, prom, name, sensor string) bool {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/alerts")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		return false
	}
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name && a.Labels["sensor"] == sensor && a.State == "firing" {
			return true
		}
	}
	return false
}

// TestLiveAlerts: a live `telescope run` daemon captures on a veth end inside a network
// namespace, with sensor "live" and short windows; Debian's Prometheus (the shipped rule file,
// unmodified) scrapes it through a loopback forwarder and alerts through Alertmanager (the
// shipped route) to a webhook. Injected frames: a quiet telnet baseline, then a surge of
// distinct sources to TCP/23 — TelescopeTelnetSurge fires in Prometheus and at the webhook
// with sensor="live", and resolves once the injection stops; then a DoS victim's SYN-ACKs to
// many dark addresses — TelescopeBackscatter fires and resolves likewise.
func TestLiveAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	netnstest.Require(t)
	prometheus := requireTool(t, "prometheus", "prometheus")
	alertmanager := requireTool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	bin := telescopeBinary(t)
	dir := t.TempDir()
	const sensor = "live"
	t0 := time.Now()
	mark := func(what string) { t.Logf("%5.1fs %s", time.Since(t0).Seconds(), what) }

	pair := netnstest.NewPair(t)
	cfg := filepath.Join(dir, "live.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, liveConfig, pair.IfA, liveListen), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "ip", "netns", "exec", pair.NsA, bin, "run", "--config", cfg)
	target := forward(t, pair.NsA, liveListen)
	waitFor(t, "the live daemon ready", 30*time.Second, func() bool { return httpOK("http://" + target + "/-/ready") })

	hook := &webhook{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	amAddr := startAlertmanager(t, alertmanager, dir, hs.URL+"/hook")
	rules, err := filepath.Abs("prometheus/telescope-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, prometheus, dir, amAddr, map[string]string{sensor: target}, rules)
	waitFor(t, "the live sensor scraped", 30*time.Second, func() bool {
		r, err := query(t, prom, `telescope_capture_up{sensor="live"} == 1`)
		return err == nil && len(r) == 1
	})

	mark("daemon, Alertmanager and Prometheus up; the sensor scraped")
	send := netnstest.NewSender(t, pair.NsB, pair.IfB)
	const surgeAlert, bsAlert = "TelescopeTelnetSurge", "TelescopeBackscatter"

	// 1. A quiet telnet baseline: 3 sources per bucket, seen by the daemon and by Prometheus,
	// no surge.
	base := inject(t, send, telnetSYNs(t, 0, 3))
	waitFor(t, "the baseline's telnet sources in Prometheus", 30*time.Second, func() bool {
		r, err := query(t, prom, `telescope_telnet_sources{sensor="live"} == 3`)
		return err == nil && len(r) == 1
	})
	time.Sleep(3 * time.Second) // a few more baseline buckets
	if firingInProm(t, prom, surgeAlert, sensor) {
		t.Fatalf("%s fires on a baseline of 3 telnet sources", surgeAlert)
	}
	base.end(t)
	mark("baseline injected, no surge")

	// 2. The surge: 60 distinct sources per bucket. The alert fires, reaches the webhook, and
	// resolves after the injection stops.
	// cycle injects frames until alert fires in Prometheus and reaches the webhook (not
	// resolved while the traffic lasts), stops, and waits for its resolution at the webhook.
	cycle := func(alert string, frames [][]byte) {
		t.Helper()
		inj := inject(t, send, frames)
		waitFor(t, alert+" firing in Prometheus", 30*time.Second, func() bool { return firingInProm(t, prom, alert, sensor) })
		waitFor(t, alert+" firing at the webhook", 30*time.Second, func() bool { return hook.has("firing", alert, sensor) })
		mark(alert + " firing")
		if hook.has("resolved", alert, sensor) {
			t.Fatalf("%s resolved while its traffic was still being injected", alert)
		}
		inj.end(t)
		waitFor(t, alert+" resolved at the webhook", 30*time.Second, func() bool { return hook.has("resolved", alert, sensor) })
		mark(alert + " resolved")
		if firingInProm(t, prom, alert, sensor) {
			t.Errorf("%s still firing in Prometheus after its resolution was notified", alert)
		}
	}
	cycle(surgeAlert, telnetSYNs(t, 1, 60))
	if hook.has("firing", bsAlert, sensor) || firingInProm(t, prom, bsAlert, sensor) {
		t.Fatalf("%s fired on telnet SYNs, before any backscatter", bsAlert)
	}

	// 3. Backscatter: a victim's SYN-ACKs to 50 dark addresses per 100 ms (500/s). The attack
	// qualifies after min_duration (2s) and ends a window (3s) after the last reply.
	victim := netip.MustParseAddr("198.51.100.7")
	var ps []pcaptest.Packet
	for i := range 50 {
		ps = append(ps, pcaptest.Packet{Src: victim, Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}),
			SrcPort: 80, DstPort: uint16(1024 + i), Flags: 0x12, Seq: uint32(i)})
	}
	cycle(bsAlert, ethFrames(t, ps))
	if firingInProm(t, prom, surgeAlert, sensor) {
		t.Errorf("%s fired again on backscatter", surgeAlert)
	}
}
