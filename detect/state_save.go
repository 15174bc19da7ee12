package detect

import (
	"fmt"
	"math"
	"math/bits"
	"reflect"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// StateTypes lists the types an engine's checkpoint copies as memory: their layout goes
// into the checkpoint's fingerprint, so a binary whose detector state differs (a field
// added to SourceState, say) refuses an older file instead of misreading it.
func StateTypes() []reflect.Type {
	return append([]reflect.Type{
		reflect.TypeFor[SourceState](),
		reflect.TypeFor[aggregate.TableEntry[packet.Addr, episode]](),
		reflect.TypeFor[aggregate.TableEntry[flowKey, flow]](),
		reflect.TypeFor[aggregate.TableEntry[packet.Addr, victim]](),
		reflect.TypeFor[surgeClock](),
		reflect.TypeFor[[60]uint32](),
		reflect.TypeFor[bucketSum](),
	}, hotStateTypes()...) // hotspot_state.go
}

// SaveState appends the engine's state to enc: its clock, its telnet surge bucket, the
// episode, flow and victim tables, the victims' rate windows and the slab. Only the
// engine's goroutine may call it (between batches), or anyone once the engine stopped.
func (e *Engine) SaveState(enc *checkpoint.Encoder) {
	enc.I64(e.now)
	enc.Bool(e.clockSet)
	enc.I64(e.nextSweep)
	checkpoint.Raw(enc, &e.sb)
	e.eps.Save(enc)
	e.flows.Save(enc)
	e.victims.Save(enc)
	enc.Len(len(e.rates))
	for i := range e.rates {
		w := &e.rates[i]
		checkpoint.Slice(enc, w.Ring)
		enc.I64(int64(w.Head))
		enc.I64(int64(w.N))
		checkpoint.Raw(enc, &w.Secs)
		enc.I64(w.Sec)
		enc.U64(w.Sum)
		enc.U64(w.Peak)
	}
	checkpoint.Slice(enc, e.rateFree)
	e.slab.Save(enc)
	// The scanner episodes' exact port sets (profile.go), referenced from the records.
	enc.Len(len(e.ports.maps))
	for _, m := range e.ports.maps {
		checkpoint.Raw(enc, m)
	}
	checkpoint.Slice(enc, e.ports.free)
}

// LoadState replaces the state of a new engine (built with the same MaxFlows) by one
// written by SaveState, checks it, and rebuilds what is derived from it (per-port flow
// counts, the list of active flows, the active-episode gauges). After an error the
// engine is unusable.
func (e *Engine) LoadState(d *checkpoint.Decoder) {
	e.now = d.I64()
	e.clockSet = d.Bool()
	e.nextSweep = d.I64()
	checkpoint.RawInto(d, &e.sb)
	e.eps.Load(d)
	e.flows.Load(d)
	e.victims.Load(d)
	n := d.Len(8*8+60*4, e.victims.Cap())
	if d.Err() != nil {
		return
	}
	e.rates = make([]rateWin, n)
	for i := range e.rates {
		w := &e.rates[i]
		w.Ring = checkpoint.ReadSlice[int64](d, math.MaxInt32)
		w.Head, w.N = int(d.I64()), int(d.I64())
		checkpoint.RawInto(d, &w.Secs)
		w.Sec, w.Sum, w.Peak = d.I64(), d.U64(), d.U64()
		if d.Err() == nil && (w.N < 0 || w.N > len(w.Ring) || w.Head < 0 || w.Head > len(w.Ring) || len(w.Ring) > 0 && w.Head == len(w.Ring)) {
			d.Fail("rate window %d: head %d, %d of %d timestamps", i, w.Head, w.N, len(w.Ring))
		}
	}
	e.rateFree = checkpoint.ReadSlice[int32](d, n)
	e.slab.Load(d)
	nm := d.Len(8*1024, maxPortMaps)
	if d.Err() != nil {
		return
	}
	e.ports = portMaps{maps: make([]*portMap, nm)}
	for i := range e.ports.maps {
		e.ports.maps[i] = new(portMap)
		checkpoint.RawInto(d, e.ports.maps[i])
	}
	e.ports.free = checkpoint.ReadSlice[int32](d, nm)
	if d.Err() != nil {
		return
	}
	if err := e.checkLoaded(); err != nil {
		d.Fail("%v", err)
		return
	}
	e.flowEv, e.flowEvN, e.flowEvEnd = [2][]uint64{}, [2]int{}, 0
	clear(e.flowPortSec[:])
	e.flowDue = e.flowDue[:0]
	e.flows.Range(func(k *flowKey, f *flow) bool {
		// The sources' FlowSec came with the pipeline's table, but not the marks of the
		// evicted ones: every flow's source is marked.
		e.flowMark(&k.Src)
		e.flowPortSec[k.Port] = max(e.flowPortSec[k.Port], flowSec(f.Last))
		if f.Active {
			e.seq++
			e.flowDue = append(e.flowDue, dueItem[flowDueRef]{ref: flowDueRef{flowRef{key: *k, gen: f.Gen}, e.seq}})
			e.c.Active[detUDPThenSYN].Add(1)
		}
		return true
	})
	e.memos = memoPool{} // the records' memo references are this pool's, not the saved one's
	e.eps.Range(func(_ *packet.Addr, rec *episode) bool {
		rec.Prof.Memo = 0
		if rec.Active&epScan != 0 {
			e.c.Active[detScanner].Add(1)
		}
		if rec.Active&epTel != 0 {
			e.c.Active[detTelnetSweep].Add(1)
		}
		if rec.Active&epFP != 0 {
			e.c.Active[detFingerprint].Add(int64(bits.OnesCount8(rec.FP.Labels)))
		}
		return true
	})
	e.victims.Range(func(_ *packet.Addr, v *victim) bool {
		if v.Attack {
			e.c.Active[detBackscatter].Add(1)
		}
		return true
	})
	e.countToolsInPlace() // the source table was restored before the engine
	e.requeue()           // due.go: the restored episodes' end times
	e.c.Tracked.Store(int64(e.flows.Len() + e.victims.Len()))
}

// checkLoaded checks what refers across structures: distinct counts into the slab, victims
// into the rate windows.
func (e *Engine) checkLoaded() error {
	var err error
	maps := make([]bool, len(e.ports.maps)) // referenced or free, once each
	for _, r := range e.ports.free {
		if r < 1 || int(r) > len(maps) || maps[r-1] {
			return fmt.Errorf("free port map %d out of range or listed twice", r)
		}
		maps[r-1] = true
	}
	e.eps.Range(func(k *packet.Addr, rec *episode) bool {
		for _, dc := range []*aggregate.Distinct{&rec.Scan.Targets, &rec.Scan.Ports, &rec.Tel.Targets, &rec.Prof.Addrs} {
			if err = dc.Validate(&e.slab); err != nil {
				err = fmt.Errorf("episode of %v: %w", k, err)
				return false
			}
		}
		if r := rec.Prof.PortMap; r != 0 {
			if r < 0 || int(r) > len(maps) || maps[r-1] {
				err = fmt.Errorf("episode of %v: port map %d out of range or shared", k, r)
				return false
			}
			maps[r-1] = true
		}
		return true
	})
	if err != nil {
		return err
	}
	used := make([]bool, len(e.rates))
	for _, r := range e.rateFree {
		if r < 1 || int(r) > len(e.rates) || used[r-1] {
			return fmt.Errorf("free rate window %d out of range or listed twice", r)
		}
		used[r-1] = true
	}
	e.victims.Range(func(k *packet.Addr, v *victim) bool {
		if err = v.Targets.Validate(&e.slab); err != nil {
			err = fmt.Errorf("victim %v: %w", k, err)
			return false
		}
		if v.Rate != 0 {
			if v.Rate < 0 || int(v.Rate) > len(e.rates) || used[v.Rate-1] {
				err = fmt.Errorf("victim %v: rate window %d out of range or shared", k, v.Rate)
				return false
			}
			used[v.Rate-1] = true
		}
		return true
	})
	return err
}

// CheckSource checks a per-source state restored from a checkpoint against this engine
// (its distinct counts refer into the engine's slab).
func (e *Engine) CheckSource(st *SourceState) error {
	for _, dc := range []*aggregate.Distinct{&st.Scan.Targets, &st.Scan.Ports, &st.Tel.Targets} {
		if err := dc.Validate(&e.slab); err != nil {
			return err
		}
	}
	return nil
}

// Resume prepares a restored engine for a clock that jumped over the time the daemon was
// down: the telnet surge bucket it was counting is lost (it rejoins the surge at its next
// whole bucket). Episodes quiet for longer than the window end at the next Advance, at
// their last packet.
func (e *Engine) Resume() {
	e.sb.joined = false
	e.sb.count, e.sb.probes = 0, 0
}

// Now returns the engine's clock (latest packet or Advance time).
func (e *Engine) Now() int64 { return e.now }

// SaveState appends the surge's state (baseline, its history, an open surge, the buckets
// reported and pending) to enc. Safe to call at any time.
func (s *Surge) SaveState(enc *checkpoint.Encoder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc.I64(s.size)
	checkpoint.Slice(enc, s.joined)
	checkpoint.Slice(enc, s.through)
	enc.I64(int64(s.nJoined))
	enc.I64(s.first)
	enc.I64(s.next)
	checkpoint.Slice(enc, s.pending)
	enc.Bool(s.baseSet)
	enc.F64(s.baseline)
	checkpoint.Raw(enc, &s.hist)
	enc.I64(int64(s.nhist))
	enc.I64(int64(s.hpos))
	enc.Bool(s.in)
	enc.I64(s.start)
	enc.I64(s.surgeEnd)
	enc.U64(s.peak)
	enc.U64(s.peakProbe)
	enc.F64(s.startBase)
	enc.U64(s.lastSources.Load())
}

// LoadState replaces the surge's state by one written by SaveState (same worker count).
// When the bucket size differs from the one configured now, the saved state is dropped
// (a baseline in other units means nothing) and restored reports false.
func (s *Surge) LoadState(d *checkpoint.Decoder) (restored bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := d.I64()
	joined := checkpoint.ReadSlice[bool](d, len(s.joined))
	through := checkpoint.ReadSlice[int64](d, len(s.through))
	nJoined, first, next := d.I64(), d.I64(), d.I64()
	pending := checkpoint.ReadSlice[bucketSum](d, maxPendingBuckets+1)
	baseSet, baseline := d.Bool(), d.F64()
	var hist [surgeLag - 1]float64
	checkpoint.RawInto(d, &hist)
	nhist, hpos := d.I64(), d.I64()
	in, start, end, peak, peakProbe, startBase := d.Bool(), d.I64(), d.I64(), d.U64(), d.U64(), d.F64()
	last := d.U64()
	if d.Err() != nil {
		return false
	}
	if len(joined) != len(s.joined) || len(through) != len(s.through) || nJoined < 0 || nJoined > int64(len(s.joined)) ||
		nhist < 0 || nhist > int64(len(hist)) || hpos < 0 || hpos >= int64(len(hist)) {
		d.Fail("surge: %d workers joined of %d, history %d at %d", nJoined, len(joined), nhist, hpos)
		return false
	}
	if !s.enabled || size != s.size {
		return false
	}
	copy(s.joined, joined)
	copy(s.through, through)
	s.nJoined, s.first, s.next = int(nJoined), first, next
	s.pending = append(s.pending[:0], pending...)
	s.baseSet, s.baseline, s.hist, s.nhist, s.hpos = baseSet, baseline, hist, int(nhist), int(hpos)
	s.in, s.start, s.surgeEnd, s.peak, s.peakProbe, s.startBase = in, start, end, peak, peakProbe, startBase
	s.lastSources.Store(last)
	if in {
		s.active.Store(1)
	}
	return true
}

// Resume prepares a restored surge for a clock that jumped over the time the daemon was
// down (live restart): the buckets of the downtime are unknown, neither empty nor busy, so
// the baseline is kept as it was and every worker rejoins at its next whole bucket. An
// open surge whose last busy bucket ended more than window before now ends there (its
// End event now); otherwise the first bucket after the restart continues it or ends it
// at its last busy bucket.
func (s *Surge) Resume(now, window int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.joined)
	clear(s.through)
	s.nJoined, s.first, s.next = 0, 0, 0
	s.pending = s.pending[:0]
	if s.in && now-s.surgeEnd > window {
		s.closeSurge()
	}
	s.resumed = s.in
}

// Baseline returns the current baseline and whether one is set (for tests and logs).
func (s *Surge) Baseline() (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseline, s.baseSet
}
