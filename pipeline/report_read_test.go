package pipeline

import (
	"strings"
	"testing"
)

// TestDecodeReportErrors: what DecodeReport refuses, with the reason, and what it reads
// past (keys of a newer version, at the top and among the detectors).
func TestDecodeReportErrors(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{`[]`, "not a JSON object (starts with [)"},
		{``, "not a JSON object (EOF)"},
		{`{"frames": "x"}`, "frames: json: cannot unmarshal string"},
		{`{"frames": 1} {}`, "data after the report's object"},
		{`{"frames": 1} x`, "after the report's object: invalid character 'x'"},
		{`{"frames": 1`, "EOF"},
		{`{"detections": null}`, "detections: not an object (<nil>)"},
		{`{"detections": {"scanner": {}}}`, "detections.scanner: not a list"},
		{`{"detections": {"scanner": [{"packets": "x"}]}}`, "detections.scanner[0]: json: cannot unmarshal string"},
	} {
		_, err := DecodeReport([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.err)
		}
	}
	r, err := DecodeReport([]byte(`{"frames": 3, "future": {"a": [1]}, "detections": {"future": [{}], "scanner": [{"packets": 7}]}, "packets": {"ipv4": {"tcp": 2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Frames != 3 || r.Packets.IPv4.TCP != 2 || len(r.Detections["scanner"]) != 1 || len(r.Detections["future"]) != 0 {
		t.Errorf("read %+v", r)
	}
	for _, d := range []string{"telnet_sweep", "hotspot"} {
		if l, ok := r.Detections[d]; !ok || l == nil {
			t.Errorf("no empty list for %s", d)
		}
	}
}
