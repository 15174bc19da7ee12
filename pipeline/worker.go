package pipeline

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// seedHLL seeds the hash of the unique-address estimates; the per-source table uses the
// same hash of a source (one hash per packet serves both: the table takes its low bits,
// the HLL its high bits and leading zeros), independent of the worker choice's.
const seedHLL = 0x2545f4914f6cdd1d

// hllPrecision gives a 0.4 % standard error for the unique-address estimates.
const hllPrecision = 16

// topCapacity bounds each worker's Space-Saving summaries (destinations, and sources
// that left the per-source table). Below it every count is exact.
const topCapacity = 1 << 16

// sourceEntry is a worker's state for one source address: its packets in the current
// window, its total while tracked, and its detector state. Plain values only.
type sourceEntry struct {
	win     uint32 // window generation winPkts belongs to (0 = none)
	telMin  uint32 // the series' telnet minute this source was last counted in (series.go)
	winPkts uint64
	total   uint64
	det     detect.SourceState
}

// windowPair is what a worker publishes at each window close: the last two closed
// windows, so a reader can merge a window every worker has closed even while one lags.
type windowPair struct {
	last, prev *aggregate.WindowStats
}

// worker owns a disjoint set of sources: it alone writes their state and its counter shard.
type worker struct {
	id int

	// Read by the collector at scrape time (atomics only).
	C         aggregate.Counters
	Det       detect.Counters
	Hist      aggregate.Histogram
	tracked   atomic.Int64
	evictions atomic.Uint64
	windows   atomic.Pointer[windowPair]

	// stateMu is held by the worker while it handles a batch, and by a checkpoint while it
	// copies the worker's state into enc (state.go): a checkpoint waits for a batch
	// boundary and holds the worker for the copy only.
	stateMu sync.Mutex
	enc     checkpoint.Encoder

	// Owned by the worker goroutine.
	warm       uint32 // keeps the loads of Table.WarmEvict (warmEvictions)
	warmNew    int    // sources warmed that are probably new
	p          *Pipeline
	rc         *runConfig
	loc        aggregate.Local
	sources    *aggregate.Table[packet.Addr, sourceEntry]
	srcEvicted *aggregate.TopK // totals of sources the table evicted (more than one packet)
	dstTop     *aggregate.TopK // destinations without a dense index
	dstExact   []uint32        // packets per dark IPv4 address, by dense index (rc.prefixes)
	srcHLL     *aggregate.HLL
	dstHLL     *aggregate.HLL // destinations without a dense index
	engine     *detect.Engine
	sink       *workerSink   // its engine's events (publish: flush)
	segNow     atomic.Uint32 // the summary's segment of the last batch (summary.go)
	now        int64         // latest packet time seen (monotonic)
	// starting: the next batch is the first of a dispatch (its first packet starts the
	// engine's clock: processBatch).
	starting bool
	series   workerSeries
	// detEver: a detector ran since the start, or the state came from a checkpoint. Until
	// then every entry's detector state is zero and an eviction skips the engine (which
	// would only clear zeros: 6 % of counting alone on a live flood).
	detEver bool

	// The open window.
	winOpen    bool
	winIdx     int64
	winGen     uint32
	winEnd     int64
	winUnique  uint64
	winPackets uint64
	evHist     [aggregate.HistBuckets + 1]uint64 // observations of sources evicted mid-window
	evSum      uint64
	evCount    uint64
	evTop      *aggregate.TopHeap
	// winSlots lists the table slots first touched in the open window, so closing it visits
	// only those; under a flood of evictions it would grow past twice the table's capacity,
	// and the close scans every slot instead (winScanAll).
	winSlots   []int32
	winScanAll bool

	// Load shedding (shed.go): while shed is set the detectors skip the worker's packets.
	shed         bool
	shedCount    uint64        // dark-space packets the detectors skipped
	shedTotal    atomic.Uint64 // shedCount as of the last flush (read at scrape time)
	shedLogged   time.Time     // last line about shedding
	shedLogTotal uint64        // shedCount then
	setsFull     bool          // the engine's sets reached limits.max_sets_mb (logged once)

	// dstMem owns dstExact's memory. Last, so that the fields above keep their offsets:
	// added beside dstExact, live counting alone took 330-347 ns of CPU a packet against
	// 283-323 in four alternated runs (the replay no more); here, 330-337 against 323-343.
	dstMem *denseCounts
}

