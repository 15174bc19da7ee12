package detect

import (
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// sweepEvery is how often (in packet time) Advance looks for quiet episodes.
const sweepEvery = int64(time.Second)

// Engine runs every detector for one worker. It is used by that worker's goroutine only:
// no locks on the packet path. Surge is the one shared part (locked, once per bucket).
type Engine struct {
	cfg    *Config
	worker int
	sink   Sink
	surge  *Surge
	c      *Counters

	window    int64         // cfg.Window in ns
	telnet    *[1024]uint64 // bitset of cfg.Telnet.Ports
	watched   *watchSet     // cfg.WatchPorts
	now       int64         // engine clock: latest packet time or Advance time
	clockSet  bool          // now holds a time
	nextSweep int64         // packet time of the next expiry sweep of idle flows and victims
	// due is the earliest time an active scanner, telnet, tool or udp_then_syn episode can
	// end (the earliest entry of srcDue, toolDue and flowDue; activity only moves an
	// episode's end later). Advance looks at the queues only once due has passed (due.go).
	due      int64
	srcDue   dueQueue[srcRef]    // records of eps (sources with an active episode)
	toolDue  dueQueue[toolRef]   // tool episodes in place (toolplace.go)
	flowDue  dueHeap[flowDueRef] // active udp_then_syn flows
	seq      uint64              // promotions and flow episodes so far (their end order)
	dueSrcs  []srcRef            // scratch for endDue
	dueFlows []flowDueRef        // scratch for endDue, endFlows

	sb  surgeClock // this worker's telnet surge bucket
	hot hotWorker  // this worker's hotspot counts (hotspot.go)
	ev  Event      // the event being reported (a sink keeps no *Event: one allocation less per event)

	// Entries of the episodes a flood starts and ends by the packet (entrypool.go).
	toolEntries entryPool[ToolEntry]
	flowEntries entryPool[UDPThenSYNEntry]

	// The counts since the last Publish, which adds them to c: packets by scan technique,
	// tool fingerprint and backscatter kind, episodes started by detector and class, and
	// the change in episodes in progress by detector. Plain adds on the packet path: a
	// locked add waits for every older store, the cache misses among them (a flood starts
	// and ends an episode per packet; those adds were 3 % of its CPU).
	techPackets [NumTechniques]uint64
	fpPackets   [len(Counters{}.FingerprintPackets)]uint64
	bsPackets   [len(Counters{}.BackscatterPackets)]uint64
	started     [numDetectors][maxClasses]uint64
	active      [numDetectors]int64

	// evRecords: of the last sources evicted (Evicted), those with an episode record
	// (WarmEvicted); fpRecent: of the last SYN probes, those matching a tool (Prefetch).
	evRecords, fpRecent recent

	// srcs is the pipeline's source table (nil: none), slot the current packet's slot in
	// it (-1: unknown): tool episodes stay in place when both are known (toolplace.go).
	srcs Sources
	slot int32
	// curDense is the dense index of the packet being handled (PacketIn), -1 between
	// packets: the worker counted it in its dense counts already (hotwide.go).
	curDense int32

	// eps holds the sources with an active scanner or telnet sweep episode, and tool
	// episodes when they cannot stay in place (no srcs, or restored from an older version).
	eps  *aggregate.Table[packet.Addr, episode]
	keys []packet.Addr // scratch for sweeps
	// rec is the record of the current packet's source in eps while recOK (see record).
	rec   *episode
	recOK bool

	flows *aggregate.Table[flowKey, flow]
	// flowEv marks (by a hash) the sources evicted from the pipeline's table while their
	// flows could still pair or continue: a source new to the table, whose SourceState has
	// no FlowSec, looks its flows up only when marked. Two generations, the older cleared
	// every flow horizon (flowEvEnd), so a mark lasts at least a horizon. Nil until the first
	// mark.
	flowEv    [2][]uint64
	flowEvN   [2]int // marks set in each generation
	flowEvEnd int64  // when the generations turn (0: not yet set)
	// flowPortSec is, per destination port, the latest packet time of a flow to it (in
	// seconds rounded up, like SourceState.FlowSec): 256 KiB that a probe reads only when
	// its source may have flows.
	flowPortSec *[65536]uint32

	victims  *aggregate.Table[packet.Addr, victim]
	rates    []rateWin // victims' rate windows, by victim.Rate-1
	rateFree []int32   // free entries of rates (as victim.Rate values)

	// slab holds the blocks of every Distinct this engine counts with (in SourceState, the
	// episode and victim tables): values in the tables refer to it by index, so the tables
	// hold no Go pointers. A Distinct must be Reset before it is dropped.
	slab aggregate.Slab
	// ports holds the exact port sets of scanner episodes (portmap.go).
	ports portMaps
	// memos holds the scanner episodes' memos of targets and addresses (memo.go).
	memos memoPool
}

// NewEngine returns the engine of worker `worker`. sink receives its events, surge (shared by
// all workers, may be nil when no surge detection is wanted) the per-bucket telnet source
// counts, c its counters. Its three tables (sources with active episodes, udp_then_syn
// flows, backscatter victims) each hold at most cfg.MaxFlows entries and grow to it lazily.
func NewEngine(cfg *Config, worker int, sink Sink, surge *Surge, c *Counters) *Engine {
	e := &Engine{worker: worker, sink: sink, surge: surge, c: c, slot: -1, curDense: -1}
	if IsTransient(sink) {
		e.toolEntries.reuse, e.flowEntries.reuse = true, true
	}
	flows := max(cfg.MaxFlows, 1)
	// The sets' memory is fixed at start, like the tables' capacities.
	e.slab.Limit = cfg.MaxSetWords
	e.eps = aggregate.NewTable[packet.Addr, episode](flows, hashEpisode)
	e.eps.SetEvict(e.evictEpisode)
	e.flows = aggregate.NewTable[flowKey, flow](flows, hashFlow)
	e.flowPortSec = new([65536]uint32)
	e.flows.SetEvict(e.evictFlow)
	e.victims = aggregate.NewTable[packet.Addr, victim](flows, hashAddr)
	e.victims.SetEvict(e.evictVictim)
	reserveQueue(&e.srcDue, dueLimit(flows))
	reserveHeap(&e.flowDue, e, dueLimit(flows))
	e.apply(cfg)
	return e
}

// SetConfig applies a reloaded configuration: new thresholds from now on, state kept.
// Episodes of detectors that the new config disables end now (End events), so nothing stays
// active forever. A new telnet surge bucket restarts this worker's bucket count. The table
// capacities (MaxFlows) are fixed at construction: a change takes effect on restart.
func (e *Engine) SetConfig(cfg *Config) {
	old := e.cfg
	e.apply(cfg)
	for _, d := range descriptors {
		if d.stop != nil && d.Enabled(old) && !d.Enabled(cfg) {
			d.stop(e)
		}
	}
	if old.Telnet.SurgeBucket != cfg.Telnet.SurgeBucket || old.Telnet.Enabled != cfg.Telnet.Enabled {
		e.sb.joined = false // rejoin with the new bucket size at the next clock tick
	}
	if old.Window != cfg.Window {
		e.hotStop() // the hotspot windows restart with the new length
	}
	e.Publish() // the episodes the reload ended
}

func (e *Engine) apply(cfg *Config) {
	first := e.cfg == nil
	e.cfg = cfg
	if w := int64(cfg.Window); first || w != e.window {
		e.window = w
		e.requeue() // the episodes' end times move with the window
	}
	if !first {
		e.flowEvEnd = 0 // a longer horizon keeps the marks longer: the next turn waits for it
	}
	ports := new([1024]uint64)
	for _, p := range cfg.Telnet.Ports {
		ports[p>>6] |= 1 << (p & 63)
	}
	e.telnet = ports
	e.watched = newWatchSet(cfg.WatchPorts)
}

// isTelnet reports whether p is one of the configured telnet ports.
func (e *Engine) isTelnet(p uint16) bool { return e.telnet[p>>6]&(1<<(p&63)) != 0 }

// tick moves the engine clock to t (never backwards) and closes finished surge buckets.
func (e *Engine) tick(t int64) {
	if !e.clockSet {
		e.now, e.clockSet = t, true
		e.nextSweep = t + sweepEvery
	} else if t > e.now {
		e.now = t
	}
	if e.cfg.Telnet.Enabled && e.surge != nil && (!e.sb.joined || e.now >= e.sb.end) {
		e.surgeTick()
	}
	if e.hot.shared != nil && e.cfg.Hotspot.Enabled && (!e.hot.open || e.now >= e.hot.end) {
		e.hotTick()
	}
}

// StartAt moves the clock to t, the time the input (or the capture) starts, as a packet at t
// would, before this worker's first packet: every worker's engine then starts at the same
// time. The telnet surge counts from the first bucket every worker saw whole, which a
// worker takes from its first clock tick: a worker whose first packet came a bucket after
// the input's first made the surge drop a bucket the others had counted, so its baseline
// depended on the number of workers.
func (e *Engine) StartAt(t int64) {
	e.curDense = -1
	e.tick(t)
}

// Packet handles one IP packet to a dark destination; st is the state of h.Src.
func (e *Engine) Packet(h *packet.Header, st *SourceState) { e.PacketIn(h, st, -1, -1) }

// PacketAt is Packet for a destination with dense index dense (a dark IPv4 address, see
// SetDenseDsts), or -1.
func (e *Engine) PacketAt(h *packet.Header, st *SourceState, dense int32) {
	e.PacketIn(h, st, dense, -1)
}

// PacketIn is PacketAt for a source whose state is slot `slot` of the table given to
// SetSources (-1: not known, or not in it).
func (e *Engine) PacketIn(h *packet.Header, st *SourceState, dense, slot int32) {
	e.slot, e.curDense = slot, dense
	e.tick(h.TS)
	e.rec, e.recOK = nil, false
	cfg := e.cfg
	if cfg.Hotspot.Enabled && e.hot.shared != nil {
		e.hotspot(h, dense)
	}
	switch {
	case h.SYNProbe():
		// The destination's hash, once for both sets of targets (a telnet probe's are in
		// the scanner's window and the sweep's).
		var dst uint64
		telnet := cfg.Telnet.Enabled && e.isTelnet(h.DstPort)
		if cfg.Scanner.Enabled || telnet {
			dst = h.Dst.Hash(seedDstIP)
		}
		if cfg.Scanner.Enabled {
			e.scanner(h, st, h.DstPort, synTechnique(h), dense, dst)
		}
		if telnet {
			e.telnetSweep(h, st, dst)
		}
		if cfg.Fingerprint.Enabled {
			e.fingerprint(h, st)
		}
		if cfg.UDPThenSYN.Enabled {
			e.flowSYN(h, st)
		}
	case h.Proto == packet.ProtoUDP && h.L4:
		if cfg.Scanner.Enabled {
			e.scanner(h, st, h.DstPort, TechUDP, dense, h.Dst.Hash(seedDstIP))
		}
		if cfg.UDPThenSYN.Enabled {
			e.flowUDP(h, st)
		}
	case h.ICMPEchoRequest():
		if cfg.Scanner.Enabled {
			e.scanner(h, st, 0, TechICMPEcho, dense, h.Dst.Hash(seedDstIP)) // ICMP echo counts as port 0
		}
	default:
		if cfg.Backscatter.Enabled {
			e.backscatter(h)
		}
		if cfg.Scanner.Enabled && h.Proto == packet.ProtoTCP {
			if t := TechniqueOf(h); t >= 0 {
				e.stealth(h, st, t) // ACK, FIN, NULL, XMAS, Maimon, odd: technique only
			}
		}
	}
}

// Evicted ends the active episodes of src, whose entry the pipeline's table is evicting
// (End events with their final values). The engine keeps no pointer to src or st (both
// in the evicted entry: src is read through its pointer, see DESIGN on store forwarding).
func (e *Engine) Evicted(src *packet.Addr, st *SourceState, now int64) {
	e.tick(now)
	e.clearScan(&st.Scan)
	e.clearTel(&st.Tel)
	if st.FlowSec != 0 && e.flowRecent(st.FlowSec, now) {
		e.flowMark(src)
	}
	e.evRecords.note(st.Moved != 0)
	if st.Moved != 0 {
		// The record's slot is most often the one st.FP.Rec names (findRecord): no look-up.
		if i := e.recordSlot(*src, st); i >= 0 {
			_, rec := e.eps.At(i)
			e.endRecord(*src, rec, epAll)
			e.eps.DeleteAt(i)
		}
		st.Moved = 0
	}
	if st.FP.Labels != 0 { // a tool episode in place (toolplace.go)
		e.endToolWindow(*src, &st.FP)
	}
}

// Advance tells the engine that packet time has reached now: it closes finished surge
// buckets, ends the episodes quiet for longer than the window as soon as one can be, and at
// most once per second of packet time expires idle flows and victims.
func (e *Engine) Advance(now int64) {
	e.curDense = -1
	e.tick(now)
	if e.now > e.due {
		e.endDue(e.now)
	}
	if e.now < e.nextSweep {
		e.Publish()
		return
	}
	e.nextSweep = e.now + sweepEvery
	e.sweepFlows(e.now)
	e.sweepVictims(e.now)
	e.c.Tracked.Store(int64(e.flows.Len() + e.victims.Len()))
	e.Publish()
}

// watch notes an active episode whose last packet was at last: it can end after last+window.
// (Its heap entry, pushed when it became an episode, makes Advance look at it then.)
func (e *Engine) watch(last int64) { e.watchDue(last + e.window) }

// Finish ends every active episode at time now (end of input or shutdown).
func (e *Engine) Finish(now int64) {
	e.curDense = -1
	e.tick(now)
	e.endSources(epAll, 0, true)
	e.endToolsInPlace()
	e.endFlows()
	e.endVictims()
	if e.hotOn() {
		e.hotFinish()
	}
	e.c.Tracked.Store(int64(e.flows.Len() + e.victims.Len()))
	e.Publish()
}

// Publish adds the counts since the last call to the counters (c): after each batch
// (Advance, and the pipeline's flush, which also follows work without an Advance), at Finish
// and after a reload. A call with nothing new only reads the pending counts.
func (e *Engine) Publish() {
	publishCounts(e.techPackets[:], e.c.TechniquePackets[:])
	publishCounts(e.fpPackets[:], e.c.FingerprintPackets[:])
	publishCounts(e.bsPackets[:], e.c.BackscatterPackets[:])
	for d := range e.started {
		publishCounts(e.started[d][:], e.c.Detections[d][:])
	}
	publishCounts(e.active[:], e.c.Active[:])
}

// publishCounts adds each nonzero pending count to its counter and clears it.
func publishCounts[T int64 | uint64, A any, PA interface {
	*A
	Add(T) T
}](pend []T, to []A) {
	for i, n := range pend {
		if n != 0 {
			PA(&to[i]).Add(n)
			pend[i] = 0
		}
	}
}

// begin records an episode start: counters, then the event.
func (e *Engine) begin(det, class int, entry Entry) {
	d := descriptors[det]
	e.started[det][class]++
	e.active[det]++
	e.ev = Event{Detector: d.Name, Phase: Start, Class: d.Classes[class], Entry: entry}
	e.sink.Detection(&e.ev)
}

// end records an episode end with its final entry; class is the final class.
func (e *Engine) end(det, class int, entry Entry) {
	d := descriptors[det]
	e.active[det]--
	e.ev = Event{Detector: d.Name, Phase: End, Class: d.Classes[class], Entry: entry}
	e.sink.Detection(&e.ev)
}

// later returns t, or last when t is earlier: out-of-order packets count with gap 0 and
// never move a clock backwards.
func later(t, last int64) int64 {
	if t < last {
		return last
	}
	return t
}

// reached reports whether d holds at least n distinct values. Past the exact phase Count
// scans the sketch, so it runs only when Add reported a change (changed) or when the
// threshold is within the exact range anyway.
func (e *Engine) reached(d *aggregate.Distinct, n int, changed bool) bool {
	if n <= 0 {
		return true
	}
	if d.Exact() {
		return d.Count(&e.slab) >= uint64(n)
	}
	if uint64(n) <= d.Floor() {
		return true
	}
	return changed && d.Count(&e.slab) >= uint64(n)
}

// Records returns the sources whose active episodes are in the episode table (scanner and
// telnet sweep episodes, and tool episodes kept there: see toolplace.go).
func (e *Engine) Records() int { return e.eps.Len() }

// SlabBlocks returns the slab blocks in use (for tests and memory accounting).
func (e *Engine) SlabBlocks() int { return e.slab.Blocks() }

// SlabBytes returns the memory of the engine's slab.
func (e *Engine) SlabBytes() int { return e.slab.Bytes() }

// SetsRefused returns how many times a set needed a block past limits.max_sets_mb (and
// estimated inline instead).
func (e *Engine) SetsRefused() uint64 { return e.slab.Refused }

// Hash seeds: separate uses of the same address must not correlate.
const (
	seedDstIP   = 0x6a09e667f3bcc908
	seedPair    = 0xbb67ae8584caa73b
	seedPort    = 0x3c6ef372fe94f82b
	seedFlow    = 0xa54ff53a5f1d36f1
	seedVictim  = 0x510e527fade682d1
	seedEpisode = 0x9b05688c2b3e6c1f
)

func hashAddr(a *packet.Addr) uint64 { return a.Hash(seedVictim) }

func hashEpisode(a *packet.Addr) uint64 { return a.Hash(seedEpisode) }

// HeldBlocks counts the slab blocks referenced from the engine's own tables (episodes and
// victims). With the pipeline's sources all evicted, it must equal SlabBlocks: anything
// else is a leaked or doubly owned block (checked by the tests).
func (e *Engine) HeldBlocks() int {
	n := 0
	held := func(ds ...*aggregate.Distinct) {
		for _, d := range ds {
			if d.Ref != 0 {
				n++
			}
		}
	}
	e.eps.Range(func(_ *packet.Addr, rec *episode) bool {
		held(&rec.Scan.Targets, &rec.Scan.Ports, &rec.Tel.Targets, &rec.Prof.Addrs)
		return true
	})
	e.victims.Range(func(_ *packet.Addr, v *victim) bool {
		held(&v.Targets)
		return true
	})
	return n
}
