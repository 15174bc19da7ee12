package pipeline

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/telescope-dev/telescope/snapshot"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
)

// Options configure a Pipeline.
type Options struct {
	Config  *configs.Config
	Workers int // resolved worker count (>= 1)
	Logger  *zap.Logger
	// Sink, when set, also receives every detection event (the replay report uses it);
	// events are always logged.
	Sink detect.Sink
}

// Pipeline is the set of workers with what they share: the published configuration, the
// dark-prefix slots, the telnet-surge aggregator and the event sink.
type Pipeline struct {
	workers []*Worker
	rc      atomic.Pointer[runConfig]
	slots   *aggregate.PrefixSlots
	surge   *detect.Surge
	sink    *eventSink
	log     *zap.Logger
	who     *who // enrichment and estimates (who.go)

	// Capture sources register their statistics here for the collector.
	capMu    sync.Mutex
	captures []CaptureStats
}

// CaptureStats is a packet source that reports about itself.
type CaptureStats interface {
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
	p := &Pipeline{slots: aggregate.NewPrefixSlots(), log: log}
	wh, err := newWho(o.Config)
	if err != nil {
		return nil, err
	}
	p.who = wh
	p.sink = &eventSink{log: log, next: o.Sink, who: wh}
	rc, err := newRunConfig(o.Config, o.Workers, p.slots)
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
	return p, nil
}

// Reload publishes a new configuration to the workers; counters and detector state stay.
// Settings fixed at start (worker count, table sizes, capture) are the caller's concern.
func (p *Pipeline) Reload(c *configs.Config) error {
	rc, err := newRunConfig(c, len(p.workers), p.slots)
	if err != nil {
		return err
	}
	if err := p.who.reload(c); err != nil {
		return err
	}
	p.surge.SetConfig(rc.det)
	p.rc.Store(rc)
	return nil
}

// Config returns the configuration in effect.
func (p *Pipeline) Config() *configs.Config { return p.rc.Load().cfg }

// Workers returns the workers (for the collector).
func (p *Pipeline) Workers() []*Worker { return p.workers }

// Surge returns the telnet-surge aggregator.
func (p *Pipeline) Surge() *detect.Surge { return p.surge }

// AddCapture registers a packet source's statistics.
func (p *Pipeline) AddCapture(c CaptureStats) {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	p.captures = append(p.captures, c)
}

// Captures returns the registered packet sources.
func (p *Pipeline) Captures() []CaptureStats {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	return append([]CaptureStats(nil), p.captures...)
}

// PrefixName returns the `prefix` label of a slot.
func (p *Pipeline) PrefixName(slot int) string { return p.slots.Name(slot) }

// PrefixSlots returns the slots of the configured dark prefixes.
func (p *Pipeline) PrefixSlots() []int { return p.rc.Load().prefixes.Slots() }

// Totals sums the counter shards of all workers.
func (p *Pipeline) Totals() *aggregate.Totals {
	t := new(aggregate.Totals)
	for _, w := range p.workers {
		t.Add(&w.C)
	}
	return t
}

// LastWindow merges the latest window every active worker has closed.
func (p *Pipeline) LastWindow() *aggregate.WindowStats {
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
