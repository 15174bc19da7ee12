package detect

// entryChunk is how many entries an entryPool allocates at once.
const entryChunk = 128

// entryPool hands out zeroed entries from chunks allocated together: one allocation per
// entryChunk entries instead of one per episode start and end, which under a spoofed flood
// (an episode started and ended per packet) is most of the events' cost. An entry is never
// reused (sinks may keep it: the log queue, the report's spool); a chunk is freed once
// none of its entries is referenced.
//
// With a transient sink (TransientSink) the pool hands out one entry again and again
// instead (reuse): its sinks copy what they keep (KeepEntry), so a flood's entries are
// not allocated, zeroed and collected one per event (a fifth of the CPU of a replay of a
// flood of one-packet Mirai episodes).
type entryPool[T any] struct {
	buf     []T
	scratch T
	reuse   bool
}

func (p *entryPool[T]) get() *T {
	if p.reuse {
		var zero T
		p.scratch = zero
		return &p.scratch
	}
	if len(p.buf) == 0 {
		p.buf = make([]T, entryChunk)
	}
	e := &p.buf[0]
	p.buf = p.buf[1:]
	return e
}
