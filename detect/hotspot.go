package detect

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// Hotspot detection looks at a dark destination from its own side: per window (cfg.Window,
// aligned to multiples of it in Unix time), the distinct sources and the packets that reach
// each destination address, and each (address, destination port), over all workers.
//
// Workers own sources, so a destination's senders are spread over every worker: each worker
// records its dark packets (32 bytes each, hotbatch.go) and, when its clock passes the end
// of a window, counts each destination's records together, exactly, and hands the
// summaries of the busy destinations and the records of the light ones to the shared
// Hotspots (one lock per worker and hand-over, never per packet). The workers' source sets
// are disjoint, so the sum of their counts is the destination's distinct sources: exact,
// unless a worker's records filled up and it handed the window over in parts; then its
// counts across the parts are estimates past 192 sources (hotWinSets) and say so
// (sources_estimated).
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
	hotPorts = 2 // ports counted per destination per worker (the busiest)
)

// Protocol bits of HotSummary.Protos.
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

// hotSrc is a source and its packets to one destination. Err bounds how many of them are
// not the source's: 0 in a worker's counts (exact); a checkpoint of an earlier version may
// hold Space-Saving counts, where Packets-Err is a lower bound.
type hotSrc struct {
	Src     packet.Addr
	Packets uint64
	Err     uint64
}

// Bits of hotRec.Bits and hotEvent.Bits.
const (
	hotBitSYN   = 1 << iota // a SYN probe
	hotBitUDP               // a UDP datagram
	hotBitP2P               // with a DHT (KRPC) or uTP payload
	hotBitReply             // SYN-ACK, RST, ICMP reply or error (backscatter kinds)
	hotBitPair              // a SYN probe that paired with an earlier UDP datagram
)

// hotLog is how many packets a destination may have in a worker's part to be handed over
// as its packets (a light cell) rather than summaries: most destinations get a packet or
// two per window and worker.
const hotLog = 2

// hotEvent is one packet to a destination, as the hotspot counts need it.
type hotEvent struct {
	TS    int64
	Src   packet.Addr
	Port  uint16 // destination port, 0: no port level (not TCP/UDP, or port 0)
	Bits  uint16
	Proto uint8 // one of the hotTCP... bits
}

// hotCell is what one worker hands over of one destination address in a part of a window:
// its packets, and either the packets themselves (Log, up to hotLog) or, Heavy, summaries
// handed over beside the cells. Cells go to Hotspots in arrays it gives back.
type hotCell struct {
	Dst     packet.Addr
	Packets uint32 // this worker's packets to Dst in the part (the receiver distribution)
	Ix      int32  // dense index, -1: none
	Heavy   int32  // 1: counted as summaries (HotSummary), 0: light, see Log
	N       uint8  // packets in Log
	Split   bool   // the worker handed its counts over early in this window (see hotFlush)
	Log     [hotLog]hotEvent
}

// A hash index entry is a generation (hotGenShift high bits) and 1 + a place (the low
// bits): a part's end starts a new generation instead of clearing the index.
const (
	hotGenShift = 24
	hotCellMask = 1<<hotGenShift - 1
	hotGenMax   = 1<<(32-hotGenShift) - 1
)

