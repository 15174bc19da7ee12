package detect

import (
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// Checkpoint of the hotspot detector (kept apart from hotspot.go): per engine, its open
// window (the records of its part, the destinations without a dense index they name, the
// filter of destinations spilled in the part); once, the shared Hotspots: the workers'
// progress, the cell arrays and summaries of windows not yet complete and the open
// episodes. The indexes (dense bitmap, hash index) are rebuilt from the records on load.
// The receiver distribution (Hist) is a cumulative distribution like a counter: it is not
// saved.

// hotStateTypes are the hotspot types a checkpoint copies as memory (see StateTypes).
func hotStateTypes() []reflect.Type {
	return []reflect.Type{
		reflect.TypeFor[hotRec](),
		reflect.TypeFor[hotCell](),
		reflect.TypeFor[HotSummary](),
		reflect.TypeFor[hotKey](),
		reflect.TypeFor[hotWinSet](),
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
	enc.I64(int64(hw.ndense))
	enc.I64(int64(hw.lightN))
	// The records as one array (the format of one array of records before they were kept
	// apart, see hotWorker.orecs): LoadHotState splits them by destination.
	enc.Len(len(hw.recs) + len(hw.orecs))
	checkpoint.Elems(enc, hw.recs)
	checkpoint.Elems(enc, hw.orecs)
	checkpoint.Slice(enc, hw.dsts)
	checkpoint.Slice(enc, hw.back)
	// The open window's source sets (hotWinSets), in their order, and their slab: without
	// them a window restored in the middle of its parts summed the parts before and after.
	ws := &hw.wsets
	keys := make([]hotKey, len(ws.sets))
	for k, i := range ws.idx {
		keys[i] = k
	}
	checkpoint.Slice(enc, keys)
	checkpoint.Slice(enc, ws.sets)
	if len(ws.sets) > 0 {
		ws.slab.Save(enc)
	} else {
		// Between windows in parts the slab keeps its chunks for the next one (up to
		// 26 MiB a worker after a flood): not worth a copy in every checkpoint.
		(&aggregate.Slab{}).Save(enc)
	}
	// The ports the busy dark addresses remember in the open window (hotWorker.portMem),
	// each as its dense index << 16 | port, in index order.
	var mem []uint64
	for ix, port := range hw.portMem {
		if port != 0 {
			mem = append(mem, uint64(ix)<<16|uint64(port))
		}
	}
	checkpoint.Slice(enc, mem)
	// A wide dark space's packets per address in the open window (hotwide.go).
	checkpoint.Slice(enc, hw.wide.pending())
}

// LoadHotState replaces the hotspot state of an engine restored by LoadState (attached to
// its Hotspots and its dark space, same limits) by one written by SaveHotState, checks it
// and rebuilds the destinations' indexes.
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
	open, size, win, end, split, ndense, lightN := d.Bool(), d.I64(), d.I64(), d.I64(), d.Bool(), d.I64(), d.I64()
	recs := checkpoint.ReadSlice[hotRec](d, hw.recCap)
	dsts := checkpoint.ReadSlice[packet.Addr](d, hw.cap)
	back := checkpoint.ReadSlice[uint64](d, filterWords)
	keys := checkpoint.ReadSlice[hotKey](d, hw.wsets.maxKeys)
	sets := checkpoint.ReadSlice[hotWinSet](d, hw.wsets.maxKeys)
	var slab aggregate.Slab
	slab.Load(d)
	mem := checkpoint.ReadSlice[uint64](d, int(hw.ndense))
	wide := checkpoint.ReadSlice[byte](d, maxWideBytes(len(hw.wide.counts)))
	if d.Err() != nil {
		return
	}
	if why := checkWide(wide, len(hw.wide.counts)); why != "" || !open && len(wide) > 0 {
		d.Fail("hotspot: wide dark space counts: %s (open window %v)", why, open)
		return
	}
	for i, m := range mem {
		if ix := m >> 16; ix >= uint64(hw.ndense) || m&0xffff == 0 || i > 0 && ix <= mem[i-1]>>16 {
			d.Fail("hotspot: remembered port %d of dense index %d (%d), after %d", m&0xffff, ix, hw.ndense, i)
			return
		}
	}
	setIdx, err := checkWinSets(keys, sets, &slab, open)
	if err != nil {
		d.Fail("hotspot: %v", err)
		return
	}
	if open && (size <= 0 || end != (win+1)*size) {
		d.Fail("hotspot window %d of %d ns ending at %d", win, size, end)
		return
	}
	if !open && len(recs) > 0 {
		d.Fail("hotspot: %d records without an open window", len(recs))
		return
	}
	if ndense != int64(hw.ndense) {
		d.Fail("hotspot: %d dense destinations, want %d", ndense, hw.ndense)
		return
	}
	if len(back) != 0 && len(back) != filterWords {
		d.Fail("hotspot: filter of spilled destinations of %d words, want %d", len(back), filterWords)
		return
	}
	// Rebuild the indexes: a new generation of the hash index, the dense bitmap cleared.
	hw.clearPart()
	hw.wsets.restore(setIdx, sets, &slab)
	clear(hw.portMem)
	for _, m := range mem {
		hw.ports()[m>>16] = uint16(m)
	}
	for i := range dsts {
		x := dsts[i].Hash(seedDstIP)
		if hw.findHash(&dsts[i], x) >= 0 {
			d.Fail("hotspot: destination %v twice in the part", dsts[i])
			return // the engine is unusable after an error (see LoadState)
		}
		hw.addDst(&dsts[i], x)
		hw.dcount, hw.slot = append(hw.dcount, 0), append(hw.slot, 0)
		hw.ndst++
		hw.nother++
	}
	for i := range recs {
		r := &recs[i]
		id := r.ID
		if id < 0 || id >= hw.ndense+int32(len(dsts)) || r.Bits >= 1<<5 || r.Proto >= 1<<5 {
			d.Fail("hotspot record %d: destination %d of %d, bits %#x, protocol %#x", i, id, hw.ndense+int32(len(dsts)), r.Bits, r.Proto)
			return
		}
		if id >= hw.ndense {
			hw.count(id) // the others below (countDense)
		}
	}
	if hw.nother > hw.cap {
		d.Fail("hotspot: %d destinations without a dense index in the part, limit %d", hw.nother, hw.cap)
		return
	}
	if len(recs) > 0 {
		if hw.recs == nil {
			hw.recs = hw.newRecs()
		}
		if hw.orecs == nil {
			hw.orecs = hw.newRecs()
		}
		hw.recs, hw.orecs = hw.recs[:0], hw.orecs[:0]
		for i := range recs {
			if recs[i].ID < hw.ndense {
				hw.recs = append(hw.recs, recs[i])
			} else {
				hw.orecs = append(hw.orecs, recs[i])
			}
		}
		hw.countDense()
	}
	hw.wide.load(wide)
	hw.open, hw.size, hw.win, hw.end, hw.split = open, size, win, end, split
	hw.lightN = int(min(max(lightN, 0), math.MaxInt32))
	hw.back = nil
	if len(back) > 0 {
		hw.back = back
	}
}

// checkWinSets checks a window's source sets read from a checkpoint (keys[i] is the level
// of sets[i], their blocks in slab): one per level, consistent with the slab, never
// reporting more than the parts' sum, and none without an open window. It returns their
// index by level (hotWinSets.idx).
func checkWinSets(keys []hotKey, sets []hotWinSet, slab *aggregate.Slab, open bool) (map[hotKey]int32, error) {
	if len(keys) != len(sets) {
		return nil, fmt.Errorf("%d source sets for %d levels", len(sets), len(keys))
	}
	if !open && len(sets) > 0 {
		return nil, fmt.Errorf("%d source sets without an open window", len(sets))
	}
	idx := make(map[hotKey]int32, len(keys))
	for i, k := range keys {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("source set of %v port %d"+format, append([]any{k.Dst, k.Port}, a...)...)
		}
		if _, dup := idx[k]; dup {
			return nil, bad(" twice")
		}
		idx[k] = int32(i)
		if err := sets[i].d.Validate(slab); err != nil {
			return nil, bad(": %w", err)
		}
		if sets[i].reported > sets[i].sum {
			return nil, bad(" reported %d of a sum of %d", sets[i].reported, sets[i].sum)
		}
	}
	return idx, nil
}

