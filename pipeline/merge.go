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
	noteChain    = "some parts continued (--state-in) from the state of other parts: the top lists, packets per address distributions and unique counts are the later parts', which hold the earlier parts' packets (the earlier parts' own were left out); counters, series and episodes add up"
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
// only what the merge needs at the end: its inputs, filter, receiver distribution,
// series and what it added to the lists (taken out again when a later report of its
// chain holds them).
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
	// lists are what each report added to the lists, distributions and unique counts,
	// taken out again when a later run of its chain holds them (Report).
	lists []mergeLists
}

// mergeLists is what one report adds to a merge's top lists, packets-per-address
// distributions and unique counts (the sketches need no record: a continued run's hold
// the earlier runs' registers, so their union is the later one's).
type mergeLists struct {
	srcTop, dstTop     []AddrCount
	perSource, perDest []uint64
	srcUnique          uint64
	dstUnique          uint64
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
	// The top sources with what the report said of them (describe reads it), the
	// destinations' addresses and packets.
	l := mergeLists{srcTop: r.Sources.Top, dstTop: addrCounts(r.Destinations.Top), srcUnique: r.Sources.Unique, dstUnique: r.Destinations.Unique}
	if d := r.Distributions; d != nil {
		m.dist.PacketsPerSource = addSlices(m.dist.PacketsPerSource, d.PacketsPerSource)
		m.dist.PacketsPerDestination = addSlices(m.dist.PacketsPerDestination, d.PacketsPerDestination)
		l.perSource, l.perDest = d.PacketsPerSource, d.PacketsPerDestination
	}
	m.lists = append(m.lists, l)
	m.series = append(m.series, r.Series)
	out.Inputs = append(out.Inputs, r.Inputs...)
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
	// A report of a run that a later report's run continued from (its files are in the
	// later one's continued_from): the later report's lists, distributions and unique
	// counts hold its packets, so its own come out again.
	superseded := supersededParts(m.rs)
	for i, l := range m.lists {
		if !superseded[i] {
			continue
		}
		subAddrs(m.srcTop, l.srcTop)
		subAddrs(m.dstTop, l.dstTop)
		m.dist.PacketsPerSource = subSlices(m.dist.PacketsPerSource, l.perSource)
		m.dist.PacketsPerDestination = subSlices(m.dist.PacketsPerDestination, l.perDest)
		m.srcUnique -= l.srcUnique
		m.dstUnique -= l.dstUnique
	}
	out.ContinuedFrom = continuedFrom(m.rs)
	out.DstPorts.TCPSYN = rankPorts(m.synPorts)
	out.DstPorts.UDP = rankPorts(m.udpPorts)
	out.Sources = AddrSummary{Unique: m.srcUnique, Top: rankAddrs(m.srcTop)}
	if err := m.describe(out, superseded); err != nil {
		return nil, err
	}
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
	if len(superseded) > 0 {
		out.Merged.Notes = append(out.Merged.Notes, noteChain)
	}
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

// addrCounts copies l's addresses and packets.
func addrCounts(l []AddrCount) []AddrCount {
	out := make([]AddrCount, len(l))
	for i := range l {
		out[i] = AddrCount{Addr: l[i].Addr, Packets: l[i].Packets}
	}
	return out
}

// subAddrs takes list's packets out of top (list was added to it).
func subAddrs(top map[string]uint64, list []AddrCount) {
	for _, ac := range list {
		if top[ac.Addr] -= ac.Packets; top[ac.Addr] == 0 {
			delete(top, ac.Addr)
		}
	}
}

// subSlices takes b out of a (b was added to it), dropping the zeros it leaves at the end.
func subSlices(a, b []uint64) []uint64 {
	for i, v := range b[:min(len(a), len(b))] { // b's trailing zeros may be past a's end
		a[i] -= v
	}
	for len(a) > 0 && a[len(a)-1] == 0 {
		a = a[:len(a)-1]
	}
	return a
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

// ContinuedInputError is a merge of two reports of runs that continued (replay
// --state-in) from states that both counted an input, neither run continuing the other
// (two runs continued from one checkpoint: branches of a chain). Both reports' top lists,
// distributions and unique counts hold that input's packets: merged, they would count
// twice. A and B are the reports' places.
type ContinuedInputError struct {
	A, B  int
	Input InputFile
}

func (e *ContinuedInputError) Error() string {
	return "merge: " + e.Between(fmt.Sprintf("report %d", e.A+1), fmt.Sprintf("report %d", e.B+1))
}

// Between says what is wrong, the reports named a and b (their files, for a command line).
func (e *ContinuedInputError) Between(a, b string) string {
	return fmt.Sprintf("%s and %s both continue (--state-in) from a state that counted input %s (%d records), and neither continues the other: their top lists, distributions and unique counts both hold its packets, merged they would count twice",
		a, b, e.Input.File, e.Input.Records)
}

// inputKey tells an input: a file's name (wherever it was read from), records and first
// and latest packet times; two sensors' files of one period differ in those.
type inputKey struct {
	file        string
	records     uint64
	first, last detect.Time
}

// keyOf is in's key, false when nothing of it was counted.
func keyOf(in *InputFile) (inputKey, bool) {
	if in.Records == 0 || in.FirstPacket == nil || in.LastPacket == nil {
		return inputKey{}, false
	}
	return inputKey{filepath.Base(in.File), in.Records, *in.FirstPacket, *in.LastPacket}, true
}

// keysOf returns the keys of the inputs counted.
func keysOf(ins []InputFile) map[inputKey]bool {
	ks := map[inputKey]bool{}
	for i := range ins {
		if k, ok := keyOf(&ins[i]); ok {
			ks[k] = true
		}
	}
	return ks
}

// chainKeys is the keys of the inputs r's state counted (nil: r did not continue).
func chainKeys(r *Report) map[inputKey]bool {
	if r.ContinuedFrom == nil {
		return nil
	}
	return keysOf(r.ContinuedFrom.Inputs)
}

// continues reports whether the run of a report whose state counted chain continued the
// run that counted inputs (directly or through others): every input counted is in chain.
func continues(chain, inputs map[inputKey]bool) bool {
	if len(inputs) == 0 || chain == nil {
		return false
	}
	for k := range inputs {
		if !chain[k] {
			return false
		}
	}
	return true
}

// DuplicateInput returns the first input two of rs both counted, a *DuplicateInputError,
// or a *ContinuedInputError for two reports continued from states that both counted an
// input, neither continuing the other (reports without inputs, of earlier versions, are
// not checked). A report that continued from the state of another's run is not a
// duplicate: Merger takes the earlier one's lists out (supersededParts). MergeReports
// checks it; a caller reading reports one by one can check as it goes.
func DuplicateInput(rs []*Report) error {
	seen := map[inputKey]int{}
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
	carried := map[inputKey][]int{} // the reports whose states counted the input
	var inputs, chains []map[inputKey]bool
	for i, r := range rs {
		inputs, chains = append(inputs, keysOf(r.Inputs)), append(chains, chainKeys(r))
		if r.ContinuedFrom == nil {
			continue
		}
		for _, in := range r.ContinuedFrom.Inputs {
			k, ok := keyOf(&in)
			if !ok {
				continue
			}
			for _, j := range carried[k] {
				if j != i && !continues(chains[i], inputs[j]) && !continues(chains[j], inputs[i]) {
					return &ContinuedInputError{A: j, B: i, Input: in}
				}
			}
			carried[k] = append(carried[k], i)
		}
	}
	return nil
}

// supersededParts returns the places of the reports whose runs a later run of rs
// continued from: every input they counted is in another report's continued_from.
func supersededParts(rs []*Report) map[int]bool {
	chains := make([]map[inputKey]bool, len(rs))
	for j, q := range rs {
		chains[j] = chainKeys(q)
	}
	out := map[int]bool{}
	for i, r := range rs {
		in := keysOf(r.Inputs)
		for j := range rs {
			if j != i && continues(chains[j], in) {
				out[i] = true
				break
			}
		}
	}
	return out
}

// describe says what the merged top sources are and finds the coordinated groups, as a
// replay's report does (describeReport), from all the parts' scanner episodes, read back
// from the sink when it can (an Episodes or a DetectionSpool): a source's episode with
// the most packets gives its technique, summary and profile; a source without one has
// the technique the part listing it with the most packets gave it. The sources' labels
// (org, country, AS) are the parts', a group's its first member's episode's. Of a chain
// merged whole, the whole run's; of unrelated parts, those of a replay over them all but
// that an episode cut by a boundary is two.
func (m *Merger) describe(out *Report, superseded map[int]bool) error {
	top := map[string]*AddrCount{}
	for i := range out.Sources.Top {
		top[out.Sources.Top[i].Addr] = &out.Sources.Top[i]
	}
	most := map[string]uint64{}
	for i, l := range m.lists {
		if superseded[i] {
			continue
		}
		for _, ac := range l.srcTop {
			if t := top[ac.Addr]; t != nil && ac.Packets > most[ac.Addr] {
				most[ac.Addr] = ac.Packets
				t.Technique, t.Who = ac.Technique, ac.Who
			}
		}
	}
	eps, ok := m.sink.(EpisodeReader)
	if !ok {
		return nil
	}
	_, groups, err := describeScans(top, eps)
	out.Groups = groups
	return err
}

// continuedFrom is a merged report's continued_from: the inputs the parts' states counted
// that no part counted itself (their packets are in the lists but in no counter), nil when
// none is left and no part continued from a state of files unknown.
func continuedFrom(rs []*Report) *Continuation {
	counted := map[inputKey]bool{}
	for _, r := range rs {
		for k := range keysOf(r.Inputs) {
			counted[k] = true
		}
	}
	var out *Continuation
	listed := map[inputKey]bool{}
	for _, r := range rs {
		c := r.ContinuedFrom
		if c == nil {
			continue
		}
		if len(c.Inputs) == 0 && out == nil {
			out = &Continuation{Inputs: []InputFile{}} // a live capture's state, or files unknown
		}
		for _, in := range c.Inputs {
			k, ok := keyOf(&in)
			if ok && (counted[k] || listed[k]) {
				continue
			}
			listed[k] = true
			if out == nil {
				out = &Continuation{Inputs: []InputFile{}}
			}
			out.Inputs = append(out.Inputs, in)
		}
	}
	return out
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
