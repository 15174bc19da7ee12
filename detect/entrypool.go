package detect

// entryChunk is how many entries an entryPool allocates at once.
const entryChunk = 128

// entryPool hands out zeroed entries from chunks allocated together: one allocation per
// entryChunk entries instead of one per episode start and end, which under a spoofed flood
// (an episode started and ended per packet) is most of the events' cost. An entry is never
// reused (sinks may keep it: the log queue, the report's spool); a chunk is freed once
// none of its entries is referenced.
type entryPool[T any] struct{ buf []T }

func (p *entryPool[T]) get() *T {
	if len(p.buf) == 0 {
		p.buf = make([]T, entryChunk)
	}
	e := &p.buf[0]
	p.buf = p.buf[1:]
	return e
}
