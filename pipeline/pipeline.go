package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/telescope-dev/telescope/snapshot"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/logq"
)

// Options configure a Pipeline.
type Options struct {
	Config  *configs.Config
	Workers int // resolved worker count (>= 1)
	Logger  *zap.Logger
	// Sink, when set, also receives every detection event (the replay report uses it);
	// events are always logged.
	Sink detect.Sink
	// LogQueue configures the bounded queue between the pipeline's logging (detection
	// events, capture errors) and Logger's output, so a stalled output never blocks it.
	LogQueue logq.Options
}

// Pipeline is the set of workers with what they share: the published configuration, the
// dark-prefix slots, the telnet-surge aggregator and the event sink.
type Pipeline struct {
	workers []*worker
	rc      atomic.Pointer[runConfig]
	slots   *aggregate.PrefixSlots
	surge   *detect.Surge
	hot     *detect.Hotspots
	sink    *eventSink
	summary *logSummary // per-detector summary lines (summary.go)
	log     *zap.Logger
	logq    *logq.Queue
	// batchMem holds the batches' headers of the pipeline's dispatchers (Replay, Stream):
	// one reserved region reused by each, instead of one per call that only the garbage
	// collector would unmap (it does not count memory outside the heap).
	batchMem atomic.Pointer[batchHeaders]

	// hostMu serialises publications of a new runConfig (Reload, SetHostAddrs) and a
	// checkpoint's cut (the state of one configuration); host holds the sensor's own
	// addresses, never dark while no dark prefix is configured.
	hostMu sync.Mutex
	host   []netip.Addr
	who    *who // enrichment and estimates (who.go)

	// Capture sources register their statistics here for the collector.
	capMu    sync.Mutex
	captures []captureStats

	// Checkpoints (state.go): one at a time; keepState leaves episodes open at the end.
	ckMu sync.Mutex
	// surgeEnc, hotEnc hold the shared parts of a checkpoint (under ckMu), kept, as the
	// workers' encoders are, so that a checkpoint does not fault in fresh memory.
	surgeEnc, hotEnc checkpoint.Encoder
	keepState        atomic.Bool
	// inputs are the files replayed so far (the report's inputs), and filter the
	// capture.filter a replay applied to them (nil: none).
	inputsMu sync.Mutex
	inputs   []InputFile
	filter   *ReportFilter
	// continued is the state restored (nil: none), for the report's continued_from and
	// the next checkpoint's inputs.
	continued *Continuation
}

// captureStats is a packet source that reports about itself.
type captureStats interface {
	Stats() snapshot.CaptureCounts
}

// New builds the workers (not yet running).
func New(o Options) (*Pipeline, error) {
	if o.Workers < 1 {
		return nil, fmt.Errorf("pipeline: %d workers", o.Workers)
	}
	if o.Workers > 1<<16-1 {
		return nil, fmt.Errorf("pipeline: at most %d workers", 1<<16-1)
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pipeline{slots: aggregate.NewPrefixSlots()}
	p.logq = logq.Wrap(log.Core(), o.LogQueue)
	p.log = zap.New(p.logq.Core())
	wh, err := newWho(o.Config)
	if err != nil {
		return nil, err
	}
	p.who = wh
	p.sink = newEventSink(p.log, o.Sink, wh, func() *detect.Config { return p.rc.Load().det })
	if enc, ok := p.logq.LineEncoder().(EventLineEncoder); ok {
		p.sink.lines, p.sink.q = enc, p.logq
	}
	p.summary = newSummary(p)
	p.sink.onShared = p.summary.sharedEvent
	rc, err := newRunConfig(o.Config, o.Workers, p.slots, nil)
	if err != nil {
		return nil, err
	}
	p.rc.Store(rc)
	p.surge = detect.NewSurge(o.Workers, p.sink)
	p.surge.SetConfig(rc.det)
	tableCap := o.Config.Limits.MaxSources / o.Workers
	if tableCap < 1 {
		tableCap = 1
	}
	for i := 0; i < o.Workers; i++ {
		p.workers = append(p.workers, newWorker(p, i, tableCap, rc))
	}
	// The hotspot episodes are counted in worker 0's detector counters (the collector sums).
	p.hot = detect.NewHotspots(o.Workers, p.sink, &p.workers[0].Det)
	p.hot.SetConfig(rc.det)
	for _, w := range p.workers {
		w.engine.SetHotspots(p.hot)
	}
	return p, nil
}

// Reload publishes a new configuration to the workers; counters and detector state stay.
// Settings fixed at start (worker count, table sizes, capture) are the caller's concern.
func (p *Pipeline) Reload(c *configs.Config) error {
	p.hostMu.Lock()
	defer p.hostMu.Unlock()
	rc, err := newRunConfig(c, len(p.workers), p.slots, p.host)
	if err == nil {
		err = p.who.reload(c)
	}
	if err != nil {
		// Slots the refused configuration took go back (no worker ever used them).
		p.releaseSlots()
		return err
	}
	p.surge.SetConfig(rc.det)
	p.hot.SetConfig(rc.det)
	p.rc.Store(rc)
	p.adoptConfig()
	p.releaseSlots()
	return nil
}

// adoptConfig makes every worker adopt the published configuration now rather than at its
// next batch: it takes each worker's state lock in turn, which a worker holds from picking
// up the configuration to flushing its counts (processBatch, poll), so the worker is
// between two batches with nothing left to count under the old one. The workers are taken
// in parallel (a live worker holds its lock for up to one poll, pollTimeout), each for the
// moment applyConfig takes; each goroutine holds one lock only and waits for nothing else
// while holding it, so it cannot deadlock with a checkpoint. Called under hostMu, so once a
// reload returns every worker counts under the slots of p.rc.
func (p *Pipeline) adoptConfig() {
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stateMu.Lock()
			w.applyConfig()
			w.stateMu.Unlock()
		}()
	}
	wg.Wait()
}