// HotSummary is one worker's counts for one destination level in one window, or their sum
// over workers.
type HotSummary struct {
	Dst  packet.Addr
	Port uint16 // 0: the address level
	// W is the worker whose part of the window it counts, in a pending window's summaries
	// as a checkpoint saves them and as joinFull joins them; elsewhere it means nothing.
	// (In the padding after Port.)
	W         uint16
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

// appendLight appends the summaries of a light cell (at most hotLog packets): its address
// and each port, as a worker counts a destination's records (hc: scratch).
func (c *hotCell) appendLight(out []HotSummary, hc *hotCounter) []HotSummary {
	var g [hotLog]hotRec
	for i := range c.Log[:c.N] {
		l := &c.Log[i]
		g[i] = hotRec{TS: l.TS, Src: l.Src, Port: l.Port, Bits: uint8(l.Bits), Proto: l.Proto}
	}
	return hc.summarize(out, g[:c.N], &c.Dst, c.Split)
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

// topLess reports whether top source x ranks before y: most packets for sure (Packets-Err)
// first, then the lower hotRank, then the lower address. The workers pick their top
// sources in the same order (topOf, countParts), so a window's list merged from theirs is
// the one a single worker would have picked: among sources with as many packets, a worker
// that kept those it saw first made the list depend on how the sources were split among
// the workers (the 20x day's hotspots, 1 worker against 2: another source in 3 288 of
// 6 600 places).
func topLess(x, y *hotSrc) bool {
	if a, b := x.Packets-x.Err, y.Packets-y.Err; a != b {
		return a > b
	}
	if a, b := hotRank(&x.Src), hotRank(&y.Src); a != b {
		return a < b
	}
	return x.Src.Compare(&y.Src) < 0
}

// hotRank is source a's hash in the hotspot's counts (hotSlot.x, never 0): it breaks ties
// between sources with as many packets in a fixed order, unrelated to their addresses.
func hotRank(a *packet.Addr) uint64 { return a.Hash(seedHotSrc) | 1 }

// rankUp moves top[i] ahead of the sources before it that it ranks before (topLess), the
// others being in order: a list in order with one source added or grown is in order again.
// Not slices.SortFunc: the lists are at most hotTop long and nearly always in order, and
// the generic sort, copying the sources by value through its comparison, was a tenth of
// BenchmarkHotspotDay's time.
func rankUp(top []hotSrc, i int) {
	for ; i > 0 && topLess(&top[i], &top[i-1]); i-- {
		top[i], top[i-1] = top[i-1], top[i]
	}
}

// rerank puts the top sources in topLess's order (restored ones: an older release ranked
// sources with as many packets by address), which addTop expects of a list.
func (a *HotSummary) rerank() {
	n := int(a.NTop)
	if n > hotTop {
		return // refused by the caller
	}
	for k := 1; k < n; k++ {
		rankUp(a.Top[:n], k)
	}
}

// addTop merges top lists and keeps the hotTop with the most packets for sure
// (Packets-Err). A source in both lists is summed. Workers' sources are disjoint, so
// merging the workers' lists of a window in any order gives the same list.
func (a *HotSummary) addTop(top []hotSrc) {
	for _, t := range top {
		at := -1
		for i := range a.Top[:a.NTop] {
			if a.Top[i].Src == t.Src {
				// Packets-Err grows (Err <= Packets): the source can only move up.
				a.Top[i].Packets += t.Packets
				a.Top[i].Err += t.Err
				at = i
				break
			}
		}
		if at < 0 {
			if a.NTop < hotTop {
				at = int(a.NTop)
				a.NTop++
			} else if topLess(&t, &a.Top[hotTop-1]) {
				at = hotTop - 1
			} else {
				continue
			}
			a.Top[at] = t
		}
		rankUp(a.Top[:a.NTop], at)
	}
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
	Dst  packet.Addr
	Port uint16
}

func hashHotKey(k *hotKey) uint64       { return k.Dst.Hash(seedDstIP) ^ uint64(k.Port)*0x9e3779b97f4a7c15 }
func hashHotAddr(a *packet.Addr) uint64 { return a.Hash(seedDstIP) }

// hotIndex maps keys to positions 0, 1, ... in insertion order (open addressing, reused
// from window to window without allocating).
type hotIndex[K comparable] struct {
	slots []int32 // 1 + position
	keys  []K
	hash  func(*K) uint64
}

// reset empties the index for up to n keys.
func (x *hotIndex[K]) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	x.setSlots(size)
	x.keys = x.keys[:0]
}

// setSlots makes the index n empty slots, in the array it has when that holds them: the
// largest array is kept (windows of a few cells and windows of many alternate, an IPv6
// scan's, and one made for each was fresh memory each time).
func (x *hotIndex[K]) setSlots(n int) {
	if cap(x.slots) < n {
		x.slots = make([]int32, n)
		return
	}
	x.slots = x.slots[:n]
	clear(x.slots)
}

// get returns k's position; with add, a missing k is added (isNew), else -1. The index
// doubles when half full: reset's size is a guess (candidates may add a key per light
// cell), and a full index would probe forever.
func (x *hotIndex[K]) get(k *K, add bool) (pos int32, isNew bool) {
	if add && 2*(len(x.keys)+1) > len(x.slots) {
		x.grow()
	}
	mask := uint64(len(x.slots) - 1)
	i := x.hash(k) & mask
	for x.slots[i] != 0 {
		if p := x.slots[i] - 1; x.keys[p] == *k {
			return p, false
		}
		i = (i + 1) & mask
	}
	if !add {
		return -1, false
	}
	x.keys = append(grow2(x.keys, 1), *k)
	x.slots[i] = int32(len(x.keys))
	return int32(len(x.keys) - 1), true
}

// request asks the memory system for k's first slot ahead of a get (a look-up of a large
// index misses the caches).
func (x *hotIndex[K]) request(k *K) {
	if len(x.slots) > 0 {
		prefetch.Line(unsafe.Pointer(&x.slots[x.hash(k)&uint64(len(x.slots)-1)]))
	}
}

// mergeAhead is how many summaries ahead mergeFull requests their index slots.
const mergeAhead = 8

// grow doubles the index's slots and puts the keys back.
func (x *hotIndex[K]) grow() {
	x.setSlots(2 * max(len(x.slots), 8))
	mask := uint64(len(x.slots) - 1)
	for p := range x.keys {
		i := x.hash(&x.keys[p]) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = int32(p + 1)
	}
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

// hotPending is what the workers handed over for one window: their cells, and the
// summaries of their heavy cells.
type hotPending struct {
	parts [][]hotCell // the workers' cell arrays (owned by Hotspots until recycled)
	partW []int       // the worker of each of parts (-1: restored from a checkpoint)
	light []hotLight  // the workers' light destinations with a dense index (likewise)
	// fullW are the heavy summaries by worker, in the order each handed them over (one per
	// level and part, until compactFull sums them); full is their concatenation, made when
	// the window is evaluated or saved (joinFull).
	fullW [][]HotSummary
	full  []HotSummary
	// fullIx indexes fullW[w] by level once compactFull has summed it (merged[w]): the
	// worker's later summaries are summed into it as they come (mergeFull).
	fullIx []hotIndex[hotKey]
	merged []bool
	// dense are the heavy cells with a dense index, one per address: the parts' cells of
	// an address summed over the workers (foldDense); denseIx their places by address.
	dense   []hotCell
	denseIx hotIndex[packet.Addr]
	n       []int               // cells handed over, by worker
	nd      []int               // light destinations with a dense index handed over, by worker
	np      []int               // cell arrays handed over, by worker (a checkpoint's check of its arrays)
	split   bool                // a worker handed over early: a destination may have several cells in it
	px      *aggregate.Prefixes // the dark space numbering the cells' dense indexes
	hasPx   bool                // px is set: the window has had cells or light destinations
	mixed   bool                // cells of different numberings: merge by address only
	// wide are the workers' packets per address of a wide dark space (hotwide.go), each
	// list (wideList's bytes) in index order; widePxs their spaces (one, or several across
	// a reload: their cells are left out of the histogram, wideCell); wideMixed: lists of
	// several numberings (kept across a checkpoint, which does not hold the spaces).
	wide      [][]byte
	widePxs   []*aggregate.Prefixes
	wideMixed bool
}

// Hotspots merges the workers' per-window destination counts, runs the hotspot episodes
// and observes the receiver distribution (packets per dark destination per window). Shared
// by every engine; locked once per worker per window (and when a worker's cells fill up).
//
// A window is evaluated once every worker has passed it. The receiver distribution sums
// each destination's packets over the workers' cells. The workers' summaries are summed
// only for the keys of candidate destinations, those with min_sources packets over the
// workers (a key's distinct sources are at most its destination's packets; the workers'
// source sets are disjoint, so the sums are exact): their light cells and light
// destinations are counted here from their records.
type Hotspots struct {
	mu   sync.Mutex
	sink Sink
	c    *Counters // detection counters (one engine's: the collector sums them)

	enabled    bool
	size       int64
	minSources uint64
	maxCells   int        // cells kept per worker and window (twice the worker's table)
	maxLight   int        // light destinations with a dense index kept per worker and window (its records' cap)
	maxFull    int        // heavy summaries a worker's window keeps once compacted (compactFull)
	groups     []hotGroup // scratch of pruneFull
	keep       []bool     // scratch of pruneFull

	started []bool
	through []int64
	pending map[int64]*hotPending
	free    []*hotPending
	spare   [][]hotCell // cell arrays to hand back to the workers
	spareLt []hotLight  // arrays of light destinations to hand back to the workers
	// spareWide: arrays of a wide dark space's counts to hand back to the workers (reportWide)
	spareWide [][]byte
	active    map[hotKey]*hotEpisode

	// The evaluation's queue (under mu): complete windows and ends of episodes, in order,
	// evaluated by the hand-over that queued them, or, once StartEvaluator has run, by a
	// goroutine of their own (evalOn), so that no worker's capture waits for a busy
	// window's evaluation (seconds for a swarm over a dark /16). The evaluation's state
	// (active, the scratch below, the sink's hotspot events) is the evaluator's while
	// busy; everything else that reads it waits for the queue to empty first (settle).
	queue  []hotEval
	nwins  int // windows queued or being evaluated
	nmerge int // parts' heavy summaries queued or being summed (report, evalOn)
	// spareFull: arrays of those copies to reuse
	spareFull [][]HotSummary
	busy      bool // the evaluator is evaluating an item it took from the queue
	evalOn    bool
	// evaluated counts the windows the evaluator evaluated (tests: it ran); gate, when
	// not nil, holds the evaluator before each step until it is closed (tests).
	evaluated uint64
	gate      chan struct{}
	saving    bool // SaveState waits for the queue: hand-overs wait for it to end
	cond      sync.Cond
	pruneIx   hotIndex[packet.Addr] // scratch of pruneFull (hand-overs, not the evaluation)

	// Scratch of window(), reused.
	addrIx hotIndex[packet.Addr]
	pk     []uint64
	dacc   []uint64 // packets by dense index
	dseen  []uint64 // bitmaps by dense index: a cell seen, a destination in several cells
	ddup   []uint64
	dtouch []int32 // dense indexes counted in dacc
	obs    []hotObs
	cand   []packet.Addr // destinations with min_sources packets over the workers (observe)
	candIx hotIndex[hotKey]
	dstIx  hotIndex[packet.Addr]
	sums   []HotSummary
	tmp    []HotSummary
	order  []int32    // places in a pending window's summaries or cell arrays (fullOrder, partOrder)
	cnt    hotCounter // scratch of appendLight
	// lightSeen: the sources of the window's light summaries that are estimated (cut in
	// parts), by level (candidates): a light part of a destination lists all its one or
	// two sources, so a source in several of them counts once (a worker's busy parts count
	// theirs once in the worker's sets, hotWinSets).
	lightSeen map[hotSrcKey]struct{}
	group     hotGrouper // scratch of eachLight
	want      []uint64   // bitmap by dense index: a candidate destination (candidates)

	// Hist is the receiver distribution: packets per destination address per window,
	// observed when every worker has passed the window.
	Hist aggregate.Histogram
	// Unmerged counts the cells observed in Hist on their own, when they came (light
	// cells past a worker's limit of cells for a window, dropLight): each is a destination
	// there, though another cell of the same destination and window may be one too.
	Unmerged atomic.Uint64
	// wide is the wide dark space the engines count per address (hotwide.go; nil: none):
	// its cells are not observed in Hist, its engines' counts are.
	wide atomic.Pointer[aggregate.Prefixes]
}

// NewHotspots returns the aggregator shared by `workers` engines; c receives its detection
// counters. Call SetConfig before use.
func NewHotspots(workers int, sink Sink, c *Counters) *Hotspots {
	workers = max(workers, 1)
	hs := &Hotspots{sink: sink, c: c, started: make([]bool, workers), through: make([]int64, workers),
		pending: map[int64]*hotPending{}, active: map[hotKey]*hotEpisode{},
		addrIx: hotIndex[packet.Addr]{hash: hashHotAddr}, dstIx: hotIndex[packet.Addr]{hash: hashHotAddr},
		candIx: hotIndex[hotKey]{hash: hashHotKey}, pruneIx: hotIndex[packet.Addr]{hash: hashHotAddr}}
	hs.cond.L = &hs.mu
	return hs
}

// SetConfig applies a (re)loaded config. A new window length, or turning the detector off,
// ends the open episodes and drops what is pending.
func (hs *Hotspots) SetConfig(cfg *Config) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for hs.saving {
		hs.cond.Wait() // a checkpoint's copy is one state, not half the old config's
	}
	hs.settle() // the windows queued are evaluated with the config they were counted with
	size := int64(cfg.Window)
	if cfg.Hotspot.Enabled != hs.enabled || size != hs.size {
		hs.closeAll()
		for w, p := range hs.pending {
			hs.recycle(p)
			delete(hs.pending, w)
		}
		clear(hs.started)
	}
	hs.enabled, hs.size = cfg.Hotspot.Enabled, size
	hs.minSources = uint64(max(cfg.Hotspot.MinSources, 1))
	hs.maxCells = 2 * max(cfg.MaxDestinations, 1)
	hs.maxLight = hotRecCap(max(cfg.MaxDestinations, 1))
	hs.maxFull = hotMaxFull(hs.maxCells, hs.maxLight)
}

// hotSpare is how many cell arrays Hotspots keeps per worker to give back: as many as are
// handed over and not yet evaluated at once, spills included (two kept per worker, the 20x
// day's IPv6 scan windows made new ones at most hand-overs: fresh memory, page faults).
// Light destinations come only at a window's close or a flush, with a part's records
// (up to 8 MiB): two of those per worker.
const (
	hotSpare      = 8
	hotSpareLight = 2
)

func (hs *Hotspots) recycle(p *hotPending) {
	clear(p.n)
	clear(p.nd)
	clear(p.np)
	for w := range p.fullW {
		p.fullW[w] = p.fullW[w][:0]
	}
	clear(p.merged)
	p.dense = p.dense[:0]
	p.denseIx.reset(0)
	for _, c := range p.parts {
		hs.spare = pushSpare(hs.spare, c[:0], hotSpare*len(hs.started), capOf)
	}
	clear(p.parts)
	for _, lt := range p.light {
		hs.spareLt = pushSpare(hs.spareLt, hotLight{obs: lt.obs[:0], recs: lt.recs[:0]}, hotSpareLight*len(hs.started), capLight)
	}
	clear(p.light)
	p.parts, p.light, p.full, p.split, p.px, p.mixed, p.hasPx = p.parts[:0], p.light[:0], p.full[:0], false, nil, false, false
	p.partW = p.partW[:0]
	for _, l := range p.wide {
		hs.spareWide = pushSpare(hs.spareWide, l[:0], 2*len(hs.started), capOf)
	}
	clear(p.wide)
	clear(p.widePxs)
	p.wide, p.wideMixed, p.widePxs = p.wide[:0], false, p.widePxs[:0]
	hs.free = append(hs.free, p)
}

// report adds worker w's cells and light destinations with a dense index (lt; nil: none),
// numbered by px, and heavy summaries of window `win`, and records that it has passed every
// window before `through`. It keeps the cells array and returns one for the worker to
// reuse (nil: none spare), swaps lt's arrays for spare ones when it keeps them, and
// returns how many destinations it dropped: the light ones past maxCells (cells) or
// maxLight (with a dense index) for the worker and window (memory stays bounded whatever
// the traffic; the heavy ones, at most the worker's table, are always kept). through
// math.MinInt64: a part handed over before the window's end (hotFlush, hotSpill).
// The array returned is one a window's evaluation gave back, else a new one as large as
// the cells: a worker whose array grew cell by cell would write fresh memory (and copy it)
// all through the next window.
func (hs *Hotspots) report(w int, size, win int64, cells []hotCell, full []HotSummary, lt *hotLight, through int64,
	px *aggregate.Prefixes) (dropped uint64, spare []hotCell) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	// While a checkpoint copies the state, and while two windows or two parts' summaries a
	// worker wait for the evaluator (memory: each holds a window's counts, or a copy of a
	// part's summaries), a hand-over waits.
	for hs.saving || hs.evalOn && (hs.nwins >= hotMaxQueued || hs.nmerge >= hotMaxMerges*len(hs.started)) {
		hs.cond.Wait()
	}
	if !hs.evalOn {
		// What a stopped evaluator left comes first, once the step it may still be
		// running is done (kick alone would run the queue beside it).
		hs.settle()
	}
	if !hs.enabled || size != hs.size || w < 0 || w >= len(hs.started) {
		return 0, cells
	}
	spare = cells
	kept := false
	nl := 0
	if lt != nil {
		nl = len(lt.obs)
	}
	if len(cells)+nl > 0 {
		p := hs.pendingWin(win)
		if through == math.MinInt64 { // handed over early: a destination may be in several parts
			p.split = true
		}
		// Past the limits the light destinations go, each observed as a destination of its
		// own in the receiver distribution (its packets are not lost; its destination may
		// be counted twice there): the heavy ones, those that can be hot, stay.
		if nl > 0 && p.nd[w]+nl > hs.maxLight {
			var b aggregate.HistBatch
			for _, o := range lt.obs {
				b.Add(uint64(o.packets))
			}
			dropped, nl = hs.unmerged(&b), 0
		}
		// Heavy cells with a dense index are summed by index, at most one per dark address
		// (foldDense), so they neither count against maxCells nor grow with the parts.
		folded := 0
		if len(cells) > 0 {
			cells, folded = p.foldDense(cells)
		}
		if p.n[w]+len(cells) > hs.maxCells {
			var d uint64
			cells, d = hs.dropLight(p, cells, 2*hs.maxCells-p.n[w])
			dropped += d
		}
		if len(cells)+nl+folded > 0 {
			switch {
			case !p.hasPx:
				p.px, p.hasPx = px, true
			case p.px != px && (p.px == nil || px == nil || !p.px.SameExact(px)):
				p.mixed = true
			}
		}
		if len(full) > 0 && len(cells)+nl+folded > 0 {
			if hs.evalOn {
				// Summed into the worker's summaries by the evaluator, before the window's
				// evaluation (queue order): that sum (hundreds of ms for a swarm's part
				// over a dark /16) is what held the worker, and the other workers' hand-
				// overs behind the lock. The worker keeps its array: a copy goes.
				var mine []HotSummary
				if len(hs.spareFull) > 0 {
					mine, hs.spareFull = popSpare(hs.spareFull, capOf)
				}
				mine = append(room(mine, len(full)), full...)
				hs.queue = append(hs.queue, hotEval{p: p, w: w, full: mine})
				hs.nmerge++
				hs.cond.Broadcast()
			} else {
				dropped += hs.addFull(p, w, full)
			}
		}
		if len(cells)+nl > 0 {
			p.n[w] += len(cells)
			p.nd[w] += nl
			p.np[w]++
			if len(cells) > 0 {
				p.parts, p.partW = append(p.parts, cells), append(p.partW, w)
				p.split = p.split || cells[0].Split
				kept = true
			}
			if nl > 0 {
				p.light = append(p.light, hotLight{obs: lt.obs, recs: lt.recs, grouped: lt.grouped, split: lt.split, w: w,
					alone: len(cells) == 0, px: px})
				p.split = p.split || lt.split
				lt.obs, lt.recs = nil, nil
				if len(hs.spareLt) > 0 {
					var sp hotLight
					sp, hs.spareLt = popSpare(hs.spareLt, capLight)
					lt.obs, lt.recs = sp.obs, sp.recs
				}
			}
		}
	}
	hs.started[w] = true
	hs.through[w] = max(hs.through[w], through)
	hs.advance() // may give arrays back
	if kept {
		if len(hs.spare) > 0 {
			spare, hs.spare = popSpare(hs.spare, capOf)
		} else {
			spare = make([]hotCell, 0, cap(cells)) // as large as the one kept: it grew to that
		}
	}
	return dropped, spare
}

