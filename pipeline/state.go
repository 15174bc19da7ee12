package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// Checkpoints hold, per worker, its per-source table (windows, totals, detector state),
// its sketches and top-k summaries, its open-window bookkeeping and its detector engine
// (episodes, flows, victims, rate windows, slab), and once the telnet surge (baseline,
// history, open surge, buckets). Counters (the Prometheus counters, the report's series)
// are not in them: they restart with the process, as Prometheus expects of counters.

// stateTypes are the types a checkpoint copies as memory (see checkpoint.LayoutOf).
func stateTypes() []reflect.Type {
	return append(detect.StateTypes(),
		reflect.TypeFor[aggregate.TableEntry[packet.Addr, sourceEntry]](),
		reflect.TypeFor[aggregate.TopKEntry](),
		reflect.TypeFor[aggregate.TopKGroup](),
	)
}

// stateDesc describes the settings the shape of the state depends on; a checkpoint is
// restored only by a pipeline that describes itself identically.
func (p *Pipeline) stateDesc() string {
	rc := p.rc.Load()
	pfx := make([]string, len(rc.cfg.DarkPrefixes))
	for i, q := range rc.cfg.DarkPrefixes {
		pfx[i] = q.String()
	}
	desc := fmt.Sprintf("workers=%d sources_per_worker=%d flows_per_worker=%d destinations_per_worker=%d top_capacity=%d hll_precision=%d dark_prefixes=[%s]",
		len(p.workers), p.workers[0].sources.Cap(), rc.det.MaxFlows, rc.det.MaxDestinations, topCapacity, hllPrecision, strings.Join(pfx, " "))
	// Dark spaces past 2^20 addresses (up to a /8) are counted per address since state
	// format 8's binaries were released; theirs had no such counts, so their checkpoints of
	// such a space are refused by this line rather than as corrupt. Smaller spaces keep
	// the description they had.
	if n := rc.prefixes.ExactSize(); n > 1<<20 {
		desc += fmt.Sprintf(" dense_destinations=%d", n)
	}
	return desc
}

// CheckpointStats describes one checkpoint.
type CheckpointStats struct {
	Bytes int64
	// Pause is the longest time one worker was held between two batches while its state
	// was copied; Elapsed the whole checkpoint (copy, write, fsync, rename).
	Pause, Elapsed time.Duration
	// Copy is the longest time a worker took to copy its own state; Shared the time the
	// shared parts (surge, hotspots) took once every worker had copied. The workers count
	// on while the hotspot state is copied, but one that hands a part over meanwhile
	// waits for it.
	Copy, Shared time.Duration
	Sources      int
}

