package logq

import (
	"bytes"
	"fmt"
	"strings"
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
