package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/snapshot"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
)

// pollTimeout bounds how long a live worker waits for a block before it moves its clock on
// (closing windows and ending quiet episodes on an idle interface) and applies a reload.
const pollTimeout = 100 * time.Millisecond

// Live feeds the workers from AF_PACKET rings, one per worker: the kernel's fanout program
// already sent each packet to the ring of the worker that owns its source.
type Live struct {
	p     *Pipeline
	cfg   capture.RingConfig
	log   *zap.Logger
	ready atomic.Bool

	mu sync.Mutex
	// Totals of rings closed so far (reopened after the interface came back), so the
	// exported counters never go backwards.
	closed capture.RingStats
	rings  []*capture.Ring
}

// NewLive prepares live capture for p with one ring per worker.
func (p *Pipeline) NewLive(cfg capture.RingConfig) *Live {
	cfg.Workers = len(p.workers)
	l := &Live{p: p, cfg: cfg, log: p.log}
	p.addCapture(l)
	return l
}

// Stats implements captureStats: packets and kernel drops over every ring opened so far.
func (l *Live) Stats() snapshot.CaptureCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.closed
	for _, r := range l.rings {
		if rs, err := r.Stats(); err == nil {
			s.Packets += rs.Packets
			s.Drops += rs.Drops
			s.QueueFreezes += rs.QueueFreezes
		}
	}
	return snapshot.CaptureCounts{Interface: l.cfg.Interface, Packets: s.Packets, KernelDrops: s.Drops,
		QueueFreezes: s.QueueFreezes, Up: l.rings != nil}
}

// Ready reports whether every ring is open and bound.
func (l *Live) Ready() bool { return l.ready.Load() }

// Open opens the rings; the first open's errors (missing interface, missing privilege)
// are returned to the caller, who reports them and exits.
func (l *Live) Open() error {
	rings, err := capture.OpenRings(l.cfg)
	if err != nil {
		return err
	}
	l.setRings(rings)
	return nil
}

func (l *Live) setRings(rings []*capture.Ring) {
	l.mu.Lock()
	l.rings = rings
	l.mu.Unlock()
	l.ready.Store(rings != nil)
}

// closeRings closes the rings, folding their counters into the running totals.
func (l *Live) closeRings() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.rings {
		if rs, err := r.Stats(); err == nil {
			l.closed.Packets += rs.Packets
			l.closed.Drops += rs.Drops
			l.closed.QueueFreezes += rs.QueueFreezes
		}
		_ = r.Close()
	}
	l.rings = nil
	l.ready.Store(false)
}

// Run captures until ctx ends. When the interface disappears it closes the rings, retries
// with backoff, and resumes on the same workers (their counters and state continue). A
// failure that cannot heal by waiting (capture.Permanent: privilege, configuration) stops
// the capture and is returned. On return every episode has ended and the counters are
// final.
func (l *Live) Run(ctx context.Context) error {
	defer l.finish()
	defer l.p.startSummaryClock()() // stops before finish writes the last summary
	// Hotspot windows are evaluated off the capture's path (finish evaluates what is left).
	defer l.p.hot.StartEvaluator()()
	for {
		l.mu.Lock()
		rings := l.rings
		l.mu.Unlock()
		if rings == nil {
			if err := l.reopen(ctx); err != nil {
				if ctx.Err() != nil {
					return nil // ctx ended while waiting
				}
				return err
			}
			continue
		}
		err := l.runRings(ctx, rings)
		l.closeRings()
		if ctx.Err() != nil {
			return nil
		}
		if capture.Permanent(err) {
			return err
		}
		l.log.Error("capture stopped; reopening", zap.String("interface", l.cfg.Interface), zap.Error(err))
	}
}

// reopen retries opening the rings with exponential backoff.
func (l *Live) reopen(ctx context.Context) error {
	return retry(ctx, l.log, l.cfg.Interface, func() error {
		rings, err := capture.OpenRings(l.cfg)
		if err == nil {
			l.setRings(rings)
		}
		return err
	})
}