// Checkpoint writes the state to path atomically. Each worker is held only while its own
// state is copied into its buffer (between two of its batches; all workers in parallel)
// and the surge's is; the file is written after they have resumed. Safe to call while
// the pipeline runs.
func (p *Pipeline) Checkpoint(path string) (CheckpointStats, error) {
	p.ckMu.Lock()
	defer p.ckMu.Unlock()
	start := time.Now()
	layout, err := checkpoint.LayoutOf(stateTypes()...)
	if err != nil {
		return CheckpointStats{}, err
	}
	// No reload during the cut: one that renumbered the dark space between two workers'
	// copies, or between the copies and the header, wrote a state that its header did not
	// describe (refused as corrupt at the restart). Reload completes under hostMu, every
	// worker having adopted its configuration, so the cut is of one configuration, desc's.
	p.hostMu.Lock()
	desc := p.stateDesc()
	var st CheckpointStats
	pauses := make([]time.Duration, len(p.workers))
	copies := make([]time.Duration, len(p.workers))
	// Each worker's sources and clock at the cut, read while it is held: after its
	// release it goes on counting (the clock would be a later packet's than the state's).
	sources := make([]int, len(p.workers))
	clocks := make([]int64, len(p.workers))
	// Every worker copies its state and waits, held, until the shared parts (surge,
	// hotspots), which the workers feed, are copied or locked: the file is one
	// consistent cut.
	var copied, done sync.WaitGroup
	release := make(chan struct{})
	p.surgeEnc.Reset()
	p.hotEnc.Reset()
	for i, w := range p.workers {
		copied.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			w.stateMu.Lock()
			t := time.Now()
			w.enc.Reset()
			w.saveState(&w.enc)
			sources[i], clocks[i] = w.sources.Len(), w.now
			copies[i] = time.Since(t)
			copied.Done()
			<-release
			pauses[i] = time.Since(t)
			w.stateMu.Unlock()
		}()
	}
	copied.Wait()
	ts := time.Now()
	p.surge.SaveState(&p.surgeEnc)
	// The workers go on once the hotspot state is locked, while it is copied: only a
	// hand-over waits for it (the shared hotspot state can be hundreds of MB).
	p.hot.SaveState(&p.hotEnc, func() { close(release) })
	st.Shared = time.Since(ts)
	done.Wait()
	p.hostMu.Unlock()
	var clock int64
	for i := range p.workers {
		st.Pause = max(st.Pause, pauses[i])
		st.Copy = max(st.Copy, copies[i])
		st.Sources += sources[i]
		clock = max(clock, clocks[i])
	}
	cw, err := checkpoint.Create(path, checkpoint.Header{Layout: layout, Config: desc, Written: time.Now().UnixNano(), Clock: clock})
	if err != nil {
		return st, err
	}
	for i, w := range p.workers {
		if err := cw.Section(fmt.Sprintf("worker/%d", i), w.enc.Chunks()...); err != nil {
			cw.Abort()
			return st, err
		}
	}
	if err := cw.Section("surge", p.surgeEnc.Chunks()...); err != nil {
		cw.Abort()
		return st, err
	}
	if err := cw.Section("hotspot", p.hotEnc.Chunks()...); err != nil {
		cw.Abort()
		return st, err
	}
	if err := cw.Section("inputs", p.chainJSON()); err != nil {
		cw.Abort()
		return st, err
	}
	st.Bytes, err = cw.Commit()
	st.Elapsed = time.Since(start)
	return st, err
}

// RestoreOptions say how a checkpoint continues.
type RestoreOptions struct {
	// Resume is set by the live daemon: the state is continued after a downtime, at Now
	// (wall clock): episodes quiet for longer than the window end at their last packet
	// (their End events are emitted during RestoreState), the telnet surge buckets of the
	// downtime count as unknown (the baseline is kept) and each worker rejoins the surge
	// at its next whole bucket. Replay (--state-in) leaves it unset: the next file
	// continues the packet time of the previous run.
	Resume bool
	Now    int64
}

// RestoreInfo describes a restored checkpoint.
type RestoreInfo struct {
	Written, Clock int64 // when it was written (wall clock) and its latest packet time
	Bytes          int64
	Sources        int
	Episodes       int64 // active episodes restored (all detectors, surge included)
	Flows, Victims int64 // udp_then_syn flows and backscatter victims tracked
	SurgeRestored  bool
	SurgeBaseline  float64
	// HotspotRestored: the hotspot detector's shared state (its open episodes and
	// incomplete windows) was restored (not when the window length changed).
	HotspotRestored bool
}

