package logq

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slowCore counts the entries written, each after a delay.
type slowCore struct {
	zapcore.LevelEnabler
	delay   time.Duration
	written *atomic.Int64
}

func (c slowCore) With([]zapcore.Field) zapcore.Core { return c }
func (c slowCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}
func (c slowCore) Write(zapcore.Entry, []zapcore.Field) error {
	time.Sleep(c.delay)
	c.written.Add(1)
	return nil
}
func (c slowCore) Sync() error { return nil }

// TestDrainAfterIdle: entries logged after the output was idle for longer than the stall
// time (a daemon quiet for a while, then stopped: its last lines) are all written by
// Drain, not discarded as if the output were stalled.
func TestDrainAfterIdle(t *testing.T) {
	var written atomic.Int64
	q := New(slowCore{zapcore.InfoLevel, 5 * time.Millisecond, &written}, Options{Stall: 50 * time.Millisecond})
	log := zap.New(q.Core())
	log.Info("first")
	q.Drain()
	time.Sleep(150 * time.Millisecond) // idle: three stall times without a write
	for range 5 {
		log.Info("last lines")
	}
	if dropped := q.Drain(); dropped != 0 || written.Load() != 6 {
		t.Fatalf("after an idle output: %d entries written, %d dropped; want 6 and 0", written.Load(), dropped)
	}
}

// TestDrainGivesUpOnStall: an output that makes no progress for the stall time ends the
// drain, and what is still queued is counted as dropped.
func TestDrainGivesUpOnStall(t *testing.T) {
	var written atomic.Int64
	q := New(slowCore{zapcore.InfoLevel, time.Second, &written}, Options{Stall: 50 * time.Millisecond})
	log := zap.New(q.Core())
	for range 4 {
		log.Info("x")
	}
	for q.busySince.Load() == 0 { // the writer holds the first entry
		time.Sleep(time.Millisecond)
	}
	if dropped := q.Drain(); dropped != 3 || written.Load() != 0 {
		t.Fatalf("drain of a stalled output: %d dropped, %d written; want the 3 queued behind the stalled write dropped before it ends", dropped, written.Load())
	}
}

// pooledField is a logged value the queue gives back (Releaser): it records whether it was
// released, and a value released before its line was written would be logged as "gone".
type pooledField struct {
	n        int
	released atomic.Int32
}

func (p *pooledField) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if p.released.Load() != 0 {
		enc.AddString("n", "gone")
		return nil
	}
	enc.AddInt("n", p.n)
	return nil
}

func (p *pooledField) ReleaseLogged() { p.released.Add(1) }

// TestReleaseAfterWrite: with Release, each releasable field value is given back exactly
// once, after its line is written (so the line holds its value); without it, none is.
func TestReleaseAfterWrite(t *testing.T) {
	for _, release := range []bool{true, false} {
		var buf bytes.Buffer
		enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"})
		q := New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.InfoLevel), Options{Release: release, Lossless: true})
		log := zap.New(q.Core())
		fields := make([]*pooledField, 1000)
		for i := range fields {
			fields[i] = &pooledField{n: i}
			log.Info("x", zap.Inline(fields[i]), zap.String("other", "kept"))
		}
		q.Drain()
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != len(fields) {
			t.Fatalf("release %v: %d lines, want %d", release, len(lines), len(fields))
		}
		for i, l := range lines {
			if want := fmt.Sprintf(`{"msg":"x","n":%d,"other":"kept"}`, i); l != want {
				t.Fatalf("release %v: line %d is %s, want %s", release, i, l, want)
			}
		}
		want := int32(0)
		if release {
			want = 1
		}
		for i, f := range fields {
			if got := f.released.Load(); got != want {
				t.Fatalf("release %v: value %d released %d times, want %d", release, i, got, want)
			}
		}
	}
}

// blockingCore holds every write until release is closed.
type blockingCore struct {
	zapcore.Core
	started chan struct{}
	release chan struct{}
}

func (c blockingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c blockingCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	select {
	case c.started <- struct{}{}:
	default:
	}
	<-c.release
	return c.Core.Write(e, f)
}

// TestWriteLines: lines the callers encoded (WriteLines) come out in queue order with
// the core's own entries, through the same output, and a buffer of n lines dropped (a
// full queue, live) counts as n entries dropped.
func TestWriteLines(t *testing.T) {
	var buf bytes.Buffer
	out := zapcore.AddSync(&buf)
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"})
	q := New(zapcore.NewCore(enc, out, zapcore.InfoLevel), Options{Lossless: true, Lines: &Lines{Out: out, Encoder: "enc"}})
	if q.LineEncoder() != "enc" || !q.Enabled(zapcore.InfoLevel) || q.Enabled(zapcore.DebugLevel) {
		t.Fatalf("line encoder %v, levels", q.LineEncoder())
	}
	log := zap.New(q.Core())
	var want []string
	for i := range 50 {
		log.Info(fmt.Sprintf("entry %d", i))
		want = append(want, fmt.Sprintf(`{"msg":"entry %d"}`, i))
		b := LineBuffer()
		for k := range i % 4 {
			l := fmt.Sprintf(`{"line":"%d.%d"}`, i, k)
			b = append(b, l+"\n"...)
			want = append(want, l)
		}
		q.WriteLines(b, i%4)
	}
	if dropped := q.Drain(); dropped != 0 {
		t.Fatalf("%d dropped", dropped)
	}
	if got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); !slices.Equal(got, want) {
		t.Fatalf("lines out of order or missing:\n%q\nwant\n%q", got, want)
	}

	// Live (not lossless): with the output held and the queue full, a buffer of 7 lines
	// is dropped as 7 entries.
	bc := blockingCore{Core: zapcore.NewCore(enc, out, zapcore.InfoLevel), started: make(chan struct{}, 1), release: make(chan struct{})}
	q = New(bc, Options{Size: 1, Lines: &Lines{Out: out}})
	log = zap.New(q.Core())
	log.Info("held") // the writer takes it and waits
	<-bc.started
	log.Info("queued") // fills the queue
	q.WriteLines([]byte(strings.Repeat("{}\n", 7)), 7)
	if d := q.Dropped(); d != 7 {
		t.Errorf("%d dropped, want 7 (the lines of the buffer that found no room)", d)
	}
	close(bc.release)
	q.Drain()
}

