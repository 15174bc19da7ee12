package detect

import (
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/capture"
)

// Hotspot detection looks at a dark destination from its own side: per window (cfg.Window,
// aligned to multiples of it in Unix time), the distinct sources and the packets that reach
// each destination address, and each (address, destination port), over all workers.
//
// Workers own sources, so a destination's senders are spread over every worker: each worker
// counts what its own sources send (a bounded table keyed by destination, each entry with a
// Distinct per level: exact up to aggregate.DistinctExactLimit sources, then a 1 KiB
// HyperLogLog) and, when its clock passes the end of a window, hands a summary of every
// destination it counted to the shared Hotspots (one lock per worker per window, never per
// packet). The workers' source sets are disjoint, so the sum of their counts is the
// destination's distinct sources: exact while every worker counted exactly, an estimate
// (sources_estimated) once one used its sketch.
//
// An episode starts when a destination reaches Hotspot.MinSources distinct sources in a
// window and ends after a window without reaching it. A destination whose ports are hot is
// reported by port only: the address-level episode (port 0) is for sources spread over many
// ports (a reflection's replies go to the spoofed sources' random ports).

// Hotspot is the hotspot detector's name (Descriptor.Name).
const Hotspot = "hotspot"

// Hotspot classes, indexes of HotspotClasses.
const (
	hotP2P = iota
	hotSYNFlood
	hotReflection
	hotPopular
)

// HotspotClasses are the hotspot episode classes.
var HotspotClasses = []string{"p2p", "syn_flood", "reflection", "popular"}

const (
	hotTop   = 5 // top sources kept per destination and level
	hotPorts = 2 // ports counted per destination per worker (the busiest stay)
)

// Protocol bits of hotStats.Protos.
const (
	hotTCP = 1 << iota
	hotUDP
	hotICMP
	hotICMPv6
	hotOther
)

var hotProtoNames = []string{"tcp", "udp", "icmp", "icmpv6", "other"}

// seedHotSrc hashes sources for the hotspot source sets.
const seedHotSrc = 0x1f83d9abfb41bd6b

// hotSrc is a source and its packets to one destination: a Space-Saving slot, so a source
// that replaced another started from the replaced one's count, Err. Packets-Err is a lower
// bound of the source's packets (exact for a source that never had to take a slot over).
type hotSrc struct {
	Src     capture.Addr
	Packets uint64
	Err     uint64
}

// hotStats counts one destination level (address, or address and port) in one worker and
// window. Plain values only (it lives in a Table).
type hotStats struct {
	Sources aggregate.Distinct
	Packets uint64
	SYN     uint64 // SYN probes
	UDP     uint64 // UDP datagrams
	P2P     uint64 // UDP datagrams with a DHT (KRPC) or uTP payload
	Pairs   uint64 // SYN probes that paired with an earlier UDP datagram (udp_then_syn)
	Replies uint64 // SYN-ACK, RST, ICMP replies and errors (backscatter kinds)
	First   int64
	Last    int64
	Protos  uint8
	NTop    uint8
	Top     [hotTop]hotSrc
}

// hotCell is one worker's counts for one destination address in the window Win.
type hotCell struct {
	Win   int64 // window index + 1 (0: empty)
	Addr  hotStats
	Ports [hotPorts]uint16
	Port  [hotPorts]hotStats
}

// hotWorker is one engine's part of the hotspot detector.
type hotWorker struct {
	shared *Hotspots
	cells  *aggregate.Table[capture.Addr, hotCell]
	size   int64 // window length in ns of the open window
	win    int64 // open window index
	end    int64 // its end
	open   bool
	out    []HotSummary // summaries of the open window (evicted cells, then all at close)
}

func hashHotDst(a *capture.Addr) uint64 { return a.Hash(seedDstIP) }

// SetHotspots attaches the shared hotspot aggregator (nil: no hotspot detection). Call it
// before the first packet.
func (e *Engine) SetHotspots(h *Hotspots) {
	e.hot.shared = h
	if h != nil && e.hot.cells == nil {
		e.hot.cells = aggregate.NewTable[capture.Addr, hotCell](max(e.cfg.MaxDestinations, 1), hashHotDst)
		e.hot.cells.SetEvict(e.evictHot)
	}
}