// RestoreState loads a checkpoint into a pipeline that has not run yet. Every failure is
// a *checkpoint.Error (checkpoint.KindOf): no file (Missing), not a checkpoint, truncated,
// corrupt, another format version, another state layout, an incompatible config. After
// an error other than Missing, Foreign, Future, Old, Layout or Config the pipeline may
// hold part of the state: discard it and build a new one.
func (p *Pipeline) RestoreState(path string, o RestoreOptions) (RestoreInfo, error) {
	var info RestoreInfo
	f, err := checkpoint.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	layout, err := checkpoint.LayoutOf(stateTypes()...)
	if err != nil {
		return info, err
	}
	if f.Header.Layout != layout {
		return info, checkpoint.Errorf(checkpoint.Layout, path, "written by a binary whose detector state has another layout (a field was added or changed)")
	}
	if want := p.stateDesc(); f.Header.Config != want {
		return info, checkpoint.Errorf(checkpoint.Config, path, "written for %s, running with %s", f.Header.Config, want)
	}
	info.Written, info.Clock, info.Bytes = f.Header.Written, f.Header.Clock, f.Size
	if err = p.loadSections(f.Section, o, &info); err != nil {
		return info, err
	}
	// The files the state counted: its reports' lists go on from them (Continuation).
	// A checkpoint of a binary before the section has none; that state's origin is
	// unknown, not nothing, and the report still says it continued.
	c := &Continuation{Inputs: []InputFile{}}
	if f.Has("inputs") {
		d, err := f.Section("inputs")
		if err != nil {
			return info, err
		}
		b := checkpoint.ReadSlice[byte](d, maxChainJSON)
		if err := d.Done(); err != nil {
			return info, err
		}
		if err := json.Unmarshal(b, &c.Inputs); err != nil || c.Inputs == nil {
			return info, checkpoint.Errorf(checkpoint.Corrupt, path, "corrupt: section \"inputs\" is not a list of files: %.80q", b)
		}
	}
	p.inputsMu.Lock()
	p.continued = c
	p.inputsMu.Unlock()
	return info, nil
}

// maxChainJSON bounds the "inputs" section a restore reads (a year of hourly files takes
// ~1.5 MB).
const maxChainJSON = 64 << 20

// chainJSON is the "inputs" section of a checkpoint: the files the state counted, those of
// the state it continued from and then its own, as JSON (a list of InputFile).
func (p *Pipeline) chainJSON() []byte {
	p.inputsMu.Lock()
	chain := []InputFile{}
	if p.continued != nil {
		chain = append(chain, p.continued.Inputs...)
	}
	chain = append(chain, p.inputs...)
	p.inputsMu.Unlock()
	b, err := json.Marshal(chain)
	if err != nil {
		panic(err) // strings, integers and times only
	}
	var enc checkpoint.Encoder
	checkpoint.Slice(&enc, b)
	return enc.Bytes()
}

// loadSections loads the state's sections, which section returns by name (a checked
// file's), into p (RestoreState after the header's checks).
func (p *Pipeline) loadSections(section func(name string) (*checkpoint.Decoder, error), o RestoreOptions, info *RestoreInfo) error {
	for i, w := range p.workers {
		d, err := section(fmt.Sprintf("worker/%d", i))
		if err != nil {
			return err
		}
		w.loadState(d)
		if err := d.Done(); err != nil {
			return err
		}
	}
	d, err := section("surge")
	if err != nil {
		return err
	}
	info.SurgeRestored = p.surge.LoadState(d)
	if err := d.Done(); err != nil {
		return err
	}
	info.SurgeBaseline, _ = p.surge.Baseline()
	if d, err = section("hotspot"); err != nil {
		return err
	}
	info.HotspotRestored = p.hot.LoadState(d)
	if err := d.Done(); err != nil {
		return err
	}
	for _, w := range p.workers {
		info.Sources += w.sources.Len()
		for i := range w.Det.Active {
			info.Episodes += w.Det.Active[i].Load()
		}
		info.Flows += w.Det.Tracked.Load()
	}
	info.Episodes += p.surge.Active() + int64(p.hot.Active())
	if o.Resume {
		window := int64(p.rc.Load().cfg.Window.D())
		p.surge.Resume(o.Now, window)
		for _, w := range p.workers {
			w.engine.Resume()
			w.advance(o.Now)
			w.flush()
		}
	}
	return nil
}

// SetKeepState makes the end of input (replay) or of capture (run) leave the episodes
// open, to be written to a checkpoint, instead of ending them.
func (p *Pipeline) SetKeepState(keep bool) { p.keepState.Store(keep) }

