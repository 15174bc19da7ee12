package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestContinuedReportsDoNotMerge: a report of a run continued from a checkpoint names the
// files the checkpoint counted (continued_from), the checkpoints of a chain carry them on,
// and a merge that would count a file twice through them is refused, naming the reports
// and the file: an earlier run of the chain with a later one, or two runs continued from
// states of the same run. A merge of the last run with a report of another file is not,
// and keeps the chain, so that merging it again with an earlier run is refused too.
func TestContinuedReportsDoNotMerge(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	file := func(name string, hour int) string {
		var ps []pcaptest.Packet
		for i := range 40 {
			ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(hour)*time.Hour + time.Duration(i)*time.Second),
				Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 4)}), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), DstPort: 23, Flags: 0x02})
		}
		path := filepath.Join(dir, name)
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b, c, other := file("a.pcap", 0), file("b.pcap", 1), file("c.pcap", 2), file("other.pcap", 5)
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(f, in, out string) *Report {
		col := NewEpisodes()
		p, err := New(Options{Config: cfg, Workers: 2, Sink: col})
		if err != nil {
			t.Fatal(err)
		}
		if in != "" {
			if _, err := p.RestoreState(in, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		p.SetKeepState(out != "")
		p.Replay(context.Background(), ReplayOptions{Files: []string{f}})
		if out != "" {
			if _, err := p.Checkpoint(out); err != nil {
				t.Fatal(err)
			}
		}
		return p.Report(col)
	}
	s1, s2 := filepath.Join(dir, "s1"), filepath.Join(dir, "s2")
	r1 := run(a, "", s1)
	r2 := run(b, s1, s2)
	r3 := run(c, s2, "")
	branch := run(c, s1, "") // another run continued from the first one's state
	rx := run(other, "", "")
	js := func(v any) string { x, _ := json.Marshal(v); return string(x) }
	if r1.ContinuedFrom != nil || rx.ContinuedFrom != nil {
		t.Errorf("fresh runs: continued_from %s, %s", js(r1.ContinuedFrom), js(rx.ContinuedFrom))
	}
	if r2.ContinuedFrom == nil || js(r2.ContinuedFrom.Inputs) != js(r1.Inputs) ||
		r3.ContinuedFrom == nil || js(r3.ContinuedFrom.Inputs) != js(append(r1.Inputs, r2.Inputs...)) || len(r1.Inputs) != 1 || r1.Inputs[0].Records != 40 {
		t.Fatalf("continued_from: second run %s, third %s; inputs %s, %s", js(r2.ContinuedFrom), js(r3.ContinuedFrom), js(r1.Inputs), js(r2.Inputs))
	}
	for _, tc := range []struct {
		rs   []*Report
		want string
	}{
		{[]*Report{r1, r2}, "report 2 continues (--state-in) from a state that counted input " + a + " (40 records), which report 1 counts"},
		{[]*Report{r3, rx, r1}, "report 1 continues (--state-in) from a state that counted input " + a + " (40 records), which report 3 counts"},
		{[]*Report{r3, r2}, "report 1 continues (--state-in) from a state that counted input " + b + " (40 records), which report 2 counts"},
		{[]*Report{r2, branch}, "report 1 and report 2 both continue (--state-in) from a state that counted input " + a + " (40 records)"},
	} {
		_, err := MergeReports(tc.rs)
		var ce *ContinuedInputError
		if !errors.As(err, &ce) || err.Error()[:len("merge: ")+len(tc.want)] != "merge: "+tc.want {
			t.Errorf("merge: %v\nwant: merge: %s...", err, tc.want)
		}
	}
	m, err := MergeReports([]*Report{r3, rx})
	if err != nil || m.ContinuedFrom == nil || js(m.ContinuedFrom.Inputs) != js(r3.ContinuedFrom.Inputs) {
		t.Fatalf("the last run with another file: %v, continued_from %s", err, js(m.ContinuedFrom))
	}
	_, err = MergeReports([]*Report{m, r2})
	if want := fmt.Sprintf("merge: report 1 continues (--state-in) from a state that counted input %s (40 records), which report 2 counts", b); err == nil || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("that merge with the second run: %v", err)
	}
	// The schema has the field: the third run's report and the merge validate.
	sch, err := jsonschema.NewCompiler().Compile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Report{r3, m} {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(js(r))))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("a continued report does not match the schema: %v", err)
		}
	}
	// Through JSON, as `telescope report` reads them.
	var back Report
	if err := json.Unmarshal([]byte(js(r3)), &back); err != nil {
		t.Fatal(err)
	}
	if _, err := MergeReports([]*Report{&back, r1}); err == nil {
		t.Error("the third run's report read back merged with the first run's")
	}
}