func (e *Engine) hotOn() bool { return e.hot.shared != nil && e.cfg.Hotspot.Enabled }

// hotTick closes the open window once the clock has passed it (or the window length
// changed) and opens the one holding the clock.
func (e *Engine) hotTick() {
	hw := &e.hot
	size := int64(e.cfg.Window)
	if hw.open && (e.now >= hw.end || size != hw.size) {
		e.hotClose(aggregate.FloorDiv(e.now, size), size == hw.size)
	}
	if !hw.open {
		hw.open, hw.size = true, size
		hw.win = aggregate.FloorDiv(e.now, size)
		hw.end = (hw.win + 1) * size
	}
}

// hotClose hands the open window's summaries to the shared aggregator, telling it that this
// worker has passed every window before `through`; keep says whether the summaries count
// (not after a window length change).
func (e *Engine) hotClose(through int64, keep bool) {
	hw := &e.hot
	tag := hw.win + 1
	hw.cells.Range(func(k *capture.Addr, c *hotCell) bool {
		if c.Win == tag {
			hw.out = appendHot(hw.out, k, c, &e.slab)
		}
		c.reset(&e.slab)
		return true
	})
	out := hw.out
	if !keep {
		out = nil
	}
	hw.shared.report(e.worker, hw.size, hw.win, out, through)
	clear(hw.out)
	hw.out, hw.open = hw.out[:0], false
}

// hotFinish ends the input: the open window is reported (partial: nothing more will come).
func (e *Engine) hotFinish() {
	if e.hot.open {
		e.hotClose(1<<62, true)
	} else if e.hot.shared != nil {
		e.hot.shared.report(e.worker, e.hot.size, 0, nil, 1<<62)
	}
}

// hotStop drops the engine's counts (a reload disabled the detector; the shared part ends
// its episodes itself).
func (e *Engine) hotStop() {
	hw := &e.hot
	if hw.cells == nil {
		return
	}
	hw.cells.Range(func(_ *capture.Addr, c *hotCell) bool {
		c.reset(&e.slab)
		return true
	})
	clear(hw.out)
	hw.out, hw.open = hw.out[:0], false
}

// evictHot keeps the summary of a destination the full table evicts mid-window (bounded:
// past the table's capacity in summaries, the evicted counts are dropped).
func (e *Engine) evictHot(k *capture.Addr, c *hotCell) {
	e.c.Evictions.Add(1)
	if c.Win == e.hot.win+1 && len(e.hot.out) < 2*e.hot.cells.Cap() {
		e.hot.out = appendHot(e.hot.out, k, c, &e.slab)
	}
	c.reset(&e.slab)
}

func (c *hotCell) reset(s *aggregate.Slab) {
	c.Addr.Sources.Reset(s)
	for i := range c.Port {
		c.Port[i].Sources.Reset(s)
	}
	*c = hotCell{}
}

// hotspot counts one packet to a dark destination.
func (e *Engine) hotspot(h *capture.Header) {
	hw := &e.hot
	c, _ := hw.cells.Touch(h.Dst)
	if c.Win != hw.win+1 {
		c.reset(&e.slab)
		c.Win = hw.win + 1
	}
	x := h.Src.Hash(seedHotSrc)
	var proto uint8
	var syn, udp, p2p, reply bool
	switch h.Proto {
	case capture.ProtoTCP:
		proto = hotTCP
		syn = h.SYNProbe()
	case capture.ProtoUDP:
		proto, udp = hotUDP, h.L4
		if udp && h.PayloadCap > 0 {
			p2p = payloadKind(h) != payloadOther
		}
	case capture.ProtoICMP:
		proto = hotICMP
	case capture.ProtoICMPv6:
		proto = hotICMPv6
	default:
		proto = hotOther
	}
	if !syn && !udp {
		reply = backscatterKind(h) >= 0
	}
	c.Addr.add(e, h, x, proto, syn, udp, p2p, reply)
	if (syn || udp || proto == hotTCP) && h.L4 && h.DstPort != 0 {
		c.port(e, h.DstPort).add(e, h, x, proto, syn, udp, p2p, reply)
	}
}