func newWorker(p *Pipeline, id, tableCap int, rc *runConfig) *worker {
	w := &worker{
		id:         id,
		p:          p,
		rc:         rc,
		sources:    aggregate.NewTable[packet.Addr, sourceEntry](tableCap, hashAddr),
		srcEvicted: aggregate.NewTopK(topCapacity),
		dstTop:     aggregate.NewTopK(topCapacity),
		srcHLL:     aggregate.NewHLL(hllPrecision),
		dstHLL:     aggregate.NewHLL(hllPrecision),
	}
	w.setDense(rc.prefixes.ExactSize())
	w.detEver = rc.detectOn
	w.sink = p.sink.forWorker()
	w.engine = detect.NewEngine(rc.det, id, w.sink, p.surge, &w.Det)
	w.engine.SetDenseDsts(rc.prefixes)
	w.engine.SetDenseCounts(w.dstExact)
	w.engine.SetSources(detectSources{w.sources})
	w.sources.SetEvict(w.evicted)
	w.sources.SetVictimHint(w.engine.WarmEvicted)
	// Nothing sweeps the source table by age: a source touched within the newest eighth
	// keeps its place (an eviction takes a source idle for 7/8 of the table's moves at least).
	w.sources.SetSlack(tableCap / 8)
	w.evTop = aggregate.NewTopHeap(rc.topSources)
	w.winSlots = w.newWinSlots()
	return w
}

// newWinSlots returns an empty list with room for every slot noteSlot may list (twice the
// table's capacity), reserved outside the heap where it can be (aggregate.Reserve): grown
// by appends, the list of a spoofed flood's window (a million slots) was copied into fresh
// heap memory at each doubling, three quarters of the page faults of the 3 M burst with
// counting alone.
func (w *worker) newWinSlots() []int32 {
	if s := aggregate.Reserve[int32](w, 2*w.sources.Cap()); s != nil {
		return s[:0]
	}
	return nil
}

func hashAddr(a *packet.Addr) uint64 { return a.Hash(seedHLL) }

// detectSources is the worker's source table as the detector engine reads it (its
// detector states, by slot: detect.Sources).
type detectSources struct {
	t *aggregate.Table[packet.Addr, sourceEntry]
}

func (s detectSources) Slots() int { return s.t.Slots() }
func (s detectSources) Cap() int   { return s.t.Cap() }

func (s detectSources) At(i int32) (*packet.Addr, *detect.SourceState) {
	k, e := s.t.At(i)
	return k, &e.det
}

// denseCounts owns a worker's per-address counts (worker.dstExact): reserved in huge pages
// where they are large (a /8's are 64 MiB a worker), and unmapped once the worker drops
// them (a reload that renumbers the dark space). On the Go heap, in 4 KiB pages, a
// page's first packet read the shared zero page and its write then copied it: a second
// fault and a TLB shoot-down sent to the other cores, a page at a time (8 % of the samples
// of a /8 swarm's replay, and the shoot-downs are exits on a virtual machine).
type denseCounts struct{ c []uint32 }

// setDense gives the worker new zeroed per-address counts for n dark addresses.
func (w *worker) setDense(n int) {
	d := new(denseCounts)
	d.c = aggregate.ReserveOrMake[uint32](d, n)
	w.dstMem, w.dstExact = d, d.c
}

// applyConfig picks up a reloaded configuration between batches.
func (w *worker) applyConfig() {
	rc := w.p.rc.Load()
	if rc == w.rc {
		return
	}
	if !rc.prefixes.SameExact(w.rc.prefixes) {
		// The dark space changed: the dense counts move to the summary, a new array starts.
		// The engine reads the old one first (the open window's counts of a wide space).
		old := w.dstMem
		w.engine.SetDenseDsts(rc.prefixes)
		foldDense(w.dstExact, w.rc.prefixes, w.dstTop, w.dstHLL)
		w.setDense(rc.prefixes.ExactSize())
		w.engine.SetDenseCounts(w.dstExact)
		runtime.KeepAlive(old)
	}
	w.rc = rc
	w.detEver = w.detEver || rc.detectOn
	w.engine.SetConfig(rc.det)
	w.sink.publish() // the episodes the reload ended
	if w.winOpen && rc.winLen != w.winLen() {
		// A new window length starts a new window at the next packet.
		w.winEnd = w.now
	}
}

func (w *worker) winLen() int64 { return w.rc.winLen }

// warmAhead is how many packets handleGroup takes at once: of a worker's frames in a replay
// batch, or of the frames of a live ring.
const warmAhead = 32

