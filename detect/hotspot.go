package detect

import (
	"math"
	"math/bits"
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
	// hotTakeOver is the fewest packets to ports without a level after which one takes a
	// level over (hotHeavy.port), however few packets that level has: where every port gets
	// a packet or two (a scan of random ports, a flood from random source ports' replies),
	// every other packet took a level over, clearing it, to count through a new set.
	hotTakeOver = 8
)

// Protocol bits of hotLevel.Protos.
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
	Src     packet.Addr
	Packets uint64
	Err     uint64
}

// Bits of hotEvent.Bits.
const (
	hotBitSYN   = 1 << iota // a SYN probe
	hotBitUDP               // a UDP datagram
	hotBitP2P               // with a DHT (KRPC) or uTP payload
	hotBitReply             // SYN-ACK, RST, ICMP reply or error (backscatter kinds)
	hotBitPair              // a SYN probe that paired with an earlier UDP datagram
	// How the packet counts as a distinct source (see HotMemo): the source's first packet
	// to the address (to the address and port) in the worker's open part of the window,
	// counted as one more source; or a packet to count through the level's set of sources.
	// Neither: the source is counted at that level already.
	hotBitNewAddr
	hotBitNewPort
	hotBitSetAddr
	hotBitSetPort
)

// hotMemoLen is how many (destination, port) pairs a source remembers being counted at.
const hotMemoLen = 3

// HotMemo is a source's record (in its SourceState) of the hotspot cells of its worker's
// open window part, generation Gen, that count it among their distinct sources: the first
// packet of a source to a destination (to a destination and port) adds one to a plain
// counter, the others find the pair here, so a busy destination costs no hash set probe
// per packet, only this look-up in the source's own entry. A source whose memo is full
// (N > hotMemoLen), a scanner, takes a bitmap of the dark IPv4 addresses it was counted at
// (one bit per dense index, from a pool of hotBitmapBytes per worker and part), and counts
// at the ports and at other addresses through the destinations' sets of sources for the
// rest of the part. The HotMemo of an evicted source is lost with its entry: the engine moves
// its counts into the sets and marks it in a filter of evicted sources, and a source of the
// filter that comes back counts through the sets only.
// Plain values only (checkpoints).
type HotMemo struct {
	Gen  uint32 // the hotWorker's memo generation (0: none)
	N    uint8  // pairs in use; hotMemoLen+1: full, no more pairs in this generation
	Port [hotMemoLen]uint16
	Cell [hotMemoLen]int32 // cell in hotWorker.cells: slot and tag (hotMemoCell)
	Bits int32             // 1 + its bitmap in hotWorker.bits (0: none)
}

// hotBitmapBytes bounds a worker's bitmaps of the sources past hotMemoLen pairs in a part
// (64 B each for a /23 of dark space).
const hotBitmapBytes = 4 << 20

// hotBitmapMaxWords is the largest bitmap taken (1 KiB: dark spaces of up to 8192 IPv4
// addresses). Over a larger space a bitmap costs more to clear and to bring into the
// cache than the set probes it saves: bench.sh's SYN file, over a /16, spent 8 KiB on
// each of its many short scanners in every part of a window.
const hotBitmapMaxWords = 128

// hotBigWords bounds a worker's words in the hotspot's exact sets of more than 256 sources
// (256 KiB: 8 sets of 4 096, or 64 of 512, in the open window); past it, a set switches to a
// sketch once it holds 192 sources. A spoofed flood over a whole dark /24 moves every source
// the source table evicts into its destination's set: with the engine's 64 MiB budget, 256
// growing sets of 32 KiB per worker, and the probes of the flood's packets missed the cache
// (bench.sh's burst: the hotspot's CPU time 0.72 s with that budget, 0.33-0.40 s with 2 MiB).
// 2 MiB still missed a 1 MiB L2 cache (an AMD EPYC: the burst's hotspot cost 0.8 s, 0.5 s
// with 256 KiB); the generated day's receivers stay under 192 sources per worker either way.
const hotBigWords = 32 << 10

// hotLog is how many packets a destination's cell keeps as they came before it takes the
// full counts (hotHeavy): most destinations get a packet or two per window and worker, and
// cost no more than their copy.
const hotLog = 2

// hotEvent is one packet to a destination, as the hotspot counts need it.
type hotEvent struct {
	TS    int64
	Src   packet.Addr
	Port  uint16 // destination port, 0: no port level (not TCP/UDP, or port 0)
	Bits  uint16
	Proto uint8 // one of the hotTCP... bits
}

// hotLevel counts one destination level (the address, or the address and one port) in one
// worker and window: what every packet to it updates, kept together (the level's set of
// sources and top sources are apart, in hotHeavy, touched less often). Plain values only.
type hotLevel struct {
	Packets uint64
	// The distinct sources are Counted + the level's set (hotHeavy.Srcs): the sources
	// counted on their first packet (HotMemo), and a set of the others.
	Counted uint64
	First   int64
	Last    int64
	SYN     uint64 // SYN probes
	UDP     uint64 // UDP datagrams
	P2P     uint64 // UDP datagrams with a DHT (KRPC) or uTP payload
	Pairs   uint64 // SYN probes that paired with an earlier UDP datagram (udp_then_syn)
	Replies uint64 // SYN-ACK, RST, ICMP replies and errors (backscatter kinds)
	Port    uint16 // a port level's port (0: the address level)
	Protos  uint8
	// Sets: every packet counts through the set (a port that took over another port's
	// slot: the memo's pairs of that port may predate the slot).
	Sets bool
	NTop uint8
}

// hotHeavy is the full counts of a destination that got more than hotLog packets from one
// worker's sources in a window: level 0 is the address, levels 1.. its busiest ports (a
// port level with no packets is free). A packet updates the address level and its port's
// (three or four cache lines, side by side; the heavy cells' levels stay in cache
// together), a set of sources (hotCold) only for a source the memo cannot count, and the
// top sources only for a source's packets after its first.
type hotHeavy struct {
	// Miss counts the packets to ports without a level since the last take-over: a port
	// takes the level with the fewest packets over only once Miss exceeds them, so that a
	// crowd of one-packet ports does not wipe the busy ones (Space-Saving, lazily).
	Miss uint64
	// PortN and Ports are the port levels' packets and ports (copies of Lv[1:]'s Packets
	// and Port), beside Miss and ahead of the address level, whose first line every packet
	// updates: a packet to a port without a level reads that line only, where finding the
	// level (or the lesser) read both port levels' (a scan of random ports: the burst
	// sample's hotHeavy.port missed the L1 cache at 2 of 3 packets).
	PortN [hotPorts]uint64
	Ports [hotPorts]uint16
	Lv    [1 + hotPorts]hotLevel
}

// hotCold is the rest of a hotHeavy's counts, per level: its set of sources and its top
// sources, apart so that the levels of all heavy cells stay in cache together.
type hotCold struct {
	Srcs [1 + hotPorts]aggregate.Distinct
	Top  [1 + hotPorts][hotTop]hotSrc
}

