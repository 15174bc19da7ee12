package detect

import (
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// A worker's hotspot counts are counted in batches. A dark packet costs one record,
// appended to the open part of the window (hotRec: its destination's id, source, time, port
// and kind); nothing per destination or per source is touched on the packet path. When the
// part ends (the window closes, or a limit is reached, see below) each destination's records
// are counted together, with scratch tables sized to them that stay in the cache: its
// packets, its distinct sources, its busiest ports' and the top sources, exactly (see
// handOver). A destination with at most hotLog packets (with a dense index: fewer than
// min_sources, see denseHeavy) is handed over as its packets (a light cell, or its records),
// the others as summaries (HotSummary), to the shared Hotspots, which sums the workers'
// counts per window as before.
//
// Counting per packet, the detector touched the destination's cell, its levels, a set of
// sources or the source's memo of the destinations it was counted at, and the top sources:
// several lines in random order per packet, and work at every eviction of the source
// table (the memo lived in the source's entry). The records are written in order and read
// in order, and each destination's counts are built while its records are in the cache.
//
// A light destination with a dense index (a dark IPv4 address) is handed over as its
// packets (hotLight: 8 bytes) and its records, left where they are in the part's, which
// goes over whole, not as a cell: most destinations of a telescope window are those, one
// per packet or nearly, and the shared side reads their records only for the few
// destinations whose packets over the workers make them candidates (hotGrouper).
//
// Two limits bound a part's memory (both per worker):
//   - destinations without a dense index (limits.max_destinations; the dense ones have
//     their arrays, by index, for the whole dark space): a new one past the cap first hands the
//     light destinations over early (a spill: those with at most hotLog packets that were
//     not spilled before, if they are at least a quarter of the cap), keeping the others'
//     records; a destination spilled and counted again later in the part is summed from
//     two hand-overs, which may share sources, so its counts are marked estimated (the
//     filter of spilled destinations, back, tells). Too few light ones: everything is
//     handed over (a flush) and the window's counts of this worker are marked estimated.
//   - records (hotRecCap): the part is flushed.

// hotRec is one packet of the open part: what the counts need of it. Plain values only
// (checkpoints).
type hotRec struct {
	TS  int64
	Src packet.Addr
	// ID is the destination: its dense index, or the dense space's size + its place in
	// hotWorker.dsts.
	ID    int32
	Port  uint16 // destination port, 0: no port level (not TCP/UDP, or port 0)
	Bits  uint8  // hotBitSYN, hotBitUDP, hotBitP2P, hotBitReply, hotBitPair
	Proto uint8  // one of the hotTCP... bits
}

// hotRecCap is the records per part of a worker with a cap of c destinations: 32 per
// destination, from 64 Ki to 1 Mi records (2-32 MiB reserved for each of the part's two
// arrays and the sorted copy; the part's two together hold at most that many).
func hotRecCap(c int) int { return min(max(32*c, 1<<16), 1<<20) }

// hotWorker is one engine's part of the hotspot detector: the records of the open window's
// part and the destinations they name.
type hotWorker struct {
	shared *Hotspots
	cap    int // destinations per part before the light ones are handed over early
	recCap int // records per part (recs and orecs) before all are handed over early
	lightN int // light destinations with a dense index handed over in the open window
	// recs are the part's records of destinations with a dense index, orecs the others'.
	// Apart, a spill (spillLight) walks and renumbers only orecs: over one array it copied
	// the whole part, the busy dark IPv4 addresses' records included, at every spill (a
	// tenth of the hotspot's counted work on the generated day, whose IPv6 scanners spill
	// a few times a window). A destination's records are all in one of them, in arrival
	// order, which is the only order the counts read.
	recs  []hotRec
	orecs []hotRec
	// lastOther: the part's last record is orecs' (hotPair).
	lastOther bool
	px        *aggregate.Prefixes // the dark space whose dense index the records' ids use
	ndense    int32               // its dense indexes (ids below this)
	seen      []uint64            // by dense index: the destination has counted records (ncounted)
	dsts      []packet.Addr       // the part's destinations without a dense index, by id-ndense
	dhash     []uint64            // their hashes (seedDstIP): the index's, and the spill filter's bits
	dsts2     []packet.Addr       // spare arrays for dsts and dhash (spillLight)
	dhash2    []uint64
	// hash indexes dsts by address: gen<<hotGenShift | 1+place, entries of other
	// generations are empty (a part's end starts a new one instead of clearing).
	hash   []uint32
	gen    uint32
	ndst   int // destinations in the part (those with a dense index: counted, see ncounted)
	nother int // of which without a dense index (those the cap counts)
	nbusy  int // of those with more than hotLog packets
	ndbusy int // destinations with a dense index and more than hotLog packets (the heavy ones' bound)
	// ncounted: the records before it are counted in dcount, seen, ndst and ndbusy where
	// their destination has a dense index (countDense); the others are counted as they come.
	ncounted int
	back     []uint64 // filter (filter.go) of the destinations spilled in the part, nil: none
	backBuf  []uint64 // back's array, empty, while back is nil (dropBack)
	// split: the open window was handed over early once (its counts are estimated).
	split bool
	size  int64 // window length in ns of the open window
	win   int64 // open window index
	end   int64 // its end
	open  bool

	// Scratch of the counts.
	dcount []uint32   // the part's packets by destination id (dense ones: those counted)
	slot   []int32    // by destination id, at a hand-over: its light cell, or heavy group
	at     []int32    // by heavy group: its next place in sorted
	sorted []hotRec   // the heavy destinations' records, by destination
	cnt    hotCounter // a destination's counts
	// wsets: the sources of the window's levels across its parts when it is handed over
	// in parts (cnt.win refers to it).
	wsets hotWinSets
	// portMem: by dense index, the port a busy dark address last had as its busiest with
	// hotPortMin packets in a part of a window handed over in parts (0: none), which its
	// parts count as a level even with one packet there (hotPortMin). Made at the first
	// such part, emptied when the window closes; checkpoints hold it.
	portMem []uint16
	cells   []hotCell           // the next array of cells to hand over (Hotspots gives them back)
	full    []HotSummary        // the summaries of the destinations with more than hotLog packets
	light   hotLight            // the light destinations with a dense index to hand over (Hotspots swaps the arrays)
	wide    hotWide             // the worker's packets per address of a dark space too wide for px (hotwide.go)
	widePx  *aggregate.Prefixes // that space (SetDenseDsts; wide reads it once given the counts)
}

// hotLight is what a worker hands over of its light destinations with a dense index: each
// one's packets (obs, in dense index order) and their records (ID: the dense index in px):
// the part's, as they came (the destinations of obs among others), or grouped (see
// handOver). hotGrouper reads them either way.
type hotLight struct {
	obs     []hotObs
	recs    []hotRec
	grouped bool // recs are those of the destinations of obs only, grouped in obs' order
	split   bool // the worker handed its counts over early in this window (see hotFlush)
	w       int  // the worker (Hotspots' copy only)
	alone   bool // handed over without cells (Hotspots' copy only)
	px      *aggregate.Prefixes
}

// hotGrouper groups the records of light destinations with a dense index (hotLight), with
// scratch reused from one to the next.
type hotGrouper struct {
	at   []int32  // by dense index: 1 + the next place of its destination's records, 0: not read
	recs []hotRec // the records read, grouped
	obs  []hotObs // the destinations read, in lt.obs' order
}

// each calls fn with each light destination of lt whose bit is set in want (nil: all) and
// its records, in arrival order, in lt.obs' order.
func (gr *hotGrouper) each(lt *hotLight, want []uint64, fn func(o hotObs, g []hotRec)) {
	if lt.grouped {
		at := 0
		for _, o := range lt.obs {
			if want == nil || hasBit(want, uint32(o.ix)) {
				fn(o, lt.recs[at:at+int(o.packets)])
			}
			at += int(o.packets)
		}
		return
	}
	n := lt.px.ExactSize()
	if len(gr.at) < n {
		gr.at = make([]int32, n)
	}
	obs, total := gr.obs[:0], 0
	for _, o := range lt.obs {
		if want == nil || hasBit(want, uint32(o.ix)) {
			gr.at[o.ix] = int32(total + 1)
			total += int(o.packets)
			obs = append(obs, o)
		}
	}
	gr.obs = obs
	if len(obs) == 0 {
		return
	}
	g := room(gr.recs, total)[:total]
	gr.recs = g
	for i := range lt.recs {
		r := &lt.recs[i]
		if id := r.ID; id < int32(n) {
			if k := gr.at[id]; k > 0 {
				g[k-1] = *r
				gr.at[id]++
			}
		}
	}
	at := 0
	for _, o := range obs {
		gr.at[o.ix] = 0
		fn(o, g[at:at+int(o.packets)])
		at += int(o.packets)
	}
}

// hotCounter counts one destination's records, with scratch tables reused from one to the
// next.
//
// The tables are zero between counts: a count empties the slots it used (it knows them:
// order, pused) rather than clearing whole tables, and walks only those. Sized to the
// records, a table has about twice as many slots as a destination has sources or ports, and
// a destination of a scanned dark space has few ports: clearing and walking every slot of the
// port table was as much work as counting the records (cachegrind, the generated day).
type hotCounter struct {
	set    []hotSlot               // the levels' sources (open addressing), all zero between counts
	ports  []hotPortSlot           // the destination's ports (open addressing), likewise
	pused  []uint32                // the port table's slots in use
	old    []hotPortSlot           // the ports of a table being grown
	order  [1 + hotPorts][]int32   // each level's sources' slots, in order of arrival
	xs     [1 + hotPorts][]uint64  // each level's sources' hashes, for the window's sets (win)
	pairs  [1 + hotPorts][]hotPair // each big level's records (see countParts)
	parts  []hotPair               // countParts' records by partition
	pcnt   []int32                 // countParts' partitions' starts
	ptab   []hotSlot               // countParts' table of one partition's sources
	porder []int32                 // its slots in use
	// win, a worker's (nil on the shared side), counts the sources of a window handed over
	// in parts across its parts (see hotWinSets).
	win *hotWinSets
	// keep is the one port of one packet a worker's count of a window in parts keeps as a
	// level (hotPortMin; 0: none): the destination's remembered port (hotWorker.portMem);
	// -1: every port is kept (a destination without a dense index, whose ports are not
	// remembered).
	keep int32
}

// hotWinSets are a worker's sets of the sources of each destination level it counted in
// the parts of a window handed over in parts (split): without them each part's summary
// held the part's distinct sources, and the shared side's sum of the parts counted a
// source seen in several parts once in each (500 BitTorrent peers retrying one address
// every 10 s were 3 000 sources in a window cut into 6 parts). A level's summary now holds
// the sources its set gained in the part, so the parts sum to the window's distinct
// sources: exact up to 192 (hotWinBigLimit); above, the parts' sum unless the set's
// sketch finds them sharing more than its error (hotWinOverlap), then its estimate. A
// destination's parts of at most hotLog packets (light, counted on the shared side) count
// their sources once there (Hotspots.lightSeen), but a source in both a light and a busy
// part of it counts twice. The sets last until the window closes.
// Bounded: at most maxKeys levels (the records' cap over hotWinPerKey), each set at most
// 2 KiB; a level past maxKeys sums its parts as before. Checkpoints hold the sets. The
// values are the counter's source hashes.
type hotWinSets struct {
	idx     map[hotKey]int32
	sets    []hotWinSet
	slab    aggregate.Slab
	maxKeys int
}

type hotWinSet struct {
	d        aggregate.Distinct
	reported uint64 // the sources the parts' summaries have held so far
	sum      uint64 // the parts' distinct sources summed: a bound the estimate never passes
}

// hotWinPerKey bounds the sets: one per hotWinPerKey records of the part's cap (8 192 at
// the defaults), each holding at most 2 KiB of the slab (an exact set's block, or a
// sketch's 1 KiB). The slab keeps freed blocks by size, so it may hold 2 KiB and 1 KiB
// blocks for every set at once: with the map, under 26 MiB a worker.
const hotWinPerKey = 32

// hotWinOverlap is the share of a window's parts' summed sources that its sketch must find
// shared before its estimate replaces the sum: three standard errors of
// aggregate.Distinct's sketch (1.04/sqrt(1024)), so that a spoofed flood's exact sum is
// replaced by an estimate for about one destination in 700 (at two, 2 of the 3 M-SYN
// burst's 256 were, by 4 %).
const hotWinOverlap = 0.1

// hotWinBigLimit is the sets' slab budget for large blocks: none, so that a set is exact up
// to 192 sources (blocks of at most 2 KiB) and a sketch past that. Exact up to 4 096, the
// sets filled tables of 4 096 slots to the last one, ~50 probes an insert past 1 536: on
// the 3 M-SYN burst, whose every destination gets ~11 700 sources in ~6 parts a worker, made
// the replay's user time 15 % longer; with the sums standing where the parts share no
// source, the estimates only replace sums that are clearly too large.
const hotWinBigLimit = 1

// gained adds the sources of a level (their hashes xs, each once) to the set of key and
// returns how many new distinct sources it holds since the last call, or ok=false when
// the key has no set (the bound is reached).
func (ws *hotWinSets) gained(key hotKey, xs []uint64) (n uint64, ok bool) {
	i, found := ws.idx[key]
	if !found {
		if len(ws.sets) >= ws.maxKeys {
			return 0, false
		}
		if ws.idx == nil {
			ws.idx = map[hotKey]int32{}
			ws.slab.BigLimit = hotWinBigLimit
		}
		i = int32(len(ws.sets))
		ws.idx[key] = i
		ws.sets = append(ws.sets, hotWinSet{})
	}
	set := &ws.sets[i]
	set.d.AddAll(&ws.slab, xs)
	// Past its exact limit the set is a sketch (3.3 % standard error). The parts' sum
	// bounds the count from above and is exact when they share no source (a spoofed
	// flood): it stands unless the sketch finds them sharing more than its error
	// (hotWinOverlap), and the count never goes below what the parts reported already.
	set.sum += uint64(len(xs))
	c := set.sum
	if !set.d.Exact() {
		if est := set.d.Count(&ws.slab); float64(est) < (1-hotWinOverlap)*float64(c) {
			c = est
		}
	} else {
		c = set.d.Count(&ws.slab)
	}
	c = max(c, set.reported)
	n, set.reported = c-set.reported, c
	return n, true
}

// restore replaces the sets by those of a checkpoint, indexed by idx and checked
// (checkWinSets), their blocks in slab.
func (ws *hotWinSets) restore(idx map[hotKey]int32, sets []hotWinSet, slab *aggregate.Slab) {
	ws.idx, ws.slab, ws.sets = idx, *slab, append(ws.sets[:0], sets...)
	ws.slab.BigLimit = hotWinBigLimit
}

// reset empties the sets (the window closed), keeping their memory for the next one.
func (ws *hotWinSets) reset() {
	if len(ws.sets) == 0 {
		return
	}
	for i := range ws.sets {
		ws.sets[i].d.Reset(&ws.slab)
	}
	ws.sets = ws.sets[:0]
	clear(ws.idx)
}

// hotSlot is a source of a level being counted: its hash (0: empty slot), packets and first
// record.
type hotSlot struct {
	x     uint64
	n     uint32
	first int32
}

// hotPortSlot is a port of a destination being counted (k: port+1, 0: empty slot).
type hotPortSlot struct {
	k     uint32
	n     uint32
	first int32
}

// SetHotspots attaches the shared hotspot aggregator (nil: no hotspot detection). Call it
// before the first packet.
func (e *Engine) SetHotspots(h *Hotspots) {
	hw := &e.hot
	hw.cap = min(max(e.cfg.MaxDestinations, 1), hotCellMask-1)
	hw.recCap = hotRecCap(hw.cap)
	hw.cnt.win, hw.wsets.maxKeys = &hw.wsets, hw.recCap/hotWinPerKey
	if h != hw.shared {
		// Arrays reserved by the old one (newRecs) go with it; the open part's records
		// (a restore in the middle of a window) move to an array of the new one, copied
		// while the old one is still referred to.
		moved := func(recs []hotRec) []hotRec {
			if len(recs) == 0 {
				return nil
			}
			return append(partRecs(h, hw.recCap), recs...)
		}
		hw.cells, hw.light, hw.recs, hw.orecs, hw.sorted = nil, hotLight{}, moved(hw.recs), moved(hw.orecs), nil
	}
	hw.shared = h
	e.noteWide()
}

// noteWide tells the shared aggregator which wide dark space this engine counts.
func (e *Engine) noteWide() {
	if e.hot.shared != nil {
		var px *aggregate.Prefixes
		if e.hot.wide.on() {
			px = e.hot.wide.px
		}
		e.hot.shared.wide.Store(px)
	}
}

// maxHotDense bounds the dark IPv4 space the hotspot counts by dense index (a few /16s;
// aggregate.MaxExactDst, the workers' own bound, is a /8).
const maxHotDense = 1 << 20

// SetDenseDsts tells the hotspot counts the dark space whose dense index of dark IPv4
// addresses PacketAt receives (nil: none). A different dark space hands the open part
// over first (its records' ids use the old numbering), and its busy addresses' remembered
// ports (portMem, by the old dense index) are forgotten: kept, a checkpoint wrote ports
// of indexes the new space may not have, which its restore refused as corrupt (the rest of
// the window counts their ports as a window without them does).
//
// A dark space of more than maxHotDense addresses counts in the hotspot (and the
// scanner's memos) as if it had no dense index, though the workers count such a space per
// address: its per-address arrays would cost 10 bytes an address a worker and as much
// again on the shared side, and a build that took a /8's index here replayed the /8 swarm
// of the README's limitations (24 M SYNs) in 60-64 s and 4.9-5.7 GB, against 12-14 s and
// 0.85 GB.
func (e *Engine) SetDenseDsts(px *aggregate.Prefixes) {
	hw := &e.hot
	var wide *aggregate.Prefixes
	if px != nil && px.ExactSize() > maxHotDense {
		px, wide = nil, px
	}
	renumbered := hw.widePx != wide && (wide == nil || hw.widePx == nil || !wide.SameExact(hw.widePx))
	if renumbered && hw.open && e.hotOn() {
		// The counts so far are numbered by the old space (its array is still the
		// worker's): they go as they are, and SetDenseCounts gives the new space's.
		e.wideHandOver(true)
	}
	if len(hw.recs)+len(hw.orecs) > 0 {
		e.hotFlush() // its cells of the old wide space, if any, are left out of the histogram
	}
	if renumbered {
		hw.wide.set(nil, nil)
		if wide == nil {
			e.noteWide()
		}
	}
	hw.widePx = wide
	hw.wide.px = wide
	n := 0
	if px != nil {
		n = px.ExactSize()
	}
	hw.px, hw.portMem = px, nil
	if n != int(hw.ndense) || hw.seen == nil {
		hw.ndense, hw.seen = int32(n), make([]uint64, (n+63)/64)
		hw.dcount, hw.slot = make([]uint32, n), make([]int32, n)
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
		if !hw.wide.synced {
			hw.wide.sync(e.curDense)
		}
	}
}

// hotspot records one packet to a dark destination (dense: its dense index, or -1).
func (e *Engine) hotspot(h *packet.Header, dense int32) {
	hw := &e.hot
	if len(hw.recs)+len(hw.orecs) >= hw.recCap {
		e.hotFlush()
	}
	id := e.hotID(&h.Dst, dense)
	var bits uint8
	var port uint16
	var proto uint8
	var syn, udp bool
	switch h.Proto {
	case packet.ProtoTCP:
		proto = hotTCP
		syn = h.SYNProbe()
	case packet.ProtoUDP:
		proto, udp = hotUDP, h.L4
		if udp && h.PayloadCap > 0 && payloadKind(h) != payloadOther {
			bits |= hotBitP2P
		}
	case packet.ProtoICMP:
		proto = hotICMP
	case packet.ProtoICMPv6:
		proto = hotICMPv6
	default:
		proto = hotOther
	}
	if syn {
		bits |= hotBitSYN
	}
	if udp {
		bits |= hotBitUDP
	}
	if !syn && !udp && backscatterKind(h) >= 0 {
		bits |= hotBitReply
	}
	if (syn || udp || proto == hotTCP) && h.L4 {
		port = h.DstPort
	}
	recs := &hw.recs
	if hw.lastOther = id >= hw.ndense; hw.lastOther {
		recs = &hw.orecs
		hw.count(id)
	}
	if *recs == nil {
		*recs = hw.newRecs()
	}
	n := len(*recs)
	*recs = (*recs)[:n+1]
	r := &(*recs)[n]
	// Field by field: a composite literal is built in a temporary and copied.
	r.TS, r.Src, r.ID, r.Port, r.Bits, r.Proto = h.TS, h.Src, id, port, bits, proto
}

// countDense counts the records from ncounted on whose destination has a dense index: at a
// hand-over, a spill or a flush rather than at each packet, where the destination's count
// (4 bytes an address of the dark space: 256 KiB for a /16, 4 MiB for a /12) missed the
// cache on most packets of a scanned dark space (6.6 % of the SYN file's samples, a /16);
// counted in one loop, the misses overlap. Each count is prefetched for writing 64 records
// ahead: the increments' misses were 63 % of handOver's samples on the SYN file, 33 % with
// 16 ahead, 7 % with 64 (perf annotate; handOver 3.3-3.7 % of all samples, 2.3 % now).
func (hw *hotWorker) countDense() {
	const ahead = 64
	for i := hw.ncounted; i < len(hw.recs); i++ {
		if j := i + ahead; j < len(hw.recs) {
			prefetch.Write(unsafe.Pointer(&hw.dcount[hw.recs[j].ID]))
		}
		id := hw.recs[i].ID // a dense index (orecs hold the others)
		if w, bit := &hw.seen[id>>6], uint64(1)<<(id&63); *w&bit == 0 {
			*w |= bit
			hw.ndst++
		}
		hw.count(id)
	}
	hw.ncounted = len(hw.recs)
}

// count counts a packet to destination id in the part.
func (hw *hotWorker) count(id int32) {
	if hw.dcount[id]++; hw.dcount[id] == hotLog+1 {
		if id >= hw.ndense {
			hw.nbusy++
		} else {
			hw.ndbusy++
		}
	}
}

// hotID returns the id of dst (dense: its dense index, or -1) in the open part, a new one if
// it has none (after handing light destinations, or all, over when the part has cap of
// those without a dense index).
func (e *Engine) hotID(dst *packet.Addr, dense int32) int32 {
	hw := &e.hot
	if dense >= 0 && dense < hw.ndense {
		return dense // counted later (countDense)
	}
	x := dst.Hash(seedDstIP)
	if j := hw.findHash(dst, x); j >= 0 {
		return hw.ndense + j
	}
	if hw.nother >= hw.cap {
		e.hotMakeRoom()
		return e.hotID(dst, dense) // the index changed
	}
	hw.addDst(dst, x)
	hw.dcount, hw.slot = append(hw.dcount, 0), append(hw.slot, 0)
	hw.ndst++
	hw.nother++
	return hw.ndense + int32(len(hw.dsts)-1)
}

// findHash returns dst's place in hw.dsts (x: its hash), -1 if it has none.
func (hw *hotWorker) findHash(dst *packet.Addr, x uint64) int32 {
	if hw.hash == nil {
		n := 16
		for n < 2*hw.cap {
			n *= 2
		}
		hw.hash, hw.gen = make([]uint32, n), 1
	}
	mask := uint64(len(hw.hash) - 1)
	for i := x & mask; hw.hash[i]>>hotGenShift == hw.gen; i = (i + 1) & mask {
		if j := hw.hash[i]&hotCellMask - 1; hw.dsts[j] == *dst {
			return int32(j)
		}
	}
	return -1
}

// hotMakeRoom hands the part's light destinations over early, or all of them.
func (e *Engine) hotMakeRoom() {
	if !e.hotSpill() {
		e.hotFlush()
	}
}

// hotPair notes that a SYN probe, the packet just recorded, paired with an earlier UDP
// datagram to the same ip:port.
func (e *Engine) hotPair(h *packet.Header) {
	hw := &e.hot
	recs := hw.recs
	if hw.lastOther {
		recs = hw.orecs
	}
	if !e.hotOn() || len(recs) == 0 {
		return
	}
	if r := &recs[len(recs)-1]; r.TS == h.TS && r.Src == h.Src && r.Port == h.DstPort {
		r.Bits |= hotBitPair
	}
}

// denseHeavy is the packets from which a destination with a dense index is counted by its
// worker (a heavy cell: summaries) rather than handed over as its records (light):
// min_sources, in a part that is the whole window. A destination with fewer packets here is
// a hotspot only with the other workers' packets, and most are not: Hotspots counts the
// records of those whose packets over all workers reach min_sources (candidates) and
// nothing of the others, where the workers counted every destination of more than hotLog
// packets (a tenth of the detectors' work on the generated day at scale 2, whose dark
// addresses get 3 to 99 packets a window and worker). One with min_sources packets here is
// always a candidate, so its count here is never wasted. In a window handed over in parts
// (split) Hotspots may keep only the light destinations that fit (maxLight), so there only
// those of at most hotLog packets are light, as they always were; and none once the
// worker's light destinations of the window might pass maxLight (its records' cap, as
// Hotspots': the ones past it would leave the hotspot counts for the distribution alone,
// each counted again at each part, as a swarm aimed at a dark /16 made 152 375 of them):
// from there every one is counted here, as heavy, its summaries compacted (compactFull)
// and its cells summed by address (foldDense), so memory stays bounded.
func (e *Engine) denseHeavy() uint32 {
	if hw := &e.hot; hw.split {
		hw.countDense() // ndst counts the part's dense destinations from here
		if hw.lightN+hw.ndst-hw.nother > hw.recCap {
			return 1
		}
		return hotLog + 1
	}
	return uint32(min(max(e.cfg.Hotspot.MinSources, hotLog+1), math.MaxInt32))
}

// hotClose hands the open window's counts to the shared aggregator, telling it that this
// worker has passed every window before `through`; keep says whether the counts count
// (not after a window length change).
func (e *Engine) hotClose(through int64, keep bool) {
	hw := &e.hot
	cells, full := hw.handOver(e.denseHeavy())
	mine, light := cells, &hw.light
	if !keep {
		cells, full, light = nil, nil, nil
	}
	e.wideHandOver(keep) // before report: it may complete the window
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, cells, full, light, through, hw.px)
	e.c.Evictions.Add(dropped)
	hw.takeSpare(spare, mine)
	hw.endWindow()
}

