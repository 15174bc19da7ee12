package detect

import (
	"math"
	"slices"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// A dark IPv4 space wider than maxHotDense (a /8 telescope) has no dense index in the
// hotspot's records, so its destinations are cells, capped per worker and window: past
// the cap they went to the receiver distribution each on its own (unmerged), and a
// swarm's thin scan of a /8 came out as one destination per cell, nearly all of one
// packet (about a fifth of its (address, window) pairs had more). The workers count such
// a space per address all the same (up to aggregate.MaxExactDst; SetDenseCounts), so at
// each window's close an engine takes each address's packets since the window opened
// from those counts (hotWide: the counts as of the window's start, 4 bytes an address,
// walked with them once a window: nothing per packet), hands them over sorted by index
// (reportWide), and the receiver distribution sums them over the workers exactly
// (observeWide). The cells of that space feed only the hotspot counts.

// hotWide is an engine's view of its worker's per-address counts of a wide dark space.
type hotWide struct {
	px     *aggregate.Prefixes // the numbering (nil: no wide space)
	counts []uint32            // the worker's packets per address (read at window edges only)
	mem    *wideBase           // owns base
	base   []uint32            // counts as of the open window's start
	synced bool                // base is that (false: the detector was off, nothing counted)
	last   int                 // addresses in the last window handed over (the next list's room)
}

// wideBase owns a hotWide's base: reserved outside the Go heap where large (a /8's is
// 64 MiB, touched only where counts change), unmapped when dropped.
type wideBase struct{ c []uint32 }

// on reports whether there are counts to read.
func (w *hotWide) on() bool { return w.counts != nil }

// set makes w read counts, numbered by px (nil: none), from now on.
func (w *hotWide) set(px *aggregate.Prefixes, counts []uint32) {
	if px == nil || len(counts) != px.ExactSize() {
		*w = hotWide{}
		return
	}
	w.px, w.counts = px, counts
	if len(w.base) != len(counts) {
		m := new(wideBase)
		m.c = aggregate.ReserveOrMake[uint32](m, len(counts))
		w.mem, w.base = m, m.c
	}
	w.synced = false // the next window's opening syncs
}

// take appends (when out is not nil: report) each address's packets since the window's
// start, as index<<32 | packets in index order, and moves the start to now. cur is the
// dense index of the packet being handled (-1: none): its worker counted it already, and it
// belongs to the window that opens. (A count the worker handed to its summary at 2^32
// packets restarted at 1: that address's window counts one packet more, once.)
func (w *hotWide) take(out *[]uint64, cur int32) {
	if cur >= 0 {
		w.base[cur]++ // counts[cur] - (base+1): the packet is not the closing window's
	}
	counts, base := w.counts, w.base[:len(w.counts)]
	// Two addresses at a time: most pairs of a window are unchanged (a /8's 16 M
	// addresses, walked once a window), and one compare skips both.
	n := len(counts) &^ 1
	c64 := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(counts))), n/2)
	b64 := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(base))), n/2)
	for j, c := range c64 {
		if c != b64[j] {
			w.takeAt(out, 2*j)
			w.takeAt(out, 2*j+1)
		}
	}
	if n < len(counts) {
		w.takeAt(out, n)
	}
	if cur >= 0 {
		w.base[cur]-- // it counts from the window that opens
	}
	if out != nil {
		w.last = len(*out)
	}
}

// takeAt is take for address ix.
func (w *hotWide) takeAt(out *[]uint64, ix int) {
	c := w.counts[ix]
	if d := c - w.base[ix]; d != 0 {
		if out != nil {
			*out = append(*out, uint64(ix)<<32|uint64(d))
		}
		w.base[ix] = c
	}
}

// sync moves the window's start to now (cur as in take) without reading the counts since.
func (w *hotWide) sync(cur int32) {
	if w.counts == nil {
		return
	}
	w.take(nil, cur)
	w.synced = true
}

// pending appends the open window's counts so far, as take would, leaving them in place.
func (w *hotWide) pending(out []uint64) []uint64 {
	if !w.synced {
		return out
	}
	for ix, c := range w.counts {
		if d := c - w.base[ix]; d != 0 {
			out = append(out, uint64(ix)<<32|uint64(d))
		}
	}
	return out
}

// load sets the window's start from a list pending wrote, with the counts restored.
func (w *hotWide) load(list []uint64) {
	if w.counts == nil {
		return
	}
	copy(w.base, w.counts)
	for _, v := range list {
		w.base[v>>32] -= uint32(v)
	}
	w.synced = true
}

// checkWide reports what is wrong with a list of wide counts for a space of n addresses
// (indexes strictly increasing and below n, packets not zero), "" if nothing.
func checkWide(list []uint64, n int) string {
	for i, v := range list {
		switch ix := v >> 32; {
		case ix >= uint64(n):
			return "dense index past the dark space"
		case uint32(v) == 0:
			return "an address without packets"
		case i > 0 && ix <= list[i-1]>>32:
			return "indexes out of order"
		}
	}
	return ""
}

