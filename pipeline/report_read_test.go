package pipeline

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
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
		// The detections' own scanner (jsonRun): whitespace between two values is kept,
		// brackets and commas are checked, the rest goes to a decoder of its own.
		{`{"detections": {"scanner": [{"packets": 1 2}]}}`, "detections.scanner[0]: invalid character"},
		{`{"detections": {"scanner": [{"packets": 1} {"packets": 2}]}}`, "detections.scanner[1]: invalid character '{' after an element"},
		{`{"detections": {"scanner": [{"packets": 1}`, "detections.scanner[1]: unexpected EOF"},
		{`{"detections": {"scanner": [{"packets": 1}]]}}`, "detections: invalid character ']' after an element"},
		{`{"detections": {"scanner": [1]}}`, "detections.scanner[0]: json: cannot unmarshal number"},
		{`{"detections": {"scanner": []} "frames": 1}`, "invalid character '\"' after object key:value pair"},
		{`{"detections" {}}`, "detections: invalid character '{', want ':'"},
		{`{"detections": {scanner: []}}`, "detections: a key: invalid character 's'"},
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
	// A brace in a string, the members after the detections, whitespace anywhere JSON
	// allows it.
	r2, err := DecodeReport([]byte("{\"detections\" :\n{ \"scanner\"\t:[ { \"src\" : \"a}]\\\"\" , \"packets\":7 } ,{}\r] } , \"frames\" : 2 }"))
	if err != nil {
		t.Fatal(err)
	}
	if l := EntriesOf[*detect.ScannerEntry](r2.Detections, "scanner"); r2.Frames != 2 || len(l) != 2 || l[0].Src != "a}]\"" || l[0].Packets != 7 {
		t.Errorf("read %+v", r2)
	}
	for _, d := range []string{"telnet_sweep", "hotspot"} {
		if l, ok := r.Detections[d]; !ok || l == nil {
			t.Errorf("no empty list for %s", d)
		}
	}
}

// TestDecodeReportAsUnmarshal: a report of every detector read by DecodeReport (the
// detections through jsonRun) is the report json.Unmarshal reads, compact, indented and
// with whitespace added around every structural character.
func TestDecodeReportAsUnmarshal(t *testing.T) {
	whole, _ := dayParts(t, 5, 2*time.Hour)
	r := replayJSONReport(t, parseConfig(t, ""), whole)
	for _, key := range []string{"scanner", "tools", "udp_then_syn", "telnet_sweep"} {
		if len(r.Detections[key]) == 0 {
			t.Fatalf("no %s episodes: the comparison would prove little", key)
		}
	}
	compact, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var spaced []byte
	inStr, esc := false, false
	for _, c := range compact {
		spaced = append(spaced, c)
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case strings.IndexByte("{}[],:", c) >= 0:
			for range rng.IntN(3) {
				spaced = append(spaced, " \t\n\r"[rng.IntN(4)])
			}
		}
	}
	for name, b := range map[string][]byte{"compact": compact, "indented": indented, "spaced": spaced} {
		got, err := DecodeReport(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want Report
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: DecodeReport's report differs from json.Unmarshal's", name)
		}
	}
}

// FuzzDecodeReport: DecodeReport never panics, and takes only JSON (its detections are
// read by jsonRun, which checks brackets and leaves the rest to the entries' parsers).
func FuzzDecodeReport(f *testing.F) {
	for _, s := range []string{
		`{"frames": 1, "detections": {"scanner": [{"src": "192.0.2.1", "packets": 7}], "future": [1, {"a": [2]}]}, "groups": []}`,
		`{"detections": {"tools": [{"src":"192.0.2.9","tool":"mirai","packets":1,"syn_probes":1,"first_seen":"2024-05-01T00:00:00Z","last_seen":"2024-05-01T00:00:00Z"}]}, "frames": 2}`,
		`{"detections": {"scanner": null, "udp_then_syn": []}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeReport(b); err == nil && !json.Valid(b) {
			t.Errorf("DecodeReport took %q, which is not JSON", b)
		}
	})
}
