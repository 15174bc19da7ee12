package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
)

// TestChainedReportsMerge: a generated day replayed in three runs chained through
// checkpoints (--state-out, --state-in). Each continued run's report names the files its
// state counted (continued_from), and merging the three reports, in any order, gives the
// report of one run over the whole day: counters, series, top lists, distributions,
// unique counts, receiver distribution and episodes (the earlier runs' lists come out:
// the last run's hold them). Two runs continued from one state (branches) are refused,
// naming both and the file. A merge of part of the chain continues from the files it
// lacks, and the merge of that merge with them is the whole again.
func TestChainedReportsMerge(t *testing.T) {
	whole, parts := dayParts(t, 7, 3*time.Hour, time.Hour+7*time.Minute, 2*time.Hour+3*time.Minute)
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
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
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{f}}); len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
		if out != "" {
			if _, err := p.Checkpoint(out); err != nil {
				t.Fatal(err)
			}
		}
		return throughJSON(t, p.Report(col))
	}
	s1, s2 := filepath.Join(dir, "s1"), filepath.Join(dir, "s2")
	w := run(whole, "", "")
	r1 := run(parts[0], "", s1)
	r2 := run(parts[1], s1, s2)
	r3 := run(parts[2], s2, "")
	branch := run(parts[2], s1, "") // another run continued from the first one's state
	js := func(v any) string { x, _ := json.Marshal(v); return string(x) }
	if r1.ContinuedFrom != nil || w.ContinuedFrom != nil {
		t.Errorf("fresh runs: continued_from %s, %s", js(r1.ContinuedFrom), js(w.ContinuedFrom))
	}
	if r2.ContinuedFrom == nil || js(r2.ContinuedFrom.Inputs) != js(r1.Inputs) ||
		r3.ContinuedFrom == nil || js(r3.ContinuedFrom.Inputs) != js(append(slices.Clone(r1.Inputs), r2.Inputs...)) || r1.Frames == 0 || r2.Frames == 0 {
		t.Fatalf("continued_from: second run %s, third %s; inputs %s, %s", js(r2.ContinuedFrom), js(r3.ContinuedFrom), js(r1.Inputs), js(r2.Inputs))
	}
	// What a report says of the traffic, but for where it was read from.
	type view struct {
		Frames          uint64
		Packets, Flags  any
		SrcU, DstU      uint64
		SrcTop, DstTop  []AddrCount
		Dist            *Distributions
		Series          *Series
		Receivers       ReceiverDistribution
		Groups          []Group
		Episodes        map[string][]string // each detector's entries, as JSON, sorted
		ContinuedInputs int
	}
	see := func(r *Report) string {
		v := view{Frames: r.Frames, Packets: r.Packets, Flags: r.TCPFlags,
			SrcU: r.Sources.Unique, DstU: r.Destinations.Unique, SrcTop: r.Sources.Top, DstTop: addrPackets(r.Destinations.Top),
			Dist: r.Distributions, Series: r.Series, Receivers: r.Receivers, Groups: r.Groups, Episodes: map[string][]string{}, ContinuedInputs: -1}
		for key, es := range r.Detections {
			for _, e := range es {
				v.Episodes[key] = append(v.Episodes[key], js(e))
			}
			slices.Sort(v.Episodes[key])
		}
		if r.ContinuedFrom != nil {
			v.ContinuedInputs = len(r.ContinuedFrom.Inputs)
		}
		return js(v)
	}
	// differs names the fields of two views that differ.
	differs := func(got, want string) []string {
		var a, b map[string]json.RawMessage
		if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
			t.Fatal("views do not read back")
		}
		var out []string
		for k := range b {
			if string(a[k]) != string(b[k]) {
				out = append(out, fmt.Sprintf("%s: %.300s, want %.300s", k, a[k], b[k]))
			}
		}
		slices.Sort(out)
		return out
	}
	want := see(w)
	// The ports are exact per run and listed to the 100th: merged, a port's count is
	// short of the whole day's by at most the sum of the runs' 100th entries (the merge's
	// top-list bound, see TestMergeHalves); the busiest are the whole day's.
	samePorts := func(m *Report) {
		for i, lists := range [][][]PortCount{
			{w.DstPorts.TCPSYN, m.DstPorts.TCPSYN, r1.DstPorts.TCPSYN, r2.DstPorts.TCPSYN, r3.DstPorts.TCPSYN},
			{w.DstPorts.UDP, m.DstPorts.UDP, r1.DstPorts.UDP, r2.DstPorts.UDP, r3.DstPorts.UDP},
		} {
			var bound uint64
			for _, l := range lists[2:] {
				if len(l) == reportTop {
					bound += l[len(l)-1].Packets
				}
			}
			whole := map[uint16]uint64{}
			for _, pc := range lists[0] {
				whole[pc.Port] = pc.Packets
			}
			for _, pc := range lists[1] {
				if wc, ok := whole[pc.Port]; ok && (pc.Packets > wc || pc.Packets+bound < wc) {
					t.Errorf("ports %d: port %d has %d packets merged, %d in the whole day (bound %d)", i, pc.Port, pc.Packets, wc, bound)
				}
			}
			if n := min(len(lists[0]), 20); js(lists[1][:n]) != js(lists[0][:n]) {
				t.Errorf("ports %d: the busiest merged %s, whole %s", i, js(lists[1][:n]), js(lists[0][:n]))
			}
		}
	}
	for _, rs := range [][]*Report{{r1, r2, r3}, {r3, r1, r2}, {r2, r3, r1}} {
		m, err := MergeReports(rs)
		if err != nil {
			t.Fatal(err)
		}
		if d := differs(see(m), want); len(d) > 0 {
			t.Errorf("the chain merged differs from the whole day:\n%s", strings.Join(d, "\n"))
		}
		samePorts(m)
		if !slices.Contains(m.Merged.Notes, noteChain) {
			t.Errorf("notes %q", m.Merged.Notes)
		}
	}
	// The last run's report alone has the whole day's lists already; merged as if
	// unrelated, the first two runs' lists would have counted twice.
	if js(addrPackets(r3.Destinations.Top)) != js(addrPackets(w.Destinations.Top)) {
		t.Errorf("the last run's top destinations %s, the whole day's %s", js(addrPackets(r3.Destinations.Top[:3])), js(addrPackets(w.Destinations.Top[:3])))
	}
	// Branches.
	_, err = MergeReports([]*Report{r2, branch})
	if msg := "merge: report 1 and report 2 both continue (--state-in) from a state that counted input " + parts[0] + fmt.Sprintf(" (%d records), and neither continues the other", r1.Inputs[0].Records); err == nil || !strings.HasPrefix(err.Error(), msg) {
		t.Errorf("two branches of a chain: %v\nwant %s...", err, msg)
	}
	var ce *ContinuedInputError
	if !errors.As(err, &ce) || ce.A != 0 || ce.B != 1 {
		t.Errorf("two branches of a chain: %#v", err)
	}
	// Part of the chain: the second and third runs continue from the first file, which
	// their counters lack; merged with the first run's report, the whole day.
	m23, err := MergeReports([]*Report{r2, r3})
	if err != nil || m23.ContinuedFrom == nil || js(m23.ContinuedFrom.Inputs) != js(r1.Inputs) || m23.Frames != r2.Frames+r3.Frames {
		t.Fatalf("the last two runs: %v, continued_from %s", err, js(m23.ContinuedFrom))
	}
	m, err := MergeReports([]*Report{m23, r1})
	if err != nil {
		t.Fatal(err)
	}
	if d := differs(see(m), want); len(d) > 0 {
		t.Errorf("the last two runs' merge merged with the first run differs from the whole day:\n%s", strings.Join(d, "\n"))
	}
	samePorts(m)
	// The schema has the field: the third run's report and a merge that continues validate.
	sch, err := jsonschema.NewCompiler().Compile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Report{r3, m23} {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(js(r))))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("a continued report does not match the schema: %v", err)
		}
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
