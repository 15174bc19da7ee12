package pipeline

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
)

// MergeInfo says that a report is the merge of several and what that means for its numbers.
type MergeInfo struct {
	Reports int      `json:"reports"`
	Notes   []string `json:"notes"`
}

// Merge notes, in the merged report.
const (
	noteCounters = "counters (frames, packets, tcp_flags, series) are the exact sums of the parts"
	noteTop      = "top lists are the parts' lists summed and re-ranked: an entry's count is exact when it is in every part's list or would be below that part's last entry elsewhere; an entry outside some part's list may be missing or undercounted"
	noteUnique   = "unique counts are estimates from the union of the parts' HyperLogLog sketches (~0.4 % standard error)"
	noteNoSketch = "some parts carry no sketches: unique counts are the sums of the parts' counts (upper bounds)"
	noteDist     = "packets per address distributions are the sums of the parts': an address active in several parts counts once in each"
	noteEpisodes = "episodes are the parts' episodes: one running across a boundary between parts appears once per part"
	noteRecv     = "the receiver distribution is the sum of the parts': a window cut by a boundary between parts counts its destinations once per part (packets exactly)"
	noteNoRecv   = "the parts' receiver distributions have different windows: not merged"
)

// MergeReports merges reports of disjoint inputs (several files, or days) into one.
func MergeReports(rs []*Report) (*Report, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("merge: no reports")
	}
	col := NewEpisodes()
	m := NewMerger(col)
	for _, r := range rs {
		if err := m.Add(r); err != nil {
			return nil, err
		}
	}
	out, err := m.Report()
	if err != nil {
		return nil, err
	}
	out.Detections = col.Detections()
	return out, nil
}

// Merger merges reports one at a time, in order: their counters, lists and sketches as
// they come, their episodes into a sink (an Episodes, or a DetectionSpool so that a
// merge of many days does not hold every episode in memory). It keeps of each report
// only what the merge needs at the end: its inputs, filter, receiver distribution and
// series.
type Merger struct {
	sink               detect.Sink
	rs                 []*Report // the reports added: their inputs, filters and receivers
	out                *Report
	srcTop, dstTop     map[string]uint64
	synPorts, udpPorts map[uint16]uint64
	srcHLL, dstHLL     *aggregate.HLL
	sketches           bool
	srcUnique          uint64
	dstUnique          uint64
	series             []*Series
	dist               *Distributions
}

// NewMerger returns a merger that hands every report's episodes to sink.
func NewMerger(sink detect.Sink) *Merger {
	return &Merger{
		sink:     sink,
		out:      &Report{TCPFlags: map[string]uint64{}},
		srcTop:   map[string]uint64{},
		dstTop:   map[string]uint64{},
		synPorts: map[uint16]uint64{},
		udpPorts: map[uint16]uint64{},
		sketches: true,
		dist:     &Distributions{},
	}
}

