package detect

import (
	"encoding/binary"
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
	last   int                 // bytes of the last window's list (the next list's room)
	spare  []byte              // an array the shared aggregator gave back, for the next list
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
// start to out, in index order, and moves the start to now. cur is the dense index of the
// packet being handled (-1: none): its worker counted it already, and it belongs to the
// window that opens. (A count the worker handed to its summary at 2^32-1 packets restarted
// at 1: DenseWrapped moved its start with it.)
func (w *hotWide) take(out *wideList, cur int32) {
	w.diffs(out, cur, true)
	if out != nil {
		w.last = len(out.b)
	}
}

// pending returns the open window's counts so far, as take would, leaving them in place.
func (w *hotWide) pending() []byte {
	if !w.synced {
		return nil
	}
	var out wideList
	w.diffs(&out, -1, false)
	return out.b
}

// diffs appends to out (nil: none) each address's packets since the window's start (cur
// as in take), moving the start to now when move is set.
func (w *hotWide) diffs(out *wideList, cur int32, move bool) {
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
			w.diffAt(out, 2*j, move)
			w.diffAt(out, 2*j+1, move)
		}
	}
	if n < len(counts) {
		w.diffAt(out, n, move)
	}
	if cur >= 0 {
		w.base[cur]-- // it counts from the window that opens
	}
}

// diffAt is diffs for address ix.
func (w *hotWide) diffAt(out *wideList, ix int, move bool) {
	c := w.counts[ix]
	if d := c - w.base[ix]; d != 0 {
		if out != nil {
			out.add(ix, d)
		}
		if move {
			w.base[ix] = c
		}
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

// load sets the window's start from a list pending wrote (checked: checkWide), with the
// counts restored.
func (w *hotWide) load(list []byte) {
	if w.counts == nil {
		return
	}
	copy(w.base, w.counts)
	for it := (wideIter{b: list}); it.next(); {
		w.base[it.ix] -= uint32(it.n)
	}
	w.synced = true
}

// wideList is a window's packets per address of a wide dark space, in index order, each
// address as two unsigned varints: its index's gap from the previous one's (less one) and
// its packets. A /8 swarm's window has millions of addresses; as 8 bytes each, the lists in
// flight took the heap from 50 to 250 MB, where this takes 2 to 3 bytes an address.
type wideList struct {
	b    []byte
	next int // the lowest index the next address may have
}

// add appends address ix (past the last one added) with n packets.
func (l *wideList) add(ix int, n uint32) {
	l.b = binary.AppendUvarint(l.b, uint64(ix-l.next))
	l.b = binary.AppendUvarint(l.b, uint64(n))
	l.next = ix + 1
}

// wideIter reads a wideList's bytes (the zero value with b set starts at the first).
type wideIter struct {
	b    []byte
	ix   int64 // the address read last, and its packets
	n    uint64
	from int64 // the lowest index the next address may have
	bad  bool  // a varint was cut short or overflowed
}

// next reads the next address into ix and n, false at the end (or at a bad varint).
func (it *wideIter) next() bool {
	if len(it.b) == 0 {
		return false
	}
	g, k := binary.Uvarint(it.b)
	if k <= 0 {
		it.bad = true
		return false
	}
	n, m := binary.Uvarint(it.b[k:])
	if m <= 0 {
		it.bad = true
		return false
	}
	it.b, it.ix, it.n = it.b[k+m:], it.from+int64(min(g, 1<<40)), n
	it.from = it.ix + 1
	return true
}

// checkWide reports what is wrong with a list of wide counts for a space of n addresses
// (indexes below n, packets from 1 to 2^32-1, whole varints), "" if nothing.
func checkWide(list []byte, n int) string {
	it := wideIter{b: list}
	for it.next() {
		switch {
		case it.ix >= int64(n):
			return "dense index past the dark space"
		case it.n == 0 || it.n > math.MaxUint32:
			return "an address's packets out of range"
		}
	}
	if it.bad {
		return "a count cut short"
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

// DenseWrapped tells the engine that its worker handed address ix's count to its summary
// at 2^32-1 packets and restarted it at 1 with the packet being handled, not at 0 (an
// address never hit): the count is one more than its packets since the window's start
// modulo 2^32, so the start moves up one with it. Rare (2^32 packets to one address); the
// window's count would have said one packet too many.
func (e *Engine) DenseWrapped(ix int32) {
	if w := &e.hot.wide; w.on() && w.synced && ix >= 0 && int(ix) < len(w.base) {
		w.base[ix]++
	}
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
	list := wideList{b: w.spare[:0]}
	if cap(list.b) < w.last {
		list.b = make([]byte, 0, w.last+w.last/8)
	}
	w.take(&list, e.curDense)
	w.spare = hw.shared.reportWide(e.worker, hw.size, hw.win, list.b, w.px)
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

// reportWide adds worker w's wide counts of window win (sorted by index; numbered by px),
// keeping the array, and returns one an evaluated window gave back (nil: none) for the
// worker's next list: a /8 swarm's are tens of MB a window.
func (hs *Hotspots) reportWide(w int, size, win int64, list []byte, px *aggregate.Prefixes) (spare []byte) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for hs.saving {
		hs.cond.Wait()
	}
	if !hs.evalOn {
		hs.settle()
	}
	if !hs.enabled || size != hs.size || w < 0 || w >= len(hs.started) || len(list) == 0 {
		return list // not kept: the worker's again
	}
	if len(hs.spareWide) > 0 {
		spare, hs.spareWide = popSpare(hs.spareWide, capOf)
	}
	p := hs.pendingWin(win)
	if !slices.ContainsFunc(p.widePxs, func(q *aggregate.Prefixes) bool { return q == px || q.SameExact(px) }) {
		p.wideMixed = p.wideMixed || len(p.widePxs) > 0 // a reload renumbered the space within the window
		p.widePxs = append(p.widePxs, px)
	}
	p.wide = append(p.wide, list)
	return spare
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
// summed over the lists (each in index order). Lists of several numberings (a reload
// within the window) are observed entry by entry instead, counted as unmerged.
func (hs *Hotspots) observeWide(p *hotPending, b *aggregate.HistBatch) {
	lists := p.wide
	if p.wideMixed {
		n := uint64(0)
		for _, l := range lists {
			for it := (wideIter{b: l}); it.next(); n++ {
				b.Add(it.n)
			}
		}
		hs.Unmerged.Add(n)
		return
	}
	its := make([]wideIter, len(lists))
	live := 0
	for i, l := range lists {
		its[i] = wideIter{b: l}
		if its[i].next() {
			its[live] = its[i]
			live++
		}
	}
	its = its[:live]
	for len(its) > 0 {
		next := its[0].ix
		for i := 1; i < len(its); i++ {
			next = min(next, its[i].ix)
		}
		var sum uint64
		for i := 0; i < len(its); {
			if its[i].ix != next {
				i++
				continue
			}
			sum += its[i].n
			if its[i].next() {
				i++
				continue
			}
			its[i] = its[len(its)-1] // this list is done
			its = its[:len(its)-1]
		}
		b.Add(sum)
	}
}

// maxWideBytes bounds a wideList of a space of n addresses: two varints of at most 5 bytes
// an address.
func maxWideBytes(n int) int { return 10 * n }