// SetDenseCounts gives the engine its worker's packets per dark IPv4 address, by the dense
// index of SetDenseDsts' space (nil: none): a space too wide for the hotspot's own index
// takes its receiver distribution from them (hotwide.go). Call it after SetDenseDsts and
// whenever the worker replaces the array, between packets; the engine reads the array at
// window edges only, on the worker's goroutine.
func (e *Engine) SetDenseCounts(counts []uint32) {
	hw := &e.hot
	hw.wide.set(hw.widePx, counts)
	if hw.open && e.hotOn() {
		hw.wide.sync(-1) // the rest of the open window counts
	}
	e.noteWide()
}

// wideHandOver hands the open window's wide counts to the shared aggregator (keep false:
// they are dropped) and starts the next window's from now.
func (e *Engine) wideHandOver(keep bool) {
	hw := &e.hot
	w := &hw.wide
	if !w.on() {
		return
	}
	if !w.synced {
		w.sync(e.curDense)
		return
	}
	if !keep || hw.shared == nil {
		w.take(nil, e.curDense)
		return
	}
	list := make([]uint64, 0, w.last+w.last/8)
	w.take(&list, e.curDense)
	hw.shared.reportWide(e.worker, hw.size, hw.win, list, w.px)
}

// inWide reports whether a is an address of the wide dark space px (nil: none), whose
// packets the receiver distribution takes from the engines' wide counts.
func inWide(px *aggregate.Prefixes, a *packet.Addr) bool {
	if px == nil || !a.Is4() {
		return false
	}
	_, ix := px.MatchDst(a, true)
	return ix >= 0
}

// reportWide adds worker w's wide counts of window win (sorted by index; numbered by px).
func (hs *Hotspots) reportWide(w int, size, win int64, list []uint64, px *aggregate.Prefixes) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for hs.saving {
		hs.cond.Wait()
	}
	if !hs.evalOn {
		hs.settle()
	}
	if !hs.enabled || size != hs.size || w < 0 || w >= len(hs.started) || len(list) == 0 {
		return
	}
	p := hs.pendingWin(win)
	switch {
	case p.widePx == nil:
		p.widePx = px
	case p.widePx != px && !p.widePx.SameExact(px):
		p.wideMixed = true // a reload renumbered the space within the window
	}
	if !slices.ContainsFunc(p.widePxs, func(q *aggregate.Prefixes) bool { return q == px || q.SameExact(px) }) {
		p.widePxs = append(p.widePxs, px)
	}
	p.wide = append(p.wide, list)
}

// wideCell reports whether a is a destination of a wide dark space whose packets the
// receiver distribution takes from the engines' counts (the engines' space now, or one of
// window p's lists): its cells are left out of the histogram.
func (hs *Hotspots) wideCell(p *hotPending, a *packet.Addr) bool {
	if inWide(hs.wide.Load(), a) {
		return true
	}
	for _, px := range p.widePxs {
		if inWide(px, a) {
			return true
		}
	}
	return false
}

// observeWide adds the window's wide-space destinations to b: each address's packets
// summed over the lists (each sorted by index). Lists of several numberings (a reload
// within the window) are observed entry by entry instead, counted as unmerged.
func (hs *Hotspots) observeWide(p *hotPending, b *aggregate.HistBatch) {
	lists := p.wide
	if p.wideMixed || len(lists) == 1 {
		n := 0
		for _, l := range lists {
			for _, v := range l {
				b.Add(uint64(uint32(v)))
			}
			n += len(l)
		}
		if p.wideMixed {
			hs.Unmerged.Add(uint64(n))
		}
		return
	}
	if len(lists) == 2 {
		observeWide2(lists[0], lists[1], b)
		return
	}
	pos := make([]int, len(lists))
	for {
		next := uint64(math.MaxUint64)
		for i, l := range lists {
			if pos[i] < len(l) {
				next = min(next, l[pos[i]]>>32)
			}
		}
		if next == math.MaxUint64 {
			return
		}
		var sum uint64
		for i, l := range lists {
			if pos[i] < len(l) && l[pos[i]]>>32 == next {
				sum += uint64(uint32(l[pos[i]]))
				pos[i]++
			}
		}
		b.Add(sum)
	}
}

// observeWide2 is observeWide's merge of two lists (two workers: the common case).
func observeWide2(x, y []uint64, b *aggregate.HistBatch) {
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch a, c := x[i]>>32, y[j]>>32; {
		case a < c:
			b.Add(uint64(uint32(x[i])))
			i++
		case a > c:
			b.Add(uint64(uint32(y[j])))
			j++
		default:
			b.Add(uint64(uint32(x[i])) + uint64(uint32(y[j])))
			i, j = i+1, j+1
		}
	}
	for ; i < len(x); i++ {
		b.Add(uint64(uint32(x[i])))
	}
	for ; j < len(y); j++ {
		b.Add(uint64(uint32(y[j])))
	}
}