// Add merges r, the next report. A report that counts an input an earlier one counted is
// refused (DuplicateInputError) before any of it is merged.
func (m *Merger) Add(r *Report) error {
	// What the end of the merge reads of each report (DuplicateInput, mergeFilters,
	// mergeReceivers): not its episodes, lists or sketches.
	light := &Report{Inputs: r.Inputs, ContinuedFrom: r.ContinuedFrom, Filter: r.Filter, Receivers: r.Receivers}
	if err := DuplicateInput(append(m.rs, light)); err != nil {
		return err
	}
	i := len(m.rs)
	m.rs = append(m.rs, light)
	out := m.out
	if r.FirstPacket != nil && (out.FirstPacket == nil || *r.FirstPacket < *out.FirstPacket) {
		t := *r.FirstPacket
		out.FirstPacket = &t
	}
	if r.LastPacket != nil && (out.LastPacket == nil || *r.LastPacket > *out.LastPacket) {
		t := *r.LastPacket
		out.LastPacket = &t
	}
	out.Frames += r.Frames
	out.NonIPFrames += r.NonIPFrames
	out.DecodeErrors.Truncated += r.DecodeErrors.Truncated
	out.DecodeErrors.Malformed += r.DecodeErrors.Malformed
	a, b := &out.Packets, &r.Packets
	a.IPv4.TCP += b.IPv4.TCP
	a.IPv4.UDP += b.IPv4.UDP
	a.IPv4.ICMP += b.IPv4.ICMP
	a.IPv4.Other += b.IPv4.Other
	a.IPv6.TCP += b.IPv6.TCP
	a.IPv6.UDP += b.IPv6.UDP
	a.IPv6.ICMPv6 += b.IPv6.ICMPv6
	a.IPv6.Other += b.IPv6.Other
	for f, n := range r.TCPFlags {
		out.TCPFlags[f] += n
	}
	for _, pc := range r.DstPorts.TCPSYN {
		m.synPorts[pc.Port] += pc.Packets
	}
	for _, pc := range r.DstPorts.UDP {
		m.udpPorts[pc.Port] += pc.Packets
	}
	for _, ac := range r.Sources.Top {
		m.srcTop[ac.Addr] += ac.Packets
	}
	for _, ac := range r.Destinations.Top {
		m.dstTop[ac.Addr] += ac.Packets
	}
	m.srcUnique += r.Sources.Unique
	m.dstUnique += r.Destinations.Unique
	if sk := r.Sketches; sk != nil && sk.SourcesHLL != "" && sk.DestinationsHLL != "" {
		s, err := DecodeHLL(sk.HLLPrecision, sk.SourcesHLL)
		if err != nil {
			return fmt.Errorf("report %d: sources: %w", i+1, err)
		}
		d, err := DecodeHLL(sk.HLLPrecision, sk.DestinationsHLL)
		if err != nil {
			return fmt.Errorf("report %d: destinations: %w", i+1, err)
		}
		if m.srcHLL == nil {
			m.srcHLL, m.dstHLL = aggregate.NewHLL(s.P), aggregate.NewHLL(d.P)
		}
		if err := m.srcHLL.Merge(s); err != nil {
			return fmt.Errorf("report %d: %w", i+1, err)
		}
		if err := m.dstHLL.Merge(d); err != nil {
			return fmt.Errorf("report %d: %w", i+1, err)
		}
	} else {
		m.sketches = false
	}
	if d := r.Distributions; d != nil {
		m.dist.PacketsPerSource = addSlices(m.dist.PacketsPerSource, d.PacketsPerSource)
		m.dist.PacketsPerDestination = addSlices(m.dist.PacketsPerDestination, d.PacketsPerDestination)
	}
	m.series = append(m.series, r.Series)
	out.Inputs = append(out.Inputs, r.Inputs...)
	if c := r.ContinuedFrom; c != nil {
		// Kept, so that merging this merge with an earlier run is refused too.
		if out.ContinuedFrom == nil {
			out.ContinuedFrom = &Continuation{Inputs: []InputFile{}}
		}
		out.ContinuedFrom.Inputs = append(out.ContinuedFrom.Inputs, c.Inputs...)
	}
	for _, desc := range detect.Descriptors() {
		for _, e := range r.Detections[desc.ReportKey] {
			m.sink.Detection(&detect.Event{Detector: desc.Name, Phase: detect.End, Entry: e})
		}
	}
	return nil
}