// pendingWin returns window win's counts so far, new ones if it has none (with mu held).
func (hs *Hotspots) pendingWin(win int64) *hotPending {
	p := hs.pending[win]
	if p == nil {
		if n := len(hs.free); n > 0 {
			p, hs.free = hs.free[n-1], hs.free[:n-1]
		} else {
			p = &hotPending{n: make([]int, len(hs.started)), nd: make([]int, len(hs.started)),
				np: make([]int, len(hs.started))}
			p.init(len(hs.started))
		}
		hs.pending[win] = p
	}
	return p
}

// addFull sums worker w's heavy summaries of a part into its summaries of window p and
// returns how many levels it pruned (with mu held, or by the evaluator, which alone then
// touches p's summaries: report leaves them to it).
func (hs *Hotspots) addFull(p *hotPending, w int, full []HotSummary) (dropped uint64) {
	if p.merged[w] {
		return hs.mergeFull(p, w, full)
	}
	if p.fullW[w] = append(grow2(p.fullW[w], len(full)), full...); len(p.fullW[w]) > hs.maxFull {
		return hs.compactFull(p, w)
	}
	return 0
}

// pushSpare adds a to the spare arrays, at most limit of them; past that it replaces the
// smallest if it is larger (size), so that the arrays kept grow to what the workers' largest
// hand-overs need, rather than being regrown for each.
func pushSpare[T any](spare []T, a T, limit int, size func(*T) int) []T {
	if len(spare) < limit {
		return append(spare, a)
	}
	small := 0
	for i := range spare {
		if size(&spare[i]) < size(&spare[small]) {
			small = i
		}
	}
	if size(&a) > size(&spare[small]) {
		spare[small] = a
	}
	return spare
}