// groupAll lists the frames of a live group: all of them, in order.
var groupAll = func() (a [warmAhead]uint16) {
	for i := range a {
		a[i] = uint16(i)
	}
	return a
}()

// handleGroup handles the frames hs[i] for i in group (at most warmAhead of them), in stages
// over the whole group: what each packet will touch is requested first (prefetch, no
// waiting), then the words that name further lines are read and those lines requested, and
// only then are the packets handled. The group's cache misses overlap, where handle, one
// packet at a time, would wait for each in turn (the reorder buffer holds only a packet or
// two of work).
//
// next is the worker's group that follows in the batch (nil: none, or hs was decoded here):
// its headers, written by the reader on another core, are requested a packet at a time in
// the last stage, so that its first stage finds them arrived (processBatch requests the
// first group's). A worker reads only its own frames of a batch (the reader lists them,
// batch.own): scanning every frame's owner, each worker took a branch per frame that went
// either way at random, three times, and requested the others' headers too.
func (w *worker) handleGroup(hs []packet.Header, group, next []uint16) {
	var (
		hashes [warmAhead]uint64
		slots  [warmAhead]int
		dense  [warmAhead]int32
	)
	group = group[:min(len(group), warmAhead)] // no bounds checks on the stages' arrays
	for k, i := range group {
		if h := &hs[i]; h.Result == packet.ResultIP {
			hashes[k], slots[k], dense[k] = w.prefetchIP(h)
			w.sources.Ahead() // gets the walk ahead of the evictions (after a restart)
		}
	}
	for k, i := range group {
		if h := &hs[i]; h.Result == packet.ResultIP {
			w.warmSource(hashes[k])
			if slots[k] != 0 && w.rc.detectOn {
				w.engine.Warm(h)
			}
		}
	}
	w.warmEvictions()
	for k, i := range group {
		if k < len(next) {
			prefetch.Span(unsafe.Pointer(&hs[next[k]]), unsafe.Sizeof(hs[0]))
		}
		w.sources.Ahead() // keeps it there, a step per packet (a flood evicts at each)
		w.handleHashed(&hs[i], hashes[k], slots[k], dense[k])
	}
}

// requestHeaders requests the lines of the headers hs[i], i in group.
func requestHeaders(hs []packet.Header, group []uint16) {
	for _, i := range group {
		prefetch.Span(unsafe.Pointer(&hs[i]), unsafe.Sizeof(hs[0]))
	}
}

// prefetchIP is the first stage for an IP packet: it hashes the source, matches the
// destination (its dark-prefix slot and dense index, as handleHashed takes them) and
// requests the lines these name: the source's index word and unique-count register, the
// destination's dense counter or, for one without, its register and summary index word, the port
// counter its port's slot of the cache will write back, and for a dark packet the
// detectors' first words (Engine.Prefetch).
func (w *worker) prefetchIP(h *packet.Header) (x uint64, slot int, dense int32) {
	x = h.Src.Hash(seedHLL)
	slot, dense = w.rc.prefixes.MatchDst(&h.Dst, h.IPVersion == 4)
	w.sources.Prefetch(x)
	w.srcHLL.Prefetch(x)
	w.loc.Prefetch(h, &w.C)
	if dense < 0 {
		w.dstHLL.Prefetch(h.Dst.Hash(seedHLL))
		w.dstTop.Prefetch(&h.Dst)
	} else if int(dense) < len(w.dstExact) {
		prefetch.Write(unsafe.Pointer(&w.dstExact[dense]))
	}
	if slot != 0 && w.rc.detectOn {
		w.engine.Prefetch(h, dense)
	}
	return x, slot, dense
}

// warmSource is the second stage for the source: its index word, requested by
// prefetchIP, names its entry, whose lines are requested in turn (Table.Warm).
func (w *worker) warmSource(x uint64) {
	if !w.sources.Warm(x) {
		w.warmNew++
	}
}

// warmEvictions warms the evictions that the new sources counted by warmSource will make,
// unless the table's walk ahead (Table.Ahead) has warmed them.
func (w *worker) warmEvictions() {
	if w.warmNew > 0 {
		w.warm ^= w.sources.WarmEvict(w.warmNew)
		w.warmNew = 0
	}
}

// handle processes one frame. This is the hot path: no allocation, no lock.
func (w *worker) handle(h *packet.Header) {
	slot, dense := 0, int32(-1)
	if h.Result == packet.ResultIP {
		slot, dense = w.rc.prefixes.MatchDst(&h.Dst, h.IPVersion == 4)
	}
	w.handleHashed(h, h.Src.Hash(seedHLL), slot, dense)
}