// Report returns the merged report of the reports added, without detections (they are
// in the sink). Call it once, after the last Add.
func (m *Merger) Report() (*Report, error) {
	if len(m.rs) == 0 {
		return nil, fmt.Errorf("merge: no reports")
	}
	out := m.out
	out.DstPorts.TCPSYN = rankPorts(m.synPorts)
	out.DstPorts.UDP = rankPorts(m.udpPorts)
	out.Sources = AddrSummary{Unique: m.srcUnique, Top: rankAddrs(m.srcTop)}
	out.Destinations = AddrSummary{Unique: m.dstUnique, Top: rankAddrs(m.dstTop)}
	out.Series = MergeSeries(m.series)
	out.Distributions = m.dist
	out.Merged = &MergeInfo{Reports: len(m.rs), Notes: []string{noteCounters, noteTop}}
	if m.sketches {
		out.Sources.Unique, out.Destinations.Unique = m.srcHLL.Estimate(), m.dstHLL.Estimate()
		out.Sketches = &Sketches{HLLPrecision: m.srcHLL.P, SourcesHLL: EncodeHLL(m.srcHLL), DestinationsHLL: EncodeHLL(m.dstHLL)}
		out.Merged.Notes = append(out.Merged.Notes, noteUnique)
	} else {
		out.Merged.Notes = append(out.Merged.Notes, noteNoSketch)
	}
	out.Merged.Notes = append(out.Merged.Notes, noteDist, noteEpisodes)
	var note string
	if out.Filter, note = mergeFilters(m.rs); note != "" {
		out.Merged.Notes = append(out.Merged.Notes, note)
	}
	var ok bool
	if out.Receivers, ok = mergeReceivers(m.rs); ok {
		out.Merged.Notes = append(out.Merged.Notes, noteRecv)
	} else {
		out.Merged.Notes = append(out.Merged.Notes, noteNoRecv)
	}
	return out, nil
}

// mergeReceivers sums the parts' receiver distributions, bucket by bucket; false (and an
// empty one) when their windows differ.
func mergeReceivers(rs []*Report) (ReceiverDistribution, bool) {
	out := ReceiverDistribution{Window: rs[0].Receivers.Window, Buckets: []HistBucket{}}
	for _, r := range rs {
		d := &r.Receivers
		if d.Window != out.Window {
			return ReceiverDistribution{Buckets: []HistBucket{}}, false
		}
		out.Destinations += d.Destinations
		out.Packets += d.Packets
		out.Unmerged += d.Unmerged
		for i, b := range d.Buckets {
			if i == len(out.Buckets) {
				out.Buckets = append(out.Buckets, HistBucket{LE: b.LE})
			}
			out.Buckets[i].Destinations += b.Destinations
		}
	}
	return out, true
}

func addSlices(a, b []uint64) []uint64 {
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for i, v := range b {
		a[i] += v
	}
	return a
}

// rankPorts returns the top reportTop ports by packets, ties by port.
func rankPorts(m map[uint16]uint64) []PortCount {
	out := make([]PortCount, 0, len(m))
	for p, n := range m {
		out = append(out, PortCount{Port: p, Packets: n})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Packets > out[j].Packets || out[i].Packets == out[j].Packets && out[i].Port < out[j].Port
	})
	if len(out) > reportTop {
		out = out[:reportTop]
	}
	return out
}

// rankAddrs returns the top reportTop addresses by packets, ties by address.
func rankAddrs(m map[string]uint64) []AddrCount {
	out := make([]AddrCount, 0, len(m))
	for a, n := range m {
		out = append(out, AddrCount{Addr: a, Packets: n})
	}
	less := func(a, b string) bool {
		x, ex := netip.ParseAddr(a)
		y, ey := netip.ParseAddr(b)
		if ex == nil && ey == nil {
			return x.Less(y)
		}
		return a < b
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Packets > out[j].Packets || out[i].Packets == out[j].Packets && less(out[i].Addr, out[j].Addr)
	})
	if len(out) > reportTop {
		out = out[:reportTop]
	}
	return out
}

// DuplicateInputError is a merge of reports that counted the same input: the same file
// with the same records and packet times (a report given twice, or reports of overlapping
// replays). Merged, its packets would count twice. A and B are the reports' places.
type DuplicateInputError struct {
	A, B  int
	Input InputFile
}

func (e *DuplicateInputError) Error() string {
	return "merge: " + e.Between(fmt.Sprintf("reports %d", e.A+1), fmt.Sprint(e.B+1))
}

// Between says what is wrong, the reports named a and b (their files, for a command line).
func (e *DuplicateInputError) Between(a, b string) string {
	return fmt.Sprintf("%s and %s both count input %s (%d records): merged, its packets would count twice",
		a, b, e.Input.File, e.Input.Records)
}