// releaseSlots frees the counter slots of the prefixes the published configuration no
// longer has (under hostMu, after adoptConfig: no worker counts into them any more), their
// final sums becoming the bases of the prefixes a later reload gives them to.
func (p *Pipeline) releaseSlots() {
	rc := p.rc.Load()
	var counts [aggregate.MaxPrefixSlots]uint64
	for _, w := range p.workers {
		for s := range counts {
			counts[s] += w.C.Prefix[s].Load()
		}
	}
	p.slots.Release(rc.prefixes, &counts)
}

// SetHostAddrs publishes the sensor's own addresses to the workers, like a reload of the
// prefix set: while no dark prefix is configured they are not dark (a live daemon's own
// management traffic and scrapes are not telescope traffic). It reports whether the set
// changed. Replays never call it.
func (p *Pipeline) SetHostAddrs(addrs []netip.Addr) (bool, error) {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	p.hostMu.Lock()
	defer p.hostMu.Unlock()
	if slices.Equal(addrs, p.host) {
		return false, nil
	}
	old := p.rc.Load()
	rc, err := newRunConfig(old.cfg, len(p.workers), p.slots, addrs)
	if err != nil {
		return false, err
	}
	p.host = addrs
	p.rc.Store(rc)
	return true, nil
}

// HostAddrsApply reports whether the host's addresses (SetHostAddrs) are taken out of the
// dark space: only while the config has no dark prefix.
func (p *Pipeline) HostAddrsApply() bool { return len(p.rc.Load().cfg.DarkPrefixes) == 0 }

// addCapture registers a packet source's statistics.
func (p *Pipeline) addCapture(c captureStats) {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	p.captures = append(p.captures, c)
}

// captureSources returns the registered packet sources.
func (p *Pipeline) captureSources() []captureStats {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	return append([]captureStats(nil), p.captures...)
}

// Totals sums the counter shards of all workers.
func (p *Pipeline) Totals() *aggregate.Totals {
	t := new(aggregate.Totals)
	for _, w := range p.workers {
		t.Add(&w.C)
	}
	return t
}

// LastWindow merges the latest window every active worker has closed.
func (p *Pipeline) lastWindow() *aggregate.WindowStats {
	var pairs []*windowPair
	minIdx := int64(0)
	for _, w := range p.workers {
		wp := w.windows.Load()
		if wp == nil {
			continue
		}
		if len(pairs) == 0 || wp.last.Index < minIdx {
			minIdx = wp.last.Index
		}
		pairs = append(pairs, wp)
	}
	var ws []*aggregate.WindowStats
	for _, wp := range pairs {
		switch {
		case wp.last.Index == minIdx:
			ws = append(ws, wp.last)
		case wp.prev != nil && wp.prev.Index == minIdx:
			ws = append(ws, wp.prev)
		}
	}
	return aggregate.MergeWindows(ws, p.rc.Load().topSources)
}

// Tracked returns the per-source entries held and the evictions so far, over all workers
// and all bounded tables (sources, flows, victims).
func (p *Pipeline) Tracked() (tracked int64, evictions uint64) {
	for _, w := range p.workers {
		tracked += w.tracked.Load() + w.Det.Tracked.Load()
		evictions += w.evictions.Load() + w.Det.Evictions.Load()
	}
	return tracked, evictions
}

// PrefaultSources commits now the memory of every worker's source table at its capacity
// (limits.prefault; aggregate.Table.Prefault) and returns its size in bytes. Call it before
// the capture starts (after a restore: the tables keep what it loaded).
func (p *Pipeline) PrefaultSources() (int, error) {
	total := 0
	for _, w := range p.workers {
		n, err := w.sources.Prefault()
		total += n
		if err != nil {
			return total, fmt.Errorf("worker %d's source table: %w", w.id, err)
		}
	}
	return total, nil
}

// LogEntriesDropped returns the log entries (detection events and others) dropped because
// the log queue was full: the output was stalled or slower than the events
// (telescope_log_events_dropped_total).
func (p *Pipeline) LogEntriesDropped() uint64 { return p.logq.Dropped() }

// LogHealthy returns an error while the log output has been stalled for longer than the
// queue's stall time (for /-/healthy).
func (p *Pipeline) LogHealthy() error { return p.logq.Healthy() }