// port returns the stats of port p: its slot, a free one, or the one with the fewest
// packets, cleared (so the busiest ports stay).
func (c *hotCell) port(e *Engine, p uint16) *hotStats {
	low := 0
	for i := range c.Ports {
		if c.Ports[i] == p && c.Port[i].Packets > 0 {
			return &c.Port[i]
		}
		if c.Port[i].Packets < c.Port[low].Packets {
			low = i
		}
	}
	if c.Port[low].Packets > 0 {
		c.Port[low].Sources.Reset(&e.slab)
		c.Port[low] = hotStats{}
	}
	c.Ports[low] = p
	return &c.Port[low]
}

func (s *hotStats) add(e *Engine, h *capture.Header, x uint64, proto uint8, syn, udp, p2p, reply bool) {
	if s.Packets == 0 {
		s.First, s.Last = h.TS, h.TS
	}
	s.Last = max(s.Last, h.TS)
	s.First = min(s.First, h.TS)
	s.Packets++
	s.Protos |= proto
	if syn {
		s.SYN++
	}
	if udp {
		s.UDP++
		if p2p {
			s.P2P++
		}
	}
	if reply {
		s.Replies++
	}
	s.Sources.Add(&e.slab, x)
	// Space-Saving top sources: the source's slot, a free one, or the smallest replaced.
	low := 0
	for i := 0; i < int(s.NTop); i++ {
		if s.Top[i].Src == h.Src {
			s.Top[i].Packets++
			return
		}
		if s.Top[i].Packets < s.Top[low].Packets {
			low = i
		}
	}
	if s.NTop < hotTop {
		s.Top[s.NTop] = hotSrc{h.Src, 1, 0}
		s.NTop++
		return
	}
	s.Top[low] = hotSrc{h.Src, s.Top[low].Packets + 1, s.Top[low].Packets}
}

// hotPair notes that a SYN probe paired with an earlier UDP datagram to the same ip:port.
func (e *Engine) hotPair(h *capture.Header) {
	if !e.hotOn() {
		return
	}
	c := e.hot.cells.Get(h.Dst)
	if c == nil || c.Win != e.hot.win+1 {
		return
	}
	c.Addr.Pairs++
	for i := range c.Ports {
		if c.Ports[i] == h.DstPort && c.Port[i].Packets > 0 {
			c.Port[i].Pairs++
		}
	}
}

// HotSummary is one worker's counts for one destination level in one window: what the
// workers hand to Hotspots.
type HotSummary struct {
	Dst       capture.Addr
	Port      uint16 // 0: the address level
	Sources   uint64
	Estimated bool
	Packets   uint64
	SYN       uint64
	UDP       uint64
	P2P       uint64
	Pairs     uint64
	Replies   uint64
	First     int64
	Last      int64
	Protos    uint8
	NTop      uint8
	Top       [hotTop]hotSrc
}

func appendHot(out []HotSummary, k *capture.Addr, c *hotCell, s *aggregate.Slab) []HotSummary {
	out = append(out, summarize(k, 0, &c.Addr, s))
	for i := range c.Port {
		if c.Port[i].Packets > 0 {
			out = append(out, summarize(k, c.Ports[i], &c.Port[i], s))
		}
	}
	return out
}

func summarize(k *capture.Addr, port uint16, st *hotStats, s *aggregate.Slab) HotSummary {
	return HotSummary{
		Dst: *k, Port: port,
		Sources: st.Sources.Count(s), Estimated: !st.Sources.Exact(),
		Packets: st.Packets, SYN: st.SYN, UDP: st.UDP, P2P: st.P2P, Pairs: st.Pairs, Replies: st.Replies,
		First: st.First, Last: st.Last, Protos: st.Protos, NTop: st.NTop, Top: st.Top,
	}
}