// popSpare removes the largest of the spare arrays (at least one) and returns it.
func popSpare[T any](spare []T, size func(*T) int) (T, []T) {
	big := 0
	for i := range spare {
		if size(&spare[i]) > size(&spare[big]) {
			big = i
		}
	}
	a, n := spare[big], len(spare)-1
	spare[big] = spare[n]
	var zero T
	spare[n] = zero
	return a, spare[:n]
}

func capOf[T any](s *[]T) int   { return cap(*s) }
func capLight(lt *hotLight) int { return cap(lt.recs) + cap(lt.obs) }

// dropLight keeps the heavy cells of a worker's cells (in place), if there are at most
// room of them, and observes each other one in the receiver distribution as a destination
// of its own, returning the cells kept and how many went. (Past maxCells a worker's window
// keeps at most maxCells more: its busy destinations, unless a flood of them refills its
// table again and again.)
func (hs *Hotspots) dropLight(p *hotPending, cells []hotCell, room int) ([]hotCell, uint64) {
	heavy := 0
	for i := range cells {
		if cells[i].Heavy != 0 {
			heavy++
		}
	}
	keep := heavy <= room
	var b aggregate.HistBatch
	kept := cells[:0]
	dropped := uint64(0)
	for i := range cells {
		if keep && cells[i].Heavy != 0 {
			kept = append(kept, cells[i])
			continue
		}
		dropped++
		if !hs.wideCell(p, &cells[i].Dst) { // in the distribution already (hotwide.go)
			b.Add(uint64(cells[i].Packets))
		}
	}
	hs.unmerged(&b)
	return kept, dropped
}

