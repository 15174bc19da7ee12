package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/internal/mmdbtest"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestWhoLabelsEndToEnd: replay with a known-scanners list and built GeoIP databases; the
// report's top sources and the telnet sweep carry the labels, the exposition the label
// series, the logs the fields.
func TestWhoLabelsEndToEnd(t *testing.T) {
	pcap, _ := smallCapture(t)
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(known, []byte("192.0.2.0/28 Example Research Scanner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	country := mmdbtest.Country(t, dir, map[string]string{"192.0.2.0/24": "UA"})
	asn := mmdbtest.ASN(t, dir, map[string]mmdbtest.AS{"192.0.2.0/24": {Number: 64496, Org: "Example AS"}})
	cfg := filepath.Join(dir, "t.yaml")
	y := "dark_prefixes: [203.0.113.0/24]\nenrich: {known_scanners: " + known + ", geoip_country: " + country + ", geoip_asn: " + asn + "}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	report, expo := filepath.Join(dir, "report.json"), filepath.Join(dir, "final.prom")
	code, _, stderr := telescope(t, "replay", "--config", cfg, pcap, "--report", report, "--metrics-out", expo)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r pipeline.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	top := r.Sources.Top[0]
	if top.Addr != "192.0.2.10" || top.Org != "Example Research Scanner" || top.Country != "UA" || top.ASN != 64496 || top.Technique != "syn" {
		t.Errorf("top source %+v", top)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || strings.TrimSpace(string(raw["groups"])) != "[]" {
		t.Errorf("report groups %q, want an empty list", raw["groups"])
	}
	if !strings.Contains(stderr, `"event":"telnet_sweep"`) || !strings.Contains(stderr, `"org":"Example Research Scanner"`) || !strings.Contains(stderr, `"as_name":"Example AS"`) {
		t.Errorf("log lines lack the labels:\n%s", stderr)
	}
	e, err := os.ReadFile(expo)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`telescope_scan_technique_packets_total{sensor="",technique="syn"} 40`,
		`telescope_scan_technique_packets_total{sensor="",technique="udp"} 1`,
		`telescope_known_scanner_packets_total{org="Example Research Scanner",sensor=""} 0`,
		`telescope_known_scanner_detections_total{detector="telnet_sweep",org="Example Research Scanner",sensor=""} 1`,
	} {
		if !strings.Contains(string(e), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

func TestWhoBadFiles(t *testing.T) {
	pcap, _ := smallCapture(t)
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(known, []byte("# list\n192.0.2.1/24 Somebody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(cfg, []byte("enrich: {known_scanners: "+known+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := known + ":2: 192.0.2.1/24 has host bits set"
	code, _, stderr := telescope(t, "check-config", cfg)
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("check-config: exit %d, stderr %q, want one line with %q", code, stderr, want)
	}
	code, _, stderr = telescope(t, "replay", "--config", cfg, pcap, "--report", filepath.Join(dir, "r.json"))
	if code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("replay: exit %d, stderr %q", code, stderr)
	}
	if err := os.WriteFile(cfg, []byte("enrich: {geoip_asn: "+filepath.Join(dir, "none.mmdb")+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = telescope(t, "replay", "--config", cfg, pcap, "--report", filepath.Join(dir, "r.json"))
	if code == 0 || !strings.Contains(stderr, "geoip ASN database "+filepath.Join(dir, "none.mmdb")) || strings.Contains(stderr, "panic") {
		t.Errorf("replay with a missing database: exit %d, stderr %q", code, stderr)
	}
}