// handleHashed is handle for a caller that has hashed the source (seedHLL) and matched the
// destination already (all three ignored for a frame that is not IP).
func (w *worker) handleHashed(h *packet.Header, srcHash uint64, slot int, dense int32) {
	w.loc.Count(h, slot, &w.C)
	if h.Result != packet.ResultIP {
		return
	}
	ts := h.TS
	if !w.winOpen || ts >= w.winEnd {
		w.rotate(ts)
	}
	if ts > w.now {
		w.now = ts
	}
	si, _ := w.sources.TouchSlotHashed(h.Src, srcHash)
	_, e := w.sources.At(si)
	if e.win != w.winGen {
		e.win = w.winGen
		e.winPkts = 0
		w.winUnique++
		w.noteSlot(si)
		// Once per source and window is enough for the run's sketch (adding is idempotent).
		w.srcHLL.AddHash(srcHash)
	}
	e.winPkts++
	e.total++
	w.series.packet(h, &e.telMin, slot != 0, w.rc.det.Telnet.Ports)
	w.winPackets++
	if dense >= 0 {
		c := &w.dstExact[dense]
		if *c == math.MaxUint32 { // hand a full counter to the summary rather than wrap
			w.dstTop.Add(h.Dst, uint64(*c))
			w.dstHLL.AddHash(h.Dst.Hash(seedHLL))
			*c = 0
			w.engine.DenseWrapped(dense) // its window's count since it opened stays exact
		}
		*c++
	} else {
		w.dstTop.Add(h.Dst, 1)
		w.dstHLL.AddHash(h.Dst.Hash(seedHLL))
	}
	if slot != 0 && w.rc.detectOn {
		if w.shed {
			w.shedCount++
		} else {
			w.engine.PacketIn(h, &e.det, dense, si)
		}
	}
}

// evicted is called by the source table before it reuses an entry's slot.
func (w *worker) evicted(k *packet.Addr, e *sourceEntry) {
	if e.win == w.winGen && w.winOpen {
		w.evHist[aggregate.HistBucket(e.winPkts)]++
		w.evSum += e.winPkts
		w.evCount++
		w.evTop.Offer(k, e.winPkts)
	}
	// A source evicted after a single packet is not summarized: it is what a spoofed flood
	// is made of (each add replaced the least entry of a full summary, two index misses),
	// and a source whose every stay in the table was one packet cannot reach the report's
	// top list unless nearly every source is that small (README, "Accuracy").
	if e.total > 1 {
		w.srcEvicted.Add(*k, e.total)
	} else {
		w.srcEvicted.Drop(e.total) // counted for the report's packets-per-source distribution
	}
	if w.detEver {
		w.engine.Evicted(k, &e.det, w.now)
	}
}

// advance moves the worker's clock to now (packet time) even when it saw no packets.
func (w *worker) advance(now int64) {
	if now > w.now {
		w.now = now
	}
	if w.winOpen && w.now >= w.winEnd {
		w.rotate(w.now)
	}
	w.engine.Advance(w.now)
}

// flush publishes the batch's counts and the table gauges.
func (w *worker) flush() {
	w.engine.Publish()
	w.sink.publish()
	w.loc.Flush(&w.C)
	w.tracked.Store(int64(w.sources.Len()))
	w.evictions.Store(w.sources.Evictions())
	w.shedTotal.Store(w.shedCount)
	if !w.setsFull && w.engine.SetsRefused() > 0 {
		w.setsFull = true
		w.p.log.Warn("the distinct-count sets reached limits.max_sets_mb: a set that needs more memory estimates from now on (targets_estimated)",
			zap.Int("worker", w.id), zap.Int("max_sets_mb", w.rc.cfg.Limits.MaxSetsMB), zap.Int("slab_bytes", w.engine.SlabBytes()))
	}
}

// finish ends the input: the open window closes and every episode ends at time now.
func (w *worker) finish(now int64) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if w.p.keepState.Load() {
		// The state goes to a checkpoint: episodes stay open, the window too.
		w.advance(now)
		w.flush()
		return
	}
	w.advance(now)
	if w.winOpen {
		w.closeWindow()
		w.winOpen = false
	}
	w.engine.Finish(w.now)
	w.flush()
}