// endWindow forgets what the worker keeps of its open window across parts: whether it went
// in parts, its light count, its source sets and its remembered ports.
func (hw *hotWorker) endWindow() {
	hw.open, hw.split, hw.lightN = false, false, 0
	hw.wsets.reset()
	clear(hw.portMem) // nil until a window went in parts (2 bytes a dark address)
}

// hotFlush hands the open part over early (the part is full, or the dark space changed):
// a destination counted again later in the window is summed from two parts, whose distinct
// sources may overlap, so the window's counts of this worker are marked estimated. Each
// destination handed over counts as an eviction.
func (e *Engine) hotFlush() {
	hw := &e.hot
	hw.split = true
	hw.countDense()
	n := hw.ndst
	cells, full := hw.handOver(e.denseHeavy())
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, cells, full, &hw.light, math.MinInt64, hw.px)
	e.c.Evictions.Add(uint64(n) + dropped)
	hw.takeSpare(spare, cells)
}

// hotSpill makes room for new destinations by handing the light ones over early (see the
// top of this file), keeping the others' records: a flood of one-packet destinations (an
// IPv6 scanner's random addresses) does not split the busy destinations' counts. It
// reports false, having changed nothing, when too few are light.
func (e *Engine) hotSpill() bool {
	hw := &e.hot
	cells, ok := hw.spillLight()
	if !ok {
		return false
	}
	// A spilled cell is not an eviction: its counts are summed at the window's end, exact;
	// one the limit dropped is (its packets are only in the receiver distribution).
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, cells, nil, nil, math.MinInt64, hw.px)
	e.c.Evictions.Add(dropped)
	hw.takeSpare(spare, cells)
	return true
}