// hotCell is one worker's record of one destination address in the open window: its
// packets, and either the packets themselves (Log, up to hotLog) or its full counts
// (Heavy). Cells live in an array that the window's close hands to Hotspots in one copy.
type hotCell struct {
	Dst     packet.Addr
	Packets uint32 // this worker's packets to Dst in the window (the receiver distribution)
	Ix      int32  // index entry: dense index >= 0, or -1-slot of the hash index
	Heavy   int32  // 1 + index of the full counts in hotWorker.heavy (0: light, see Log)
	N       uint8  // packets in Log
	Split   bool   // the worker handed its counts over early in this window (see hotFlush)
	// Tag counts the cells this slot held before in the part (hotSpill frees light cells'
	// slots for new ones): a memo names a cell by slot and tag (hotMemoCell), so that one
	// naming a destination spilled since matches no later cell of the slot.
	Tag uint8
	Log [hotLog]hotEvent
}

// A memo names a cell as its slot (the low hotTagShift bits) and the slot's Tag above.
// A slot whose Tag reached hotTagMax is not freed again in the part (hotSpill flushes
// instead), so the value stays a positive int32 and never names two cells.
const (
	hotTagShift = 24
	hotTagMax   = 127
)

// A hash index entry is a generation (hotGenShift high bits) and 1 + a cell (the low bits):
// a window's close starts a new generation instead of clearing the index.
const (
	hotGenShift = 24
	hotCellMask = 1<<hotGenShift - 1
	hotGenMax   = 1<<(32-hotGenShift) - 1
)

// hotWorker is one engine's part of the hotspot detector: the open window's cells, found
// by the dark IPv4 destination's dense index (the pipeline's per-address array) or else by
// a hash index. Only the cells of the window are visited when it closes.
type hotWorker struct {
	shared *Hotspots
	cap    int            // cells per window before the counts are handed over early
	cells  []hotCell      // the open window's destinations
	heavy  []hotHeavy     // full counts, cells[i].Heavy-1 (reused; Distinct blocks reset)
	cold   []hotCold      // the same, their sets and top sources
	slab   aggregate.Slab // the blocks of the cold counts' sets (BigLimit hotBigWords)
	nheavy int            // in use
	dense  []int32        // 1+cell, by dense index of a dark IPv4 destination, valid where seen is set
	seen   []uint64       // bitmap by dense index: a cell in the window (small: stays in cache)
	// pendNew counts the new cells of the group whose slots were requested (requestNewCell)
	// and not taken yet.
	pendNew int
	px      *aggregate.Prefixes // the dark space whose dense index `dense` uses
	hash    []uint32            // the same, open addressing by address (len: power of two >= 2 cap)
	gen     uint32              // index entries of other generations are empty (no clearing), 1..hotGenMax
	heavyc  []int32             // the cells with full counts
	free    []int32             // slots of cells spilled in the part (Packets 0), for new cells
	back    []uint64            // filter (filter.go) of the destinations spilled in the part (seedDstIP), nil: none
	spillc  []hotCell           // scratch: the cells a spill hands over (an array Hotspots gave back)
	mgen    uint32              // generation of the sources' HotMemo: one per open part (hotHandOver), 1..
	sets    bool                // every source new to the part counts through the sets (restored part with evictions)
	evict   []uint64            // filter (filter.go) of the sources evicted after being counted in the part (seedHotSrc)
	nevict  int                 // sources marked in evict since the part began (0: evict is clear)
	bits    []uint64            // the part's HotMemo bitmaps, bitWords each (zero past nbits)
	nbits   int                 // bitmaps in use
	bitW    int                 // words per bitmap: one bit per dense index
	last    int32               // 1 + the cell of the latest packet (for hotPair)
	split   bool                // the open window was handed over early once
	full    []HotSummary        // scratch: the heavy cells' summaries at close
	size    int64               // window length in ns of the open window
	win     int64               // open window index
	end     int64               // its end
	open    bool
}

// SetHotspots attaches the shared hotspot aggregator (nil: no hotspot detection). Call it
// before the first packet.
func (e *Engine) SetHotspots(h *Hotspots) {
	e.hot.shared = h
	e.hot.cap = min(max(e.cfg.MaxDestinations, 1), hotCellMask-1)
	e.hot.slab.BigLimit = hotBigWords
}

// SetDenseDsts tells the hotspot counts the dark space whose dense index of dark IPv4
// addresses PacketAt receives (nil: none). A different dark space hands the open window's
// counts over first (its cells may be indexed by the old numbering).
func (e *Engine) SetDenseDsts(px *aggregate.Prefixes) {
	hw := &e.hot
	if len(hw.cells) > 0 {
		e.hotFlush()
	}
	n := 0
	if px != nil {
		n = px.ExactSize()
	}
	hw.px = px
	if n != len(hw.dense) {
		hw.dense, hw.seen = make([]int32, n), make([]uint64, (n+63)/64)
		hw.bits, hw.nbits, hw.bitW = nil, 0, (n+63)/64
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

// hotHandOver summarizes the heavy cells and clears the cells, the index and the heavy
// counts, returning the cells and summaries to hand over (valid until the next packet).
func (e *Engine) hotHandOver() ([]hotCell, []HotSummary) {
	hw := &e.hot
	hw.full = hw.full[:0]
	if hw.back != nil {
		for i := range hw.cells {
			if c := &hw.cells[i]; c.Heavy == 0 && c.Packets > 0 {
				hw.spilledBefore(c)
			}
		}
	}
	for _, i := range hw.heavyc {
		c := &hw.cells[i]
		hv, cd := &hw.heavy[c.Heavy-1], &hw.cold[c.Heavy-1]
		hw.full = hv.appendSums(cd, hw.full, &c.Dst, c.Split, &e.hot.slab)
		hv.reset(cd, &e.hot.slab)
	}
	// A new generation empties both indexes.
	if hw.gen++; hw.gen > hotGenMax {
		clear(hw.hash)
		hw.gen = 1
	}
	// Clearing the bitmap writes len(seen)/8 lines that stay in cache; the loop reads every
	// cell (one or two lines each) again: it pays only for a few cells over a large space.
	if 8*len(hw.cells) >= len(hw.seen) {
		clear(hw.seen)
	} else {
		for i := range hw.cells {
			if ix := hw.cells[i].Ix; ix >= 0 {
				hw.seen[ix>>6] = 0
			}
		}
	}
	// The sources' memos of the part are void (a memo generation of 0 is none).
	if hw.mgen++; hw.mgen == 0 {
		hw.mgen = 1
	}
	hw.sets = false
	if hw.nevict > 0 {
		clear(hw.evict)
		hw.nevict = 0
	}
	clear(hw.bits[:hw.nbits*hw.bitW])
	hw.nbits = 0
	cells := hw.cells
	if len(hw.free) > 0 { // the slots of spilled cells hold no destination
		cells = slices.DeleteFunc(cells, func(c hotCell) bool { return c.Packets == 0 })
		hw.free = hw.free[:0]
	}
	if hw.back != nil {
		clear(hw.back)
	}
	hw.cells, hw.nheavy, hw.last, hw.heavyc = nil, 0, 0, hw.heavyc[:0]
	return cells, hw.full
}

// hotClose hands the open window's cells to the shared aggregator, telling it that this
// worker has passed every window before `through`; keep says whether the counts count
// (not after a window length change).
func (e *Engine) hotClose(through int64, keep bool) {
	hw := &e.hot
	cells, full := e.hotHandOver()
	if !keep {
		hw.cells = cells[:0]
		cells, full = nil, nil
	}
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, cells, full, through, hw.px)
	e.c.Evictions.Add(dropped)
	if spare != nil {
		hw.cells = spare[:0]
	}
	hw.open, hw.split = false, false
}

// hotFlush hands the open window's counts over early (its cells are full, or the dark
// space changed): a destination counted again later in the window is summed from two
// parts, whose distinct sources may overlap, so the window's counts of this worker are
// marked estimated. Each destination handed over counts as an eviction.
func (e *Engine) hotFlush() {
	hw := &e.hot
	hw.split = true
	n := len(hw.cells)
	for i := range hw.cells {
		hw.cells[i].Split = true
	}
	cells, full := e.hotHandOver()
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, cells, full, math.MinInt64, hw.px)
	e.c.Evictions.Add(uint64(n) + dropped)
	hw.cells = spare[:0]
}

