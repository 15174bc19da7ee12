package detect

import (
	"math"
	"reflect"
	"slices"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// Checkpoint of the hotspot detector (kept apart from hotspot.go): per engine, its open
// window (the cells of its destinations, their full counts and the slab their distinct
// source counts live in, and which cells are heavy); once, the
// shared Hotspots: the workers' progress, the cell arrays and summaries of windows not yet
// complete and the open episodes. The indexes (dense bitmap and array, hash index) are
// rebuilt from the cells on load. The receiver distribution (Hist) is a cumulative
// distribution like a counter: it is not saved.

// hotStateTypes are the hotspot types a checkpoint copies as memory (see StateTypes).
func hotStateTypes() []reflect.Type {
	return []reflect.Type{
		reflect.TypeFor[hotCell](),
		reflect.TypeFor[hotHeavy](),
		reflect.TypeFor[hotCold](),
		reflect.TypeFor[HotSummary](),
	}
}

// SaveHotState appends the engine's hotspot state to enc. Same calling rules as SaveState.
func (e *Engine) SaveHotState(enc *checkpoint.Encoder) {
	hw := &e.hot
	enc.Bool(hw.shared != nil)
	if hw.shared == nil {
		return
	}
	enc.Bool(hw.open)
	enc.I64(hw.size)
	enc.I64(hw.win)
	enc.I64(hw.end)
	enc.Bool(hw.split)
	enc.I64(int64(hw.last))
	enc.I64(int64(hw.mgen)) // the sources' memos (saved with them) refer to it
	// The filter of evicted sources is not saved: after a restore, every source new to the
	// part counts through the sets.
	enc.Bool(hw.sets || hw.nevict > 0)
	enc.I64(int64(hw.bitW))
	checkpoint.Slice(enc, hw.bits[:hw.nbits*hw.bitW])
	checkpoint.Slice(enc, hw.cells)
	checkpoint.Slice(enc, hw.heavy[:hw.nheavy])
	checkpoint.Slice(enc, hw.cold[:hw.nheavy])
	checkpoint.Slice(enc, hw.heavyc)
	checkpoint.Slice(enc, hw.back)
	hw.slab.Save(enc)
}

// LoadHotState replaces the hotspot state of an engine restored by LoadState (attached to
// its Hotspots and its dark space, same limits) by one written by SaveHotState, checks it
// and rebuilds the cells' indexes.
func (e *Engine) LoadHotState(d *checkpoint.Decoder) {
	hw := &e.hot
	has := d.Bool()
	if d.Err() != nil {
		return
	}
	if has != (hw.shared != nil) {
		d.Fail("hotspot state present %v, want %v", has, hw.shared != nil)
		return
	}
	if !has {
		return
	}
	open, size, win, end, split, last := d.Bool(), d.I64(), d.I64(), d.I64(), d.Bool(), d.I64()
	mgen, sets, bitW := d.I64(), d.Bool(), d.I64()
	bitmaps := checkpoint.ReadSlice[uint64](d, hotBitmapBytes/8)
	cells := checkpoint.ReadSlice[hotCell](d, hw.cap)
	heavy := checkpoint.ReadSlice[hotHeavy](d, len(cells))
	cold := checkpoint.ReadSlice[hotCold](d, len(heavy))
	heavyc := checkpoint.ReadSlice[int32](d, len(heavy))
	back := checkpoint.ReadSlice[uint64](d, filterWords)
	var slab aggregate.Slab
	slab.Load(d)
	if d.Err() != nil {
		return
	}
	if open && (size <= 0 || end != (win+1)*size) {
		d.Fail("hotspot window %d of %d ns ending at %d", win, size, end)
		return
	}
	if !open && len(cells) > 0 {
		d.Fail("hotspot: %d cells without an open window", len(cells))
		return
	}
	if len(back) != 0 && len(back) != filterWords {
		d.Fail("hotspot: filter of spilled destinations of %d words, want %d", len(back), filterWords)
		return
	}
	if mgen < 0 || mgen > math.MaxUint32 {
		d.Fail("hotspot: memo generation %d", mgen)
		return
	}
	if bitW != int64(hw.bitW) || len(bitmaps) > 0 && (hw.bitW == 0 || len(bitmaps)%hw.bitW != 0) {
		d.Fail("hotspot: %d words of source bitmaps of %d words, want bitmaps of %d", len(bitmaps), bitW, hw.bitW)
		return
	}
	if last < 0 || last > int64(len(cells)) || len(heavyc) != len(heavy) || len(cold) != len(heavy) {
		d.Fail("hotspot: latest cell %d of %d, %d heavy cells listed and %d sets of %d", last, len(cells), len(heavyc), len(cold), len(heavy))
		return
	}
	// heavyc[k] is the cell whose full counts are heavy[k]: one each way.
	for k, i := range heavyc {
		if i < 0 || int(i) >= len(cells) || cells[i].Heavy != int32(k+1) {
			d.Fail("hotspot: heavy counts %d listed for cell %d of %d", k, i, len(cells))
			return
		}
	}
	for i := range cells {
		c := &cells[i]
		if c.N > hotLog || c.Heavy < 0 || int(c.Heavy) > len(heavy) || c.Heavy != 0 && heavyc[c.Heavy-1] != int32(i) ||
			c.Tag > hotTagMax || c.Packets == 0 && (c.N != 0 || c.Heavy != 0) || c.Heavy == 0 && uint32(c.N) != c.Packets {
			d.Fail("hotspot cell %v: %d packets, %d logged, heavy counts %d of %d, tag %d", c.Dst, c.Packets, c.N, c.Heavy, len(heavy), c.Tag)
			return
		}
	}
	for k := range heavy {
		hv := &heavy[k]
		for i := range hv.Lv {
			if hv.Lv[i].NTop > hotTop || (i == 0) != (hv.Lv[i].Port == 0) && hv.Lv[i].Packets > 0 {
				d.Fail("hotspot cell %v: level %d of port %d with %d top sources", cells[heavyc[k]].Dst, i, hv.Lv[i].Port, hv.Lv[i].NTop)
				return
			}
			if i > 0 && (hv.Ports[i-1] != hv.Lv[i].Port || hv.PortN[i-1] != hv.Lv[i].Packets) {
				d.Fail("hotspot cell %v: level %d of port %d with %d packets, listed as port %d with %d", cells[heavyc[k]].Dst,
					i, hv.Lv[i].Port, hv.Lv[i].Packets, hv.Ports[i-1], hv.PortN[i-1])
				return
			}
			if err := cold[k].Srcs[i].Validate(&slab); err != nil {
				d.Fail("hotspot cell %v: %v", cells[heavyc[k]].Dst, err)
				return
			}
		}
	}
	// Rebuild the indexes: a new generation of the hash index, the dense bitmap cleared.
	clear(hw.seen)
	if hw.hash != nil {
		clear(hw.hash)
	}
	hw.gen = 1
	hw.cells = cells // hashInsert reads the cells' destinations
	hw.free = hw.free[:0]
	for i := range cells {
		c := &cells[i]
		if c.Packets == 0 { // a spilled cell's slot (hotSpill)
			hw.free = append(hw.free, int32(i))
			continue
		}
		if c.Ix >= 0 {
			if int(c.Ix) >= len(hw.dense) || hw.seen[c.Ix>>6]&(1<<(c.Ix&63)) != 0 {
				d.Fail("hotspot cell %v: dense index %d of %d, or twice", c.Dst, c.Ix, len(hw.dense))
				return // the engine is unusable after an error (see LoadState)
			}
			hw.seen[c.Ix>>6] |= 1 << (c.Ix & 63)
			hw.dense[c.Ix] = int32(i + 1)
		} else {
			ix, ok := hw.hashInsert(&c.Dst, int32(i+1))
			if !ok {
				d.Fail("hotspot cell %v: twice in the window", c.Dst)
				return
			}
			c.Ix = ix
		}
	}
	hw.open, hw.size, hw.win, hw.end, hw.split, hw.last = open, size, win, end, split, int32(last)
	hw.mgen, hw.sets = uint32(mgen), sets
	clear(hw.bits)
	hw.nbits = 0
	if len(bitmaps) > 0 {
		hw.bits, hw.nbits = bitmaps, len(bitmaps)/hw.bitW
	}
	hw.heavy, hw.cold, hw.nheavy, hw.heavyc = heavy, cold, len(heavy), heavyc
	hw.back = nil
	if len(back) > 0 {
		hw.back = back
	}
	hw.slab, hw.slab.BigLimit = slab, hotBigWords
}

// hashIndex returns the hash index of the cells without a dense index, allocated on first
// use: a power of two at least twice the cell cap (load at most 1/2).
func (hw *hotWorker) hashIndex() []uint32 {
	if hw.hash == nil {
		n := 16
		for n < 2*hw.cap {
			n *= 2
		}
		hw.hash = make([]uint32, n)
	}
	return hw.hash
}

// hashInsert adds cell (1 + index) for dst to the hash index of the current generation,
// returning its cell index entry (-1-slot); false if dst is there already.
func (hw *hotWorker) hashInsert(dst *packet.Addr, cell int32) (int32, bool) {
	mask := uint64(len(hw.hashIndex()) - 1)
	i := dst.Hash(seedDstIP) & mask
	for hw.hash[i]>>hotGenShift == hw.gen {
		if n := hw.hash[i]&hotCellMask - 1; n < uint32(cell-1) && hw.cells[n].Dst == *dst {
			return 0, false
		}
		i = (i + 1) & mask
	}
	hw.hash[i] = hw.gen<<hotGenShift | uint32(cell)
	return -1 - int32(i), true
}

// SaveState appends the shared hotspot state to enc. Call it while no engine runs (the
// pipeline holds every worker), so it matches the engines' states.
func (hs *Hotspots) SaveState(enc *checkpoint.Encoder) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	enc.Bool(hs.enabled)
	enc.I64(hs.size)
	checkpoint.Slice(enc, hs.started)
	checkpoint.Slice(enc, hs.through)
	wins := make([]int64, 0, len(hs.pending))
	for w := range hs.pending {
		wins = append(wins, w)
	}
	slices.Sort(wins)
	enc.Len(len(wins))
	for _, w := range wins {
		p := hs.pending[w]
		enc.I64(w)
		checkpoint.Slice(enc, p.n)
		checkpoint.Slice(enc, p.np)
		enc.Bool(p.split)
		enc.Len(len(p.parts))
		for _, part := range p.parts {
			checkpoint.Slice(enc, part)
		}
		checkpoint.Slice(enc, p.full)
	}
	keys := make([]hotKey, 0, len(hs.active))
	for k := range hs.active {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpHotKey)
	enc.Len(len(keys))
	for _, k := range keys {
		ep := hs.active[k]
		checkpoint.Raw(enc, &ep.sum)
		enc.U64(ep.srcSum)
		enc.I64(int64(ep.class))
		enc.I64(ep.lastWin)
	}
}