// takeSpare keeps the array Hotspots gave back (or, when it gave none, the one handed) for
// the next hand-over.
func (hw *hotWorker) takeSpare(spare, handed []hotCell) {
	if spare == nil {
		spare = handed
	}
	hw.cells = spare[:0]
}

// hotFinish ends the input: the open window is reported (partial: nothing more will come).
func (e *Engine) hotFinish() {
	if e.hot.open {
		e.hotClose(1<<62, true)
	} else if e.hot.shared != nil {
		e.hot.shared.report(e.worker, e.hot.size, 0, nil, nil, nil, 1<<62, nil)
	}
}

// hotStop drops the engine's counts (a reload disabled the detector or changed the window;
// the shared part ends its episodes itself).
func (e *Engine) hotStop() {
	hw := &e.hot
	hw.clearPart()
	hw.dropBack()
	hw.wide.synced = false // nothing counts until the next window opens
	hw.endWindow()
}

// dstTo writes the destination of id to *a, in place: built in a temporary, its bytes were
// read back in one 16-byte load that waited for their stores (4 % of the SYN file's
// samples).
func (hw *hotWorker) dstTo(a *packet.Addr, id int32) {
	if id < hw.ndense {
		hw.px.ExactAddrTo(a, id)
		return
	}
	*a = hw.dsts[id-hw.ndense]
}