// retry calls open until it succeeds, fails permanently (capture.Permanent, returned) or
// ctx ends (its error returned), waiting 1 s, 2 s, 4 s ... up to 30 s between attempts,
// and logs each failure and the recovery.
func retry(ctx context.Context, log *zap.Logger, iface string, open func() error) error {
	delay := time.Second
	for {
		err := open()
		if err == nil {
			log.Info("capture resumed", zap.String("interface", iface))
			return nil
		}
		if capture.Permanent(err) {
			return err
		}
		log.Warn("capture still unavailable; retrying", zap.String("interface", iface),
			zap.Duration("retry_in", delay), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay *= 2; delay > 30*time.Second {
			delay = 30 * time.Second
		}
	}
}

// runRings runs one poll loop per worker until ctx ends or a ring fails.
func (l *Live) runRings(ctx context.Context, rings []*capture.Ring) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(rings))
	// Every engine starts its clock at the same time (detect.Engine.StartAt), before the
	// loops, rather than at its worker's first packet or idle tick.
	start := time.Now().UnixNano()
	for i := range rings {
		w := l.p.workers[i]
		w.stateMu.Lock()
		w.engine.StartAt(start)
		w.stateMu.Unlock()
	}
	for i, r := range rings {
		wg.Add(1)
		go func(w *worker, r *capture.Ring) {
			defer wg.Done()
			if err := w.poll(rctx, r); err != nil {
				errc <- err
				cancel()
			}
		}(l.p.workers[i], r)
	}
	wg.Wait()
	close(errc)
	err := <-errc
	if err == nil && ctx.Err() == nil {
		err = errors.New("capture loop ended")
	}
	return err
}

// poll is a worker's live loop.
func (w *worker) poll(ctx context.Context, r *capture.Ring) error {
	// Frames are decoded into hs and handled warmAhead at a time (handleGroup).
	var hs [warmAhead]packet.Header
	n := 0
	drain := func() {
		w.handleGroup(hs[:n], groupAll[:n], nil) // decoded here: in cache
		n = 0
	}
	var shed shedder
	defer func() { w.shed = false }()
	handle := func(f *capture.Frame) {
		if on := shed.update(f.BehindBytes); on != w.shed {
			drain() // the frames before this one are handled as decided for them
			if w.shed = on; on {
				w.noteShed(f, r)
			}
		}
		h := &hs[n]
		h.TS = f.TS
		h.WireLen = f.WireLen
		if f.VLANValid {
			// The kernel stripped the outer tag into the ring's metadata: it counts as one.
			packet.DecodeNetworkVLAN(f.Protocol, f.Data, f.VLAN, h)
		} else {
			packet.DecodeNetwork(f.Protocol, f.Data, h)
		}
		if n++; n == warmAhead {
			drain()
		}
	}
	for ctx.Err() == nil {
		w.stateMu.Lock() // a checkpoint copies the state between two polls (state.go)
		w.applyConfig()
		shed.setLimit(w.rc.shed, r.Bytes(), r.BlockBytes())
		got, err := r.Poll(pollTimeout, handle)
		drain()
		if err != nil {
			w.flush()
			w.stateMu.Unlock()
			return err
		}
		if got == 0 {
			// Idle: live packet time is the kernel's clock, so the wall clock moves it on.
			w.advance(time.Now().UnixNano())
		} else {
			w.engine.Advance(w.now)
		}
		w.flush()
		w.stateMu.Unlock()
	}
	// Stopping: take what the kernel already queued (a block retires within its timeout).
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	for i := 0; i < 3; i++ {
		got, err := r.Poll(pollTimeout, handle)
		drain()
		w.flush()
		if err != nil || got == 0 {
			break
		}
	}
	return nil
}

// finish ends every episode and publishes the final counters.
func (l *Live) finish() {
	now := time.Now().UnixNano()
	for _, w := range l.p.workers {
		w.finish(now)
	}
	if !l.p.keepState.Load() {
		l.p.surge.Finish(now)
	}
	if !l.p.keepState.Load() {
		l.p.hot.Finish()
	}
	l.p.summary.final(now)
	l.p.logq.Drain() // bounded: gives up once the output makes no progress
}