func cmpHotKey(a, b hotKey) int {
	if c := a.Dst.Netip().Compare(b.Dst.Netip()); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

// maxHotPending bounds the pending windows and the episodes a checkpoint may hold (a
// reader's limit against damaged lengths; far above what the workers produce).
const maxHotPending = 1 << 20

// LoadState replaces the shared hotspot state by one written by SaveState (same worker
// count and limits). A state saved with the detector off or another window length is
// dropped (its windows mean nothing now) and restored reports false; so is one the
// detector is now off for. The restored pending windows' cells are merged by address
// (their dense numbering is not carried over).
func (hs *Hotspots) LoadState(d *checkpoint.Decoder) (restored bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	workers := len(hs.started)
	enabled, size := d.Bool(), d.I64()
	started := checkpoint.ReadSlice[bool](d, workers)
	through := checkpoint.ReadSlice[int64](d, workers)
	nw := d.Len(8, maxHotPending)
	pending := map[int64]*hotPending{}
	for range nw {
		if d.Err() != nil {
			break
		}
		w := d.I64()
		p := &hotPending{n: checkpoint.ReadSlice[int](d, workers), np: checkpoint.ReadSlice[int](d, workers), mixed: true,
			nl: make([]int, workers)} // not saved: counting every array in np is the safe bound (candidates)
		p.split = d.Bool()
		np := d.Len(8, maxHotPending)
		cells, parts := 0, 0
		for _, n := range p.np {
			parts += n
		}
		for _, n := range p.n {
			cells += n
		}
		if d.Err() == nil && (len(p.n) != workers || len(p.np) != workers || np != parts || np == 0) {
			d.Fail("hotspot window %d: %d cell arrays, %d by worker", w, np, parts)
		}
		for range np {
			part := checkpoint.ReadSlice[hotCell](d, hs.maxCells)
			for i := range part {
				if part[i].N > hotLog {
					d.Fail("hotspot window %d: cell %v with %d logged packets", w, part[i].Dst, part[i].N)
					break
				}
			}
			if d.Err() != nil {
				break
			}
			if len(part) == 0 {
				d.Fail("hotspot window %d: empty cell array", w)
				break
			}
			p.parts = append(p.parts, part)
			cells -= len(part)
		}
		p.full = checkpoint.ReadSlice[HotSummary](d, (1+hotPorts)*2*hs.maxCells*workers)
		if d.Err() != nil {
			break
		}
		if cells != 0 || slices.ContainsFunc(p.n, func(n int) bool { return n < 0 || n > 2*hs.maxCells }) {
			d.Fail("hotspot window %d: cells by worker %v do not match the arrays", w, p.n)
			break
		}
		for i := range p.full {
			if p.full[i].NTop > hotTop {
				d.Fail("hotspot summary with %d top sources", p.full[i].NTop)
				break
			}
		}
		if pending[w] != nil {
			d.Fail("hotspot window %d twice", w)
		}
		pending[w] = p
	}
	na := d.Len(0, maxHotPending)
	active := map[hotKey]*hotEpisode{}
	for range na {
		ep := &hotEpisode{}
		checkpoint.RawInto(d, &ep.sum)
		ep.srcSum = d.U64()
		class := d.I64()
		ep.lastWin = d.I64()
		if d.Err() == nil && (class < 0 || class >= int64(len(HotspotClasses)) || ep.sum.NTop > hotTop) {
			d.Fail("hotspot episode of class %d with %d top sources", class, ep.sum.NTop)
		}
		ep.class = int(class)
		active[hotKey{ep.sum.Dst, ep.sum.Port}] = ep
	}
	if d.Err() != nil {
		return false
	}
	if len(started) != workers || len(through) != workers {
		d.Fail("hotspot state of %d workers, want %d", len(started), workers)
		return false
	}
	if !enabled || !hs.enabled || size != hs.size {
		return false
	}
	copy(hs.started, started)
	copy(hs.through, through)
	hs.pending, hs.active = pending, active
	hs.c.Active[detHotspot].Store(int64(len(active)))
	return true
}