// ixOf is the dense index of id, -1 for none.
func (hw *hotWorker) ixOf(id int32) int32 {
	if id < hw.ndense {
		return id
	}
	return -1
}

// spillBit is the bit in the filter of spilled destinations of destination id, one without
// a dense index (the others are never spilled).
func (hw *hotWorker) spillBit(id int32) uint32 {
	return filterBit(hw.dhash[id-hw.ndense])
}

// spilled reports whether destination id was spilled earlier in the part (never one with a
// dense index).
func (hw *hotWorker) spilled(id int32) bool {
	return id >= hw.ndense && hw.back != nil && hasBit(hw.back, hw.spillBit(id))
}

// eachDst calls fn with the id of every destination of the part: the dense ones in index
// order, then the others in order of arrival.
func (hw *hotWorker) eachDst(fn func(id int32)) {
	for w, word := range hw.seen {
		for word != 0 {
			fn(int32(w*64 + bits.TrailingZeros64(word)))
			word &= word - 1
		}
	}
	for i := range hw.dsts {
		fn(hw.ndense + int32(i))
	}
}

// newCell appends the cell of destination id to cells, light (its records are logged as
// they come) or heavy (counted as summaries).
func (hw *hotWorker) newCell(cells []hotCell, id int32, heavy, split bool) []hotCell {
	// Field by field, in place: a composite literal is built in a temporary and copied.
	cells = slices.Grow(cells, 1)
	cells = cells[:len(cells)+1]
	c := &cells[len(cells)-1]
	hw.dstTo(&c.Dst, id)
	c.Packets, c.Ix, c.N, c.Split = hw.dcount[id], hw.ixOf(id), 0, split || hw.spilled(id)
	c.Heavy, c.Log = 0, [hotLog]hotEvent{} // Log: checkpoints copy all of it
	if heavy {
		c.Heavy = 1
	}
	return cells
}

// logRec logs r in light cell c.
func (c *hotCell) logRec(r *hotRec) {
	l := &c.Log[c.N]
	l.TS, l.Src, l.Port, l.Bits, l.Proto = r.TS, r.Src, r.Port, uint16(r.Bits), r.Proto
	c.N++
}

