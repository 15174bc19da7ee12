package pipeline

import (
	"encoding/base64"
	"fmt"
	"math/bits"
	"sync"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// SeriesMinStep is the finest step of the report's time series (one minute, in ns), and
// MaxSeriesPoints bounds their length: past it the step doubles (two days at one minute,
// four at two minutes, ...), so memory is bounded whatever the input's time span.
const (
	SeriesMinStep   = int64(60e9)
	MaxSeriesPoints = 2880
)

// Series is the report's time series, in packet time: point i covers
// [start + i*step, start + (i+1)*step). Every value is a counter, so series of several
// reports add up point by point once brought to a common step.
type Series struct {
	Start       detect.Time `json:"start"`
	StepSeconds int64       `json:"step_seconds"`
	// Packets per protocol (IPv4 and IPv6 together: tcp, udp, icmp, icmpv6, other).
	Packets map[string][]uint64 `json:"packets"`
	// TCPSYN counts SYN probes (SYN set, ACK clear).
	TCPSYN []uint64 `json:"tcp_syn"`
	// TelnetSourceMinutes: per point, the sum over its minutes of the distinct sources of
	// SYN probes to the telnet ports (to dark destinations) in each minute. At a one-minute
	// step it is the distinct telnet sources per minute; divided by step/60 the mean.
	TelnetSourceMinutes []uint64 `json:"telnet_source_minutes"`
	// EpisodesStarted per detector (scanner, telnet_sweep, ..., fingerprint).
	EpisodesStarted map[string][]uint64 `json:"episodes_started"`
}

// Step returns the step in ns.
func (s *Series) Step() int64 { return s.StepSeconds * 1e9 }

// Len returns the number of points.
func (s *Series) Len() int { return len(s.TCPSYN) }

// Distributions are the report's packets-per-address histograms in log2 buckets: element i
// counts the addresses that sent (or received) between 2^i and 2^(i+1)-1 packets.
type Distributions struct {
	PacketsPerSource      []uint64 `json:"packets_per_source_log2"`
	PacketsPerDestination []uint64 `json:"packets_per_destination_log2"`
}

// Sketches carry the HyperLogLog registers behind the unique counts, so reports can be
// merged: the union's registers are the register-wise maximum.
type Sketches struct {
	HLLPrecision uint8 `json:"hll_precision"`
	// SourcesHLL estimates every source address.
	SourcesHLL string `json:"sources_hll_registers_base64"`
	// DestinationsHLL estimates every destination address (dark IPv4 ones included, which
	// destinations.unique counts exactly in a single report).
	DestinationsHLL string `json:"destinations_hll_registers_base64"`
}

// EncodeHLL returns a sketch's registers in base64.
func EncodeHLL(h *aggregate.HLL) string { return base64.StdEncoding.EncodeToString(h.Reg) }

// DecodeHLL reads registers written by EncodeHLL.
func DecodeHLL(p uint8, s string) (*aggregate.HLL, error) {
	reg, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("HLL registers: %w", err)
	}
	h := &aggregate.HLL{P: p, Reg: reg}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// log2Bucket is the distribution bucket of n >= 1.
func log2Bucket(n uint64) int { return bits.Len64(n) - 1 }

func addLog2(d *[]uint64, n uint64) { addLog2N(d, n, 1) }

// addLog2N counts `count` addresses of n packets each in the log2 distribution d.
func addLog2N(d *[]uint64, n, count uint64) {
	if n == 0 || count == 0 {
		return
	}
	b := log2Bucket(n)
	for len(*d) <= b {
		*d = append(*d, 0)
	}
	(*d)[b] += count
}

// seriesPoint is one step of a worker's series.
type seriesPoint struct {
	packets [aggregate.NumProtos]uint64
	syn     uint64
	telnet  uint64
}

// workerSeries is a worker's time series; only its worker writes it, the report reads it
// after the workers finished.
type workerSeries struct {
	step   int64 // ns, SeriesMinStep * 2^k
	base   int64 // bucket index (ts / step) of pts[0]
	pts    []seriesPoint
	telMin int64  // minute (ts / SeriesMinStep) telSeq counts
	telSeq uint32 // bumped each new minute; a source's telMin field holds the last it counted in

	// The point the last packet counted in (its index in pts) and its time [curLo, curHi),
	// and telMin's [telLo, telHi): the next packets mostly fall there, found without a
	// division (a 64-bit division per packet was 1 % of the 20x day's instructions).
	cur          int
	curLo, curHi int64
	telLo, telHi int64
}

// point returns the point holding ts, growing or coarsening the series.
func (s *workerSeries) point(ts int64) *seriesPoint {
	if ts >= s.curLo && ts < s.curHi {
		return &s.pts[s.cur]
	}
	return s.pointAt(ts)
}

// pointAt is point for a ts outside the last packet's point.
func (s *workerSeries) pointAt(ts int64) *seriesPoint {
	if s.step == 0 {
		s.step = SeriesMinStep
		s.base = aggregate.FloorDiv(ts, s.step)
	}
	idx := aggregate.FloorDiv(ts, s.step)
	for idx < s.base || idx-s.base >= MaxSeriesPoints {
		if idx < s.base && s.base-idx+int64(len(s.pts)) <= MaxSeriesPoints {
			// An earlier packet (out of order input): prepend empty points.
			n := s.base - idx
			s.pts = append(make([]seriesPoint, n, int64(len(s.pts))+n), s.pts...)
			s.base = idx
			break
		}
		s.coarsen()
		idx = aggregate.FloorDiv(ts, s.step)
	}
	i := int(idx - s.base)
	for len(s.pts) <= i {
		s.pts = append(s.pts, seriesPoint{})
	}
	s.cur, s.curLo = i, (s.base+int64(i))*s.step
	s.curHi = s.curLo + s.step
	return &s.pts[i]
}

// coarsen doubles the step, adding pairs of points.
func (s *workerSeries) coarsen() {
	nb := aggregate.FloorDiv(s.base, 2)
	var out []seriesPoint
	for i := range s.pts {
		j := int(aggregate.FloorDiv(s.base+int64(i), 2) - nb)
		for len(out) <= j {
			out = append(out, seriesPoint{})
		}
		o, p := &out[j], &s.pts[i]
		for k := range o.packets {
			o.packets[k] += p.packets[k]
		}
		o.syn += p.syn
		o.telnet += p.telnet
	}
	s.step *= 2
	s.base = nb
	s.pts = out
}

// packet counts one IP packet. telMin is the source's last counted telnet minute (in
// telSeq numbers); dark tells whether the destination is dark.
func (s *workerSeries) packet(h *packet.Header, telMin *uint32, dark bool, telnetPorts []uint16) {
	pt := s.point(h.TS)
	pt.packets[aggregate.ProtoIndex(h)]++
	if !h.L4 || h.Proto != packet.ProtoTCP || h.TCPFlags&(packet.FlagSYN|packet.FlagACK) != packet.FlagSYN {
		return
	}
	pt.syn++
	if !dark {
		return
	}
	for _, p := range telnetPorts {
		if p == h.DstPort {
			if h.TS < s.telLo || h.TS >= s.telHi || s.telSeq == 0 {
				if m := aggregate.FloorDiv(h.TS, SeriesMinStep); m != s.telMin || s.telSeq == 0 {
					s.telMin = m
					s.telSeq++
				}
				s.telLo = s.telMin * SeriesMinStep
				s.telHi = s.telLo + SeriesMinStep
			}
			if *telMin != s.telSeq {
				*telMin = s.telSeq
				pt.telnet++
			}
			return
		}
	}
}

// episodeSeries counts episodes started per detector and step: one per worker and one for
// the shared detectors (eventSink), each with its lock (uncontended but for the report).
// Each is written on every episode start, so it has cache lines of its own (the padding): a
// flood's starts from two workers otherwise handed one line between the cores. A run of
// starts of one detector in one minute (a flood's) is counted in last, without writing to
// the maps (a Go map's header is written on every assignment).
type episodeSeries struct {
	_      [64]byte
	mu     sync.Mutex
	starts map[string]map[int64]uint64 // detector -> minute -> episodes started (but last)
	last   seriesRun
	_      [64]byte
}

// seriesRun is a run of n episode starts of detector det in minute min.
type seriesRun struct {
	det string
	min int64
	n   uint64
}

// join adds o to r when both count starts of one detector in one minute (r not empty).
func (r *seriesRun) join(o seriesRun) bool {
	if r.n == 0 || r.min != o.min || r.det != o.det {
		return false
	}
	r.n += o.n
	return true
}

// seriesStart returns ev as a run of one start, ok=false when ev is not a Start.
func seriesStart(ev *detect.Event) (seriesRun, bool) {
	if ev.Phase != detect.Start {
		return seriesRun{}, false
	}
	ts, ok := EntryStart(ev.Entry)
	if !ok {
		return seriesRun{}, false
	}
	return seriesRun{ev.Detector, aggregate.FloorDiv(int64(ts), SeriesMinStep), 1}, true
}

// count counts ev in r when it is a Start of r's detector in r's minute; other starts
// replace r, which goes to the series first (a worker's own run, workerSink).
func (r *seriesRun) count(ev *detect.Event, e *episodeSeries) {
	st, ok := seriesStart(ev)
	if !ok {
		return
	}
	if r.join(st) {
		return
	}
	if r.n > 0 {
		e.add(*r)
	}
	*r = st
}

// add adds the run r of starts.
func (e *episodeSeries) add(r seriesRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last.join(r) {
		return
	}
	e.flushLast()
	e.last = r
}

func newEpisodeSeries() *episodeSeries {
	return &episodeSeries{starts: map[string]map[int64]uint64{}}
}

// Detection implements detect.Sink: it counts Start events at the episode's first packet.
func (e *episodeSeries) Detection(ev *detect.Event) {
	if st, ok := seriesStart(ev); ok {
		e.add(st)
	}
}

// flushLast adds the pending run of starts to the maps (e.mu held).
func (e *episodeSeries) flushLast() {
	l := &e.last
	if l.n == 0 {
		return
	}
	m := e.starts[l.det]
	if m == nil {
		// Bounded: past MaxSeriesPoints distinct minutes the count goes to the nearest one
		// kept (the report coarsens anyway).
		m = map[int64]uint64{}
		e.starts[l.det] = m
	}
	min := l.min
	if _, seen := m[min]; !seen && len(m) >= 4*MaxSeriesPoints {
		min = nearestKey(m, min)
	}
	m[min] += l.n
	l.n = 0
}

func nearestKey(m map[int64]uint64, k int64) int64 {
	best, bd := k, int64(-1)
	for x := range m {
		d := x - k
		if d < 0 {
			d = -d
		}
		if bd < 0 || d < bd {
			best, bd = x, d
		}
	}
	return best
}

// EntryStart returns the time an episode's entry starts.
func EntryStart(e detect.Entry) (detect.Time, bool) {
	switch e := e.(type) {
	case *detect.ScannerEntry:
		return e.FirstSeen, true
	case *detect.TelnetSweepEntry:
		return e.FirstSeen, true
	case *detect.TelnetSurgeEntry:
		return e.Start, true
	case *detect.UDPThenSYNEntry:
		return e.FirstSeen, true
	case *detect.BackscatterEntry:
		return e.FirstSeen, true
	case *detect.ToolEntry:
		return e.FirstSeen, true
	case *detect.HotspotEntry:
		return e.FirstSeen, true
	}
	return 0, false
}

// Tee passes every event to each of the sinks (nil sinks are skipped).
type Tee []detect.Sink

// parter is a sink that gives each worker a part of its own, which only that worker
// writes (DetectionSpool: no lock per episode).
type parter interface{ part() detect.Sink }

// partOf returns a worker's part of s, or s itself when it has no parts.
func partOf(s detect.Sink) detect.Sink {
	if p, ok := s.(parter); ok {
		return p.part()
	}
	return s
}

// part returns a Tee of the sinks' parts.
func (t Tee) part() detect.Sink {
	out := make(Tee, len(t))
	for i, s := range t {
		out[i] = partOf(s)
	}
	return out
}

// Detection implements detect.Sink.
func (t Tee) Detection(ev *detect.Event) {
	for _, s := range t {
		if s != nil {
			s.Detection(ev)
		}
	}
}

// TransientEntries implements detect.TransientSink: a Tee keeps an entry when one of its
// sinks does.
func (t Tee) TransientEntries() bool {
	for _, s := range t {
		if !detect.IsTransient(s) {
			return false
		}
	}
	return true
}

// series merges the workers' series and the episode counts into the report's series.
func (p *Pipeline) series() *Series {
	g := seriesGrid{step: SeriesMinStep}
	for _, w := range p.workers {
		s := &w.series
		if len(s.pts) == 0 {
			continue
		}
		g.add(s.base*s.step, (s.base+int64(len(s.pts)))*s.step, s.step)
	}
	for _, w := range p.sink.parts {
		e := w.series
		e.mu.Lock()
		defer e.mu.Unlock()
		e.flushLast()
		for _, m := range e.starts {
			for min := range m {
				g.add(min*SeriesMinStep, (min+1)*SeriesMinStep, SeriesMinStep)
			}
		}
	}
	if !g.any {
		return nil
	}
	base, step, n := g.fit()
	s := newSeries(base*step, step, n)
	for _, w := range p.workers {
		ws := &w.series
		for i := range ws.pts {
			j := int(aggregate.FloorDiv((ws.base+int64(i))*ws.step, step) - base)
			pt := &ws.pts[i]
			for k, name := range aggregate.ProtoNames {
				s.Packets[name][j] += pt.packets[k]
			}
			s.TCPSYN[j] += pt.syn
			s.TelnetSourceMinutes[j] += pt.telnet
		}
	}
	for _, w := range p.sink.parts {
		for det, m := range w.series.starts {
			v := s.EpisodesStarted[det]
			if v == nil {
				v = make([]uint64, n)
				s.EpisodesStarted[det] = v
			}
			for min, c := range m {
				v[aggregate.FloorDiv(min*SeriesMinStep, step)-base] += c
			}
		}
	}
	return s
}

// seriesGrid collects the time spans ([lo, hi) in ns) and steps of the series to merge.
type seriesGrid struct {
	lo, hi, step int64
	any          bool
}

func (g *seriesGrid) add(a, b, step int64) {
	if !g.any || a < g.lo {
		g.lo = a
	}
	if !g.any || b > g.hi {
		g.hi = b
	}
	g.any = true
	g.step = max(g.step, step)
}

// fit returns the merged grid: the coarsest step, doubled until the span fits in
// MaxSeriesPoints, its first point (in steps) and its length.
func (g *seriesGrid) fit() (base, step int64, n int) {
	step = g.step
	for aggregate.FloorDiv(g.hi-1, step)-aggregate.FloorDiv(g.lo, step)+1 > MaxSeriesPoints {
		step *= 2
	}
	base = aggregate.FloorDiv(g.lo, step)
	return base, step, int(aggregate.FloorDiv(g.hi-1, step) - base + 1)
}

func newSeries(start, step int64, n int) *Series {
	s := &Series{
		Start: detect.Time(start), StepSeconds: step / 1e9,
		Packets: map[string][]uint64{}, TCPSYN: make([]uint64, n), TelnetSourceMinutes: make([]uint64, n),
		EpisodesStarted: map[string][]uint64{},
	}
	for _, name := range aggregate.ProtoNames {
		s.Packets[name] = make([]uint64, n)
	}
	for _, d := range detect.Descriptors() {
		s.EpisodesStarted[d.Name] = make([]uint64, n)
	}
	return s
}

// MergeSeries adds series (of any steps that are SeriesMinStep * 2^k) into one, at the
// coarsest of their steps or coarser still to stay within MaxSeriesPoints.
func MergeSeries(in []*Series) *Series {
	g := seriesGrid{step: SeriesMinStep}
	for _, s := range in {
		if s == nil || s.Len() == 0 || s.StepSeconds <= 0 {
			continue
		}
		g.add(int64(s.Start), int64(s.Start)+int64(s.Len())*s.Step(), s.Step())
	}
	if !g.any {
		return nil
	}
	base, step, n := g.fit()
	out := newSeries(base*step, step, n)
	add := func(dst []uint64, src []uint64, s *Series) {
		for i, v := range src {
			j := aggregate.FloorDiv(int64(s.Start)+int64(i)*s.Step(), step) - base
			if j >= 0 && j < int64(n) {
				dst[j] += v
			}
		}
	}
	for _, s := range in {
		if s == nil || s.Len() == 0 || s.StepSeconds <= 0 {
			continue
		}
		for name, v := range s.Packets {
			if out.Packets[name] == nil {
				out.Packets[name] = make([]uint64, n)
			}
			add(out.Packets[name], v, s)
		}
		add(out.TCPSYN, s.TCPSYN, s)
		add(out.TelnetSourceMinutes, s.TelnetSourceMinutes, s)
		for det, v := range s.EpisodesStarted {
			if out.EpisodesStarted[det] == nil {
				out.EpisodesStarted[det] = make([]uint64, n)
			}
			add(out.EpisodesStarted[det], v, s)
		}
	}
	return out
}
