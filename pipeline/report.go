package pipeline

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// reportTop is the length of the report's top lists (docs/report.schema.json).
const reportTop = 100

// ReportFilter is the capture.filter a replay applied, and the records it rejected.
type ReportFilter struct {
	Expression  string `json:"expression"`
	FilteredOut uint64 `json:"filtered_out"`
}

// InputFile is one file a replay read: what came from it, and why it ended early.
type InputFile struct {
	File        string       `json:"file"` // as given ("-": standard input)
	Records     uint64       `json:"records"`
	FirstPacket *detect.Time `json:"first_packet"` // null: no record with a time
	LastPacket  *detect.Time `json:"last_packet"`
	Error       string       `json:"error,omitempty"` // why it was not read to its end
}

// Continuation is the state a run continued from. Its top lists, packets-per-address
// distributions, unique counts and sketches go on from that state, so they hold the
// packets of the earlier runs too (its counters and series count its own only): a merge
// with an earlier run's report takes the earlier one's out (Merger), so that the chain's
// reports merge into the report of one run over all its files.
type Continuation struct {
	// Inputs are the files the runs before it read, oldest first, as each run's report
	// lists its own (empty when the state came from a live capture, or from a binary
	// that did not record them). A merged report lists those of its parts' that no part
	// counted itself (continuedFrom).
	Inputs []InputFile `json:"inputs"`
}

// Report is the replay report; docs/report.schema.json is its schema.
type Report struct {
	FirstPacket  *detect.Time `json:"first_packet"`
	LastPacket   *detect.Time `json:"last_packet"`
	Frames       uint64       `json:"frames"`
	NonIPFrames  uint64       `json:"non_ip_frames"`
	DecodeErrors struct {
		Truncated uint64 `json:"truncated"`
		Malformed uint64 `json:"malformed"`
	} `json:"decode_errors"`
	Packets struct {
		IPv4 struct {
			TCP   uint64 `json:"tcp"`
			UDP   uint64 `json:"udp"`
			ICMP  uint64 `json:"icmp"`
			Other uint64 `json:"other"`
		} `json:"ipv4"`
		IPv6 struct {
			TCP    uint64 `json:"tcp"`
			UDP    uint64 `json:"udp"`
			ICMPv6 uint64 `json:"icmpv6"`
			Other  uint64 `json:"other"`
		} `json:"ipv6"`
	} `json:"packets"`
	TCPFlags map[string]uint64 `json:"tcp_flags"`
	DstPorts struct {
		TCPSYN []PortCount `json:"tcp_syn"`
		UDP    []PortCount `json:"udp"`
	} `json:"dst_ports"`
	Sources      AddrSummary `json:"sources"`
	Destinations AddrSummary `json:"destinations"`
	Detections   Detections  `json:"detections"`
	// Receivers is the receiver distribution (receivers.go).
	Receivers ReceiverDistribution `json:"receiver_distribution"`

	// Beyond INTERFACE.md, for charts and merging (series.go, merge.go).
	Series        *Series        `json:"series,omitempty"`
	Distributions *Distributions `json:"distributions,omitempty"`
	Sketches      *Sketches      `json:"sketches,omitempty"`
	Merged        *MergeInfo     `json:"merged,omitempty"`
	// Inputs are the files a replay read, in order (absent in run's reports).
	Inputs []InputFile `json:"inputs,omitempty"`
	// ContinuedFrom is the state the run continued from (replay --state-in, or run's
	// restored state.path): see Continuation. Absent when it started fresh.
	ContinuedFrom *Continuation `json:"continued_from,omitempty"`
	// Filter is the capture.filter a replay applied (absent without one): every count of
	// the report is of the packets it kept.
	Filter *ReportFilter `json:"filter,omitempty"`

	// Groups are coordinated scanners (who_report.go).
	Groups []Group `json:"groups"`
}

// PortCount is a destination port and its packets.
type PortCount = aggregate.PortCount

// AddrSummary is the unique count and top list of sources or destinations.
type AddrSummary struct {
	Unique uint64      `json:"unique"`
	Top    []AddrCount `json:"top"`
}

// AddrCount is an address and its packets.
type AddrCount struct {
	Addr    string `json:"addr"`
	Packets uint64 `json:"packets"`
	// Top sources only (who_report.go): how and what they probed, and who they are.
	Technique string          `json:"technique,omitempty"`
	Summary   string          `json:"summary,omitempty"`
	Profile   *detect.Profile `json:"profile,omitempty"`
	detect.Who
}