// hotSpill makes room in a full cell table by handing its light cells over early (each
// has at most hotLog packets: a destination that is not, or not yet, busy in this worker),
// and keeps the heavy ones, which go on counting exactly: a flood of one-packet
// destinations (an IPv6 scanner's random addresses) no longer splits, nor past twice the
// table drops, the counts of the destinations that can be hot. A destination spilled and
// counted again later in the part is summed from two cells, so its new cell is marked
// estimated (Split; the filter of spilled destinations tells). The spilled cells' slots take the new
// destinations; the memos that name them name them by tag too (hotMemoCell). It reports
// false, having done nothing, when too few cells are light for a spill to make room for
// long (a quarter of the table), or a slot has been freed hotTagMax times in the part: the
// caller flushes everything then.
func (e *Engine) hotSpill() bool {
	hw := &e.hot
	light := 0
	for i := range hw.cells {
		hw.spillAhead(i)
		if c := &hw.cells[i]; c.Packets > 0 && c.Heavy == 0 {
			if hw.spilledBefore(c) {
				hw.makeHeavy(c, int32(i)) // back after a spill: kept (see spilledBefore)
				continue
			}
			if c.Tag >= hotTagMax {
				return false
			}
			light++
		}
	}
	if light < max(hw.cap/4, 1) {
		return false
	}
	out := slices.Grow(hw.spillc[:0], light)
	hw.spillc = nil
	for i := range hw.cells {
		if j := i + hotSpillAhead; j < len(hw.cells) {
			prefetch.Span(unsafe.Pointer(&hw.cells[j]), unsafe.Sizeof(hw.cells[j])) // copied whole
		}
		c := &hw.cells[i]
		if c.Packets == 0 || c.Heavy != 0 {
			continue
		}
		out = append(out, *c)
		markBit(&hw.back, spillBit(c))
		if ix := c.Ix; ix >= 0 {
			hw.seen[ix>>6] &^= 1 << (ix & 63)
		}
		c.Packets, c.N, c.Heavy = 0, 0, 0
		c.Tag++
		hw.free = append(hw.free, int32(i))
		if hw.last == int32(i+1) {
			hw.last = 0
		}
	}
	// The hash index cannot drop entries: a new generation, the cells left inserted again.
	if hw.hash != nil {
		if hw.gen++; hw.gen > hotGenMax {
			clear(hw.hash)
			hw.gen = 1
		}
		for i := range hw.cells {
			if c := &hw.cells[i]; c.Packets > 0 && c.Ix < 0 {
				c.Ix, _ = hw.hashInsert(&c.Dst, int32(i+1))
			}
		}
	}
	dropped, spare := hw.shared.report(e.worker, hw.size, hw.win, out, nil, math.MinInt64, hw.px)
	// A spilled cell is not an eviction: its counts are summed at the window's end, exact;
	// one the limit dropped is (its packets are only in the receiver distribution).
	e.c.Evictions.Add(dropped)
	hw.spillc = spare[:0]
	return true
}

// spillAhead requests the counts of the cell hotSpillAhead after i for hotSpill's first
// pass over all cells (768 KiB at the default size, more than stays cached between spills).
func (hw *hotWorker) spillAhead(i int) {
	if j := i + hotSpillAhead; j < len(hw.cells) {
		prefetch.Line(unsafe.Pointer(&hw.cells[j].Packets))
	}
}

const hotSpillAhead = 16

// hotMemoCell returns the cell a memo's value names (slot and tag), nil when that cell was
// spilled since.
func (hw *hotWorker) hotMemoCell(ci int32) *hotCell {
	slot := int(ci & hotCellMask)
	if ci < 0 || slot >= len(hw.cells) {
		return nil
	}
	c := &hw.cells[slot]
	if c.Packets == 0 || int32(c.Tag) != ci>>hotTagShift {
		return nil
	}
	return c
}

// memoName is the memo's value for the cell in slot i (see hotMemoCell).
func (hw *hotWorker) memoName(i int32) int32 {
	return i | int32(hw.cells[i].Tag)<<hotTagShift
}

// hotFinish ends the input: the open window is reported (partial: nothing more will come).
func (e *Engine) hotFinish() {
	if e.hot.open {
		e.hotClose(1<<62, true)
	} else if e.hot.shared != nil {
		e.hot.shared.report(e.worker, e.hot.size, 0, nil, nil, 1<<62, nil)
	}
}

// hotStop drops the engine's counts (a reload disabled the detector or changed the window;
// the shared part ends its episodes itself).
func (e *Engine) hotStop() {
	cells, _ := e.hotHandOver()
	e.hot.cells = cells[:0]
	e.hot.open, e.hot.split = false, false
}

func (hv *hotHeavy) reset(cd *hotCold, s *aggregate.Slab) {
	for i := range cd.Srcs {
		cd.Srcs[i].Reset(s)
	}
	// cd.Top is read up to each level's NTop only: it is not cleared.
	*hv, cd.Srcs = hotHeavy{}, [1 + hotPorts]aggregate.Distinct{}
}

// hotCellOf returns the open window's cell of dst (dense: its dense index, or -1), a new
// one if there is none (after handing the window over early when the cells are full).
func (e *Engine) hotCellOf(dst *packet.Addr, dense int32) *hotCell {
	hw := &e.hot
	if hw.gen == 0 {
		hw.gen = 1
	}
	gen := hw.gen
	if dense >= 0 && int(dense) < len(hw.dense) {
		// The bitmap is small enough to stay in cache: the index (one entry per dark
		// address) is read only for a destination already counted in the window.
		w, bit := &hw.seen[dense>>6], uint64(1)<<(dense&63)
		if *w&bit != 0 {
			hw.last = hw.dense[dense]
			return &hw.cells[hw.last-1]
		}
		if len(hw.cells)-len(hw.free) >= hw.cap {
			if !e.hotSpill() {
				e.hotFlush()
			}
			return e.hotCellOf(dst, dense)
		}
		*w |= bit
		c := hw.newCell(dst, dense)
		hw.dense[dense] = hw.last
		return c
	}
	mask := uint64(len(hw.hashIndex()) - 1)
	i := dst.Hash(seedDstIP) & mask
	for hw.hash[i]>>hotGenShift == gen {
		if c := &hw.cells[hw.hash[i]&hotCellMask-1]; c.Dst == *dst {
			hw.last = int32(hw.hash[i] & hotCellMask)
			return c
		}
		i = (i + 1) & mask
	}
	if len(hw.cells)-len(hw.free) >= hw.cap {
		if !e.hotSpill() {
			e.hotFlush()
		}
		return e.hotCellOf(dst, -1) // the index changed
	}
	c := hw.newCell(dst, -1-int32(i))
	hw.hash[i] = gen<<hotGenShift | uint32(hw.last)
	return c
}