// unmerged observes b's destinations in the receiver distribution on their own (each one a
// destination, though another part may hold the same) and returns how many they were.
func (hs *Hotspots) unmerged(b *aggregate.HistBatch) uint64 {
	hs.Hist.ObserveBatch(b)
	hs.Unmerged.Add(b.Count)
	return b.Count
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
		hs.queue = append(hs.queue, hotEval{win: w, p: hs.pending[w]})
		hs.nwins++
		delete(hs.pending, w)
	}
	// Episodes not hot in the last complete window are over.
	if n := len(hs.queue); n > 0 && hs.queue[n-1].p == nil {
		hs.queue[n-1].win = lim - 1 // through only grows
	} else {
		hs.queue = append(hs.queue, hotEval{win: lim - 1})
	}
	hs.kick()
}

// hotEval is a step of the evaluation: worker w's heavy summaries of a part (full) to sum
// into window p's, a complete window p to evaluate, or (p nil) the end of the episodes not
// hot in window win or later.
type hotEval struct {
	win  int64
	p    *hotPending
	w    int
	full []HotSummary
}

// hotMaxQueued is how many windows may wait for the evaluator (or be evaluated) before a
// hand-over waits for it: one being evaluated while the next one completes. hotMaxMerges
// is as many parts' summaries a worker.
const (
	hotMaxQueued = 2
	hotMaxMerges = 2
)

// kick has the queue evaluated (mu held): by the evaluator when it runs, else here, now.
func (hs *Hotspots) kick() {
	if hs.evalOn {
		hs.cond.Broadcast()
		return
	}
	for len(hs.queue) > 0 {
		it := hs.pop()
		hs.run(it)
		hs.done(it)
	}
}

// pop takes the first step of the queue (mu held). The queue is a few steps long.
func (hs *Hotspots) pop() hotEval {
	it := hs.queue[0]
	n := copy(hs.queue, hs.queue[1:])
	hs.queue[n] = hotEval{}
	hs.queue = hs.queue[:n]
	return it
}

// run evaluates it: with mu held, or by the evaluator, which alone then touches the
// evaluation's state.
func (hs *Hotspots) run(it hotEval) {
	switch {
	case it.full != nil:
		hs.c.Evictions.Add(hs.addFull(it.p, it.w, it.full))
	case it.p == nil:
		hs.endBefore(it.win)
	default:
		hs.window(it.win, it.p)
	}
}

// done finishes it, mu held: its arrays go back to the spares.
func (hs *Hotspots) done(it hotEval) {
	if it.full != nil {
		hs.spareFull = pushSpare(hs.spareFull, it.full[:0], hotMaxMerges*len(hs.started), capOf)
		hs.nmerge--
		return
	}
	if it.p != nil {
		hs.recycle(it.p)
		hs.nwins--
	}
}

// settle waits, mu held, until the queue is evaluated (by the evaluator, or here when it
// does not run): the evaluation's state is then the caller's until it unlocks mu.
func (hs *Hotspots) settle() {
	for hs.busy || hs.evalOn && len(hs.queue) > 0 {
		hs.cond.Wait()
	}
	hs.kick()
}

// StartEvaluator has the complete windows evaluated from now on by a goroutine of its own
// rather than by the worker whose hand-over completed them: live, a busy window's
// evaluation held that worker's capture (2.9 s for a 12 M-probe swarm over a dark /16), and
// the kernel dropped packets meanwhile. The func returned stops it; what is queued then is
// evaluated by the next hand-over, Finish or checkpoint. Replay does without: its reports
// come out the same either way, and its workers have no ring to overflow.
func (hs *Hotspots) StartEvaluator() (stop func()) {
	hs.mu.Lock()
	if hs.evalOn {
		hs.mu.Unlock()
		return func() {} // one evaluator: the evaluation's state is its alone
	}
	hs.evalOn = true
	hs.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.evaluate()
	}()
	return func() {
		hs.mu.Lock()
		hs.evalOn = false
		hs.cond.Broadcast()
		hs.mu.Unlock()
		<-done
	}
}

// EvaluatedWindows returns how many windows the evaluator goroutine has evaluated (tests:
// that it ran).
func (hs *Hotspots) EvaluatedWindows() uint64 {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.evaluated
}

// evaluate is the evaluator: it takes the queue's steps in order and evaluates each one
// without holding mu, so that hand-overs go on meanwhile.
func (hs *Hotspots) evaluate() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for {
		for hs.evalOn && len(hs.queue) == 0 {
			hs.cond.Wait()
		}
		if !hs.evalOn {
			return
		}
		it := hs.pop()
		hs.busy = true
		gate := hs.gate
		hs.mu.Unlock()
		if gate != nil {
			<-gate
		}
		hs.run(it)
		hs.mu.Lock()
		hs.busy = false
		if it.p != nil && it.full == nil {
			hs.evaluated++
		}
		hs.done(it)
		hs.cond.Broadcast()
	}
}

// hotObs is a dense destination's cell as the receiver distribution reads it.
type hotObs struct {
	ix      int32
	packets uint32
}

// observeAhead is how many cells observe requests ahead of the one it reads.
const observeAhead = 24

