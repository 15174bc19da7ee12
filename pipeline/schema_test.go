package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

const schemaPath = "../docs/report.schema.json"

// TestReportMatchesSchema validates the report of a generated day (every detector has
// episodes in it) and of an empty input against docs/report.schema.json, and checks the
// schema lists exactly the detectors' report keys.
func TestReportMatchesSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}

	path := filepath.Join(t.TempDir(), "day.pcap")
	if _, err := daygen.WriteFile(path, daygen.Options{Seed: 3, Scale: 0.05}); err != nil {
		t.Fatal(err)
	}
	// A SYN flood on one address after the day, for a hotspot episode.
	flood := filepath.Join(t.TempDir(), "flood.pcap")
	if err := pcaptest.WriteFile(flood, hotShapes[0].packets(false)); err != nil {
		t.Fatal(err)
	}
	// And a file that is missing: an input with an error and no packet times.
	missing := filepath.Join(t.TempDir(), "missing.pcap")
	for _, files := range [][]string{{path, flood, missing}, nil} {
		eps := NewEpisodes()
		p, err := New(Options{Config: configs.Default(), Workers: 2, Sink: eps})
		if err != nil {
			t.Fatal(err)
		}
		o := ReplayOptions{Files: files}
		if files != nil { // a filter that rejects a few packets: the report's filter is checked too
			raw, err := filter.Compile("not port 22", 256)
			if err != nil {
				t.Fatal(err)
			}
			if o.Filter, err = filter.NewProgram(raw); err != nil {
				t.Fatal(err)
			}
			o.Filter.Expr = "not port 22"
		}
		p.Replay(context.Background(), o)
		b, err := json.Marshal(p.Report(eps))
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("report of %v does not match the schema: %v", files, err)
		}
		if files != nil {
			var r Report
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			// telescope report reads it with DecodeReport: the same report.
			if d, err := DecodeReport(b); err != nil || !reflect.DeepEqual(*d, r) {
				t.Errorf("DecodeReport differs from json.Unmarshal (%v)", err)
			}
			if r.Filter == nil || r.Filter.Expression != "not port 22" || r.Filter.FilteredOut == 0 {
				t.Errorf("report filter %+v, want not port 22 and the packets it rejected", r.Filter)
			}
			for _, d := range detect.Descriptors() {
				if d.Name != detect.TelnetSurge && len(r.Detections[d.ReportKey]) == 0 {
					t.Errorf("the generated day has no %s episode: the schema check of its entries proves nothing", d.Name)
				}
			}
		}
	}

	var doc struct {
		Properties struct {
			Detections struct {
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"detections"`
		} `json:"properties"`
	}
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var keys, props []string
	for _, d := range detect.Descriptors() {
		keys = append(keys, d.ReportKey)
	}
	for k := range doc.Properties.Detections.Properties {
		props = append(props, k)
	}
	req := append([]string(nil), doc.Properties.Detections.Required...)
	sort.Strings(keys)
	sort.Strings(props)
	sort.Strings(req)
	if !equal(keys, props) || !equal(keys, req) {
		t.Errorf("schema detections %v (required %v), descriptors %v", props, req, keys)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