// prefetchDst requests what hotCellOf will read first for a packet to dst (dense: its dense
// index, or -1): the cell of a dense destination already counted in the window, else the
// destination's word of the hash index (warmDst then requests the cell it names).
func (e *Engine) prefetchDst(dst *packet.Addr, dense int32) {
	hw := &e.hot
	if dense >= 0 && int(dense) < len(hw.dense) {
		if hw.seen[dense>>6]&(1<<(dense&63)) != 0 {
			if i := int(hw.dense[dense]) - 1; i >= 0 && i < len(hw.cells) {
				prefetch.Line(unsafe.Pointer(&hw.cells[i]))
			}
			return
		}
		// A new cell: hotCellOf writes the index entry (a /16's are 256 KiB) and newCell
		// the slot it takes, stores that missed the cache and filled the store buffer
		// (the next function's first stores waited for them).
		prefetch.Write(unsafe.Pointer(&hw.dense[dense]))
		hw.requestNewCell()
		return
	}
	if len(hw.hash) > 0 {
		prefetch.Line(unsafe.Pointer(&hw.hash[dst.Hash(seedDstIP)&uint64(len(hw.hash)-1)]))
	}
}

// warmDst is prefetchDst's second stage for a destination without a dense index: it reads
// the index word (requested by prefetchDst) and requests the cell it names.
func (e *Engine) warmDst(dst *packet.Addr, dense int32) {
	hw := &e.hot
	if len(hw.hash) == 0 || dense >= 0 {
		return
	}
	x := hw.hash[dst.Hash(seedDstIP)&uint64(len(hw.hash)-1)]
	if x>>hotGenShift == hw.gen {
		if i := int(x&hotCellMask) - 1; i >= 0 && i < len(hw.cells) {
			prefetch.Line(unsafe.Pointer(&hw.cells[i]))
		}
		return
	}
	hw.requestNewCell() // an empty word: a new destination in the window
}

// requestNewCell requests for writing the slot that the next new cell takes, or the one
// after it for each new cell requested in the group and not taken yet (pendNew).
func (hw *hotWorker) requestNewCell() {
	if c := hw.newCellAhead(hw.pendNew); c != nil {
		prefetch.Write(unsafe.Pointer(c))
	}
	hw.pendNew++
}

// newCellAhead returns the slot the k+1th new cell from now takes, nil if the cells must
// grow first.
func (hw *hotWorker) newCellAhead(k int) *hotCell {
	if n := len(hw.free); k < n {
		return &hw.cells[hw.free[n-1-k]]
	} else if i := len(hw.cells) + k - n; i < cap(hw.cells) {
		return &hw.cells[:i+1][i]
	}
	return nil
}

// newCell takes a slot for a cell of dst (index entry ix), a spilled cell's or a new one,
// and makes it the latest.
func (hw *hotWorker) newCell(dst *packet.Addr, ix int32) *hotCell {
	// Only the fields read before they are written (Log[N:] is never read).
	hw.pendNew = max(hw.pendNew-1, 0)
	var c *hotCell
	if k := len(hw.free); k > 0 {
		n := hw.free[k-1]
		hw.free = hw.free[:k-1]
		c, hw.last = &hw.cells[n], n+1 // keeps its Tag
	} else {
		n := len(hw.cells)
		if n == cap(hw.cells) {
			// Doubled up to 1024 cells, then straight to the table's size: the arrays go
			// round between the workers and Hotspots, and one sized by a part with few
			// cells grew three times in the next window of the 20x day, each time into
			// fresh memory whose first touch (a page fault per 4 KiB) cost more than the
			// copy (1 % of the CPU).
			grow := min(max(n, 256), hw.cap-n)
			if n >= 1024 {
				grow = hw.cap - n
			}
			hw.cells = slices.Grow(hw.cells, grow)
		}
		hw.cells = hw.cells[:n+1]
		c, hw.last = &hw.cells[n], int32(n+1)
		c.Tag = 0
	}
	c.Dst, c.Packets, c.Ix, c.Heavy, c.N, c.Split = *dst, 0, ix, 0, 0, hw.split
	return c
}

// spilledBefore reports whether c's destination was spilled earlier in the part (its bit is
// set in hotWorker.back, the filter of spilled destinations), and then marks c Split: its
// sources are summed from two cells, which may share some (at most the hotLog of the
// spilled one). A light cell is looked up only when it becomes heavy, at a spill, which
// keeps it, heavy, so that it is not spilled again while it keeps coming (a busy
// destination whose sources are spread over the workers may get a packet or two in this
// worker between spills), or at the window's close: in a loop over the cells, whose loads
// of the filter overlap, rather than one wait for it per new cell. A destination sharing
// the bit is kept too, at the cost of a slot until the next part: with 16 KiB the 20x day's
// 250 000 spilled destinations made 16 508 heavy, with the 128 KiB filter 2 212. Only
// destinations without a dense index share bits (spillBit).
func (hw *hotWorker) spilledBefore(c *hotCell) bool {
	if hw.back == nil || !hasBit(hw.back, spillBit(c)) {
		return false
	}
	c.Split = true
	return true
}

// spillBit is c's bit in the filter of spilled destinations: its dense index where it has
// one below the filter's size (no two share it, no hash to compute, and a dark space's bits
// lie together: a /16's in 8 KiB that stay in cache, where hashed bits missed it at every
// look-up of a scan's light cells), else its address's hash's.
func spillBit(c *hotCell) uint32 {
	if c.Ix >= 0 && c.Ix < 1<<filterShift {
		return uint32(c.Ix)
	}
	return filterBit(c.Dst.Hash(seedDstIP))
}

// hotspot counts one packet from the source of st to a dark destination (dense: its dense
// index, or -1).
func (e *Engine) hotspot(h *packet.Header, st *SourceState, dense int32) {
	c := e.hotCellOf(&h.Dst, dense)
	// The event's fields are kept apart until they are stored where they go: a hotEvent
	// built on the stack and copied whole is read back in 16-byte moves that straddle its
	// field stores, a load that must wait for every older store (the cache misses among
	// them) to complete.
	var bits, port uint16
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
	bits |= e.hot.memo(&st.Hot, &h.Src, e.hot.memoName(e.hot.last-1), c.Ix, port)
	c.Packets++
	if c.Heavy == 0 {
		if c.N < hotLog {
			l := &c.Log[c.N]
			l.TS, l.Src, l.Port, l.Bits, l.Proto = h.TS, h.Src, port, bits, proto
			c.N++
			return
		}
		e.hot.spilledBefore(c)
		e.hot.makeHeavy(c, e.hot.last-1) // past hotLog packets
	}
	// Field by field: a composite literal is built in a temporary and copied in 16-byte
	// moves, which wait for its field stores (no store forwarding across them).
	var ev hotEvent
	ev.TS, ev.Src, ev.Port, ev.Bits, ev.Proto = h.TS, h.Src, port, bits, proto
	e.hot.heavy[c.Heavy-1].add(&e.hot.cold[c.Heavy-1], &e.hot.slab, &ev, false)
}