// Detections holds one entry per detection episode, by the detectors' report keys. It
// marshals as an object with every detector's key, in descriptor order (an empty list for
// a detector without episodes), and reads back with each detector's entry type.
type Detections map[string][]detect.Entry

// MarshalJSON writes the detectors in report order.
func (d Detections) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, desc := range detect.Descriptors() {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(desc.ReportKey)
		b.Write(k)
		b.WriteByte(':')
		entries := d[desc.ReportKey]
		if entries == nil {
			entries = []detect.Entry{}
		}
		v, err := json.Marshal(entries)
		if err != nil {
			return nil, fmt.Errorf("detections.%s: %w", desc.ReportKey, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads each detector's entries into its own entry type. Keys of detectors
// this build does not know are ignored (a report of a newer version still reads).
func (d *Detections) UnmarshalJSON(data []byte) error {
	out, err := decodeDetections(json.NewDecoder(bytes.NewReader(data)))
	if err != nil {
		return err
	}
	*d = out
	return nil
}

// decodeDetections reads the detections object at dec's next value, decoding the entries
// as the lists are read: read into raw messages first, every entry was scanned twice more
// (a third of reading a report of the 20x day's 90 000 episodes).
func decodeDetections(dec *json.Decoder) (Detections, error) {
	byKey := map[string]*detect.Descriptor{}
	for _, desc := range detect.Descriptors() {
		byKey[desc.ReportKey] = desc
	}
	out := Detections{}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("detections: not an object (%v)", cmp.Or(err, fmt.Errorf("%v", t)))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("detections: %w", err)
		}
		key, _ := t.(string)
		desc := byKey[key]
		if desc == nil {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("detections.%s: %w", key, err)
			}
			continue
		}
		list := []detect.Entry{}
		if t, err = dec.Token(); err != nil || t != nil && t != json.Delim('[') {
			return nil, fmt.Errorf("detections.%s: not a list (%v)", key, cmp.Or(err, fmt.Errorf("%v", t)))
		}
		if t != nil { // null: no entries
			for i := 0; dec.More(); i++ {
				e := desc.NewEntry()
				if err := dec.Decode(e); err != nil {
					return nil, fmt.Errorf("detections.%s[%d]: %w", key, i, err)
				}
				list = append(list, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("detections.%s: %w", key, err)
			}
		}
		out[key] = list
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("detections: %w", err)
	}
	for _, desc := range detect.Descriptors() {
		if out[desc.ReportKey] == nil {
			out[desc.ReportKey] = []detect.Entry{}
		}
	}
	return out, nil
}

// EntriesOf returns the entries of one detector as their concrete type T (entries of
// another type are skipped).
func EntriesOf[T detect.Entry](d Detections, reportKey string) []T {
	out := []T{}
	for _, e := range d[reportKey] {
		if v, ok := e.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Episodes gathers the final entry of every episode (its End event) for the report.
type Episodes struct {
	mu sync.Mutex
	d  Detections
}

// NewEpisodes returns an empty episode collector.
func NewEpisodes() *Episodes {
	return &Episodes{d: Detections{}}
}

// Detection implements detect.Sink.
func (c *Episodes) Detection(ev *detect.Event) {
	if ev.Phase != detect.End {
		return
	}
	desc := detect.Lookup(ev.Detector)
	if desc == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d[desc.ReportKey] = append(c.d[desc.ReportKey], detect.KeepEntry(ev.Entry))
}

// TransientEntries implements detect.TransientSink: the entries kept are copies.
func (c *Episodes) TransientEntries() bool { return true }

// Detections returns the collected entries, each list in its detector's report order.
func (c *Episodes) Detections() Detections {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := make(Detections, len(c.d))
	for _, desc := range detect.Descriptors() {
		d[desc.ReportKey] = c.sorted(desc)
	}
	return d
}

// sorted puts desc's entries in report order and returns them (the caller holds mu).
func (c *Episodes) sorted(desc *detect.Descriptor) []detect.Entry {
	list := c.d[desc.ReportKey]
	keys := make([]string, len(list))
	for i, e := range list {
		keys[i] = desc.SortKey(e)
	}
	sort.Stable(byKey{keys, list})
	return list
}

// EachOf calls fn with the entries collected of one detector (its Descriptor.Name), in
// report order (Merger describes its top sources with the scanner episodes).
func (c *Episodes) EachOf(detector string, fn func(detect.Entry) error) error {
	desc := detect.Lookup(detector)
	if desc == nil {
		return nil
	}
	c.mu.Lock()
	list := c.sorted(desc)
	c.mu.Unlock()
	for _, e := range list {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// EpisodeReader reads back the ended episodes of one detector (its Descriptor.Name), in
// report order: an Episodes or a DetectionSpool.
type EpisodeReader interface {
	EachOf(detector string, fn func(detect.Entry) error) error
}

// Report builds the report once the workers have finished (after Replay returns), with
// c's episodes (nil: none), which describe its top sources and groups.
func (p *Pipeline) Report(c *Episodes) *Report {
	r := p.report()
	var eps EpisodeReader // nil, not a nil *Episodes
	if c != nil {
		eps = c
	} else {
		c = NewEpisodes()
	}
	r.Detections = c.Detections()
	_ = p.describeReport(r, eps) // an Episodes has no error to return
	return r
}

// ReportFrom builds the report as Report does, without detections of its own (they are
// written from the spool, WriteReportSpooled), its top sources and groups described from
// the scanner episodes eps reads back; an error is eps's.
func (p *Pipeline) ReportFrom(eps EpisodeReader) (*Report, error) {
	r := p.report()
	r.Detections = NewEpisodes().Detections()
	return r, p.describeReport(r, eps)
}

// report builds the report's counts, lists and provenance: all but the episodes and the
// descriptions they give.
func (p *Pipeline) report() *Report {
	t := p.Totals()
	r := &Report{TCPFlags: map[string]uint64{}}
	if t.FirstTS != 0 {
		f, l := detect.Time(t.FirstTS), detect.Time(t.LastTS)
		r.FirstPacket, r.LastPacket = &f, &l
	}
	for _, n := range t.Frames {
		r.Frames += n
	}
	r.NonIPFrames = t.Frames[packet.ResultNonIP]
	r.DecodeErrors.Truncated = t.Frames[packet.ResultTruncated]
	r.DecodeErrors.Malformed = t.Frames[packet.ResultMalformed]
	v4, v6 := &t.Packets[0], &t.Packets[1]
	r.Packets.IPv4.TCP, r.Packets.IPv4.UDP = v4[aggregate.IdxTCP], v4[aggregate.IdxUDP]
	r.Packets.IPv4.ICMP = v4[aggregate.IdxICMP]
	r.Packets.IPv4.Other = v4[aggregate.IdxOther] + v4[aggregate.IdxICMPv6]
	r.Packets.IPv6.TCP, r.Packets.IPv6.UDP = v6[aggregate.IdxTCP], v6[aggregate.IdxUDP]
	r.Packets.IPv6.ICMPv6 = v6[aggregate.IdxICMPv6]
	r.Packets.IPv6.Other = v6[aggregate.IdxOther] + v6[aggregate.IdxICMP]
	for f, n := range t.Flags {
		if n != 0 {
			r.TCPFlags[packet.FlagsName(uint8(f))] = n
		}
	}
	r.DstPorts.TCPSYN = aggregate.TopPorts(&t.Ports[aggregate.PortsTCPSYN], reportTop)
	r.DstPorts.UDP = aggregate.TopPorts(&t.Ports[aggregate.PortsUDP], reportTop)
	r.Distributions, r.Sketches = &Distributions{}, &Sketches{HLLPrecision: hllPrecision}
	r.Sources = p.sourceSummary(r.Distributions, r.Sketches)
	r.Destinations = p.destinationSummary(r.Distributions, r.Sketches)
	r.Series = p.series()
	p.inputsMu.Lock()
	r.Inputs = slices.Clone(p.inputs)
	if p.continued != nil {
		r.ContinuedFrom = &Continuation{Inputs: slices.Clone(p.continued.Inputs)}
	}
	if p.filter != nil {
		f := *p.filter
		r.Filter = &f
	}
	p.inputsMu.Unlock()
	r.Receivers = p.receiverDistribution()
	return r
}

// sourceSummary merges, per worker, the exact totals of the sources still tracked with the
// Space-Saving summary of those the table evicted, then the workers' lists.
func (p *Pipeline) sourceSummary(d *Distributions, sk *Sketches) AddrSummary {
	hll := newHLL()
	sum := map[packet.Addr]uint64{}
	for _, w := range p.workers {
		_ = hll.Merge(w.srcHLL)
		// What the summary guarantees of each evicted source (Count - Err): a source
		// listed with a share of its packets from evicted entries is listed with a lower
		// bound, not with the count it inherited from the entry it replaced (a spoofed
		// flood's random sources would otherwise rank above real ones).
		evicted := make(map[packet.Addr]uint64, w.srcEvicted.Len())
		for c := range w.srcEvicted.All() {
			evicted[c.Key] = c.Count - c.Err
		}
		top := aggregate.NewTopHeap(reportTop)
		// Slots in memory order (a live entry has counted a packet), not the LRU list.
		for i := int32(0); i < int32(w.sources.Slots()); i++ {
			k, e := w.sources.At(i)
			if e.total == 0 {
				continue
			}
			n := e.total + evicted[*k]
			delete(evicted, *k)
			top.Offer(k, n)
			addLog2(&d.PacketsPerSource, n)
		}
		for k, n := range evicted {
			top.Offer(&k, n)
			addLog2(&d.PacketsPerSource, n)
		}
		// The sources evicted after one packet (kept out of the summary) and those that
		// lost their place in it; again when they came back.
		addDropped(&d.PacketsPerSource, &w.srcEvicted.Dropped)
		for _, c := range top.Sorted() {
			sum[c.Addr] += c.Packets
		}
	}
	sk.SourcesHLL = EncodeHLL(hll)
	return summary(hll.Estimate(), sum)
}

// destinationSummary merges the dense per-address counts of the dark IPv4 space (exact) with
// the Space-Saving summaries of the other destinations. Unique destinations: the dark
// addresses seen, exactly, plus the HLL estimate of the others.
func (p *Pipeline) destinationSummary(d *Distributions, sk *Sketches) AddrSummary {
	hll := newHLL()
	n := 0
	for _, w := range p.workers {
		n += w.dstTop.Len()
	}
	sum := make(map[packet.Addr]uint64, n)
	pf := p.rc.Load().prefixes
	// The workers' per-address counts, summed address by address as they are read (no
	// array of the sums: 128 MiB for a /8).
	var dense [][]uint32
	for _, w := range p.workers {
		_ = hll.Merge(w.dstHLL)
		// What the summary guarantees (a lower bound, as for sources), and the
		// destinations it had to let go, by what it guaranteed them.
		for c := range w.dstTop.All() {
			sum[c.Key] += c.Count - c.Err
		}
		addDropped(&d.PacketsPerDestination, &w.dstTop.Dropped)
		if len(w.dstExact) == pf.ExactSize() {
			dense = append(dense, w.dstExact)
		}
	}
	var seen uint64
	all := newHLL() // every destination, for merging reports
	_ = all.Merge(hll)
	top := aggregate.NewTopHeap(reportTop)
	pf.ExactRuns(func(base int32, first uint32, size int) {
		var a packet.Addr
		a[10], a[11] = 0xff, 0xff
		for i := int(base); i < int(base)+size; i++ {
			var n uint64
			for _, counts := range dense {
				n += uint64(counts[i])
			}
			if n == 0 {
				continue
			}
			seen++
			binary.BigEndian.PutUint32(a[12:], first+uint32(i-int(base)))
			all.AddHash(a.Hash(seedHLL))
			if len(sum) > 0 { // a count handed to the summary (full, or a reload's)
				n += sum[a]
				delete(sum, a)
			}
			top.Offer(&a, n)
			addLog2(&d.PacketsPerDestination, n)
		}
	})
	for a, n := range sum {
		top.Offer(&a, n)
		addLog2(&d.PacketsPerDestination, n)
	}
	sk.DestinationsHLL = EncodeHLL(all)
	s := AddrSummary{Unique: seen + hll.Estimate(), Top: []AddrCount{}}
	for _, c := range top.Sorted() {
		s.Top = append(s.Top, AddrCount{Addr: c.Addr.String(), Packets: c.Packets})
	}
	return s
}

func newHLL() *aggregate.HLL { return aggregate.NewHLL(hllPrecision) }

// addDropped adds a summary's keys dropped by log2 of their packets to a log2 distribution.
func addDropped(d *[]uint64, dropped *[64]uint64) {
	for i, n := range dropped {
		addLog2N(d, 1<<i, n)
	}
}

func summary(unique uint64, sum map[packet.Addr]uint64) AddrSummary {
	top := aggregate.NewTopHeap(reportTop)
	for a, n := range sum {
		top.Offer(&a, n)
	}
	s := AddrSummary{Unique: unique, Top: []AddrCount{}}
	for _, c := range top.Sorted() {
		s.Top = append(s.Top, AddrCount{Addr: c.Addr.String(), Packets: c.Packets})
	}
	return s
}

// byKey sorts entries by their precomputed sort keys.
type byKey struct {
	keys    []string
	entries []detect.Entry
}

func (b byKey) Len() int           { return len(b.keys) }
func (b byKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byKey) Swap(i, j int) {
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	b.entries[i], b.entries[j] = b.entries[j], b.entries[i]
}