// merge adds o (another worker's summary of the same destination level and window).
func (a *HotSummary) merge(o *HotSummary) {
	a.Sources += o.Sources
	a.Estimated = a.Estimated || o.Estimated
	a.Packets += o.Packets
	a.SYN += o.SYN
	a.UDP += o.UDP
	a.P2P += o.P2P
	a.Pairs += o.Pairs
	a.Replies += o.Replies
	a.First = min(a.First, o.First)
	a.Last = max(a.Last, o.Last)
	a.Protos |= o.Protos
	a.addTop(o.Top[:o.NTop])
}

// addTop merges top lists and keeps the hotTop with the most packets for sure
// (Packets-Err).
func (a *HotSummary) addTop(top []hotSrc) {
	all := make([]hotSrc, 0, int(a.NTop)+len(top))
	all = append(all, a.Top[:a.NTop]...)
outer:
	for _, t := range top {
		for i := range all {
			if all[i].Src == t.Src {
				all[i].Packets += t.Packets
				all[i].Err += t.Err
				continue outer
			}
		}
		all = append(all, t)
	}
	sort.Slice(all, func(i, j int) bool {
		x, y := all[i].Packets-all[i].Err, all[j].Packets-all[j].Err
		if x != y {
			return x > y
		}
		return all[i].Src.Netip().Compare(all[j].Src.Netip()) < 0
	})
	a.NTop = uint8(copy(a.Top[:], all))
}

// class is the episode class of the counts.
func (a *HotSummary) class() int {
	switch {
	case a.Pairs > 0 && a.Pairs*10 >= a.Sources,
		a.UDP*2 >= a.Packets && a.P2P*2 >= a.UDP && a.P2P > 0:
		return hotP2P
	case a.Replies*2 >= a.Packets && a.Replies > 0:
		return hotReflection
	case a.SYN*2 >= a.Packets && a.SYN > 0 && a.Packets <= 2*a.Sources:
		// Every source sending 3 packets or more would make packets >= 3 x sources: with
		// packets <= 2 x sources, at least half of the sources sent one or two.
		return hotSYNFlood
	}
	return hotPopular
}

func protoName(p uint8) string {
	var parts []string
	for i, n := range hotProtoNames {
		if p&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, "+")
}

type hotKey struct {
	Dst  capture.Addr
	Port uint16
}

// hotEpisode is an open hotspot episode.
type hotEpisode struct {
	sum     HotSummary // summed over the episode's windows; Sources is the peak window's
	srcSum  uint64     // the windows' Sources summed (for the class: packets per source per window)
	class   int        // class at start
	lastWin int64
}

// classOf is the episode's class over all its windows.
func (ep *hotEpisode) classOf() int {
	s := ep.sum
	s.Sources = ep.srcSum
	return s.class()
}

// Hotspots merges the workers' per-window destination summaries, runs the hotspot episodes
// and observes the receiver distribution (packets per dark destination per window). Shared
// by every engine; locked once per worker per window.
type Hotspots struct {
	mu   sync.Mutex
	sink Sink
	c    *Counters // detection counters (one engine's: the collector sums them)

	enabled    bool
	size       int64
	minSources uint64

	started []bool
	through []int64
	pending map[int64]map[hotKey]*HotSummary
	active  map[hotKey]*hotEpisode

	// Hist is the receiver distribution: packets per destination address per window,
	// observed when every worker has passed the window.
	Hist aggregate.Histogram
}

// NewHotspots returns the aggregator shared by `workers` engines; c receives its detection
// counters. Call SetConfig before use.
func NewHotspots(workers int, sink Sink, c *Counters) *Hotspots {
	workers = max(workers, 1)
	return &Hotspots{sink: sink, c: c, started: make([]bool, workers), through: make([]int64, workers),
		pending: map[int64]map[hotKey]*HotSummary{}, active: map[hotKey]*hotEpisode{}}
}

