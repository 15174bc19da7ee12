package detect

import (
	"cmp"
	"math"
	"slices"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// Episode ends by time. Every active scanner, telnet sweep, tool or udp_then_syn episode has
// an entry in a min-heap ordered by the time it can end at the earliest (its last packet
// + window when the entry was pushed). Activity only moves an episode's end later, so when
// Advance pops an entry whose time has passed it looks at the episode once: it ends it, or
// pushes it again with its real end. Advance costs O(log n) per episode that could end, not
// a walk over every active episode each time one of them can.
//
// Entries are checked when popped, never updated in place: an entry of a flow episode that
// already ended (a later SYN or UDP closed it, or eviction) is recognised by its generation;
// a source may have several entries (one per promotion), each re-checking its record. The
// heaps are rebuilt from the tables once they hold more than twice the tables' capacity, so
// their memory stays bounded by limits.

// dueItem is one heap entry: ref can end at the earliest at due.
type dueItem[T any] struct {
	due int64
	ref T
}

// dueHeap is a binary min-heap on due.
type dueHeap[T any] []dueItem[T]

func (h *dueHeap[T]) push(due int64, ref T) {
	*h = append(*h, dueItem[T]{due, ref})
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].due <= s[i].due {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

// top returns the earliest due, ok=false when empty.
func (h dueHeap[T]) top() (int64, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return h[0].due, true
}

// pop removes and returns the earliest entry; the heap must not be empty.
func (h *dueHeap[T]) pop() dueItem[T] {
	s := *h
	it := s[0]
	n := len(s) - 1
	s[0] = s[n]
	var zero dueItem[T]
	s[n] = zero
	s = s[:n]
	*h = s
	h.down(0)
	return it
}

func (h dueHeap[T]) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].due < h[l].due {
			m = r
		}
		if h[i].due <= h[m].due {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// dueQueue is a min-queue on due: a FIFO for the entries pushed in due order and a heap for
// the others. A new episode's entry is due at its packet time + window, so pushes at packet
// time come in order; only a re-push (an episode that went on: its real end is earlier than
// newer entries') or a changed window goes to the heap. A flood of one-packet episodes then
// costs two sequential accesses per episode, not a heap's log n cache misses each way.
type dueQueue[T any] struct {
	fifo []dueItem[T] // [head:] in due order
	head int
	heap dueHeap[T]
}

// dueCompactMin is the FIFO length under which its dead entries are moved out only when it
// is full.
const dueCompactMin = 4096

// reserveQueue gives q's FIFO and heap address space for n entries each outside the Go heap
// (aggregate.Reserve; n is the queue's limit, at which it is rebuilt), keeping its entries.
// A flood of one-packet episodes pushes an entry per packet: grown by append, the FIFO was
// copied into fresh memory at each growth (nearly 9 M entries moved while a 2 M-packet Mirai
// flood filled the queues), and the garbage collector waited on those copies to stop the
// worker. Below 2 MiB, or where the mapping fails, the queue stays on the heap.
func reserveQueue[T any](q *dueQueue[T], n int) {
	if cap(q.fifo) < n {
		if f := aggregate.Reserve[dueItem[T]](q, n); f != nil {
			q.fifo, q.head = append(f[:0], q.fifo[q.head:]...), 0
		}
	}
	reserveHeap(&q.heap, q, n)
}

// reserveHeap is reserveQueue for a heap alone (owner: what holds it).
func reserveHeap[T, O any](h *dueHeap[T], owner *O, n int) {
	if cap(*h) < n {
		if r := aggregate.Reserve[dueItem[T]](owner, n); r != nil {
			*h = append(r[:0], *h...)
		}
	}
}

// next returns the FIFO's entry k places after its head, false past its end: most entries
// leave the queue through the FIFO (their episodes started in order), so those are what
// the next pops return, and a caller about to pop many can request what they name first
// (the heap's entries are few: a window changed, or an episode's end moved back).
func (q *dueQueue[T]) next(k int) (T, bool) {
	if i := q.head + k; i < len(q.fifo) {
		return q.fifo[i].ref, true
	}
	var zero T
	return zero, false
}

// dueAhead is how many entries ahead of the one being popped an episode end requests the
// lines of the state it will read: a due entry names a random slot of a table much larger
// than the cache, and the ends due at once (a window's worth of tool episodes on the 20x
// day) each waited for their own miss.
const dueAhead = 8

// len returns the entries queued.
func (q *dueQueue[T]) len() int { return len(q.fifo) - q.head + len(q.heap) }

func (q *dueQueue[T]) push(due int64, ref T) {
	n := len(q.fifo)
	if n > q.head && due < q.fifo[n-1].due {
		q.heap.push(due, ref)
		return
	}
	if q.head > 0 && (n == cap(q.fifo) || q.head >= n/2 && n >= dueCompactMin) {
		// Move the live entries down once the dead ones before them are as many (or at the
		// end of the memory): the FIFO stays within twice them, each move of an entry paid
		// by a pop, and a reserved FIFO (reserveQueue) does not walk through all its pages.
		m := copy(q.fifo, q.fifo[q.head:])
		clear(q.fifo[m:])
		q.fifo, q.head = q.fifo[:m], 0
	}
	q.fifo = append(q.fifo, dueItem[T]{due, ref})
}

// top returns the earliest due, ok=false when empty.
func (q *dueQueue[T]) top() (int64, bool) {
	d, ok := q.heap.top()
	if q.head < len(q.fifo) && (!ok || q.fifo[q.head].due < d) {
		return q.fifo[q.head].due, true
	}
	return d, ok
}

// pop removes and returns the earliest entry; the queue must not be empty.
func (q *dueQueue[T]) pop() dueItem[T] {
	if q.head < len(q.fifo) {
		if d, ok := q.heap.top(); !ok || q.fifo[q.head].due <= d {
			it := q.fifo[q.head]
			q.fifo[q.head] = dueItem[T]{}
			if q.head++; q.head == len(q.fifo) {
				q.fifo, q.head = q.fifo[:0], 0
			}
			return it
		}
	}
	return q.heap.pop()
}

// reset empties the queue, keeping its memory (entries hold no pointers: nothing to clear
// for the garbage collector, and a rebuild under a flood cleared tens of MiB).
func (q *dueQueue[T]) reset() {
	q.fifo, q.head, q.heap = q.fifo[:0], 0, q.heap[:0]
}

// heapify restores the heap order after the entries were rewritten.
func (h dueHeap[T]) heapify() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// dueLimit is the heap length past which a heap is rebuilt from its table.
func dueLimit(capacity int) int { return 2*capacity + 1024 }

// srcRef names a record of the episode table; it is current while the record's Seq is seq.
// slot is 1 + the record's slot when known (0: look src up), as in ToolWindow.Rec.
type srcRef struct {
	src  packet.Addr
	seq  uint64
	slot int32
}

// warmRecord requests the lines dueRecord will read of the record r names (its key and
// state), without waiting.
func (e *Engine) warmRecord(r *srcRef) {
	if i := r.slot - 1; i >= 0 && int(i) < e.eps.Slots() {
		k, rec := e.eps.At(i)
		prefetch.Line(unsafe.Pointer(k))
		prefetch.Line(unsafe.Pointer(&rec.Seq)) // Active is beside it
	}
}

// dueRecord returns the record r names while it is current, else nil.
func (e *Engine) dueRecord(r *srcRef) *episode {
	if i := r.slot - 1; i >= 0 && int(i) < e.eps.Slots() {
		if k, rec := e.eps.At(i); *k == r.src && rec.Active != 0 {
			if rec.Seq == r.seq {
				return rec
			}
			return nil
		}
	}
	if rec := e.eps.Get(r.src); rec != nil && rec.Seq == r.seq {
		return rec
	}
	return nil
}

// flowDueRef names a flow episode; seq orders the ends of episodes due at once.
type flowDueRef struct {
	flowRef
	seq uint64
}

// queueSource pushes the entry of src's record rec in slot `slot`, which was just promoted
// (rec.Seq is new: its older entries are stale). It can end at due at the earliest.
func (e *Engine) queueSource(src packet.Addr, rec *episode, slot int32, due int64) {
	if e.srcDue.len() >= dueLimit(e.eps.Cap()) {
		e.requeueSources()
	}
	e.srcDue.push(due, srcRef{src, rec.Seq, slot + 1})
	e.watchDue(due)
}

// requeueSources rebuilds the source heap from the episode table: one entry per record.
// The slots are read in memory order, not down the LRU list: under a flood of evictions
// the rebuild comes every table's worth of episodes, and following the list took a cache
// miss per record, one after the other. A slot without an active episode holds no record
// (deleted slots are zeroed, and a record is deleted once its last episode ends).
func (e *Engine) requeueSources() {
	e.srcDue.reset()
	h := e.srcDue.heap
	for i := range int32(e.eps.Slots()) {
		k, rec := e.eps.At(i)
		if rec.Active == 0 {
			continue
		}
		e.seq = max(e.seq, rec.Seq)
		if d, ok := e.recordDue(rec); ok {
			h = append(h, dueItem[srcRef]{d, srcRef{*k, rec.Seq, i + 1}})
		}
	}
	h.heapify()
	e.srcDue.heap = h
}

// recordDue returns the earliest time an active episode of rec can end.
func (e *Engine) recordDue(rec *episode) (int64, bool) {
	due, ok := int64(0), false
	for _, bit := range episodeBits {
		if rec.Active&bit != 0 {
			if d := rec.last(bit) + e.window; !ok || d < due {
				due, ok = d, true
			}
		}
	}
	return due, ok
}

// queueFlow pushes the entry of the flow episode k that just started (generation f.Gen),
// which can end at f.Last + window.
func (e *Engine) queueFlow(k flowKey, f *flow) {
	if len(e.flowDue) >= dueLimit(e.flows.Cap()) {
		e.requeueFlows()
	}
	e.seq++
	due := f.Last + e.window
	e.flowDue.push(due, flowDueRef{flowRef{key: k, gen: f.Gen}, e.seq})
	e.watchDue(due)
}

// liveFlow returns the flow of r while its episode is active, else nil.
func (e *Engine) liveFlow(r *flowRef) *flow {
	if f := e.flows.Get(r.key); f != nil && f.Active && f.Gen == r.gen {
		return f
	}
	return nil
}

// requeueFlows drops the entries of flow episodes that have ended and recomputes the
// others' times (the window may have changed).
func (e *Engine) requeueFlows() {
	kept := e.flowDue[:0]
	for _, it := range e.flowDue {
		if f := e.liveFlow(&it.ref.flowRef); f != nil {
			kept = append(kept, dueItem[flowDueRef]{f.Last + e.window, it.ref})
		}
	}
	clear(e.flowDue[len(kept):])
	e.flowDue = kept
	e.flowDue.heapify()
}

// requeue rebuilds both heaps with the current window (reload, restore) and has the next
// Advance look at them.
func (e *Engine) requeue() {
	e.requeueSources()
	e.requeueFlows()
	e.requeueTools()
	e.due = math.MinInt64
}

// lastOf returns the last packet time of st's window `bit` (about to become an episode).
func (st *SourceState) lastOf(bit uint8) int64 {
	switch bit {
	case epScan:
		return st.Scan.Last
	case epTel:
		return st.Tel.Last
	}
	return st.FP.Last
}

// watchDue keeps e.due at most due: Advance looks at the heaps only once e.due has passed.
func (e *Engine) watchDue(due int64) {
	if due < e.due {
		e.due = due
	}
}

// endDue ends the episodes quiet for longer than the window at now and sets e.due to the
// earliest time another one can end. The episodes due at once end in the order a walk
// over the tables gave before the heaps existed (and a checkpoint keeps): records most
// recently promoted first, then the tool episodes in place (toolplace.go) in due order,
// then flows in the order their episodes started.
func (e *Engine) endDue(now int64) {
	srcs := e.dueSrcs[:0]
	for {
		d, ok := e.srcDue.top()
		if !ok || d >= now {
			break
		}
		if a, ok := e.srcDue.next(dueAhead); ok {
			e.warmRecord(&a)
		}
		r := e.srcDue.pop().ref
		if e.dueRecord(&r) != nil {
			srcs = append(srcs, r)
		}
	}
	slices.SortFunc(srcs, func(a, b srcRef) int { return cmp.Compare(b.seq, a.seq) })
	for _, r := range srcs {
		rec := e.dueRecord(&r)
		var bits uint8
		for _, bit := range episodeBits {
			if rec.Active&bit != 0 && now-rec.last(bit) > e.window {
				bits |= bit
			}
		}
		e.endRecord(r.src, rec, bits)
		if next, ok := e.recordDue(rec); ok {
			e.srcDue.push(next, r)
		} else {
			e.eps.Delete(r.src)
		}
	}
	clear(srcs)
	e.dueSrcs = srcs[:0]
	e.endToolsDue(now)

	flows := e.dueFlows[:0]
	for {
		d, ok := e.flowDue.top()
		if !ok || d >= now {
			break
		}
		it := e.flowDue.pop()
		f := e.liveFlow(&it.ref.flowRef)
		if f == nil {
			continue // ended already
		}
		if now-f.Last <= e.window {
			e.flowDue.push(f.Last+e.window, it.ref)
			continue
		}
		flows = append(flows, it.ref)
	}
	e.endFlowsInOrder(flows)

	e.due = math.MaxInt64
	if d, ok := e.srcDue.top(); ok {
		e.due = d
	}
	if d, ok := e.flowDue.top(); ok && d < e.due {
		e.due = d
	}
	if d, ok := e.toolDue.top(); ok && d < e.due {
		e.due = d
	}
}

// endFlows ends every active flow episode (Finish, or the detector turned off), in the
// order they started.
func (e *Engine) endFlows() {
	flows := e.dueFlows[:0]
	for _, it := range e.flowDue {
		if e.liveFlow(&it.ref.flowRef) != nil {
			flows = append(flows, it.ref)
		}
	}
	e.endFlowsInOrder(flows)
	clear(e.flowDue)
	e.flowDue = e.flowDue[:0]
}

// endFlowsInOrder ends the listed flow episodes in the order they started and keeps the
// list's backing array (e.dueFlows) for the next call.
func (e *Engine) endFlowsInOrder(flows []flowDueRef) {
	slices.SortFunc(flows, func(a, b flowDueRef) int { return cmp.Compare(a.seq, b.seq) })
	for _, r := range flows {
		// A flow evicted and created again can reuse a generation: its key may be listed
		// twice (as in the walk over refs before), and ends at the first.
		if f := e.liveFlow(&r.flowRef); f != nil {
			e.endFlow(&r.key, f)
			e.flows.Delete(r.key)
		}
	}
	clear(flows)
	e.dueFlows = flows[:0]
}