// handOver counts the part's records and returns the cells (hw.cells' array) and summaries
// to hand over (hw.split: all marked estimated), fills hw.light, and clears the part. No
// sort: each destination's packets are counted first (dcount: as they come, or by
// countDense for the dense ones), so in one pass over the records a light destination's
// records go to its cell, or to their places in hw.light.recs where it has a dense index,
// and the others' to their places in hw.sorted (offsets from their counts: in arrival
// order, one write stream per busy destination), then each busy destination's records are
// counted together.
func (hw *hotWorker) handOver(denseHeavy uint32) ([]hotCell, []HotSummary) {
	hw.countDense()
	// Each array sized at once (room): grown element by element, or by slices.Grow (which
	// copies the whole old array), they were copied a few times per hand-over, 2-4 % of the
	// 20x day's samples with spills' (below). A dense destination is heavy only past hotLog
	// packets (denseHeavy > hotLog), any may be light.
	cells := room(hw.cells, hw.nother+hw.ndbusy)
	lt := &hw.light
	lt.obs, lt.split = room(lt.obs, hw.ndst-hw.nother), hw.split
	defer func() { hw.lightN += len(lt.obs) }()
	at := hw.at[:0] // by heavy group: its next place in sorted
	n, nl := 0, 0
	hw.eachDst(func(id int32) {
		c := hw.dcount[id]
		switch {
		case id < hw.ndense && c < denseHeavy:
			// Light: its bit cleared in seen says so to the loop over the records.
			setBit(hw.seen, uint32(id), false)
			lt.obs = append(lt.obs, hotObs{id, c})
			nl += int(c)
		case c <= hotLog && (id >= hw.ndense || denseHeavy > 1):
			hw.slot[id] = int32(len(cells) + 1)
			cells = hw.newCell(cells, id, false, hw.split)
		default: // heavy (with denseHeavy 1, every destination with a dense index)
			hw.slot[id] = -int32(len(at) + 1)
			at = append(at, int32(n))
			n += int(c)
			cells = hw.newCell(cells, id, true, hw.split)
		}
		hw.dcount[id] = 0 // read for the last time (newCell too): clearPart need not walk
	})
	// At most an address level and hotPorts ports per heavy destination: sized at once, as
	// appended a few at a time by summarize the array grew by a quarter at each step (the
	// runtime's growth past 256 elements), five times its size in fresh memory, page
	// faults included (a swarm over a dark /16 summarizes ~200 k levels a part).
	full := room(hw.full, (1+hotPorts)*len(at))
	if hw.sorted == nil {
		hw.sorted = hw.newRecs()
	}
	hw.sorted = room(hw.sorted, n)[:n]
	// The light destinations' records go over in one of two ways. Most of the part's (a
	// scanned dark space's one-packet destinations): the part's records go over whole, as
	// they are, and the array lt held becomes the next part's; Hotspots groups the records
	// of the few destinations it reads (copied out one by one here, each a look-up of its
	// destination's place, they were a tenth of the hotspot's work on the SYN sample,
	// bench-work.sh). Fewer: copied out, grouped (Hotspots would read the whole part for
	// them: the busy dark addresses' records, a third of the hotspot's work on the day).
	lt.grouped = nl > 0 && 2*nl < len(hw.recs)
	if lt.grouped {
		if cap(lt.recs) < nl {
			lt.recs = hw.newRecs()
		}
		lt.recs = lt.recs[:nl]
		at := 0
		for _, o := range lt.obs {
			hw.slot[o.ix] = int32(at)
			at += int(o.packets)
		}
	}
	hw.place(hw.recs, cells, at)
	hw.place(hw.orecs, cells, at)
	if len(lt.obs) > 0 && !lt.grouped {
		next := lt.recs
		if cap(next) < hw.recCap {
			next = hw.newRecs()
		}
		lt.recs, hw.recs = hw.recs, next[:0]
	}
	// at[g] is now the end of group g, in cells' order of the heavy cells.
	lo, g := 0, 0
	for i := range cells {
		c := &cells[i]
		if c.Heavy == 0 {
			continue
		}
		hi := int(at[g])
		full = hw.summarize(full, c, hw.sorted[lo:hi])
		lo = hi
		g++
	}
	hw.at, hw.full = at, full
	hw.resetPart()
	hw.dropBack()
	return cells, full
}

// summarize counts heavy cell c's records g into full. In a window handed over in parts its
// ports of one packet in the part are levels only if one is the port its address last had
// as its busiest with hotPortMin packets (portMem): the swarm's telnet port, probed once in
// some parts and twice in others, stays counted in all of them; its random ports do not.
func (hw *hotWorker) summarize(full []HotSummary, c *hotCell, g []hotRec) []HotSummary {
	if !c.Split || c.Ix < 0 || int(c.Ix) >= int(hw.ndense) {
		hw.cnt.keep = -1 // as before: IPv6 destinations are rarely busy in a part
		return hw.cnt.summarize(full, g, &c.Dst, c.Split)
	}
	hw.cnt.keep = int32(hw.ports()[c.Ix])
	start := len(full)
	full = hw.cnt.summarize(full, g, &c.Dst, c.Split)
	if len(full) > start+1 && full[start+1].Packets >= hotPortMin {
		hw.portMem[c.Ix] = full[start+1].Port // the busiest port (summarize's order)
	}
	return full
}

// ports returns portMem, made for the dark space's dense indexes at its first use (it stays
// nil for a worker whose windows never go in parts).
func (hw *hotWorker) ports() []uint16 {
	if len(hw.portMem) != int(hw.ndense) {
		hw.portMem = make([]uint16, hw.ndense)
	}
	return hw.portMem
}

// place puts the records of recs (recs or orecs) where handOver's slots say: a light dense
// destination's in lt.recs when they are grouped, the others' in their light cell's log or
// their heavy group in sorted.
func (hw *hotWorker) place(recs []hotRec, cells []hotCell, at []int32) {
	lt := &hw.light
	for i := range recs {
		r := &recs[i]
		if id := r.ID; id < hw.ndense && !hasBit(hw.seen, uint32(id)) {
			// A light destination's (its bit cleared in handOver).
			if lt.grouped {
				lt.recs[hw.slot[id]] = *r
				hw.slot[id]++
			}
			continue
		}
		switch k := hw.slot[r.ID]; {
		case k > 0:
			cells[k-1].logRec(r)
		default:
			g := &at[-k-1]
			hw.sorted[*g] = *r
			*g++
		}
	}
}

// newRecs returns an empty array of recCap records, outside the Go heap when it can be
// (aggregate.Reserve): the records of a part and their sorted copy are megabytes written
// once per part, and in huge pages they cost a page fault per 2 MiB, not per 4 KiB (the
// heap's pages, which its scavenger may also return to the system between parts). The
// shared Hotspots owns them: a part's records go to it with the light destinations and
// come back to any worker, and every engine holding one of its arrays refers to it
// (SetHotspots moves an open part's records to an array of a new one).
func (hw *hotWorker) newRecs() []hotRec { return partRecs(hw.shared, hw.recCap) }

// partRecs returns an empty array of n records owned by h (nil: on the heap).
func partRecs(h *Hotspots, n int) []hotRec {
	if h == nil {
		return make([]hotRec, 0, n)
	}
	return aggregate.ReserveOrMake[hotRec](h, n)[:0]
}

// room returns s emptied, or a new empty array if s holds fewer than n elements (a quarter
// more: the next hand-over may be a little larger). Not slices.Grow: it copies the old
// array's capacity over, though no element is kept.
func room[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:0]
	}
	return make([]T, 0, n+n/4)
}

// grow2 returns s with room for n more elements, doubling its capacity when it has too
// little. append and slices.Grow add a quarter at a time to large arrays, and each step is
// a new array: an array of summaries grown to N element by element or part by part made
// about 5 N of fresh memory (page faults, ~3 ms a MiB on the development VM), doubled 2 N.
func grow2[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	t := make([]T, len(s), max(2*cap(s), len(s)+n))
	copy(t, s)
	return t
}

