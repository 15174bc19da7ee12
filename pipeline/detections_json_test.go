package pipeline

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/detect"
)

// TestDetectionsUnmarshal: each detector's list is read into its own entry type as it is
// decoded; a detector this build does not know is skipped, a null list is empty, every
// known detector has a list, and a bad list or entry is named.
func TestDetectionsUnmarshal(t *testing.T) {
	var d Detections
	in := `{"future_detector": [{"x": [1, {"y": 2}]}], "scanner": [{"src": "192.0.2.1", "packets": 5},
		{"src": "192.0.2.2", "packets": 7}], "hotspot": null}`
	if err := json.Unmarshal([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	sc := EntriesOf[*detect.ScannerEntry](d, "scanner")
	if len(sc) != 2 || sc[0].Src != "192.0.2.1" || sc[0].Packets != 5 || sc[1].Src != "192.0.2.2" || sc[1].Packets != 7 {
		t.Errorf("scanner entries %+v", sc)
	}
	if _, ok := d["future_detector"]; ok {
		t.Error("an unknown detector's list was kept")
	}
	for _, desc := range detect.Descriptors() {
		if l, ok := d[desc.ReportKey]; !ok || l == nil {
			t.Errorf("%s: no list", desc.ReportKey)
		}
	}
	if len(d["hotspot"]) != 0 {
		t.Errorf("hotspot: %d entries from null", len(d["hotspot"]))
	}
	for in, want := range map[string]string{
		`{"scanner": 5}`:                           "detections.scanner: not a list",
		`{"scanner": [{"packets": "many"}]}`:       "detections.scanner[0]: json: cannot unmarshal string",
		`{"scanner": [{}, {"src": 1}]}`:            "detections.scanner[1]: ",
		`["scanner"]`:                              "detections: not an object",
		`{"hotspot": [], "scanner": [{}], "x": 1}`: "",
	} {
		var d Detections
		err := json.Unmarshal([]byte(in), &d)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