// SaveState appends the shared hotspot state to enc. It must match the engines' states,
// the hand-overs they made and no later one: call it while every worker is held, and
// release them in held (if not nil), which SaveState calls once it has the lock, before
// copying. The workers then go on counting while the state is copied; one that hands
// over a part meanwhile waits for the copy.
func (hs *Hotspots) SaveState(enc *checkpoint.Encoder, held func()) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if held != nil {
		held()
	}
	// The windows queued for the evaluator were completed before the cut: they are
	// evaluated first, while the hand-overs made after it wait.
	hs.saving = true
	hs.settle()
	hs.saving = false
	defer hs.cond.Broadcast()
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
		// Light destinations with a dense index are saved as cells, in arrays of their own
		// of at most maxCells: each one more array of their worker (np, checked against the
		// arrays when loaded) but the first of a hand-over without cells.
		n, np := slices.Clone(p.n), slices.Clone(p.np)
		var light [][]hotCell
		// The heavy summaries are saved worker after worker, each marked with its worker
		// (in place: W means nothing elsewhere), then those of the light destinations. The
		// heavy cells with a dense index are saved summed by address (foldDense), those of
		// the light destinations after them. Written from where they are, not joined into
		// one array first: a copy less of what may be hundreds of MB while the hand-overs
		// wait.
		nfull := 0
		for w, f := range p.fullW {
			for i := range f {
				f[i].W = uint16(w)
			}
			nfull += len(f)
		}
		var full []HotSummary
		var dense []hotCell
		for i := range p.light {
			lt := &p.light[i]
			var cells []hotCell
			cells, full = lt.cells(&hs.cnt, &hs.group, full)
			kept := cells[:0]
			for _, c := range cells {
				if c.Heavy != 0 && c.Ix >= 0 {
					dense = append(dense, c)
				} else {
					kept = append(kept, c)
				}
			}
			if cells = kept; len(cells) == 0 && lt.alone {
				np[lt.w]-- // the array its hand-over counted is not saved
			}
			n[lt.w] += len(cells)
			for first := true; len(cells) > 0; first = false {
				k := min(len(cells), hs.maxCells)
				light = append(light, cells[:k])
				cells = cells[k:]
				if !first || !lt.alone {
					np[lt.w]++
				}
			}
		}
		enc.I64(w)
		checkpoint.Slice(enc, n)
		checkpoint.Slice(enc, np)
		enc.Bool(p.split)
		enc.Len(len(p.parts) + len(light))
		for _, part := range p.parts {
			checkpoint.Slice(enc, part)
		}
		for _, part := range light {
			checkpoint.Slice(enc, part)
		}
		enc.Len(nfull + len(full))
		for _, f := range p.fullW {
			checkpoint.Elems(enc, f)
		}
		checkpoint.Elems(enc, full)
		enc.Len(len(p.dense) + len(dense))
		checkpoint.Elems(enc, p.dense)
		checkpoint.Elems(enc, dense)
		enc.Bool(p.wideMixed)
		enc.Len(len(p.wide))
		for _, l := range p.wide {
			checkpoint.Slice(enc, l)
		}
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