// dropBack empties the filter of spilled destinations, keeping its array (128 KiB) for the
// next spill.
func (hw *hotWorker) dropBack() {
	if hw.back != nil {
		clear(hw.back)
		hw.backBuf, hw.back = hw.back, nil
	}
}

// markBack marks destination id as spilled.
func (hw *hotWorker) markBack(id int32) {
	if hw.back == nil {
		hw.back, hw.backBuf = hw.backBuf, nil
	}
	markBit(&hw.back, hw.spillBit(id))
}

// clearPart empties the part: its records, its destinations, their counts and indexes.
func (hw *hotWorker) clearPart() {
	hw.eachDst(func(id int32) { hw.dcount[id] = 0 })
	hw.resetPart()
}

// resetPart is clearPart once the destinations' counts are zero (handOver zeroes them as
// it reads them: a second walk over the destinations cost a tenth of the SYN file's
// hand-overs).
func (hw *hotWorker) resetPart() {
	clear(hw.seen)
	hw.recs, hw.dsts, hw.ndst, hw.nother, hw.nbusy, hw.ndbusy, hw.ncounted = hw.recs[:0], hw.dsts[:0], 0, 0, 0, 0, 0
	hw.orecs = hw.orecs[:0]
	hw.dhash = hw.dhash[:0]
	hw.dcount, hw.slot = hw.dcount[:hw.ndense], hw.slot[:hw.ndense]
	hw.newGen()
}

// newGen empties the hash index (a new generation).
func (hw *hotWorker) newGen() {
	if hw.gen++; hw.gen > hotGenMax {
		clear(hw.hash)
		hw.gen = 1
	}
}

// spillLight hands the part's light destinations without a dense index over (see
// hotSpill) and keeps the others' records, renumbered; ok=false: too few are light,
// nothing changed. A destination back after a spill is kept, so that it is not spilled
// again while it keeps coming (its counts are marked estimated).
func (hw *hotWorker) spillLight() (cells []hotCell, ok bool) {
	// The light destinations, some of which may have been spilled before (kept): too few
	// to make room for long, and everything is handed over instead.
	if hw.nother-hw.nbusy < max(hw.cap/4, 1) {
		return nil, false
	}
	// Light destinations spilled before are kept, so they do not make room: a spill that
	// freed fewer than a quarter of the cap would come again a few packets later (walking
	// all the part's records each time), and one that freed none would recurse forever
	// (hotID). Once the filter of spilled destinations is well filled its false positives
	// keep more and more new ones: an IPv6 flood of random addresses (2 M packets in two
	// windows) overflowed the stack that way. (Counted before any mark: the decisions
	// below also keep one whose bit a destination spilled before it in this pass set.)
	spillable := 0
	for i := range hw.dsts {
		if id := hw.ndense + int32(i); hw.dcount[id] <= hotLog && !hw.spilled(id) {
			spillable++
		}
	}
	if spillable < max(hw.cap/4, 1) {
		return nil, false
	}
	cells = room(hw.cells, spillable)
	// Decide for every destination without a dense index: a light cell (slot > 0) or
	// kept, under its new id (slot <= 0: -new id).
	var kept int32
	for i := range hw.dsts {
		id := hw.ndense + int32(i)
		if hw.dcount[id] > hotLog || hw.spilled(id) {
			hw.slot[id] = -(hw.ndense + kept)
			kept++
			continue
		}
		hw.slot[id] = int32(len(cells) + 1)
		cells = hw.newCell(cells, id, false, hw.split)
		hw.markBack(id)
	}
	recs := hw.orecs[:0]
	for i := range hw.orecs {
		r := &hw.orecs[i]
		k := hw.slot[r.ID]
		if k > 0 {
			cells[k-1].logRec(r)
			continue
		}
		r.ID = -k
		recs = append(recs, *r) // recs[len(recs)] is r or before it: read before written
	}
	hw.orecs = recs
	// The destinations kept, renumbered in order, and their counts.
	dsts, dhash, counts := hw.dsts, hw.dhash, hw.dcount[hw.ndense:]
	hw.dsts, hw.dsts2, hw.dhash, hw.dhash2 = hw.dsts2[:0], dsts, hw.dhash2[:0], dhash
	hw.newGen()
	for i := range dsts {
		if k := hw.slot[hw.ndense+int32(i)]; k <= 0 {
			hw.addDst(&dsts[i], dhash[i])
			hw.dcount[-k] = counts[i] // -k <= id: moved down in place
		}
	}
	hw.ndst -= hw.nother - int(kept)
	hw.nother = int(kept)
	hw.dcount, hw.slot = hw.dcount[:hw.ndense+kept], hw.slot[:hw.ndense+kept]
	return cells, true
}

// addDst appends dst, of hash x, to the part's destinations without a dense index, and
// indexes it.
func (hw *hotWorker) addDst(dst *packet.Addr, x uint64) {
	hw.dsts = append(hw.dsts, *dst)
	hw.dhash = append(hw.dhash, x)
	hw.insertHash(x, len(hw.dsts))
}

// insertHash adds place-1 of hw.dsts (hash x) to the hash index.
func (hw *hotWorker) insertHash(x uint64, place int) {
	mask := uint64(len(hw.hash) - 1)
	i := x & mask
	for hw.hash[i]>>hotGenShift == hw.gen {
		i = (i + 1) & mask
	}
	hw.hash[i] = hw.gen<<hotGenShift | uint32(place)
}