// TestContinuedFromOlderCheckpoint: a checkpoint without the "inputs" section (written
// before it existed) restores, and the report says it continued, from files unknown; one
// whose section is not a list of files is refused as corrupt.
func TestContinuedFromOlderCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	newPipeline := func() *Pipeline {
		p, err := New(Options{Config: cfg, Workers: 1, Sink: NewEpisodes()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	state := filepath.Join(dir, "state")
	if _, err := newPipeline().Checkpoint(state); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		payload []byte // nil: the section dropped
		err     string
	}{
		{"without the section", nil, ""},
		{"a JSON object", sliceBytes([]byte(`{"file":"a.pcap"}`)), `corrupt: section "inputs" is not a list of files: "{\"file\":\"a.pcap\"}"`},
		{"null", sliceBytes([]byte(`null`)), `corrupt: section "inputs" is not a list of files: "null"`},
	} {
		path := filepath.Join(dir, "edited")
		if err := os.WriteFile(path, replaceSection(t, data, "inputs", tc.payload), 0o644); err != nil {
			t.Fatal(err)
		}
		p := newPipeline()
		_, err := p.RestoreState(path, RestoreOptions{})
		if tc.err != "" {
			if err == nil || err.Error() != "state file "+path+": "+tc.err || checkpoint.KindOf(err) != checkpoint.Corrupt {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r := p.Report(nil); r.ContinuedFrom == nil || r.ContinuedFrom.Inputs == nil || len(r.ContinuedFrom.Inputs) != 0 {
			t.Errorf("%s: continued_from %+v, want an empty list of files", tc.name, r.ContinuedFrom)
		}
	}
}

// sliceBytes encodes b as checkpoint.Slice does (a section's payload).
func sliceBytes(b []byte) []byte {
	var enc checkpoint.Encoder
	checkpoint.Slice(&enc, b)
	return enc.Bytes()
}

// replaceSection returns checkpoint file data with section name's payload replaced (nil:
// the section dropped), its checksum recomputed (see checkpoint's layout).
func replaceSection(t *testing.T, data []byte, name string, payload []byte) []byte {
	t.Helper()
	hl := int(binary.LittleEndian.Uint32(data[12:]))
	out := slices.Clone(data[:16+hl+4])
	found := false
	for at := 16 + hl + 4; ; {
		nl := int(data[at])
		if nl == 0 {
			out = append(out, 0)
			break
		}
		sec := string(data[at+1 : at+1+nl])
		plen := int(binary.LittleEndian.Uint64(data[at+1+nl:]))
		end := at + 1 + nl + 8 + plen + 4
		if sec != name {
			out = append(out, data[at:end]...)
		} else if found = true; payload != nil {
			out = append(out, byte(nl))
			out = append(out, name...)
			out = binary.LittleEndian.AppendUint64(out, uint64(len(payload)))
			out = append(out, payload...)
			crc := crc32.Update(crc32.Checksum([]byte(name), crc32.MakeTable(crc32.Castagnoli)), crc32.MakeTable(crc32.Castagnoli), payload)
			out = binary.LittleEndian.AppendUint32(out, crc)
		}
		at = end
	}
	if !found {
		t.Fatalf("no section %q", name)
	}
	return out
}
