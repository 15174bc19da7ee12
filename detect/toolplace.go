package detect

import (
	"math/bits"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// Tool episodes in place. Most tool episodes are Mirai bots: one to a few SYN probes each,
// tens of thousands a day, a new one per packet in a flood. Moving each into the episode
// table (a record of several hundred bytes, its index entry and its due entry, then the
// deletion) cost more than everything else the flood's packets do. So, when the engine can
// read the pipeline's source table (SetSources) and knows the packet's slot (PacketIn), a
// tool episode stays in the source's SourceState.FP: a window with Labels set is an active
// episode. It ends like a record's: after a window without a probe (toolDue, by slot), when
// the source is evicted (Evicted), at Finish, or when the detector is turned off.
//
// A source table's slots keep their place (the table grows by chunks). A due entry names
// only a slot: when it comes up, the slot's episode, whichever source holds it now, ends if
// it is due, or gets an entry at its real due time. Every episode in place pushed an entry
// when it started, due no later than the episode, so none ends late; an entry whose episode
// ended (eviction, a gap) finds the slot without one, or with a newer one not yet due.
//
// Without SetSources (or with slot -1) tool episodes move into the episode table as before,
// and records restored from an older checkpoint go on there until they end.

// Sources is the pipeline's per-source table as the engine reads it: At(i) returns slot i's
// key and state (a free slot's state is zero), for i < Slots(); Cap() is the most slots
// it can grow to.
type Sources interface {
	Slots() int
	Cap() int
	At(i int32) (*packet.Addr, *SourceState)
}

// SetSources gives the engine the source table whose SourceStates PacketIn receives (nil:
// none). Call it before the first packet and before LoadState.
func (e *Engine) SetSources(s Sources) {
	e.srcs = s
	if s != nil {
		reserveQueue(&e.toolDue, toolDueLimit(s.Cap()))
	}
	e.requeueTools()
}

// toolRef names a source-table slot that held a tool episode in place.
type toolRef int32

// toolDueLimit is the tool queue length past which it is rebuilt from the source table
// (slots: the table's slots): four entries of 16 bytes per slot, the memory the record
// queue takes with two of 32. A flood of one-probe episodes pushes one entry per packet;
// the rebuild reads every slot, once per three tables' worth of packets.
func toolDueLimit(slots int) int { return 4*slots + 1024 }

// inPlace reports whether a new tool episode of the current packet's source stays in place.
func (e *Engine) inPlace() bool { return e.srcs != nil && e.slot >= 0 }

// queueTool pushes the due entry of the tool episode that the window in slot `slot` is
// about to become (its labels are not set yet: a rebuild here leaves it out), whose last
// probe was at last.
func (e *Engine) queueTool(slot int32, last int64) {
	if e.toolDue.len() >= toolDueLimit(e.srcs.Slots()) {
		e.requeueTools()
	}
	due := last + e.window
	e.toolDue.push(due, toolRef(slot))
	e.watchDue(due)
}

// placedTool returns the source in slot r and its tool window while that holds an active
// episode, else nil.
func (e *Engine) placedTool(r toolRef) (*packet.Addr, *ToolWindow) {
	if e.srcs == nil || int(r) >= e.srcs.Slots() {
		return nil, nil
	}
	k, st := e.srcs.At(int32(r))
	if st.FP.Labels == 0 {
		return nil, nil
	}
	return k, &st.FP
}

// warmTool requests the lines placedTool and an end will read of slot r (the source's key
// and tool window), without waiting.
func (e *Engine) warmTool(r toolRef) {
	if e.srcs == nil || int(r) >= e.srcs.Slots() {
		return
	}
	k, st := e.srcs.At(int32(r))
	prefetch.Line(unsafe.Pointer(k))
	prefetch.Span(unsafe.Pointer(&st.FP), unsafe.Sizeof(st.FP))
}

// eachToolInPlace calls fn for every slot of the source table holding a tool episode in
// place, in slot order (none without the table).
func (e *Engine) eachToolInPlace(fn func(slot int32, src *packet.Addr, w *ToolWindow)) {
	if e.srcs == nil {
		return
	}
	for i := range int32(e.srcs.Slots()) {
		if k, st := e.srcs.At(i); st.FP.Labels != 0 {
			fn(i, k, &st.FP)
		}
	}
}

// requeueTools rebuilds the tool episodes' due entries from the source table: one per
// episode in place, at its last probe + window (after a reload, a restore, or once the
// entries of ended episodes pile up).
func (e *Engine) requeueTools() {
	e.toolDue.reset()
	h := e.toolDue.heap
	e.eachToolInPlace(func(slot int32, _ *packet.Addr, w *ToolWindow) {
		h = append(h, dueItem[toolRef]{w.Last + e.window, toolRef(slot)})
	})
	h.heapify()
	e.toolDue.heap = h
	if d, ok := e.toolDue.top(); ok {
		e.watchDue(d)
	}
}

// endToolsDue ends the tool episodes in place quiet for longer than the window at now.
func (e *Engine) endToolsDue(now int64) {
	for {
		d, ok := e.toolDue.top()
		if !ok || d >= now {
			return
		}
		if a, ok := e.toolDue.next(dueAhead); ok {
			e.warmTool(a)
		}
		r := e.toolDue.pop().ref
		src, w := e.placedTool(r)
		if w == nil {
			continue // ended already
		}
		if now-w.Last <= e.window {
			e.toolDue.push(w.Last+e.window, r)
			continue
		}
		e.endToolWindow(*src, w)
	}
}

// endToolsInPlace ends every tool episode in place (Finish, or the detector turned off).
func (e *Engine) endToolsInPlace() {
	e.eachToolInPlace(func(_ int32, src *packet.Addr, w *ToolWindow) { e.endToolWindow(*src, w) })
	e.toolDue.reset()
}

// countToolsInPlace adds the restored tool episodes in place to the active gauge.
func (e *Engine) countToolsInPlace() {
	e.eachToolInPlace(func(_ int32, _ *packet.Addr, w *ToolWindow) {
		e.c.Active[detFingerprint].Add(int64(bits.OnesCount8(w.Labels)))
	})
}