// TestWriteLinesBudget: queued lines are bounded in bytes (lineBytesPerEntry per entry of
// the queue's size), not only in buffers: with the output held, a live queue takes one
// buffer past its budget when it holds none, drops the next, and takes buffers again once
// the output has written the first; a lossless one waits for the room instead.
func TestWriteLinesBudget(t *testing.T) {
	for _, lossless := range []bool{false, true} {
		var buf bytes.Buffer
		out := zapcore.AddSync(&buf)
		enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"})
		bc := blockingCore{Core: zapcore.NewCore(enc, out, zapcore.InfoLevel), started: make(chan struct{}, 1), release: make(chan struct{})}
		q := New(bc, Options{Size: 64, Lossless: lossless, Lines: &Lines{Out: out}})
		big := func(c byte) []byte { // 40 KiB of 1 KiB lines, over the budget of 32 KiB
			l := append(bytes.Repeat([]byte{c}, 1023), '\n')
			return bytes.Repeat(l, 40)
		}
		zap.New(q.Core()).Info("held")
		<-bc.started
		q.WriteLines(big('a'), 40) // nothing queued: taken though over the budget
		done := make(chan struct{})
		go func() {
			q.WriteLines(big('b'), 40) // no room: dropped (live) or waits (lossless)
			close(done)
		}()
		if lossless {
			select {
			case <-done:
				t.Fatal("lossless: a buffer past the budget was queued without waiting")
			case <-time.After(100 * time.Millisecond):
			}
		} else {
			<-done
			if d := q.Dropped(); d != 40 {
				t.Fatalf("live: %d dropped, want the 40 lines past the budget", d)
			}
		}
		close(bc.release)
		<-done
		for q.pending.Load() > 0 { // the output writes what is queued: room again
			time.Sleep(time.Millisecond)
		}
		q.WriteLines(big('c'), 40)
		q.Drain()
		count := func(c byte) int { return strings.Count(buf.String(), string(c)+"\n") }
		wantB := 40 * btoi(lossless)
		if count('a') != 40 || count('b') != wantB || count('c') != 40 || q.Dropped() != uint64(40-wantB) {
			t.Errorf("lossless %v: lines written a %d, b %d (want %d), c %d; %d dropped", lossless,
				count('a'), count('b'), wantB, count('c'), q.Dropped())
		}
		if q.lineBytes.Load() != 0 {
			t.Errorf("lossless %v: %d line bytes still counted as queued", lossless, q.lineBytes.Load())
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// syncedOut is an output whose writes a test reads while the queue's writer writes: what
// reached it, under a lock.
type syncedOut struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *syncedOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *syncedOut) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestFlushDelay: with FlushDelay, written entries wait in the buffered output (Buffer)
// until the delay has passed since the queue emptied, not a write each time it empties;
// Drain writes them at once, whatever the delay. Without a delay they are written as the
// queue empties.
func TestFlushDelay(t *testing.T) {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"})
	newQueue := func(delay time.Duration) (*Queue, *zap.Logger, *syncedOut) {
		out := &syncedOut{}
		ws := zapcore.Lock(Buffer(out))
		q := New(zapcore.NewCore(enc, ws, zapcore.InfoLevel), Options{FlushDelay: delay, Lines: &Lines{Out: ws}})
		return q, zap.New(q.Core()), out
	}
	written := func(q *Queue) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); q.pending.Load() > 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the queue's writer took no entry for 10 s")
			}
		}
	}
	const want = "{\"msg\":\"first\"}\n{\"msg\":\"second\"}\n{\"line\":1}\n"

	// A delay longer than the test: nothing reaches the output before Drain.
	q, log, out := newQueue(time.Hour)
	log.Info("first")
	log.Info("second")
	q.WriteLines([]byte("{\"line\":1}\n"), 1)
	written(q)
	time.Sleep(20 * time.Millisecond)
	if got := out.String(); got != "" {
		t.Fatalf("written before the flush delay: %q", got)
	}
	start := time.Now()
	if dropped := q.Drain(); dropped != 0 {
		t.Fatalf("%d dropped", dropped)
	}
	if got, took := out.String(), time.Since(start); got != want || took > time.Second {
		t.Fatalf("after Drain (%v): %q, want %q at once", took, got, want)
	}

	// A short delay: the entries come out on their own, without Drain.
	q, log, out = newQueue(20 * time.Millisecond)
	log.Info("first")
	log.Info("second")
	q.WriteLines([]byte("{\"line\":1}\n"), 1)
	for deadline := time.Now().Add(10 * time.Second); out.String() != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the 20 ms flush delay: %q, want %q", out.String(), want)
		}
	}

	// No delay: each entry is written once the queue has emptied.
	q, log, out = newQueue(0)
	log.Info("first")
	written(q)
	if got := out.String(); got != "{\"msg\":\"first\"}\n" {
		t.Fatalf("without a flush delay, once written: %q", got)
	}
	q.Drain()
}