// makeHeavy gives c, the cell in slot i, its full counts, replaying its logged packets.
func (hw *hotWorker) makeHeavy(c *hotCell, i int32) {
	if hw.nheavy == len(hw.heavy) {
		hw.heavy = append(hw.heavy, hotHeavy{})
		hw.cold = append(hw.cold, hotCold{})
	}
	hw.nheavy++
	c.Heavy = int32(hw.nheavy)
	hw.heavyc = append(hw.heavyc, i)
	hv, cd := &hw.heavy[c.Heavy-1], &hw.cold[c.Heavy-1]
	for i := range c.Log[:c.N] {
		hv.add(cd, &hw.slab, &c.Log[i], false)
	}
	c.N = 0
}

// memo returns how a packet from src, the source of m, to (cell, port) counts as a distinct
// source (the hotBitNew... and hotBitSet... bits), noting the pair in m; cell is the cell's
// memo name (memoName), ix its dense index (< 0: none).
func (hw *hotWorker) memo(m *HotMemo, src *packet.Addr, cell, ix int32, port uint16) uint16 {
	if m.Gen != hw.mgen || m.N == 0 { // N == 0: a fresh entry in the first part (mgen 0)
		m.Gen, m.N, m.Bits = hw.mgen, 0, 0
		if hw.sets || hw.nevict > 0 && hw.wasEvicted(src.Hash(seedHotSrc)) {
			// Perhaps counted in the part before its entry was evicted (its counts are in the
			// sets now, hotEvicted): it counts through the sets only, with no pairs.
			// Element by element: an array literal was built on the stack and read back in
			// a load spanning two of its stores, which cannot forward (a tenth of the
			// hotspot's samples on the live flood).
			m.N = hotMemoLen + 1
			for i := range m.Cell {
				m.Cell[i] = -1
			}
		}
	}
	addr, atPort := false, port == 0
	for i := range min(int(m.N), hotMemoLen) {
		if m.Cell[i] == cell {
			addr = true
			if m.Port[i] == port {
				return 0 // counted at both levels
			}
		}
	}
	var bits uint16
	if m.N < hotMemoLen {
		m.Cell[m.N], m.Port[m.N] = cell, port
		m.N++
		if !addr {
			bits |= hotBitNewAddr
		}
		if !atPort {
			bits |= hotBitNewPort
		}
		return bits
	}
	if m.N == hotMemoLen { // the memo fills up
		m.Bits = hw.newBitmap(m)
		m.N = hotMemoLen + 1
	}
	if !atPort {
		bits |= hotBitSetPort
	}
	switch {
	case addr:
	case m.Bits > 0 && ix >= 0:
		w, bit := &hw.bits[int(m.Bits-1)*hw.bitW+int(ix>>6)], uint64(1)<<(ix&63)
		if *w&bit == 0 {
			*w |= bit
			bits |= hotBitNewAddr
		}
	default:
		bits |= hotBitSetAddr
	}
	return bits
}

// newBitmap returns 1 + a bitmap for the source of m, whose memo fills up, with the bits
// of its memo's addresses set (0: the pool is spent, or no dense index).
func (hw *hotWorker) newBitmap(m *HotMemo) int32 {
	w := hw.bitW
	if w == 0 || w > hotBitmapMaxWords || (hw.nbits+1)*w*8 > hotBitmapBytes {
		return 0
	}
	if need := (hw.nbits + 1) * w; len(hw.bits) < need {
		hw.bits = append(hw.bits, make([]uint64, max(need, 2*len(hw.bits))-len(hw.bits))...)
	}
	b := hw.bits[hw.nbits*w : (hw.nbits+1)*w]
	hw.nbits++
	for _, ci := range m.Cell[:min(int(m.N), hotMemoLen)] {
		if c := hw.hotMemoCell(ci); c != nil && c.Ix >= 0 {
			b[c.Ix>>6] |= 1 << (c.Ix & 63)
		}
	}
	return int32(hw.nbits)
}

// bitmap returns the memo's bitmap, nil if it has none.
func (hw *hotWorker) bitmap(m *HotMemo) []uint64 {
	if m.Bits <= 0 || int(m.Bits) > hw.nbits {
		return nil
	}
	return hw.bits[int(m.Bits-1)*hw.bitW : int(m.Bits)*hw.bitW]
}

// wasEvicted reports whether a source with hash x (seedHotSrc) may have been evicted after
// being counted in the open part (hotWorker.evict, allocated at the first eviction of a
// counted source). A source that may have counts through the sets, exactly but at a set
// probe per packet.
func (hw *hotWorker) wasEvicted(x uint64) bool { return hasBit(hw.evict, filterBit(x)) }

// evictWord is the word of the filter of evicted sources that holds src's bit, nil while no
// source was marked in the part (for requesting it ahead: memo reads it, hotEvicted sets it).
func (hw *hotWorker) evictWord(src *packet.Addr) *uint64 {
	if hw.nevict == 0 || len(hw.evict) != filterWords {
		return nil
	}
	return &hw.evict[filterBit(src.Hash(seedHotSrc))/64]
}

// hotEvicted moves the counts of src, whose entry (and memo) the pipeline's table is
// evicting, from the counters to the sets of the cells it was counted in, and marks src in
// the part's filter of evicted sources: if it comes back in the part, with an empty memo,
// it counts through the sets (memo).
func (e *Engine) hotEvicted(src *packet.Addr, m *HotMemo) {
	hw := &e.hot
	if m.Gen != hw.mgen || m.N == 0 {
		return
	}
	x := src.Hash(seedHotSrc)
	markFilter(&hw.evict, x)
	hw.nevict++
	bm := hw.bitmap(m)
	for i := range min(int(m.N), hotMemoLen) {
		ci := m.Cell[i]
		c := hw.hotMemoCell(ci)
		if c == nil {
			continue
		}
		// The cell's first pair counted the address, unless the bitmap took it over.
		addr := !slices.Contains(m.Cell[:i], ci) && (bm == nil || c.Ix < 0)
		e.hotUncount(c, src, x, addr, m.Port[i])
	}
	for wi, w := range bm {
		for w != 0 {
			ix := wi*64 + bits.TrailingZeros64(w)
			w &= w - 1
			if ix < len(hw.dense) && hw.seen[ix>>6]&(1<<(ix&63)) != 0 {
				if ci := hw.dense[ix] - 1; ci >= 0 && int(ci) < len(hw.cells) {
					e.hotUncount(&hw.cells[ci], src, x, true, 0)
				}
			}
		}
	}
	m.N, m.Bits = 0, 0
}

// hotUncount moves src (hash x) from the counters to the sets of cell c: at the address
// (addr) and at port (not 0). A light cell's logged packets of src count through the sets.
func (e *Engine) hotUncount(c *hotCell, src *packet.Addr, x uint64, addr bool, port uint16) {
	if c.Heavy == 0 {
		for k := range c.Log[:c.N] {
			if ev := &c.Log[k]; ev.Src == *src {
				if ev.Bits&hotBitNewAddr != 0 {
					ev.Bits ^= hotBitNewAddr | hotBitSetAddr
				}
				if ev.Bits&hotBitNewPort != 0 {
					ev.Bits ^= hotBitNewPort | hotBitSetPort
				}
			}
		}
		return
	}
	hv, cd := &e.hot.heavy[c.Heavy-1], &e.hot.cold[c.Heavy-1]
	if addr {
		hv.uncount(cd, &e.hot.slab, 0, x)
	}
	if k := hv.levelOf(port); k > 0 && !hv.Lv[k].Sets {
		hv.uncount(cd, &e.hot.slab, k, x)
	}
}