// cells returns lt's destinations as cells: light ones with their packets logged, or, past
// hotLog packets (a cell logs no more; see Engine.denseHeavy), heavy ones whose summaries
// (counted with hc, from the records grouped with gr) it appends to full, as their worker
// would have handed them over.
func (lt *hotLight) cells(hc *hotCounter, gr *hotGrouper, full []HotSummary) ([]hotCell, []HotSummary) {
	cells := make([]hotCell, 0, len(lt.obs))
	gr.each(lt, nil, func(o hotObs, g []hotRec) {
		cells = append(cells, hotCell{Packets: o.packets, Ix: o.ix, Split: lt.split})
		c := &cells[len(cells)-1]
		lt.px.ExactAddrTo(&c.Dst, o.ix)
		if len(g) > hotLog {
			c.Heavy = 1
			n := len(full)
			full = hc.summarize(full, g, &c.Dst, lt.split)
			for i := range full[n:] {
				full[n+i].W = uint16(lt.w)
			}
			return
		}
		for i := range g {
			c.logRec(&g[i])
		}
	})
	return cells, full
}

func cmpHotKey(a, b hotKey) int {
	if c := a.Dst.Compare(&b.Dst); c != 0 {
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
	hs.settle()
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
		p := &hotPending{n: checkpoint.ReadSlice[int](d, workers), np: checkpoint.ReadSlice[int](d, workers), mixed: true, hasPx: true}
		p.init(workers)
		// Light destinations with a dense index come back as cells: they count against
		// both limits (report), which therefore hold across a restart.
		p.split = d.Bool()
		np := d.Len(8, maxHotPending)
		cells, parts := 0, 0
		for _, n := range p.np {
			parts += n
		}
		for _, n := range p.n {
			cells += n
		}
		if d.Err() == nil && (len(p.n) != workers || len(p.np) != workers || np != parts) {
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
			p.parts, p.partW = append(p.parts, part), append(p.partW, -1) // the worker is not saved
			cells -= len(part)
		}
		// At most twice maxFull a worker (compactFull) and the light destinations' summaries.
		p.full = checkpoint.ReadSlice[HotSummary](d, (2*hs.maxFull+(1+hotPorts)*hs.maxLight)*workers)
		if d.Err() != nil {
			break
		}
		dense := checkpoint.ReadSlice[hotCell](d, maxHotDense+hs.maxLight*workers)
		for i := range dense {
			if c := &dense[i]; c.Heavy == 0 || c.Ix < 0 {
				d.Fail("hotspot window %d: a dark address's cell %v without a dense index or counts", w, c.Dst)
				break
			}
			p.addDense(&dense[i])
		}
		for i := range p.full {
			if int(p.full[i].W) >= workers || p.full[i].NTop > hotTop {
				d.Fail("hotspot summary of worker %d (%d workers) with %d top sources", p.full[i].W, workers, p.full[i].NTop)
				break
			}
			p.full[i].rerank() // a checkpoint of an older release ranked ties otherwise
			p.fullW[p.full[i].W] = append(p.fullW[p.full[i].W], p.full[i])
		}
		p.full = p.full[:0]
		p.wideMixed = d.Bool()
		nwide := d.Len(0, maxHotPending)
		for range nwide {
			l := checkpoint.ReadSlice[byte](d, maxWideBytes(aggregate.MaxExactDst))
			if d.Err() != nil {
				break
			}
			if why := checkWide(l, aggregate.MaxExactDst); why != "" || len(l) == 0 {
				d.Fail("hotspot window %d: wide dark space counts: %s (%d)", w, why, len(l))
				break
			}
			p.wide = append(p.wide, l)
		}
		if d.Err() != nil {
			break
		}
		if cells != 0 || slices.ContainsFunc(p.n, func(n int) bool { return n < 0 || n > 2*hs.maxCells+hs.maxLight }) {
			d.Fail("hotspot window %d: cells by worker %v do not match the arrays", w, p.n)
			break
		}
		p.nd = slices.Clone(p.n)
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
		ep.sum.rerank()
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