// observe adds the window's receiver distribution: each destination's packets summed over
// the workers' cells (one cell per destination and worker, unless a worker handed over
// early), by dense index where the cells share one, else by address.
func (hs *Hotspots) observe(p *hotPending) {
	var b aggregate.HistBatch
	hs.cand = hs.cand[:0]
	// A wide dark space's destinations come from the engines' counts, summed over the
	// workers (hotwide.go); their cells only find candidates.
	hs.observeWide(p, &b)
	if len(hs.started) == 1 && !p.split {
		for _, part := range slices.Concat(p.parts, [][]hotCell{p.dense}) {
			for i := range part {
				if !hs.wideCell(p, &part[i].Dst) {
					b.Add(uint64(part[i].Packets))
				}
				hs.candidate(&part[i].Dst, uint64(part[i].Packets))
			}
		}
		for _, lt := range p.light {
			for _, o := range lt.obs {
				b.Add(uint64(o.packets))
				hs.denseCandidate(lt.px, o.ix, uint64(o.packets))
			}
		}
		hs.Hist.ObserveBatch(&b)
		return
	}
	dense := 0
	if !p.mixed && p.px != nil {
		dense = p.px.ExactSize()
	}
	if len(hs.dacc) < dense {
		hs.dacc = make([]uint64, dense)
		hs.dseen, hs.ddup = make([]uint64, (dense+63)/64), make([]uint64, (dense+63)/64)
	}
	// The destinations summed by address (the index's size): at most the cells, and the
	// light destinations when their numbering is not the cells' (dense == 0). Sized to the
	// light ones too, the index was cleared each window for nothing: for a scanned /16's
	// 17 k light destinations a window, 256 KiB.
	byAddr := 0
	for _, part := range p.parts {
		byAddr += len(part)
	}
	byAddr += len(p.dense)
	if dense == 0 {
		for _, lt := range p.light {
			byAddr += len(lt.obs)
		}
	}
	// One pass over the cells (96 bytes each, written on the other cores): a dense
	// destination's index and packets go to obs, 8 bytes each, as the light ones already
	// are; the others are summed by address.
	hs.addrIx.reset(byAddr)
	hs.pk, hs.dtouch, hs.obs = hs.pk[:0], hs.dtouch[:0], hs.obs[:0]
	for _, part := range slices.Concat(p.parts, [][]hotCell{p.dense}) {
		for i := range part {
			if i+observeAhead < len(part) {
				prefetch.Line(unsafe.Pointer(&part[i+observeAhead].Packets))
			}
			c := &part[i]
			if ix := c.Ix; ix >= 0 && int(ix) < dense {
				hs.obs = append(hs.obs, hotObs{ix, c.Packets})
				continue
			}
			hs.observeAddr(&c.Dst, c.Packets)
		}
	}
	for _, lt := range p.light {
		if dense > 0 { // numbered as the cells' dense indexes
			hs.obs = append(hs.obs, lt.obs...)
			continue
		}
		var a packet.Addr
		for _, o := range lt.obs {
			lt.px.ExactAddrTo(&a, o.ix)
			hs.observeAddr(&a, o.packets)
		}
	}
	// Two bitmaps (small, in cache) find the dense destinations with several cells.
	for _, o := range hs.obs {
		w, bit := o.ix>>6, uint64(1)<<(o.ix&63)
		hs.ddup[w] |= hs.dseen[w] & bit
		hs.dseen[w] |= bit
	}
	// A destination in one cell goes to the histogram directly; the others are summed in
	// dacc (by dense index: a /16's 512 KiB, requested observeAhead cells ahead).
	obs := hs.obs
	for j, o := range obs {
		if j+observeAhead < len(obs) {
			if x := obs[j+observeAhead].ix; hs.ddup[x>>6]&(1<<(x&63)) != 0 {
				prefetch.Write(unsafe.Pointer(&hs.dacc[x]))
			}
		}
		if hs.ddup[o.ix>>6]&(1<<(o.ix&63)) == 0 {
			b.Add(uint64(o.packets))
			hs.denseCandidate(p.px, o.ix, uint64(o.packets))
			continue
		}
		if hs.dacc[o.ix] == 0 {
			hs.dtouch = append(hs.dtouch, o.ix)
		}
		hs.dacc[o.ix] += uint64(o.packets)
	}
	if len(obs) >= len(hs.dseen) {
		clear(hs.dseen)
		clear(hs.ddup)
	} else {
		for _, o := range obs {
			hs.dseen[o.ix>>6], hs.ddup[o.ix>>6] = 0, 0
		}
	}
	for _, ix := range hs.dtouch {
		b.Add(hs.dacc[ix])
		hs.denseCandidate(p.px, ix, hs.dacc[ix])
		hs.dacc[ix] = 0
	}
	for i, n := range hs.pk {
		if !hs.wideCell(p, &hs.addrIx.keys[i]) {
			b.Add(n)
		}
		hs.candidate(&hs.addrIx.keys[i], n)
	}
	hs.Hist.ObserveBatch(&b)
}

// candidate notes destination a, with packets over all workers in the window, as one that
// can be hot: a key's distinct sources are at most its destination's packets.
func (hs *Hotspots) candidate(a *packet.Addr, packets uint64) {
	if packets >= hs.minSources {
		hs.cand = append(hs.cand, *a)
	}
}

// denseCandidate is candidate for the destination of dense index ix in px.
func (hs *Hotspots) denseCandidate(px *aggregate.Prefixes, ix int32, packets uint64) {
	if packets >= hs.minSources {
		var a packet.Addr
		px.ExactAddrTo(&a, ix)
		hs.cand = append(hs.cand, a)
	}
}

// observeAddr adds packets to destination a's sum in the receiver distribution (observe).
func (hs *Hotspots) observeAddr(a *packet.Addr, packets uint32) {
	pos, isNew := hs.addrIx.get(a, true)
	if isNew {
		hs.pk = append(hs.pk, 0)
	}
	hs.pk[pos] += uint64(packets)
}

// hotSrcKey is a source of a destination level.
type hotSrcKey struct {
	key hotKey
	src packet.Addr
}

// candidates sums the workers' summaries of the keys that can be hot into hs.sums: those of
// the destinations with at least min_sources packets over the workers (hs.cand, from
// observe), as a key's distinct sources are at most its destination's packets. Their heavy
// cells' summaries are summed, and their light cells and light destinations counted from
// their records (a destination light at one worker may be heavy at another).
func (hs *Hotspots) candidates(p *hotPending) {
	hs.sums = hs.sums[:0]
	clear(hs.lightSeen)
	hs.candIx.reset(4*len(hs.cand) + 16)
	hs.dstIx.reset(len(hs.cand) + 16)
	if len(hs.cand) == 0 {
		return
	}
	for i := range hs.cand {
		hs.dstIx.get(&hs.cand[i], true)
	}
	add := func(s *HotSummary) {
		pos, isNew := hs.candIx.get(&hotKey{s.Dst, s.Port}, true)
		if !isNew {
			hs.sums[pos].merge(s)
			return
		}
		hs.sums = append(grow2(hs.sums, 1), *s)
		a := &hs.sums[pos]
		a.NTop = 0
		a.addTop(s.Top[:s.NTop]) // sorted
	}
	// A light summary (counted here from its records) of a window cut in parts counts only
	// the sources no other light part of its level had.
	addLight := func(s *HotSummary) {
		// A port of one packet in a light part of a window in parts (Estimated) counts only
		// if its level is already summed (hotPortMin: the heavy parts come first, then the
		// light ones in a fixed order), as the workers count theirs.
		if s.Port != 0 && s.Estimated && s.Packets < hotPortMin {
			if pos, _ := hs.candIx.get(&hotKey{s.Dst, s.Port}, false); pos < 0 {
				return
			}
		}
		if s.Estimated && s.NTop > 0 && uint64(s.NTop) == s.Sources {
			if hs.lightSeen == nil {
				hs.lightSeen = map[hotSrcKey]struct{}{}
			}
			n := uint64(0)
			for i := range s.Top[:s.NTop] {
				k := hotSrcKey{hotKey{s.Dst, s.Port}, s.Top[i].Src}
				if _, ok := hs.lightSeen[k]; !ok {
					hs.lightSeen[k] = struct{}{}
					n++
				}
			}
			s.Sources = n
		}
		add(s)
	}
	for _, i := range hs.fullOrder(p) {
		if s := &p.full[i]; hs.isCandidate(&s.Dst) {
			add(s)
		}
	}
	for _, k := range hs.partOrder(p) {
		part := p.parts[k]
		for i := range part {
			if c := &part[i]; c.Heavy == 0 && hs.isCandidate(&c.Dst) {
				hs.tmp = c.appendLight(hs.tmp[:0], &hs.cnt)
				for j := range hs.tmp {
					addLight(&hs.tmp[j])
				}
			}
		}
	}
	if p.split {
		// A worker's light destinations in the order it handed them over, the workers in
		// turn (see partOrder).
		slices.SortStableFunc(p.light, func(a, b hotLight) int { return cmp.Compare(a.w, b.w) })
	}
	for i := range p.light {
		lt := &p.light[i]
		// The candidate destinations' bits by lt's dense index.
		want := false
		for k := range hs.dstIx.keys {
			a := &hs.dstIx.keys[k]
			if _, ix := lt.px.MatchDst(a, a.Is4()); ix >= 0 {
				if n := (lt.px.ExactSize() + 63) / 64; len(hs.want) < n {
					hs.want = make([]uint64, n)
				}
				hs.want[ix>>6] |= 1 << (ix & 63)
				want = true
			}
		}
		if want {
			hs.eachLight(lt, hs.want, addLight)
			clear(hs.want)
		}
	}
}