// levelOf returns the level counting port p, 0 when none does (p 0: the address only).
func (hv *hotHeavy) levelOf(p uint16) int {
	if p == 0 {
		return 0
	}
	for k := range hv.Ports {
		if hv.Ports[k] == p && hv.PortN[k] > 0 {
			return k + 1
		}
	}
	return 0
}

// uncount moves one source (hash x) from level k's Counted to its set.
func (hv *hotHeavy) uncount(cd *hotCold, s *aggregate.Slab, k int, x uint64) {
	if hv.Lv[k].Counted > 0 {
		hv.Lv[k].Counted--
		cd.Srcs[k].AddLater(s, x)
	}
}

// add counts ev at the address level and its port; viaSets counts every packet through
// the sets of sources (a light cell's summary: its logged packets are all there is).
func (hv *hotHeavy) add(cd *hotCold, s *aggregate.Slab, ev *hotEvent, viaSets bool) {
	var x uint64
	if viaSets || ev.Bits&(hotBitSetAddr|hotBitSetPort) != 0 {
		x = ev.Src.Hash(seedHotSrc)
	}
	hv.addAt(cd, s, 0, ev, x, viaSets, hotBitNewAddr, hotBitSetAddr)
	if ev.Port == 0 {
		return
	}
	if k := hv.port(cd, s, ev.Port); k > 0 {
		sets := hv.Lv[k].Sets
		if sets && !viaSets && x == 0 {
			x = ev.Src.Hash(seedHotSrc)
		}
		hv.addAt(cd, s, k, ev, x, viaSets || sets, hotBitNewPort, hotBitSetPort)
	}
}

// port returns the level of port p: its own, a free one, or the one with the fewest
// packets, cleared, once the packets to ports without a level outnumber its own (so the
// busiest ports stay); 0: none, the packet counts at the address level only.
func (hv *hotHeavy) port(cd *hotCold, s *aggregate.Slab, p uint16) int {
	if k := hv.levelOf(p); k > 0 {
		return k
	}
	low := 0
	for k := range hv.PortN {
		if hv.PortN[k] < hv.PortN[low] {
			low = k
		}
	}
	if n := hv.PortN[low]; n > 0 {
		if hv.Miss++; hv.Miss <= max(n, hotTakeOver) {
			return 0
		}
		hv.Miss = 0
		cd.Srcs[low+1].Reset(s)
		hv.Lv[low+1], hv.PortN[low] = hotLevel{Sets: true}, 0
	}
	hv.Lv[low+1].Port, hv.Ports[low] = p, p
	return low + 1
}

// addAt counts ev at level k; x is the source's hash where it counts through the set
// (viaSets, or the event's setBit), isNew and setBit the level's hotBitNew... and
// hotBitSet... bits.
func (hv *hotHeavy) addAt(cd *hotCold, s *aggregate.Slab, k int, ev *hotEvent, x uint64, viaSets bool, isNew, setBit uint16) {
	lv := &hv.Lv[k]
	if lv.Packets == 0 {
		lv.First, lv.Last = ev.TS, ev.TS
	}
	lv.Last = max(lv.Last, ev.TS)
	lv.First = min(lv.First, ev.TS)
	lv.Packets++
	if k > 0 {
		hv.PortN[k-1]++
	}
	lv.Protos |= ev.Proto
	if ev.Bits&hotBitSYN != 0 {
		lv.SYN++
	}
	if ev.Bits&hotBitUDP != 0 {
		lv.UDP++
		if ev.Bits&hotBitP2P != 0 {
			lv.P2P++
		}
	}
	if ev.Bits&hotBitReply != 0 {
		lv.Replies++
	}
	if ev.Bits&hotBitPair != 0 {
		lv.Pairs++
	}
	first := false // the source's first packet at this level (for sure)
	switch {
	case viaSets || ev.Bits&setBit != 0:
		if set := &cd.Srcs[k]; set.Exact() {
			first = set.Add(s, x) && set.Exact()
		} else {
			set.AddLater(s, x) // a sketch's source is never first for sure
		}
	case ev.Bits&isNew != 0:
		lv.Counted++
		first = true
	}
	if first && lv.NTop == hotTop {
		// A source's first packet counts 1, no more than the least of the top sources: it
		// would only take the least one's slot and lose it to the next newcomer.
		return
	}
	// Space-Saving top sources: the source's slot, a free one, or the smallest replaced.
	top := &cd.Top[k]
	low := 0
	for i := 0; i < int(lv.NTop); i++ {
		if top[i].Src == ev.Src {
			top[i].Packets++
			return
		}
		if top[i].Packets < top[low].Packets {
			low = i
		}
	}
	if lv.NTop < hotTop {
		t := &top[lv.NTop] // field by field, see hotspot
		t.Src, t.Packets, t.Err = ev.Src, 1, 0
		lv.NTop++
		return
	}
	t := &top[low]
	t.Src, t.Err = ev.Src, t.Packets
	t.Packets++
}

// hotPair notes that a SYN probe, the packet just counted, paired with an earlier UDP
// datagram to the same ip:port.
func (e *Engine) hotPair(h *packet.Header) {
	hw := &e.hot
	if !e.hotOn() || hw.last == 0 {
		return
	}
	c := &hw.cells[hw.last-1]
	if c.Dst != h.Dst {
		return
	}
	if c.Heavy == 0 {
		if c.N > 0 {
			c.Log[c.N-1].Bits |= hotBitPair
		}
		return
	}
	hv := &hw.heavy[c.Heavy-1]
	hv.Lv[0].Pairs++
	if k := hv.levelOf(h.DstPort); k > 0 {
		hv.Lv[k].Pairs++
	}
}