// rotate closes the open window (if any) and opens the one holding ts.
func (w *worker) rotate(ts int64) {
	wl := w.winLen()
	idx := aggregate.FloorDiv(ts, wl)
	if w.winOpen {
		if idx <= w.winIdx && ts < w.winEnd {
			return
		}
		w.closeWindow()
		if idx > w.winIdx+1 {
			// The windows in between saw nothing from this worker's sources.
			w.publish(&aggregate.WindowStats{Index: idx - 1, Start: (idx - 1) * wl, End: idx * wl})
		}
	}
	w.winOpen = true
	w.winIdx = idx
	w.winGen++
	w.winEnd = (idx + 1) * wl
	w.winUnique, w.winPackets = 0, 0
	w.evHist = [aggregate.HistBuckets + 1]uint64{}
	w.evSum, w.evCount = 0, 0
	w.evTop = aggregate.NewTopHeap(w.rc.topSources)
}

// noteSlot remembers a slot first touched in the open window.
func (w *worker) noteSlot(slot int32) {
	if w.winScanAll {
		return
	}
	if len(w.winSlots) >= 2*w.sources.Cap() {
		w.winScanAll, w.winSlots = true, w.winSlots[:0]
		return
	}
	w.winSlots = append(w.winSlots, slot)
}

// closeWindow observes every source of the open window into the histogram and the top
// list, and publishes the window. It visits the slots the window touched (each once: a
// slot reused after an eviction is listed twice, and winPkts is cleared once observed).
// visitAhead is how many of the window's sources closeWindow requests ahead of the one it
// visits: enough misses in flight to cover one's latency.
const visitAhead = 16

func (w *worker) closeWindow() {
	hist, sum, count := w.evHist, w.evSum, w.evCount
	top := w.evTop
	gen := w.winGen
	visit := func(slot int32) {
		k, e := w.sources.At(slot)
		if e.win == gen && e.winPkts > 0 {
			hist[aggregate.HistBucket(e.winPkts)]++
			sum += e.winPkts
			count++
			top.Offer(k, e.winPkts)
			e.winPkts = 0
		}
	}
	if w.winScanAll {
		for i := int32(0); i < int32(w.sources.Slots()); i++ {
			visit(i)
		}
	} else {
		// The window's sources are random slots of a table far larger than the cache: the
		// entries visitAhead on are requested while one is visited.
		slots := w.winSlots
		for j, slot := range slots {
			if j+visitAhead < len(slots) {
				k, e := w.sources.At(slots[j+visitAhead])
				prefetch.Span(unsafe.Pointer(k), uintptr(unsafe.Pointer(&e.winPkts))+8-uintptr(unsafe.Pointer(k)))
			}
			visit(slot)
		}
	}
	w.winSlots, w.winScanAll = w.winSlots[:0], false
	w.Hist.Observe(&hist, sum, count)
	wl := w.winLen()
	w.publish(&aggregate.WindowStats{
		Index:   w.winIdx,
		Start:   w.winIdx * wl,
		End:     w.winIdx*wl + wl,
		Unique:  w.winUnique,
		Packets: w.winPackets,
		Top:     top.Sorted(),
	})
}

func (w *worker) publish(ws *aggregate.WindowStats) {
	old := w.windows.Load()
	pair := &windowPair{last: ws}
	if old != nil {
		pair.prev = old.last
	}
	w.windows.Store(pair)
}

// startBatch applies a published configuration and, when the batch is of a new segment of
// the summary, hands the worker's counts over (summary.go; they are published: flush). One
// line in processBatch: the profile-guided build finds call sites by their line in the
// function, and lines added above the loop kept it from inlining handleGroup.
func (w *worker) startBatch(seg uint32) {
	if was := w.segNow.Load(); seg != was {
		w.p.summary.arrive(was, w.sink.tallies())
		w.segNow.Store(seg)
	}
	w.applyConfig()
}

// processBatch handles the frames of a batch this worker owns, then moves its clock to the
// batch's time so idle workers close windows and end episodes too.
func (w *worker) processBatch(b *batch) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	w.startBatch(b.seg)
	if w.starting && b.n > 0 {
		// Every worker sees every batch: each engine starts at the input's first packet.
		w.starting = false
		w.engine.StartAt(b.h[0].TS)
	}
	// The first group's headers, together (each group requests the next one's): the first
	// stage's work per packet fills the reorder buffer before the next header's load.
	own := b.own[w.id]
	requestHeaders(b.h[:b.n], own[:min(warmAhead, len(own))])
	for lo := 0; lo < len(own); lo += warmAhead {
		hi := min(lo+warmAhead, len(own))
		w.handleGroup(b.h[:b.n], own[lo:hi], own[hi:min(hi+warmAhead, len(own))])
	}
	w.advance(b.now)
	w.flush()
}