// summarize appends the summaries of a destination's records g: the address and its
// hotPorts busiest ports (most packets, then the first seen), counted in one pass.
func (hc *hotCounter) summarize(out []HotSummary, g []hotRec, dst *packet.Addr, split bool) []HotSummary {
	// The busiest ports: a table sized to the records up to hotPortStart slots, doubling
	// at half full past it.
	ports := hc.portTable(min(tableSize(len(g)), hotPortStart))
	pused := hc.pused[:0]
	for i := range g {
		if g[i].Port == 0 {
			continue
		}
		k := uint32(g[i].Port) + 1
		j := hotPortFind(ports, k)
		if ports[j].k == 0 {
			ports[j] = hotPortSlot{k: k, first: int32(i)}
			pused = append(pused, j)
			if 2*len(pused) > len(ports) {
				ports, pused = hc.growPorts(ports, pused)
				j = hotPortFind(ports, k)
			}
		}
		ports[j].n++
	}
	// The ports' order in pused does not matter: (packets, first record) ranks them all.
	var best [hotPorts]hotPortSlot
	for _, j := range pused {
		p := ports[j]
		ports[j] = hotPortSlot{}
		if split && p.n < hotPortMin && hc.win != nil && hc.keep >= 0 && int32(p.k-1) != hc.keep {
			continue
		}
		for b := range best {
			if q := best[b]; q.k == 0 || p.n > q.n || p.n == q.n && p.first < q.first {
				copy(best[b+1:], best[b:])
				best[b] = p
				break
			}
		}
	}
	// The levels: the address, then each port counted, each with a table of its sources
	// (hash, packets, first record) sized to its packets; past hotBigLevel packets, its
	// records' sources in pairs instead, counted by partitions (countParts).
	var lv [1 + hotPorts]hotLevelScratch
	var size [1 + hotPorts]int
	levelSize := func(k, n int) {
		if lv[k].big = n > hotBigLevel; lv[k].big {
			// Sized at once: grown by doubling, the pairs of a part of a flood to one
			// address were 8 MiB a worker of fresh memory more.
			hc.pairs[k] = slices.Grow(hc.pairs[k][:0], n)
		} else {
			size[k] = tableSize(n)
		}
	}
	levelSize(0, len(g))
	nlv, total := 1, size[0]
	for _, p := range best {
		if p.k != 0 {
			lv[nlv].port = uint16(p.k - 1)
			levelSize(nlv, int(p.n))
			total += size[nlv]
			nlv++
		}
	}
	hc.pused = pused
	// Every record to the one port counted (a flood to one port, a telnet sweep's
	// destination): the port's level counts what the address's does, counted once.
	counted := nlv
	if nlv == 2 && int(best[0].n) == len(g) {
		counted, total = 1, size[0]
	}
	if cap(hc.set) < total {
		hc.set = make([]hotSlot, total)
	}
	set := hc.set[:total]
	start := len(out)
	out = slices.Grow(out, nlv)[:start+nlv]
	sums := out[start:]
	for k := range counted {
		lv[k].order = hc.order[k][:0]
		lv[k].pairs = hc.pairs[k][:0]
		lv[k].tab, set = set[:size[k]], set[size[k]:]
		lv[k].shift = 64 - bits.TrailingZeros(uint(size[k])) // the hash's high bits pick the slot
		sums[k] = HotSummary{Dst: *dst, Port: lv[k].port, Estimated: split, First: math.MaxInt64, Last: math.MinInt64}
	}
	// The address level takes every record: its totals in one loop (addAll), its sources
	// in the loop over the records with the ports' levels, its table in locals. Through
	// add, a call a record, this was a quarter of the hotspot's samples on the 20x day.
	sums[0].addAll(g)
	if lv[0].big {
		hc.pairUp(g, sums, &lv, counted)
	} else {
		// No level is big (a port's has at most the address's packets). A loop of its own:
		// a test of big in this one cost every destination's record a nanosecond.
		tab0, shift0 := lv[0].tab, lv[0].shift
		order0, n0 := lv[0].order, uint64(0)
		for i := range g {
			r := &g[i]
			x := hotRank(&r.Src) // never 0: 0 marks an empty slot
			if j, isNew := hotInsert(tab0, shift0, x, int32(i)); isNew {
				n0++
				order0 = append(order0, int32(j))
			}
			if counted == 1 || r.Port == 0 {
				continue
			}
			for k := 1; k < counted; k++ {
				if r.Port == lv[k].port {
					sums[k].add(r, &lv[k], x, int32(i))
					break
				}
			}
		}
		sums[0].Sources, lv[0].order = n0, order0
	}
	// One pass over each level's sources picks its top ones, empties their slots and, in a
	// window handed over in parts, lists their hashes for the window's sets: three passes,
	// each a random read of every source's slot, were a tenth of the burst's hotspot.
	sets := hc.win != nil && split
	for k := range counted {
		var xs *[]uint64
		if sets {
			hc.xs[k] = hc.xs[k][:0]
			xs = &hc.xs[k]
		}
		if lv[k].big {
			sums[k].Sources = hc.countParts(&sums[k], lv[k].pairs, g, xs)
		} else {
			sums[k].topOf(lv[k].tab, lv[k].order, g, xs)
		}
		hc.order[k], hc.pairs[k] = lv[k].order[:0], lv[k].pairs[:0]
	}
	if counted < nlv {
		sums[1] = sums[0]
		sums[1].Port = lv[1].port
	}
	if sets {
		for k := range nlv {
			// A level counted once (counted < nlv) has the address's sources.
			if n, ok := hc.win.gained(hotKey{*dst, lv[k].port}, hc.xs[min(k, counted-1)]); ok {
				sums[k].Sources = n
			}
		}
	}
	return out
}

// hotPortMin is the packets a port needs in a part of a window handed over in parts (split)
// to be one of its destination's levels there. A swarm scanning a dark /16 at a busy
// telescope's rate (27 k packets a second) cut each worker's window into ~15 parts in which
// every address had a port or two of one random probe each: each such port was a level of
// its own, a summary summed into the worker's pending ones by its key and pruned again a
// part later (pruneFull keeps the busiest), most of the hotspot's work and memory (24 M
// SYNs over 15 minutes: 29.4-31.3 s and 2.6 GB with them, 20.3 s and 2.0 GB now). The
// parts where a port has one packet are missing from its level (a lower bound there, as
// every count of such a window says estimated), not from its address's: a port would need
// min_sources such parts (a hundred at the defaults) to be hot from them alone. Unless it is
// the port its dark address last had as its busiest with hotPortMin packets in a part
// (hotWorker.portMem): a swarm's telnet port, probed once in some parts and twice in
// others. Only for dark IPv4 addresses with a dense index: a busy destination without one
// keeps every port, as before. The shared side does the same with the light parts
// (Hotspots.candidates): their ports of one packet count where their level is already
// summed. A window in one part keeps every port's level: a port of a packet at each worker
// may be hot over the workers with a small min_sources.
const hotPortMin = 2

// hotPortStart bounds the port table a destination's count starts with (48 KiB): one as
// large as the records never grows, where a table of 64 grew six times for the ~1 200
// random ports a burst destination gets per worker (a tenth of the burst's hotspot
// instructions); clearing it costs less than the growth did.
const hotPortStart = 1 << 12

// portTable returns an empty port table of size slots (a power of two): the table is left
// empty by each count (summarize, growPorts empty the slots they used).
func (hc *hotCounter) portTable(size int) []hotPortSlot {
	if cap(hc.ports) < size {
		hc.ports = make([]hotPortSlot, size)
	}
	return hc.ports[:size]
}

// growPorts moves the port table's entries (in the slots used) into one twice its size,
// and returns it and the slots they use there.
func (hc *hotCounter) growPorts(t []hotPortSlot, used []uint32) ([]hotPortSlot, []uint32) {
	hc.old = hc.old[:0]
	for _, j := range used {
		hc.old = append(hc.old, t[j])
		t[j] = hotPortSlot{}
	}
	t, used = hc.portTable(2*len(t)), used[:0] // empty: the used slots were emptied above
	for _, p := range hc.old {
		j := hotPortFind(t, p.k)
		t[j] = p
		used = append(used, j)
	}
	return t, used
}

// hotPortFind returns the slot of port key k in table t: its own, or the empty one where it
// goes.
func hotPortFind(t []hotPortSlot, k uint32) uint32 {
	mask := uint32(len(t) - 1)
	j := uint32(uint64(k)*0x9e3779b97f4a7c15>>32) & mask
	for t[j].k != 0 && t[j].k != k {
		j = (j + 1) & mask
	}
	return j
}

// hotLevelScratch is a level being counted: its port and its table of sources.
type hotLevelScratch struct {
	port  uint16
	big   bool // counted by partitions: its records' sources in pairs, no table
	shift int
	tab   []hotSlot
	order []int32   // the table's slots in use, in order of arrival
	pairs []hotPair // a big level's records: source hash and record
}

// add counts record r (index i, source hash x) at the level whose scratch is l.
func (a *HotSummary) add(r *hotRec, l *hotLevelScratch, x uint64, i int32) {
	a.count(r)
	if j, isNew := hotInsert(l.tab, l.shift, x, i); isNew {
		a.Sources++
		l.order = append(l.order, int32(j))
	}
}

// pairUp is summarize's loop over the records g when the address level is big: each
// record's source hash and place go to the pairs of its big levels (countParts counts
// them), and the port levels that are not big count it as add does.
func (hc *hotCounter) pairUp(g []hotRec, sums []HotSummary, lv *[1 + hotPorts]hotLevelScratch, counted int) {
	pairs0 := lv[0].pairs
	for i := range g {
		r := &g[i]
		x := hotRank(&r.Src)
		pairs0 = append(pairs0, hotPair{x, int32(i)})
		if counted == 1 || r.Port == 0 {
			continue
		}
		for k := 1; k < counted; k++ {
			if l := &lv[k]; r.Port == l.port {
				if l.big {
					sums[k].count(r)
					l.pairs = append(l.pairs, hotPair{x, int32(i)})
				} else {
					sums[k].add(r, l, x, int32(i))
				}
				break
			}
		}
	}
	lv[0].pairs = pairs0
}

// count counts record r at the level but for its source (add counts it; a big level's
// source is counted by countParts).
func (a *HotSummary) count(r *hotRec) {
	a.Packets++
	a.First = min(a.First, r.TS)
	a.Last = max(a.Last, r.TS)
	a.Protos |= r.Proto
	syn, udp, p2p, replies, pairs := hotKinds(r.Bits)
	a.SYN, a.UDP, a.P2P, a.Replies, a.Pairs = a.SYN+syn, a.UDP+udp, a.P2P+p2p, a.Replies+replies, a.Pairs+pairs
}