// HotSummary is one worker's counts for one destination level in one window, or their sum
// over workers.
type HotSummary struct {
	Dst       packet.Addr
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

// appendSums appends the summaries of the address and of its counted ports.
func (hv *hotHeavy) appendSums(cd *hotCold, out []HotSummary, k *packet.Addr, split bool, s *aggregate.Slab) []HotSummary {
	for i := range hv.Lv {
		if i == 0 || hv.Lv[i].Packets > 0 {
			// In place: a summary built and then appended was copied twice (a temporary).
			out = slices.Grow(out, 1)
			out = out[:len(out)+1]
			hv.summarize(&out[len(out)-1], cd, k, i, split, s)
		}
	}
	return out
}

// summarize writes level i's summary to a, field by field (a composite literal is built in
// a temporary and copied).
func (hv *hotHeavy) summarize(a *HotSummary, cd *hotCold, k *packet.Addr, i int, split bool, s *aggregate.Slab) {
	lv, set := &hv.Lv[i], &cd.Srcs[i]
	a.Dst, a.Port = *k, lv.Port
	// A port that took a level over (Sets) is counted from then on: a lower bound. A
	// sketch's estimate may exceed the packets, which bound the sources.
	a.Sources, a.Estimated = min(lv.Counted+set.Count(s), lv.Packets), split || !set.Exact() || lv.Sets
	a.Packets, a.SYN, a.UDP, a.P2P, a.Pairs, a.Replies = lv.Packets, lv.SYN, lv.UDP, lv.P2P, lv.Pairs, lv.Replies
	a.First, a.Last, a.Protos, a.NTop = lv.First, lv.Last, lv.Protos, lv.NTop
	// Only the level's top sources are read (most heavy levels have none: a source's first
	// packet does not count there); the rest is zeroed, as checkpoints write all of it.
	a.Top = [hotTop]hotSrc{}
	copy(a.Top[:lv.NTop], cd.Top[i][:lv.NTop])
}

// appendLight appends the summaries of a light cell (at most hotLog packets): its address
// and each port, exactly as a hotHeavy would count them.
func (c *hotCell) appendLight(out []HotSummary) []HotSummary {
	var hv hotHeavy
	var cd hotCold
	var s aggregate.Slab // at most hotLog sources: Distinct stays inline, never allocates
	for i := range c.Log[:c.N] {
		hv.add(&cd, &s, &c.Log[i], true)
	}
	return hv.appendSums(&cd, out, &c.Dst, c.Split, &s)
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

// topCmp orders top sources: most packets for sure (Packets-Err) first, then by address.
func topCmp(x, y hotSrc) int {
	if a, b := x.Packets-x.Err, y.Packets-y.Err; a != b {
		if a > b {
			return -1
		}
		return 1
	}
	return x.Src.Netip().Compare(y.Src.Netip())
}

// topLess reports whether x ranks before y (topCmp).
func topLess(x, y *hotSrc) bool { return topCmp(*x, *y) < 0 }

// addTop merges top lists and keeps the hotTop with the most packets for sure
// (Packets-Err). A source in both lists is summed. Workers' sources are disjoint, so
// merging the workers' lists of a window in any order gives the same list.
func (a *HotSummary) addTop(top []hotSrc) {
	for _, t := range top {
		found := false
		for i := range a.Top[:a.NTop] {
			if a.Top[i].Src == t.Src {
				a.Top[i].Packets += t.Packets
				a.Top[i].Err += t.Err
				found = true
				break
			}
		}
		if !found {
			if a.NTop < hotTop {
				a.Top[a.NTop] = t
				a.NTop++
			} else if topLess(&t, &a.Top[hotTop-1]) {
				a.Top[hotTop-1] = t
			} else {
				continue
			}
		}
		// slices.SortFunc, not sort.Slice: that allocated a swapper at each call (4.5 MB
		// on the 20x day). topLess orders distinct sources totally, so any sort agrees.
		slices.SortFunc(a.Top[:a.NTop], topCmp)
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
	if len(x.slots) < size || len(x.slots) > 8*size {
		x.slots = make([]int32, size)
	} else {
		clear(x.slots)
	}
	x.keys = x.keys[:0]
}

// get returns k's position; with add, a missing k is added (isNew), else -1.
func (x *hotIndex[K]) get(k *K, add bool) (pos int32, isNew bool) {
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
	x.keys = append(x.keys, *k)
	x.slots[i] = int32(len(x.keys))
	return int32(len(x.keys) - 1), true
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
	full  []HotSummary
	n     []int               // cells handed over, by worker
	np    []int               // cell arrays handed over, by worker
	nl    []int               // of which with light cells only (hotSpill), by worker
	split bool                // a worker handed over early: a destination may have several cells in it
	px    *aggregate.Prefixes // the dark space numbering the cells' dense indexes
	mixed bool                // cells of different numberings: merge by address only
}

// Hotspots merges the workers' per-window destination counts, runs the hotspot episodes
// and observes the receiver distribution (packets per dark destination per window). Shared
// by every engine; locked once per worker per window (and when a worker's cells fill up).
//
// A window is evaluated once every worker has passed it. The receiver distribution sums
// each destination's packets over the workers' cells. For hot destinations the workers'
// summaries are summed only for candidate keys: a key with min_sources distinct sources
// over W workers (disjoint source sets) has at least ceil(min_sources/W) in one worker's
// summary, so only such keys are looked up in the other workers' cells.
type Hotspots struct {
	mu   sync.Mutex
	sink Sink
	c    *Counters // detection counters (one engine's: the collector sums them)

	enabled    bool
	size       int64
	minSources uint64
	maxCells   int // cells kept per worker and window (twice the worker's table)

	started []bool
	through []int64
	pending map[int64]*hotPending
	free    []*hotPending
	spare   [][]hotCell // cell arrays to hand back to the workers
	active  map[hotKey]*hotEpisode

	// Scratch of window(), reused.
	addrIx hotIndex[packet.Addr]
	pk     []uint64
	dacc   []uint64 // packets by dense index
	dseen  []uint64 // bitmaps by dense index: a cell seen, a destination in several cells
	ddup   []uint64
	dtouch []int32 // dense indexes counted in dacc
	obs    []hotObs
	candIx hotIndex[hotKey]
	dstIx  hotIndex[packet.Addr]
	sums   []HotSummary
	seen   []bool
	tmp    []HotSummary

	// Hist is the receiver distribution: packets per destination address per window,
	// observed when every worker has passed the window.
	Hist aggregate.Histogram
	// Unmerged counts the cells observed in Hist on their own, when they came (light
	// cells past a worker's limit of cells for a window, dropLight): each is a destination
	// there, though another cell of the same destination and window may be one too.
	Unmerged atomic.Uint64
}

// NewHotspots returns the aggregator shared by `workers` engines; c receives its detection
// counters. Call SetConfig before use.
func NewHotspots(workers int, sink Sink, c *Counters) *Hotspots {
	workers = max(workers, 1)
	return &Hotspots{sink: sink, c: c, started: make([]bool, workers), through: make([]int64, workers),
		pending: map[int64]*hotPending{}, active: map[hotKey]*hotEpisode{},
		addrIx: hotIndex[packet.Addr]{hash: hashHotAddr}, dstIx: hotIndex[packet.Addr]{hash: hashHotAddr},
		candIx: hotIndex[hotKey]{hash: hashHotKey}}
}

// SetConfig applies a (re)loaded config. A new window length, or turning the detector off,
// ends the open episodes and drops what is pending.
func (hs *Hotspots) SetConfig(cfg *Config) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
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
}

func (hs *Hotspots) recycle(p *hotPending) {
	clear(p.n)
	clear(p.np)
	clear(p.nl)
	for _, c := range p.parts {
		if len(hs.spare) < 2*len(hs.started) {
			hs.spare = append(hs.spare, c[:0])
		}
	}
	clear(p.parts)
	p.parts, p.full, p.split, p.px, p.mixed = p.parts[:0], p.full[:0], false, nil, false
	hs.free = append(hs.free, p)
}

// report adds worker w's cells (numbered by px) and heavy summaries of window `win` and
// records that it has passed every window before `through`. It keeps the cells array and
// returns one for the worker to reuse (nil: none spare), and how many cells it dropped:
// the light ones past maxCells for the worker and window (memory stays bounded whatever the
// traffic; the heavy ones, at most the worker's table, are always kept). through
// math.MinInt64: a part handed over before the window's end (hotFlush, hotSpill).
// The array returned is one a window's evaluation gave back, else a new one as large as
// the cells: a worker whose array grew cell by cell would write fresh memory (and copy it)
// all through the next window.
func (hs *Hotspots) report(w int, size, win int64, cells []hotCell, full []HotSummary, through int64,
	px *aggregate.Prefixes) (dropped uint64, spare []hotCell) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !hs.enabled || size != hs.size || w < 0 || w >= len(hs.started) {
		return 0, cells
	}
	spare = cells
	kept := false
	if len(cells) > 0 {
		p := hs.pending[win]
		if p == nil {
			if n := len(hs.free); n > 0 {
				p, hs.free = hs.free[n-1], hs.free[:n-1]
			} else {
				p = &hotPending{n: make([]int, len(hs.started)), np: make([]int, len(hs.started)), nl: make([]int, len(hs.started))}
			}
			hs.pending[win] = p
		}
		if through == math.MinInt64 { // handed over early: a destination may be in several parts
			p.split = true
		}
		if p.n[w]+len(cells) > hs.maxCells {
			// Past the limit the light cells go, each observed as a destination of its own in
			// the receiver distribution (its packets are not lost; its destination may be
			// counted twice there): the heavy ones, those that can be hot, stay.
			cells, dropped = hs.dropLight(cells, 2*hs.maxCells-p.n[w])
		}
		if len(cells) > 0 {
			p.n[w] += len(cells)
			p.np[w]++
			if len(full) == 0 { // no heavy cell: at most hotLog sources per destination
				p.nl[w]++
			}
			p.parts = append(p.parts, cells)
			p.full = append(p.full, full...)
			p.split = p.split || cells[0].Split
			switch {
			case len(p.parts) == 1:
				p.px = px
			case p.px != px && (p.px == nil || px == nil || !p.px.SameExact(px)):
				p.mixed = true
			}
			kept = true
		}
	}
	hs.started[w] = true
	hs.through[w] = max(hs.through[w], through)
	hs.advance() // may give arrays back
	if kept {
		if n := len(hs.spare); n > 0 {
			spare, hs.spare = hs.spare[n-1], hs.spare[:n-1]
		} else {
			spare = make([]hotCell, 0, len(cells))
		}
	}
	return dropped, spare
}

// dropLight keeps the heavy cells of a worker's cells (in place), if there are at most
// room of them, and observes each other one in the receiver distribution as a destination
// of its own, returning the cells kept and how many went. (Past maxCells a worker's window
// keeps at most maxCells more: its busy destinations, unless a flood of them refills its
// table again and again.)
func (hs *Hotspots) dropLight(cells []hotCell, room int) ([]hotCell, uint64) {
	heavy := 0
	for i := range cells {
		if cells[i].Heavy != 0 {
			heavy++
		}
	}
	keep := heavy <= room
	var b aggregate.HistBatch
	kept := cells[:0]
	for i := range cells {
		if keep && cells[i].Heavy != 0 {
			kept = append(kept, cells[i])
			continue
		}
		b.Add(uint64(cells[i].Packets))
	}
	hs.Hist.ObserveBatch(&b)
	hs.Unmerged.Add(b.Count)
	return kept, b.Count
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
		p := hs.pending[w]
		hs.window(w, p)
		delete(hs.pending, w)
		hs.recycle(p)
	}
	// Episodes not hot in the last complete window are over.
	hs.endBefore(lim - 1)
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
	if len(hs.started) == 1 && !p.split {
		for _, part := range p.parts {
			for i := range part {
				b.Add(uint64(part[i].Packets))
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
	cells := 0
	for _, part := range p.parts {
		cells += len(part)
	}
	// One pass over the cells (96 bytes each, written on the other cores): a dense
	// destination's index and packets go to obs, 8 bytes each, and mark two bitmaps (small,
	// in cache) that find those with several cells; the others are summed by address.
	hs.addrIx.reset(cells)
	hs.pk, hs.dtouch, hs.obs = hs.pk[:0], hs.dtouch[:0], hs.obs[:0]
	for _, part := range p.parts {
		for i := range part {
			if i+observeAhead < len(part) {
				prefetch.Line(unsafe.Pointer(&part[i+observeAhead].Packets))
			}
			c := &part[i]
			if ix := c.Ix; ix >= 0 && int(ix) < dense {
				w, bit := ix>>6, uint64(1)<<(ix&63)
				hs.ddup[w] |= hs.dseen[w] & bit
				hs.dseen[w] |= bit
				hs.obs = append(hs.obs, hotObs{ix, c.Packets})
				continue
			}
			pos, isNew := hs.addrIx.get(&c.Dst, true)
			if isNew {
				hs.pk = append(hs.pk, 0)
			}
			hs.pk[pos] += uint64(c.Packets)
		}
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
		hs.dacc[ix] = 0
	}
	for _, n := range hs.pk {
		b.Add(n)
	}
	hs.Hist.ObserveBatch(&b)
}

// candidates sums the workers' summaries of the keys that can be hot into hs.sums (see
// Hotspots).
func (hs *Hotspots) candidates(p *hotPending) {
	// A key's sources are spread over at most (workers x arrays per worker) summaries: one
	// of them holds at least min_sources / that many. An array of light cells only (a
	// spill) holds at most hotLog of them: the others hold the rest.
	parts, light := uint64(1), uint64(0)
	for w, n := range p.np {
		parts = max(parts, uint64(n-p.nl[w]))
		light += uint64(p.nl[w])
	}
	parts *= uint64(len(hs.started))
	rest := hs.minSources - min(hs.minSources, hotLog*light)
	t := (rest + parts - 1) / parts
	hs.candIx.reset(len(p.full) + 16)
	hs.dstIx.reset(len(p.full) + 16)
	cand := func(s *HotSummary) {
		if s.Sources >= t {
			hs.candIx.get(&hotKey{s.Dst, s.Port}, true)
			hs.dstIx.get(&s.Dst, true)
		}
	}
	for i := range p.full {
		cand(&p.full[i])
	}
	if t <= hotLog { // light cells may hold candidates too (min_sources <= hotLog x workers)
		for _, part := range p.parts {
			for i := range part {
				if c := &part[i]; c.Heavy == 0 {
					hs.tmp = c.appendLight(hs.tmp[:0])
					for j := range hs.tmp {
						cand(&hs.tmp[j])
					}
				}
			}
		}
	}
	n := len(hs.candIx.keys)
	hs.sums = append(hs.sums[:0], make([]HotSummary, n)...)
	hs.seen = append(hs.seen[:0], make([]bool, n)...)
	if n == 0 {
		return
	}
	add := func(s *HotSummary) {
		pos, _ := hs.candIx.get(&hotKey{s.Dst, s.Port}, false)
		switch {
		case pos < 0:
		case !hs.seen[pos]:
			hs.seen[pos] = true
			a := &hs.sums[pos]
			*a = *s
			a.NTop = 0
			a.addTop(s.Top[:s.NTop]) // sorted
		default:
			hs.sums[pos].merge(s)
		}
	}
	for i := range p.full {
		add(&p.full[i])
	}
	for _, part := range p.parts {
		for i := range part {
			c := &part[i]
			if c.Heavy != 0 {
				continue
			}
			if pos, _ := hs.dstIx.get(&c.Dst, false); pos < 0 {
				continue
			}
			hs.tmp = c.appendLight(hs.tmp[:0])
			for j := range hs.tmp {
				add(&hs.tmp[j])
			}
		}
	}
}

// window evaluates one complete window.
func (hs *Hotspots) window(win int64, p *hotPending) {
	hs.endBefore(win - 1) // window win-1 is complete: episodes not hot in it are over
	hs.observe(p)
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
		if c := a.Dst.Netip().Compare(b.Dst.Netip()); c != 0 {
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