// fullOrder returns the places of p's summaries in the order candidates sums them. A
// window handed over in parts has several summaries of a level from one worker, which may
// share sources: summed in the order the workers' parts came (as they were), a source's
// counts of earlier parts could leave the top five before it came back, so that the same
// capture gave other top sources from one replay to the next (a flood to one address,
// under load). In order of their level and first packet, the sums no longer depend on the
// workers' timing. A window in one part has one summary a level per worker, of disjoint
// sources: their order does not matter.
func (hs *Hotspots) fullOrder(p *hotPending) []int32 {
	return hs.places(len(p.full), p.split, func(i, j int32) int {
		a, b := &p.full[i], &p.full[j]
		if c := a.Dst.Compare(&b.Dst); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last),
			cmp.Compare(a.Packets, b.Packets), cmp.Compare(a.Sources, b.Sources))
	})
}

// hotMaxFull is how many heavy summaries a worker's pending window keeps once compacted
// (compactFull): at least as many as one part can hand over (an address level and hotPorts
// ports for each destination of the worker's table, and each dense one with more than
// hotLog of the part's records). At the defaults (2 workers) 311 296 of 264 bytes, 82 MB
// a worker, at most twice that between two compactions: a swarm of bots scanning a dark /16
// (every address heavy in every part, a random busiest port each) fits without dropping a
// destination.
func hotMaxFull(maxCells, maxLight int) int { return (1+hotPorts)*maxCells + maxLight }

// compactFull bounds worker w's heavy summaries in p, which grow by up to a table's worth
// with every part the worker hands over (a window cut in parts: a busy window, or a long
// one). It sums each level's summaries of the worker into its first, in the order the
// worker handed them over (its parts in turn). If more levels remain than maxFull, it keeps
// each destination's address level and the hotPorts ports with the most packets, and past
// that the destinations with the most packets, and returns how many levels it dropped
// (telescope_evictions_total). A level dropped that comes back later in the window counts
// from there. maxFull is at least one part's summaries, so a worker's window is compacted
// only once cut in parts, when its counts already say estimated. Only w's summaries move,
// in an order of w's own: the result depends on that worker's input alone, not on the
// workers' timing. Hash indexes, not a sort: a swarm scanning a dark /16 hands over ~200 k
// summaries a part. From the first compaction on, the worker's summaries are summed as they
// come (mergeFull), into the same sums.
func (hs *Hotspots) compactFull(p *hotPending, w int) (dropped uint64) {
	mine := p.fullW[w]
	p.fullIx[w].reset(len(mine))
	// Summed in place: the sums are written at or before the summary being read.
	p.fullW[w], p.merged[w] = mine[:0], true
	return hs.mergeFull(p, w, mine)
}

// mergeFull sums worker w's summaries of a part into its summaries compacted so far (p.fullW[w],
// indexed by level in p.fullIx[w]): as compactFull would at its next call, without copying
// the part in first and indexing everything again (a swarm over a dark /16 hands ~200 k
// summaries over a part).
func (hs *Hotspots) mergeFull(p *hotPending, w int, full []HotSummary) (dropped uint64) {
	sums, ix := grow2(p.fullW[w], len(full)), &p.fullIx[w]
	for i := range full {
		if j := i + mergeAhead; j < len(full) {
			ix.request(&hotKey{full[j].Dst, full[j].Port})
		}
		pos, isNew := ix.get(&hotKey{full[i].Dst, full[i].Port}, true)
		if isNew {
			sums = append(sums, full[i])
		} else {
			sums[pos].merge(&full[i])
		}
	}
	p.fullW[w] = sums
	return hs.pruneIfFull(p, w)
}

// pruneIfFull prunes worker w's summed summaries down to maxFull levels when they are more
// (pruneFull), indexes what is left again, and returns how many levels went.
func (hs *Hotspots) pruneIfFull(p *hotPending, w int) uint64 {
	sums := p.fullW[w]
	n := len(sums)
	if n <= hs.maxFull {
		return 0
	}
	sums = hs.pruneFull(sums)
	ix := &p.fullIx[w]
	ix.reset(len(sums))
	for i := range sums {
		ix.get(&hotKey{sums[i].Dst, sums[i].Port}, true)
	}
	p.fullW[w] = sums
	return uint64(n - len(sums))
}

// init makes p's per-worker summaries for `workers` workers and its index of dense cells.
func (p *hotPending) init(workers int) {
	p.fullW, p.merged = make([][]HotSummary, workers), make([]bool, workers)
	p.fullIx = make([]hotIndex[hotKey], workers)
	for w := range p.fullIx {
		p.fullIx[w].hash = hashHotKey
	}
	p.denseIx.hash = hashHotAddr
}

// foldDense sums the heavy cells with a dense index among cells into p.dense, by address,
// and returns the other cells (in place) and how many it summed. A busy telescope's dark
// /16 can have every address heavy in every part of a window (a swarm of scanning bots):
// kept part by part, its 65 536 cells a part passed the worker's maxCells, and all of them
// went to the receiver distribution on their own (each address counted as several) and
// out of the hotspot counts. Summed, they are at most one per dark address, whatever the
// parts. (By address, not by index: a window restored from a checkpoint, or reloaded with
// other dark prefixes, has cells of several numberings.)
func (p *hotPending) foldDense(cells []hotCell) ([]hotCell, int) {
	kept, n := cells[:0], 0
	for i := range cells {
		c := &cells[i]
		if c.Heavy == 0 || c.Ix < 0 {
			kept = append(kept, *c)
			continue
		}
		n++
		p.split = p.split || c.Split
		p.addDense(c)
	}
	return kept, n
}

// addDense adds heavy cell c (with a dense index) to p.dense.
func (p *hotPending) addDense(c *hotCell) {
	pos, isNew := p.denseIx.get(&c.Dst, true)
	if isNew {
		p.dense = append(p.dense, *c)
		return
	}
	d := &p.dense[pos]
	d.Packets = satAdd32(d.Packets, c.Packets)
	d.Split = d.Split || c.Split
}

// satAdd32 is a + b, at most the largest uint32.
func satAdd32(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint32
}

