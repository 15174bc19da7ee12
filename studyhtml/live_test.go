package studyhtml

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testOverview is a hand-built snapshot of a running daemon.
func testOverview() Overview {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return Overview{
		Sensor: "lab-1", Version: "test", Now: t0.Add(7 * time.Minute), LastPacket: t0.Add(7 * time.Minute),
		Packets:          map[string]uint64{"tcp": 900000, "udp": 90000, "icmp": 9000, "other": 12},
		TCPFlags:         map[string]uint64{"SYN": 850000, "SYN-ACK": 30000, "RST": 15000, "SYN-ECE-CWR": 4000, "FIN-SYN-RST-PSH-ACK-URG": 1},
		TopSYNPorts:      []PortCount{{23, 400000}, {52869, 100000}, {8545, 80000}, {22, 60000}, {445, 50000}},
		TopUDPPorts:      []PortCount{{6881, 40000}, {1900, 20000}, {53, 9000}},
		Current:          Window{Start: t0.Add(5 * time.Minute), End: t0.Add(10 * time.Minute), Packets: 1200, Sources: 300, TopSources: []SourceCount{{"192.0.2.9", 400}}},
		Last:             Window{Start: t0, End: t0.Add(5 * time.Minute), Packets: 9100, Sources: 812, TopSources: []SourceCount{{"192.0.2.1", 3000}, {"198.51.100.7", 1200}}},
		ActiveDetections: map[string]int64{"scanner": 12, "telnet_sweep": 4, "backscatter": 1},
		DetectionsTotal:  map[string]uint64{"scanner": 120, "telnet_sweep": 40, "backscatter": 3, "fingerprint": 9},
		Captures:         []Capture{{Interface: "eth1", Up: true, Packets: 999012, KernelDrops: 3}, {Interface: "eth2", Up: false}},
		Tracked:          4321,
	}
}

func TestLiveHandler(t *testing.T) {
	calls := 0
	h := LiveHandler(func() Overview { calls++; return testOverview() }, 10*time.Second)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if calls != 1 {
		t.Errorf("provider called %d times", calls)
	}
	if !strings.Contains(page, `http-equiv="refresh" content="10"`) {
		t.Error("no refresh")
	}
	for _, id := range []string{"live-active", "live-syn-ports", "live-udp-ports", "live-flags"} {
		f := figureHTML(t, page, id)
		if strings.Contains(f, "No data") || !strings.Contains(f, `<rect class="bar"`) || !strings.Contains(f, `class="axlabel"`) {
			t.Errorf("%s: no bars or no axis label", id)
		}
	}
	for _, want := range []string{"eth1", "DOWN", "52869", "192.0.2.1", "lab-1", "FIN-SYN-RST-PSH-ACK-URG"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if m := remoteRef.FindString(page); m != "" {
		t.Errorf("remote reference %q", m)
	}
	for _, path := range []string{"/nope", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", resp.StatusCode)
	}
}

// TestLiveEmpty: a daemon that has seen nothing shows no-data notices, not empty axes.
func TestLiveEmpty(t *testing.T) {
	var b strings.Builder
	if err := RenderLive(&b, Overview{Now: time.Unix(0, 0)}, 5); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `<rect class="bar"`) {
		t.Error("bars drawn without data")
	}
	if n := strings.Count(b.String(), `class="nodata"`); n < 4 {
		t.Errorf("%d no-data notices", n)
	}
}