// SetConfig applies a (re)loaded config. A new window length, or turning the detector off,
// ends the open episodes and drops what is pending.
func (hs *Hotspots) SetConfig(cfg *Config) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	size := int64(cfg.Window)
	if cfg.Hotspot.Enabled != hs.enabled || size != hs.size {
		hs.closeAll()
		clear(hs.pending)
		clear(hs.started)
	}
	hs.enabled, hs.size = cfg.Hotspot.Enabled, size
	hs.minSources = uint64(max(cfg.Hotspot.MinSources, 1))
}

// report adds worker w's summaries of window `win` and records that it has passed every
// window before `through`.
func (hs *Hotspots) report(w int, size, win int64, sums []HotSummary, through int64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !hs.enabled || size != hs.size || w < 0 || w >= len(hs.started) {
		return
	}
	if len(sums) > 0 {
		m := hs.pending[win]
		if m == nil {
			m = map[hotKey]*HotSummary{}
			hs.pending[win] = m
		}
		for i := range sums {
			s := &sums[i]
			k := hotKey{s.Dst, s.Port}
			if a := m[k]; a != nil {
				a.merge(s)
			} else {
				c := *s
				m[k] = &c
			}
		}
	}
	hs.started[w] = true
	hs.through[w] = max(hs.through[w], through)
	hs.advance()
}

// advance evaluates, in order, every pending window all workers have passed.
func (hs *Hotspots) advance() {
	lim := int64(1 << 62)
	for i, ok := range hs.started {
		if !ok {
			return
		}
		lim = min(lim, hs.through[i])
	}
	var wins []int64
	for w := range hs.pending {
		if w < lim {
			wins = append(wins, w)
		}
	}
	sort.Slice(wins, func(i, j int) bool { return wins[i] < wins[j] })
	for _, w := range wins {
		hs.window(w, hs.pending[w])
		delete(hs.pending, w)
	}
	// Episodes not hot in the last complete window are over.
	hs.endBefore(lim - 1)
}

// window evaluates one complete window.
func (hs *Hotspots) window(win int64, m map[hotKey]*HotSummary) {
	hs.endBefore(win - 1) // window win-1 is complete: episodes not hot in it are over
	var hist [aggregate.HistBuckets + 1]uint64
	var sum, count uint64
	hotAddr := map[capture.Addr]bool{}
	var hot []hotKey
	for k, s := range m {
		if k.Port == 0 {
			hist[aggregate.HistBucket(s.Packets)]++
			sum += s.Packets
			count++
		}
		if s.Sources >= hs.minSources {
			hot = append(hot, k)
			if k.Port != 0 {
				hotAddr[k.Dst] = true
			}
		}
	}
	hs.Hist.Observe(&hist, sum, count)
	// Start episodes in a fixed order (events of the same input come out the same).
	sort.Slice(hot, func(i, j int) bool {
		a, b := m[hot[i]], m[hot[j]]
		if a.First != b.First {
			return a.First < b.First
		}
		if c := a.Dst.Netip().Compare(b.Dst.Netip()); c != 0 {
			return c < 0
		}
		return a.Port < b.Port
	})
	for _, k := range hot {
		if k.Port == 0 && hotAddr[k.Dst] {
			continue // reported by port
		}
		s := m[k]
		if ep := hs.active[k]; ep != nil {
			peak := max(ep.sum.Sources, s.Sources)
			est := ep.sum.Estimated
			if s.Sources >= ep.sum.Sources {
				est = s.Estimated
			}
			ep.sum.merge(s)
			ep.sum.Sources, ep.sum.Estimated = peak, est
			ep.srcSum += s.Sources
			ep.lastWin = win
			continue
		}
		ep := &hotEpisode{sum: *s, srcSum: s.Sources, class: s.class(), lastWin: win}
		hs.active[k] = ep
		hs.c.Detections[detHotspot][ep.class].Add(1)
		hs.c.Active[detHotspot].Add(1)
		hs.sink.Detection(&Event{Detector: Hotspot, Phase: Start, Class: HotspotClasses[ep.class], Entry: ep.entry()})
	}
}