// joinFull makes p.full the workers' heavy summaries, worker after worker, each with its
// worker in W (a checkpoint's record of fullW).
func (p *hotPending) joinFull() {
	n := 0
	for _, f := range p.fullW {
		n += len(f)
	}
	p.full = room(p.full, n)
	for w, f := range p.fullW {
		n := len(p.full)
		p.full = append(p.full, f...)
		for i := range p.full[n:] {
			p.full[n+i].W = uint16(w)
		}
	}
}

// hotGroup is a destination's levels in pruneFull: places in its sums (-1: none).
type hotGroup struct {
	addr    int32
	ports   [hotPorts]int32
	packets uint64 // the most packets of its levels
}

// levels returns the places of the group's levels (-1: none).
func (gr *hotGroup) levels() (l [1 + hotPorts]int32) {
	l[0] = gr.addr
	copy(l[1:], gr.ports[:])
	return l
}

// pruneFull keeps, of sums (one per level), each destination's address level and the
// hotPorts ports with the most packets (then the lowest port), and if that is still more
// than maxFull levels, the destinations with the most packets (then the first) that fit.
func (hs *Hotspots) pruneFull(sums []HotSummary) []HotSummary {
	hs.pruneIx.reset(len(sums))
	groups := hs.groups[:0]
	for i := range sums {
		s := &sums[i]
		g, isNew := hs.pruneIx.get(&s.Dst, true)
		if isNew {
			gr := hotGroup{addr: -1}
			for j := range gr.ports {
				gr.ports[j] = -1
			}
			groups = append(groups, gr)
		}
		gr := &groups[g]
		gr.packets = max(gr.packets, s.Packets)
		if s.Port == 0 {
			gr.addr = int32(i)
			continue
		}
		// The weakest port kept (an empty place first), and whether s beats it.
		weak := 0
		for j := 1; j < hotPorts; j++ {
			if gr.ports[weak] >= 0 && (gr.ports[j] < 0 || portBefore(&sums[gr.ports[weak]], &sums[gr.ports[j]])) {
				weak = j
			}
		}
		if gr.ports[weak] < 0 || portBefore(s, &sums[gr.ports[weak]]) {
			gr.ports[weak] = int32(i)
		}
	}
	if cap(hs.keep) < len(sums) {
		hs.keep = make([]bool, len(sums))
	}
	keep := hs.keep[:len(sums)]
	clear(keep)
	n := 0
	for g := range groups {
		for _, i := range groups[g].levels() {
			if i >= 0 {
				keep[i] = true
				n++
			}
		}
	}
	if n > hs.maxFull {
		order := make([]int32, len(groups))
		for g := range order {
			order[g] = int32(g)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(groups[b].packets, groups[a].packets) })
		room := hs.maxFull
		for _, g := range order {
			levels := groups[g].levels()
			k := 0
			for _, i := range levels {
				if i >= 0 {
					k++
				}
			}
			if k <= room {
				room -= k
				continue
			}
			for _, i := range levels {
				if i >= 0 {
					keep[i] = false
				}
			}
		}
	}
	hs.groups = groups[:0]
	out := sums[:0]
	for i := range sums {
		if keep[i] {
			out = append(out, sums[i])
		}
	}
	return out
}

// portBefore reports whether port level a is busier than b (more packets, then the lower
// port): pruneFull keeps the busiest.
func portBefore(a, b *HotSummary) bool {
	if a.Packets != b.Packets {
		return a.Packets > b.Packets
	}
	return a.Port < b.Port
}

// partOrder returns the places of p's cell arrays in the order candidates sums their light
// cells: in a window handed over in parts, each worker's in the order it handed them over,
// the workers in turn (the light cells carry no first packet to order them by, as
// fullOrder does, and their logs' top sources are summed as the summaries' are).
func (hs *Hotspots) partOrder(p *hotPending) []int32 {
	return hs.places(len(p.parts), p.split && len(p.partW) == len(p.parts), func(i, j int32) int {
		return cmp.Compare(p.partW[i], p.partW[j])
	})
}

// places returns 0, 1, ..., n-1 (in hs.order), stably sorted by `by` when sorted.
func (hs *Hotspots) places(n int, sorted bool, by func(i, j int32) int) []int32 {
	hs.order = hs.order[:0]
	for i := range n {
		hs.order = append(hs.order, int32(i))
	}
	if sorted {
		slices.SortStableFunc(hs.order, by)
	}
	return hs.order
}

// isCandidate reports whether destination a can be hot in the window (candidates).
func (hs *Hotspots) isCandidate(a *packet.Addr) bool {
	pos, _ := hs.dstIx.get(a, false)
	return pos >= 0
}

// eachLight calls fn with the summaries of each light destination of lt (those whose bit is
// set in want; nil: all), counted as a worker counts a destination's records.
func (hs *Hotspots) eachLight(lt *hotLight, want []uint64, fn func(*HotSummary)) {
	var dst packet.Addr
	hs.group.each(lt, want, func(o hotObs, g []hotRec) {
		lt.px.ExactAddrTo(&dst, o.ix)
		hs.tmp = hs.cnt.summarize(hs.tmp[:0], g, &dst, lt.split)
		for j := range hs.tmp {
			fn(&hs.tmp[j])
		}
	})
}

// window evaluates one complete window.
func (hs *Hotspots) window(win int64, p *hotPending) {
	hs.endBefore(win - 1) // window win-1 is complete: episodes not hot in it are over
	hs.observe(p)
	p.joinFull()
	hs.candidates(p)
	var hotAddr map[packet.Addr]bool
	var hot []*HotSummary
	for i := range hs.sums {
		s := &hs.sums[i]
		if s.Sources >= hs.minSources {
			hot = append(hot, s)
			if s.Port != 0 {
				if hotAddr == nil {
					hotAddr = map[packet.Addr]bool{}
				}
				hotAddr[s.Dst] = true
			}
		}
	}
	// Start episodes in a fixed order (events of the same input come out the same).
	sort.Slice(hot, func(i, j int) bool {
		a, b := hot[i], hot[j]
		if a.First != b.First {
			return a.First < b.First
		}
		if c := a.Dst.Compare(&b.Dst); c != 0 {
			return c < 0
		}
		return a.Port < b.Port
	})
	for _, s := range hot {
		if s.Port == 0 && hotAddr[s.Dst] {
			continue // reported by port
		}
		k := hotKey{s.Dst, s.Port}
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
		if c := keys[i].Dst.Compare(&keys[j].Dst); c != 0 {
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
	hs.settle()
	hs.closeAll()
}

// Active returns the open hotspot episodes.
func (hs *Hotspots) Active() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.settle()
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

// HotSource is one of an episode's top sources. A window's top sources are exact (each
// worker counts its own sources exactly, and a source is one worker's); over an episode of
// several windows, a source's packets are summed over the windows whose top lists hold it,
// so Packets is then a lower bound (and a checkpoint of an earlier version may hold
// Space-Saving counts, also lower bounds).
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
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
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