// FinishAll ends every episode at now (after a final checkpoint failed in keep-state mode).
func (p *Pipeline) FinishAll(now int64) {
	for _, w := range p.workers {
		w.stateMu.Lock()
		w.engine.Finish(max(now, w.now))
		w.flush()
		w.stateMu.Unlock()
	}
	p.surge.Finish(now)
	p.hot.Finish()
}

// RunCheckpoints writes a checkpoint to path every interval until ctx ends, logging
// failures (and each checkpoint at debug level).
func (p *Pipeline) RunCheckpoints(ctx context.Context, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := p.Checkpoint(path)
		if err != nil {
			p.log.Error("state checkpoint failed; the previous one stays", zap.String("path", path), zap.Error(err))
			continue
		}
		p.log.Debug("state checkpoint written", zap.String("path", path), zap.Int64("bytes", st.Bytes),
			zap.Int("sources", st.Sources), zap.Duration("max_worker_pause", st.Pause), zap.Duration("max_worker_copy", st.Copy),
			zap.Duration("shared_copy", st.Shared), zap.Duration("elapsed", st.Elapsed))
	}
}

// saveState appends the worker's state to enc (the caller holds stateMu).
func (w *worker) saveState(enc *checkpoint.Encoder) {
	enc.I64(w.now)
	enc.Bool(w.winOpen)
	enc.I64(w.winIdx)
	enc.U64(uint64(w.winGen))
	enc.I64(w.winEnd)
	enc.U64(w.winUnique)
	enc.U64(w.winPackets)
	checkpoint.Raw(enc, &w.evHist)
	enc.U64(w.evSum)
	enc.U64(w.evCount)
	enc.Bool(w.winScanAll)
	checkpoint.Slice(enc, w.winSlots)
	enc.I64(w.series.telMin)
	enc.U64(uint64(w.series.telSeq))
	w.sources.Save(enc)
	w.srcEvicted.Save(enc)
	w.dstTop.Save(enc)
	w.srcHLL.Save(enc)
	w.dstHLL.Save(enc)
	checkpoint.Slice(enc, w.dstExact)
	w.engine.SaveState(enc)
	w.engine.SaveHotState(enc)
}

// loadState replaces the state of a worker that has not run by one written by saveState.
func (w *worker) loadState(d *checkpoint.Decoder) {
	w.now = d.I64()
	w.winOpen = d.Bool()
	w.winIdx = d.I64()
	w.winGen = uint32(d.U64())
	w.winEnd = d.I64()
	w.winUnique, w.winPackets = d.U64(), d.U64()
	checkpoint.RawInto(d, &w.evHist)
	w.evSum, w.evCount = d.U64(), d.U64()
	w.winScanAll = d.Bool()
	w.winSlots = append(w.winSlots[:0], checkpoint.ReadSlice[int32](d, 2*w.sources.Cap())...)
	w.series.telMin = d.I64()
	w.series.telSeq = uint32(d.U64())
	w.sources.Load(d)
	w.detEver = true // the entries may hold detector state from before the restart
	w.srcEvicted.Load(d)
	w.dstTop.Load(d)
	w.srcHLL.Load(d)
	w.dstHLL.Load(d)
	checkpoint.SliceInto(d, w.dstExact)
	if d.Err() != nil {
		return
	}
	for _, s := range w.winSlots {
		if s < 0 || int(s) >= w.sources.Slots() {
			d.Fail("window slot %d of %d", s, w.sources.Slots())
			return
		}
	}
	w.engine.LoadState(d)
	w.engine.LoadHotState(d)
	if d.Err() != nil {
		return
	}
	var err error
	w.sources.Range(func(k *packet.Addr, e *sourceEntry) bool {
		if err = w.engine.CheckSource(&e.det); err != nil {
			err = fmt.Errorf("source %v: %w", k, err)
			return false
		}
		return true
	})
	if err != nil {
		d.Fail("%v", err)
		return
	}
	w.flush()
}