// endBefore ends the episodes whose last hot window is before win, a complete window.
func (hs *Hotspots) endBefore(win int64) {
	var done []hotKey
	for k, ep := range hs.active {
		if ep.lastWin < win {
			done = append(done, k)
		}
	}
	hs.end(done)
}

func (hs *Hotspots) end(keys []hotKey) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := hs.active[keys[i]], hs.active[keys[j]]
		if a.sum.First != b.sum.First {
			return a.sum.First < b.sum.First
		}
		if c := keys[i].Dst.Netip().Compare(keys[j].Dst.Netip()); c != 0 {
			return c < 0
		}
		return keys[i].Port < keys[j].Port
	})
	for _, k := range keys {
		ep := hs.active[k]
		delete(hs.active, k)
		hs.c.Active[detHotspot].Add(-1)
		entry := ep.entry()
		hs.sink.Detection(&Event{Detector: Hotspot, Phase: End, Class: entry.Class, Entry: entry})
	}
}

func (hs *Hotspots) closeAll() {
	keys := make([]hotKey, 0, len(hs.active))
	for k := range hs.active {
		keys = append(keys, k)
	}
	hs.end(keys)
}

// Finish evaluates what is pending and ends every episode (call it after every engine's
// Finish).
func (hs *Hotspots) Finish() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for i := range hs.started {
		hs.started[i], hs.through[i] = true, 1<<62
	}
	hs.advance()
	hs.closeAll()
}

// Active returns the open hotspot episodes.
func (hs *Hotspots) Active() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.active)
}

func (ep *hotEpisode) entry() *HotspotEntry {
	s := &ep.sum
	e := &HotspotEntry{
		Dst: s.Dst.String(), Port: s.Port, Protocol: protoName(s.Protos),
		Class: HotspotClasses[ep.classOf()], Sources: s.Sources, SourcesEstimated: s.Estimated,
		Packets: s.Packets, FirstSeen: Time(s.First), LastSeen: Time(s.Last),
		TopSources: []HotSource{},
	}
	for _, t := range s.Top[:s.NTop] {
		e.TopSources = append(e.TopSources, HotSource{Src: t.Src.String(), Packets: t.Packets - t.Err})
	}
	return e
}

// HotspotEntry is a report entry of detections.hotspot (one hot destination episode).
type HotspotEntry struct {
	Dst      string `json:"dst"`
	Port     uint16 `json:"port"` // 0: the address as a whole
	Protocol string `json:"protocol"`
	Class    string `json:"class"`
	// Sources is the most distinct sources in one window of the episode;
	// SourcesEstimated says it comes from a sketch (HyperLogLog, ~3 % error).
	Sources          uint64      `json:"sources"`
	SourcesEstimated bool        `json:"sources_estimated"`
	Packets          uint64      `json:"packets"`
	FirstSeen        Time        `json:"first_seen"`
	LastSeen         Time        `json:"last_seen"`
	TopSources       []HotSource `json:"top_sources"`
}

// HotSource is one of an episode's top sources (Space-Saving over a few slots per worker
// and window). Packets is a lower bound: exact for a source that held its slot from its
// first packet in every window, the packets since it took a slot over otherwise.
type HotSource struct {
	Src     string `json:"src"`
	Packets uint64 `json:"packets"`
}

func (e *HotspotEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("dst", e.Dst)
	enc.AddUint16("port", e.Port)
	enc.AddString("protocol", e.Protocol)
	enc.AddString("class", e.Class)
	enc.AddUint64("sources", e.Sources)
	enc.AddBool("sources_estimated", e.SourcesEstimated)
	enc.AddUint64("packets", e.Packets)
	enc.AddString("first_seen", e.FirstSeen.String())
	enc.AddString("last_seen", e.LastSeen.String())
	return enc.AddArray("top_sources", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, s := range e.TopSources {
			if err := a.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
				o.AddString("src", s.Src)
				o.AddUint64("packets", s.Packets)
				return nil
			})); err != nil {
				return err
			}
		}
		return nil
	}))
}