// hotKinds is what a record's Bits add to a level's SYN, UDP, P2P, Replies and Pairs
// counts. Without branches: a destination's records mix kinds in no order, and each branch
// mispredicted often. (P2P counts UDP datagrams only, as the bit is set.)
func hotKinds(bits uint8) (syn, udp, p2p, replies, pairs uint64) {
	b := uint64(bits)
	return b & hotBitSYN, b >> 1 & 1, (b >> 2) & (b >> 1) & 1, b >> 3 & 1, b >> 4 & 1
}

// hotInsert counts a packet of source x (record i) in a level's table of sources, whose
// slot the hash's bits from shift on pick, and returns the source's slot and whether it
// is new there.
func hotInsert(tab []hotSlot, shift int, x uint64, i int32) (j uint64, isNew bool) {
	mask := uint64(len(tab) - 1)
	j = x >> shift
	for tab[j].x != 0 && tab[j].x != x {
		j = (j + 1) & mask
	}
	if isNew = tab[j].x == 0; isNew {
		tab[j] = hotSlot{x: x, first: i}
	}
	tab[j].n++
	return j, isNew
}

// addAll counts the records g at the address level but for their sources (summarize
// counts them).
func (a *HotSummary) addAll(g []hotRec) {
	var syn, udp, p2p, replies, pairs uint64
	first, last, protos := a.First, a.Last, a.Protos
	for i := range g {
		r := &g[i]
		first, last = min(first, r.TS), max(last, r.TS)
		protos |= r.Proto
		s, u, p, rp, pr := hotKinds(r.Bits)
		syn, udp, p2p, replies, pairs = syn+s, udp+u, p2p+p, replies+rp, pairs+pr
	}
	a.Packets += uint64(len(g))
	a.First, a.Last, a.Protos = first, last, protos
	a.SYN, a.UDP, a.P2P, a.Replies, a.Pairs = a.SYN+syn, a.UDP+udp, a.P2P+p2p, a.Replies+replies, a.Pairs+pairs
}

// topOf sets the level's top sources from its table of sources (of the records g; order:
// the slots in use in order of arrival): the hotTop first in topLess's order (the most
// packets, then the lowest hash: the slots' x). It empties the slots it reads, and appends
// their hashes to *xs unless xs is nil.
func (a *HotSummary) topOf(tab []hotSlot, order []int32, g []hotRec, xs *[]uint64) {
	var top [hotTop]hotSlot
	n := 0
	if xs != nil {
		*xs = slices.Grow(*xs, len(order))
	}
	for _, j := range order {
		s := tab[j]
		tab[j] = hotSlot{}
		if xs != nil {
			*xs = append(*xs, s.x)
		}
		if n == hotTop && (s.n < top[n-1].n || s.n == top[n-1].n && s.x > top[n-1].x) {
			continue
		}
		k := min(n, hotTop-1)
		for k > 0 && (s.n > top[k-1].n || s.n == top[k-1].n && s.x < top[k-1].x) {
			top[k] = top[k-1]
			k--
		}
		top[k] = s
		n = min(n+1, hotTop)
	}
	a.setTop(top[:n], g)
}

// setTop sets the level's top sources to top (of the records g), which topOf and
// countParts ranked in topLess's order already: by packets, then by x, which is hotRank of
// the source (re-ranking hashed every tied pair's addresses again). Only two sources with
// equal hashes, 2^-64 apart, could be out of their address order.
func (a *HotSummary) setTop(top []hotSlot, g []hotRec) {
	n := len(top)
	for k := range n {
		a.Top[k] = hotSrc{Src: g[top[k].first].Src, Packets: uint64(top[k].n)}
	}
	a.NTop = uint8(n)
}

// hotBigLevel is the most packets of a level whose sources summarize counts in one table:
// a table of 32 768 slots (512 KiB, the size of a core's L2 cache). Past it each probe
// missed the caches (a flood of spoofed sources to one address: 262 144 records a part,
// an 8 MiB table, ~45 ns a record), so countParts splits the records by their sources'
// hashes into partitions of about hotPartRecs and counts each in a small table. (A
// variable: tests count the same records both ways.)
var hotBigLevel = 1 << 14

// hotPartRecs is about how many records countParts counts in one partition (a table of
// 4 096 slots, 64 KiB). A variable: tests make many small partitions.
var hotPartRecs = 1 << 11

// hotPair is a record of a big level: its source's hash and its place in the records.
type hotPair struct {
	x uint64
	i int32
}

// countParts counts the sources of a big level (pairs: its records in arrival order, with
// their sources' hashes) exactly, as summarize's table would: it returns the distinct
// sources, sets a's top ones (in topOf's order) and, unless
// xs is nil, appends each source's hash to *xs (in no particular order: the window's sets
// are sets). The records are split by the high bits of the hash (a stable counting sort:
// each partition keeps arrival order, so a source's first record is the first it meets),
// and each partition is counted in a table that stays in the cache.
func (hc *hotCounter) countParts(a *HotSummary, pairs []hotPair, g []hotRec, xs *[]uint64) uint64 {
	pb := bits.Len(uint(len(pairs) / hotPartRecs)) // partition bits
	np := 1 << pb
	hc.pcnt = slices.Grow(hc.pcnt[:0], np+1)[:np+1]
	cnt := hc.pcnt
	clear(cnt)
	for _, p := range pairs {
		cnt[p.x>>(64-pb)+1]++ // pb == 0: x>>64 is 0, one partition
	}
	for q := 1; q <= np; q++ {
		cnt[q] += cnt[q-1]
	}
	hc.parts = slices.Grow(hc.parts[:0], len(pairs))[:len(pairs)]
	for _, p := range pairs {
		q := p.x >> (64 - pb)
		hc.parts[cnt[q]] = p
		cnt[q]++
	}
	// cnt[q] is now the end of partition q (the start of q+1).
	var top [hotTop]hotSlot
	ntop, sources := 0, uint64(0)
	if xs != nil {
		*xs = slices.Grow(*xs, len(pairs))
	}
	lo := int32(0)
	for q := range np {
		part := hc.parts[lo:cnt[q]]
		lo = cnt[q]
		size := tableSize(len(part))
		if cap(hc.ptab) < size {
			hc.ptab = make([]hotSlot, size)
		}
		tab := hc.ptab[:size]
		mask := uint64(size - 1)
		shift := 64 - bits.TrailingZeros(uint(size)) // below the partition's bits
		order := hc.porder[:0]
		for _, p := range part {
			j := p.x << pb >> shift
			for tab[j].x != 0 && tab[j].x != p.x {
				j = (j + 1) & mask
			}
			if tab[j].x == 0 {
				tab[j] = hotSlot{x: p.x, first: p.i}
				order = append(order, int32(j))
			}
			tab[j].n++
		}
		sources += uint64(len(order))
		for _, j := range order {
			s := tab[j]
			tab[j] = hotSlot{}
			if xs != nil {
				*xs = append(*xs, s.x)
			}
			// The most packets, then the lowest hash: topOf's order. (One ranking function
			// for both, not inlined into topOf, made every summary ~7 % slower:
			// BenchmarkHotspotFloor/summarize-warm 15.3 against 16.4 ns a record.)
			if ntop == hotTop && (s.n < top[ntop-1].n || s.n == top[ntop-1].n && s.x > top[ntop-1].x) {
				continue
			}
			k := min(ntop, hotTop-1)
			for k > 0 && (s.n > top[k-1].n || s.n == top[k-1].n && s.x < top[k-1].x) {
				top[k] = top[k-1]
				k--
			}
			top[k] = s
			ntop = min(ntop+1, hotTop)
		}
		hc.porder = order[:0]
	}
	a.setTop(top[:ntop], g)
	return sources
}

// tableSize is the open-addressing table size for n keys: a power of two >= 2n, at least 8.
func tableSize(n int) int {
	size := 8
	for size < 2*n {
		size *= 2
	}
	return size
}
