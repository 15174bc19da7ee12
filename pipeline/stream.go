package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telescope-dev/telescope/snapshot"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
)

// RecordSource is one live stream of packets (libpcap): unlike the AF_PACKET rings it is
// not split by the kernel, so the dispatcher spreads it over the workers.
type RecordSource interface {
	// Next returns the next record; its Data is valid until the next call. A read timeout
	// is reported with an error for which the stream's isTimeout returns true.
	Next() (capture.Record, error)
	Stats() (received, dropped uint64, err error)
	Close()
}

// Stream feeds the workers from a RecordSource through the same dispatcher as replay.
type Stream struct {
	p         *Pipeline
	iface     string
	open      func() (RecordSource, error)
	isTimeout func(error) bool
	ready     atomic.Bool

	mu       sync.Mutex
	src      RecordSource
	received uint64 // totals of sources closed so far
	dropped  uint64
}

// flushEvery bounds how long a packet waits in a partial batch on a quiet interface.
const flushEvery = 50 * time.Millisecond

// NewStream prepares a live stream source for p.
func (p *Pipeline) NewStream(iface string, open func() (RecordSource, error), isTimeout func(error) bool) *Stream {
	s := &Stream{p: p, iface: iface, open: open, isTimeout: isTimeout}
	p.addCapture(s)
	return s
}

// Stats implements captureStats.
func (s *Stream) Stats() snapshot.CaptureCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	packets, kernelDrops := s.received, s.dropped
	if s.src != nil {
		if r, d, err := s.src.Stats(); err == nil {
			packets += r
			kernelDrops += d
		}
	}
	return snapshot.CaptureCounts{Interface: s.iface, Packets: packets, KernelDrops: kernelDrops, Up: s.src != nil}
}

// Ready reports whether the source is open.
func (s *Stream) Ready() bool { return s.ready.Load() }

// Open opens the source; its errors are returned to the caller at start.
func (s *Stream) Open() error {
	src, err := s.open()
	if err != nil {
		return err
	}
	s.set(src)
	return nil
}

func (s *Stream) set(src RecordSource) {
	s.mu.Lock()
	if s.src != nil && src == nil {
		if r, d, err := s.src.Stats(); err == nil {
			s.received += r
			s.dropped += d
		}
		s.src.Close()
	}
	s.src = src
	s.mu.Unlock()
	s.ready.Store(src != nil)
}

// Run reads until ctx ends, reopening the source with backoff when it fails; a failure
// that cannot heal (capture.Permanent) is returned. On return every episode has ended.
func (s *Stream) Run(ctx context.Context) error {
	d := s.p.startDispatch()
	defer d.close()
	defer s.p.startSummaryClock()() // stops before close writes the last summary
	for ctx.Err() == nil {
		s.mu.Lock()
		src := s.src
		s.mu.Unlock()
		if src == nil {
			err := retry(ctx, s.p.log, s.iface, func() error {
				src, err := s.open()
				if err == nil {
					s.set(src)
				}
				return err
			})
			if err != nil && ctx.Err() == nil {
				return err // cannot heal (capture.Permanent)
			}
			continue
		}
		if err := s.read(ctx, src, d); err != nil {
			s.p.log.Error("capture stopped; reopening", zap.String("interface", s.iface), zap.Error(err))
			s.set(nil)
		}
	}
	s.set(nil)
	return nil
}

// read dispatches records until ctx ends or the source fails.
func (s *Stream) read(ctx context.Context, src RecordSource, d *dispatcher) error {
	last := time.Now()
	for ctx.Err() == nil {
		rec, err := src.Next()
		switch {
		case err == nil:
			d.add(&rec)
		case s.isTimeout(err):
			// Idle: live packet time is the kernel's clock, so the wall clock moves it on.
			if now := time.Now().UnixNano(); now > d.now {
				d.now = now
			}
		default:
			return err
		}
		if time.Since(last) >= flushEvery {
			d.send()
			last = time.Now()
		}
	}
	return nil
}
