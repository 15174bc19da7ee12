// Package logq puts a bounded queue between the code that logs and the log output, so a
// slow or stalled output (stderr on a pipe nobody reads, a full FIFO, a slow journald)
// never blocks the caller: the packet path keeps counting, SIGTERM and /-/reload keep
// working. When the queue is full an entry is dropped and counted; the first write that
// completes after a stall logs how long the output was stalled and how much was dropped.
package logq

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap/zapcore"
)

// DefaultSize is the queue length in entries. An entry holds its zap fields (a detection
// event: about 0.5 KiB), so a full queue holds a few MiB; lines its callers encoded
// (WriteLines) are bounded in bytes to as much (lineBytesPerEntry).
const DefaultSize = 8192

// DefaultStall is how long one write may take before the output counts as stalled.
const DefaultStall = 2 * time.Second

// Options configure a Queue.
type Options struct {
	Size  int           // entries (DefaultSize when 0)
	Stall time.Duration // DefaultStall when 0
	// FlushDelay is how long entries written to a buffered output (Buffer) may wait there
	// before the queue syncs it, once the queue has emptied; 0 syncs at once. Each sync is
	// a write system call, and on a live capture each woke the runtime's sysmon into 20 µs
	// ticks for a millisecond or more (see run): a delay of a second makes that once a
	// second. Drain and Sync flush at once.
	FlushDelay time.Duration
	// Lossless makes a full queue wait for room while the output makes progress (replay,
	// where nothing is lost by waiting); entries are dropped only once it is stalled.
	// Otherwise a full queue drops at once (live capture).
	Lossless bool
	// Release: once an entry is written, the queue gives back each field value that has a
	// ReleaseLogged method (Releaser; detect.LogEntry's copies) to its owner. Only for an
	// inner core that keeps nothing of the fields once Write returns (zapcore.NewCore
	// writing to a WriteSyncer; not an observer that records the fields for later).
	Release bool
	// Lines, when set, takes lines its callers encoded themselves (WriteLines): the inner
	// core's own output, so that they come out in queue order with the core's lines.
	Lines *Lines
}

// Lines is where lines encoded by the queue's callers go, and what they encode them with:
// a caller that logs many lines of one shape (the pipeline's detection events) appends
// them to a buffer as the inner core's encoder would write them and hands the buffer over
// at once (Queue.WriteLines), rather than each line as a zap entry (a check, an entry, a
// queue item and an encoding each, a tenth of the CPU time of the 20x day's 90 000
// lines).
type Lines struct {
	Out io.Writer // the inner core's output
	// Encoder is what callers encode their lines with, as the core's encoder would write
	// them; the queue only hands it on (Queue.LineEncoder): its type is the callers' concern.
	Encoder any
}

// Releaser is a field value the queue gives back once written (see Options.Release).
type Releaser interface{ ReleaseLogged() }

// Queue is a bounded queue in front of a zapcore.Core with one writer goroutine.
type Queue struct {
	inner    zapcore.Core
	ch       chan item
	stall    time.Duration
	release  bool
	lossless atomic.Bool
	lines    *Lines
	// lineBytes is the bytes of encoded lines queued (WriteLines), at most maxLineBytes
	// but for one buffer.
	lineBytes    atomic.Int64
	maxLineBytes int64

	dropped    atomic.Uint64
	pending    atomic.Int64 // entries queued or being written
	flushDelay time.Duration
	unflushed  atomic.Bool   // entries written, the output not synced since (FlushDelay)
	draining   atomic.Int32  // Drains waiting: sync at once
	hurry      chan struct{} // Drain to the writer: sync what waits now
	busySince  atomic.Int64  // unix nanos the current write started, 0 when idle
	lastDone   atomic.Int64  // unix nanos the last write ended
	reportedAt uint64        // dropped count already reported (writer goroutine only)
	lastReport time.Time     // (writer goroutine only)
}

type item struct {
	core   zapcore.Core
	ent    zapcore.Entry
	fields []zapcore.Field
	// lines, when n > 0, is n lines encoded by the caller (WriteLines), written as they are.
	lines []byte
	n     int
}

// entries is how many log entries the item holds.
func (it *item) entries() uint64 { return uint64(max(it.n, 1)) }

// New starts the writer goroutine for inner. It runs for the life of the process. The
// goroutine calls inner.Sync whenever the queue empties (or FlushDelay later): give inner
// a buffered WriteSyncer (see Buffer) to write many entries at once.
func New(inner zapcore.Core, o Options) *Queue {
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	if o.Stall <= 0 {
		o.Stall = DefaultStall
	}
	q := &Queue{inner: inner, ch: make(chan item, o.Size), stall: o.Stall, flushDelay: o.FlushDelay, hurry: make(chan struct{}, 1), release: o.Release, lines: o.Lines,
		maxLineBytes: int64(o.Size) * lineBytesPerEntry}
	q.lossless.Store(o.Lossless)
	q.lastDone.Store(time.Now().UnixNano())
	go q.run()
	return q
}