// ContinuedInputError is a merge of a report that continued from a checkpoint (replay
// --state-in) with the report of a run that checkpoint counted, or of two reports that
// continued from checkpoints of the same run: the continued report's top lists,
// distributions and unique counts hold that run's packets already (Continuation), so
// merged they would count twice. A is the report that counted Input, or continued from it
// too (Both); B the one that continued from it.
type ContinuedInputError struct {
	A, B  int
	Both  bool
	Input InputFile
}

func (e *ContinuedInputError) Error() string {
	return "merge: " + e.Between(fmt.Sprintf("report %d", e.A+1), fmt.Sprintf("report %d", e.B+1))
}

// Between says what is wrong, the reports named a and b (their files, for a command line).
func (e *ContinuedInputError) Between(a, b string) string {
	if e.Both {
		return fmt.Sprintf("%s and %s both continue (--state-in) from a state that counted input %s (%d records): their top lists, distributions and unique counts both hold its packets, merged they would count twice",
			a, b, e.Input.File, e.Input.Records)
	}
	return fmt.Sprintf("%s continues (--state-in) from a state that counted input %s (%d records), which %s counts: its top lists, distributions and unique counts hold that input's packets already, merged they would count twice (the last run's report alone has the whole chain's)",
		b, e.Input.File, e.Input.Records, a)
}

// DuplicateInput returns the first input two of rs both counted, a *DuplicateInputError,
// or a *ContinuedInputError when one of them counted it in the state it continued from
// (reports without inputs, of earlier versions, are not checked). A file's name (wherever
// it was read from), records and first and latest packet times tell it: two sensors' files
// of one period differ in those. MergeReports checks it; a caller reading reports one by
// one can check as it goes.
func DuplicateInput(rs []*Report) error {
	type key struct {
		file        string
		records     uint64
		first, last detect.Time
	}
	keyOf := func(in *InputFile) (key, bool) {
		if in.Records == 0 || in.FirstPacket == nil {
			return key{}, false // nothing of it counted
		}
		return key{filepath.Base(in.File), in.Records, *in.FirstPacket, *in.LastPacket}, true
	}
	seen := map[key]int{}
	for i, r := range rs {
		for _, in := range r.Inputs {
			k, ok := keyOf(&in)
			if !ok {
				continue
			}
			if j, ok := seen[k]; ok && j != i {
				return &DuplicateInputError{A: j, B: i, Input: in}
			}
			seen[k] = i
		}
	}
	// Then the inputs the reports' states counted: one a report counted itself, or one
	// another report's state counted too. (A report's own inputs and its state's may
	// share a file: a replay given a file its state counted; that report is wrong on
	// its own, and not what a merge can tell.)
	carried := map[key]int{}
	for _, both := range []bool{false, true} {
		for i, r := range rs {
			if r.ContinuedFrom == nil {
				continue
			}
			for _, in := range r.ContinuedFrom.Inputs {
				k, ok := keyOf(&in)
				if !ok {
					continue
				}
				if !both {
					if j, ok := seen[k]; ok && j != i {
						return &ContinuedInputError{A: j, B: i, Input: in}
					}
					continue
				}
				if j, ok := carried[k]; ok && j != i {
					return &ContinuedInputError{A: j, B: i, Both: true, Input: in}
				}
				carried[k] = i
			}
		}
	}
	return nil
}

// mergeFilters is the merged report's filter: the parts' one, its rejected records summed,
// when every part applied the same capture.filter (nil when none did); otherwise nil and
// a note naming the parts' filters, whose counts are then of different traffic.
func mergeFilters(rs []*Report) (*ReportFilter, string) {
	var out *ReportFilter
	same := true
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = "none"
		if r.Filter != nil {
			names[i] = strconv.Quote(r.Filter.Expression)
		}
		if names[i] != names[0] {
			same = false
		}
		if r.Filter != nil {
			if out == nil {
				out = &ReportFilter{Expression: r.Filter.Expression}
			}
			out.FilteredOut += r.Filter.FilteredOut
		}
	}
	if same {
		return out, ""
	}
	return nil, "the parts were replayed with different capture filters (" + strings.Join(names, ", ") + "): their counts are of different traffic"
}
