package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/netnstest"
)

// selfScrapeFor is how long TestDefaultDaemonCountsNothingOfItsOwn scrapes: a minute of
// scrapes 100 ms apart (~500, on loopback and over the veth), as issue 9 asks. It costs wall
// time, not CPU; -short cuts it to 10 s.
const selfScrapeFor = time.Minute

// TestDefaultDaemonCountsNothingOfItsOwn runs the daemon with the embedded default config
// (interface any, no dark prefixes) in a namespace with an address on a veth, scrapes it
// every 100 ms on loopback and, from the peer namespace, on the veth address: no packet may
// count as dark (loopback and what the host sends are never captured, its own address is
// not dark), no detection may start, and the startup warning must say that no dark prefix
// is configured.
func TestDefaultDaemonCountsNothingOfItsOwn(t *testing.T) {
	pair := netnstest.NewPair(t)
	netnstest.IP(t, "-n", pair.NsA, "addr", "add", "10.99.0.1/24", "dev", pair.IfA)
	netnstest.IP(t, "-n", pair.NsB, "addr", "add", "10.99.0.2/24", "dev", pair.IfB)
	cfg := filepath.Join(t.TempDir(), "telescope.yaml")
	writeConfig(t, cfg, string(configs.DefaultYAML))
	d := startDaemon(t, pair.NsA, "127.0.0.1:9813", cfg)
	d.waitLog(t, "no dark prefixes configured")
	d.waitLog(t, "10.99.0.1") // the host addresses were published

	remote := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, a string) (net.Conn, error) {
			return netnstest.Dial(pair.NsB, network, a)
		},
	}}
	scrapeFor := selfScrapeFor
	if testing.Short() {
		scrapeFor = 10 * time.Second
	}
	scrapes := 0
	scrape := func(remoteToo bool, until time.Time) {
		for ; time.Now().Before(until); scrapes++ {
			if !remoteToo || scrapes%2 == 0 {
				d.metrics(t)
			} else {
				resp, err := remote.Get("http://10.99.0.1:9813/metrics")
				if err != nil {
					t.Fatalf("scrape over the veth: %v", err)
				}
				resp.Body.Close()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Loopback only: nothing may be captured at all (not even as "not dark").
	scrape(false, time.Now().Add(scrapeFor/2))
	if n := value(d.metrics(t), "telescope_frames_total", "result", "ip"); n != 0 {
		t.Errorf("%v IP frames captured while the daemon was only scraped on loopback", n)
	}
	// Then over the veth too: seen, but to the host's own address, so not dark.
	scrape(true, time.Now().Add(scrapeFor/2))
	mfs := d.metrics(t)
	dark := value(mfs, "telescope_prefix_packets_total", "prefix", "0.0.0.0/0") +
		value(mfs, "telescope_prefix_packets_total", "prefix", "::/0")
	notDark := value(mfs, "telescope_prefix_packets_total", "prefix", "not_dark")
	var detections float64
	for _, m := range mfs["telescope_detections_total"].GetMetric() {
		detections += m.GetCounter().GetValue()
	}
	t.Logf("%d scrapes: dark packets %v, not dark %v (the veth scrapes to the host's address), detections %v",
		scrapes, dark, notDark, detections)
	if dark != 0 {
		t.Errorf("%v packets of the daemon's own traffic counted as dark", dark)
	}
	if notDark == 0 {
		t.Errorf("no packet to the host's own address seen: the capture saw nothing, the test proves nothing")
	}
	if detections != 0 {
		t.Errorf("%v detections started", detections)
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(line, `"event"`) || strings.Contains(line, "detected") {
			t.Errorf("detection logged: %s", line)
		}
	}
}