// Core returns the core to build loggers on (zap.New(q.Core())).
func (q *Queue) Core() zapcore.Core { return &core{q: q, inner: q.inner} }

// SetLossless switches between waiting for room (true) and dropping at once (false), for
// example to stop waiting once the process is told to stop.
func (q *Queue) SetLossless(on bool) { q.lossless.Store(on) }

// Dropped returns the entries dropped so far because the queue was full.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Healthy returns an error while one write has been blocked for longer than the stall
// time (for /-/healthy).
func (q *Queue) Healthy() error {
	if s := q.busySince.Load(); s != 0 {
		if d := time.Since(time.Unix(0, s)); d > q.stall {
			return fmt.Errorf("log output stalled for %s; %d log entries dropped so far", d.Round(time.Second), q.Dropped())
		}
	}
	return nil
}

func (q *Queue) stalled() bool { return q.Healthy() != nil }

// Drain waits until every queued entry is written, giving up once no entry has been
// written for the stall time; what is still queued then is discarded and counted. It
// returns the entries dropped over the life of the queue.
func (q *Queue) Drain() uint64 {
	// Progress counts from the drain's start: an output idle before it (nothing to write)
	// is not stalled.
	start := time.Now().UnixNano()
	q.draining.Add(1)
	defer q.draining.Add(-1)
	for q.pending.Load() > 0 || q.unflushed.Load() {
		select {
		case q.hurry <- struct{}{}: // written entries waiting for FlushDelay: now
		default:
		}
		if time.Since(time.Unix(0, max(q.lastDone.Load(), start))) > q.stall {
			for {
				select {
				case it := <-q.ch:
					q.pending.Add(-1)
					q.dropped.Add(it.entries())
					q.unreserve(&it)
					continue
				default:
				}
				break
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return q.Dropped()
}

func (q *Queue) enqueue(it item) {
	q.pending.Add(1)
	if q.reserve(&it) {
		select {
		case q.ch <- it:
			return
		default:
			q.unreserve(&it)
		}
	}
	if q.lossless.Load() {
		t := time.NewTimer(50 * time.Millisecond)
		defer t.Stop()
		for !q.stalled() {
			if !q.reserve(&it) {
				time.Sleep(time.Millisecond)
				continue
			}
			select {
			case q.ch <- it:
				return
			case <-t.C:
				q.unreserve(&it)
				t.Reset(50 * time.Millisecond)
			}
		}
	}
	q.pending.Add(-1)
	q.dropped.Add(it.entries())
	if it.n > 0 {
		putLines(it.lines)
	}
}

// lineBytesPerEntry is the queue's budget of encoded lines' bytes (WriteLines) per entry
// of its length: a queue of lines holds about what a queue of entries would.
const lineBytesPerEntry = 512

// reserve takes room for it's lines in the queue's budget of line bytes, reporting false
// when there is none (there is always room for one buffer when none is queued).
func (q *Queue) reserve(it *item) bool {
	if it.n == 0 {
		return true
	}
	n := int64(len(it.lines))
	if after := q.lineBytes.Add(n); after > q.maxLineBytes && after != n {
		q.lineBytes.Add(-n)
		return false
	}
	return true
}

// unreserve gives back the room reserve took for it.
func (q *Queue) unreserve(it *item) {
	if it.n > 0 {
		q.lineBytes.Add(-int64(len(it.lines)))
	}
}

func (q *Queue) run() {
	var timer *time.Timer
	var due <-chan time.Time // set while written entries wait in the output for Sync
	for {
		var it item
		select {
		case it = <-q.ch:
		case <-due:
			due = nil
			q.end(q.begin(), q.flush)
			continue
		case <-q.hurry:
			if due != nil {
				timer.Stop()
				due = nil
				q.end(q.begin(), q.flush)
			}
			continue
		}
		start := q.begin()
		q.write(&it)
		// Nothing more to write for now: flush a buffered output (one write for every entry
		// that queued up while the last one was written), at once or FlushDelay later.
		switch {
		case len(q.ch) > 0:
		case q.flushDelay <= 0 || q.draining.Load() > 0:
			q.flush()
		case due == nil:
			q.unflushed.Store(true)
			if timer == nil {
				timer = time.NewTimer(q.flushDelay)
			} else {
				timer.Reset(q.flushDelay)
			}
			due = timer.C
		}
		q.end(start, nil)
		q.pending.Add(-1)
	}
}

// write writes one item to the output.
func (q *Queue) write(it *item) {
	if it.n > 0 {
		_, _ = q.lines.Out.Write(it.lines)
		q.unreserve(it)
		putLines(it.lines)
	} else {
		_ = it.core.Write(it.ent, it.fields)
	}
	if q.release { // a buffer of lines has no fields
		for _, f := range it.fields {
			if r, ok := f.Interface.(Releaser); ok {
				r.ReleaseLogged()
			}
		}
	}
}

// flush syncs the output: a buffered one writes what it holds.
func (q *Queue) flush() {
	_ = q.inner.Sync()
	q.unflushed.Store(false)
}

// begin marks the start of a write to the output, the one the stall check and Healthy
// watch.
func (q *Queue) begin() time.Time {
	start := time.Now()
	q.busySince.Store(start.UnixNano())
	return start
}

// end runs fn (nil: none) as part of the write begun at start, ends it, and then reports
// drops and stalls: once the output works again, after a stalled write, or once the queue
// has emptied after drops (at most once per stall time).
func (q *Queue) end(start time.Time, fn func()) {
	if fn != nil {
		fn()
	}
	end := time.Now()
	q.busySince.Store(0)
	q.lastDone.Store(end.UnixNano())
	took := end.Sub(start)
	if d := q.dropped.Load(); took > q.stall || d != q.reportedAt && len(q.ch) == 0 && end.Sub(q.lastReport) > q.stall {
		q.reportedAt, q.lastReport = d, end
		ent := zapcore.Entry{Level: zapcore.WarnLevel, Time: end,
			Message: "log output was stalled or too slow; entries were dropped"}
		_ = q.inner.Write(ent, []zapcore.Field{
			{Key: "stalled_for", Type: zapcore.DurationType, Integer: int64(took)},
			{Key: "log_entries_dropped_total", Type: zapcore.Uint64Type, Integer: int64(d)},
		})
		_ = q.inner.Sync()
	}
}

// LineEncoder returns Options.Lines' encoder, nil when the queue takes no encoded lines.
func (q *Queue) LineEncoder() any {
	if q.lines == nil {
		return nil
	}
	return q.lines.Encoder
}

// Enabled reports whether the queue's output writes lines of level l.
func (q *Queue) Enabled(l zapcore.Level) bool { return q.inner.Enabled(l) }

// WriteLines queues n lines that the caller encoded with LineEncoder's encoder, b holding
// them (each with its line ending), as n entries (dropped, when the queue is full, as n).
// The queue takes b over: the caller gets its next buffer from LineBuffer. A queue without
// Options.Lines drops them.
func (q *Queue) WriteLines(b []byte, n int) {
	if n <= 0 {
		putLines(b)
		return
	}
	if q.lines == nil {
		q.dropped.Add(uint64(n))
		return
	}
	q.enqueue(item{lines: b, n: n})
}

// LineBuffer returns an empty buffer for WriteLines: one the queue has written, or a new
// one of 64 KiB.
func LineBuffer() []byte {
	if p, ok := linePool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 64<<10)
}

var linePool sync.Pool

// putLines gives a written buffer back for LineBuffer (very large ones, after a burst, go
// to the garbage collector).
func putLines(b []byte) {
	if cap(b) > 0 && cap(b) <= 4<<20 {
		linePool.Put(&b)
	}
}

// core queues every entry it is asked to write.
type core struct {
	q     *Queue
	inner zapcore.Core
}

func (c *core) Enabled(l zapcore.Level) bool { return c.inner.Enabled(l) }

func (c *core) With(fields []zapcore.Field) zapcore.Core {
	return &core{q: c.q, inner: c.inner.With(fields)}
}

func (c *core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.Level >= zapcore.DPanicLevel {
		// The process may end right after: write it now.
		return c.inner.Write(e, fields)
	}
	c.q.enqueue(item{core: c.inner, ent: e, fields: fields})
	return nil
}

// Sync waits (bounded, see Drain) until the queue is written and flushed. The output's
// own Sync runs on the writer goroutine only, so a stalled output never blocks here.
func (c *core) Sync() error {
	c.q.Drain()
	if c.q.stalled() {
		return errors.New("log output stalled")
	}
	return nil
}

// Wrap returns the queue behind c when c is already a queue's core (so a logger passed
// down is not queued twice), else a new queue for c.
func Wrap(c zapcore.Core, o Options) *Queue {
	if qc, ok := c.(*core); ok && qc.inner == qc.q.inner {
		return qc.q
	}
	return New(c, o)
}

// Buffer is a WriteSyncer that collects writes in memory (up to 256 KiB) until Sync; the
// queue's goroutine calls Sync whenever it has nothing more to write (or FlushDelay later).
func Buffer(w io.Writer) zapcore.WriteSyncer { return &buffer{w: w} }

type buffer struct {
	w   io.Writer
	buf []byte
}

func (b *buffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > 256<<10 {
		if err := b.Sync(); err != nil {
			return 0, err
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *buffer) Sync() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
