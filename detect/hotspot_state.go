package detect

import (
	"reflect"
	"slices"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/checkpoint"
)

// Checkpoint of the hotspot detector (kept apart from hotspot.go): per engine, its open
// window, the summaries of cells evicted in it and its destination table (whose distinct
// source counts live in the engine's slab, saved with the engine); once, the shared
// Hotspots: the workers' progress, the summaries of windows not yet complete and the open
// episodes. The receiver distribution (Hist) is a cumulative distribution like a counter:
// it is not saved.

// hotStateTypes are the hotspot types a checkpoint copies as memory (see StateTypes).
func hotStateTypes() []reflect.Type {
	return []reflect.Type{
		reflect.TypeFor[aggregate.TableEntry[capture.Addr, hotCell]](),
		reflect.TypeFor[HotSummary](),
	}
}

// SaveHotState appends the engine's hotspot state to enc (after SaveState: the slab it
// refers to is restored first). Same calling rules as SaveState.
func (e *Engine) SaveHotState(enc *checkpoint.Encoder) {
	hw := &e.hot
	enc.Bool(hw.cells != nil)
	if hw.cells == nil {
		return
	}
	enc.I64(hw.size)
	enc.I64(hw.win)
	enc.I64(hw.end)
	enc.Bool(hw.open)
	checkpoint.Slice(enc, hw.out)
	hw.cells.Save(enc)
}

// LoadHotState replaces the hotspot state of an engine restored by LoadState (attached to
// its Hotspots, same limits) by one written by SaveHotState, and checks it.
func (e *Engine) LoadHotState(d *checkpoint.Decoder) {
	hw := &e.hot
	has := d.Bool()
	if d.Err() != nil {
		return
	}
	if has != (hw.cells != nil) {
		d.Fail("hotspot table present %v, want %v", has, hw.cells != nil)
		return
	}
	if !has {
		return
	}
	size, win, end, open := d.I64(), d.I64(), d.I64(), d.Bool()
	out := checkpoint.ReadSlice[HotSummary](d, 2*hw.cells.Cap()+2*(1+hotPorts))
	hw.cells.Load(d)
	if d.Err() != nil {
		return
	}
	if open && (size <= 0 || end != (win+1)*size) {
		d.Fail("hotspot window %d of %d ns ending at %d", win, size, end)
		return
	}
	for i := range out {
		if out[i].NTop > hotTop {
			d.Fail("hotspot summary with %d top sources", out[i].NTop)
			return
		}
	}
	var err error
	hw.cells.Range(func(k *capture.Addr, c *hotCell) bool {
		for _, st := range append([]*hotStats{&c.Addr}, ptrs(c.Port[:])...) {
			if st.NTop > hotTop {
				d.Fail("hotspot cell %v: %d top sources", k, st.NTop)
				return false
			}
			if err = st.Sources.Validate(&e.slab); err != nil {
				d.Fail("hotspot cell %v: %v", k, err)
				return false
			}
		}
		return true
	})
	if d.Err() != nil {
		return
	}
	hw.size, hw.win, hw.end, hw.open = size, win, end, open
	hw.out = append(hw.out[:0], out...)
}

func ptrs[T any](s []T) []*T {
	out := make([]*T, len(s))
	for i := range s {
		out[i] = &s[i]
	}
	return out
}

// SaveState appends the shared hotspot state to enc. Call it while no engine runs (the
// pipeline holds every worker), so it matches the engines' states.
func (hs *Hotspots) SaveState(enc *checkpoint.Encoder) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	enc.Bool(hs.enabled)
	enc.I64(hs.size)
	checkpoint.Slice(enc, hs.started)
	checkpoint.Slice(enc, hs.through)
	wins := slices.Sorted(func(yield func(int64) bool) {
		for w := range hs.pending {
			if !yield(w) {
				return
			}
		}
	})
	enc.Len(len(wins))
	for _, w := range wins {
		enc.I64(w)
		sums := make([]HotSummary, 0, len(hs.pending[w]))
		for _, s := range hs.pending[w] {
			sums = append(sums, *s)
		}
		slices.SortFunc(sums, func(a, b HotSummary) int { return cmpHotKey(hotKey{a.Dst, a.Port}, hotKey{b.Dst, b.Port}) })
		checkpoint.Slice(enc, sums)
	}
	keys := make([]hotKey, 0, len(hs.active))
	for k := range hs.active {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpHotKey)
	enc.Len(len(keys))
	for _, k := range keys {
		ep := hs.active[k]
		checkpoint.Raw(enc, &ep.sum)
		enc.U64(ep.srcSum)
		enc.I64(int64(ep.class))
		enc.I64(ep.lastWin)
	}
}

func cmpHotKey(a, b hotKey) int {
	if c := a.Dst.Netip().Compare(b.Dst.Netip()); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

// maxHotPending bounds the pending windows and the summaries per window a checkpoint may
// hold (a reader's limit against damaged lengths; far above what the workers produce).
const maxHotPending = 1 << 20

// LoadState replaces the shared hotspot state by one written by SaveState (same worker
// count). A state saved with the detector off or another window length is dropped (its
// windows mean nothing now) and restored reports false; so is one the detector is now off
// for.
func (hs *Hotspots) LoadState(d *checkpoint.Decoder) (restored bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	enabled, size := d.Bool(), d.I64()
	started := checkpoint.ReadSlice[bool](d, len(hs.started))
	through := checkpoint.ReadSlice[int64](d, len(hs.through))
	nw := d.Len(16, maxHotPending)
	pending := map[int64]map[hotKey]*HotSummary{}
	for range nw {
		w := d.I64()
		sums := checkpoint.ReadSlice[HotSummary](d, maxHotPending)
		m := map[hotKey]*HotSummary{}
		for i := range sums {
			if sums[i].NTop > hotTop {
				d.Fail("hotspot summary with %d top sources", sums[i].NTop)
			}
			m[hotKey{sums[i].Dst, sums[i].Port}] = &sums[i]
		}
		pending[w] = m
	}
	na := d.Len(0, maxHotPending)
	active := map[hotKey]*hotEpisode{}
	for range na {
		ep := &hotEpisode{}
		checkpoint.RawInto(d, &ep.sum)
		ep.srcSum = d.U64()
		class := d.I64()
		ep.lastWin = d.I64()
		if d.Err() == nil && (class < 0 || class >= int64(len(HotspotClasses)) || ep.sum.NTop > hotTop) {
			d.Fail("hotspot episode of class %d with %d top sources", class, ep.sum.NTop)
		}
		ep.class = int(class)
		active[hotKey{ep.sum.Dst, ep.sum.Port}] = ep
	}
	if d.Err() != nil {
		return false
	}
	if len(started) != len(hs.started) || len(through) != len(hs.through) {
		d.Fail("hotspot state of %d workers, want %d", len(started), len(hs.started))
		return false
	}
	if !enabled || !hs.enabled || size != hs.size {
		return false
	}
	copy(hs.started, started)
	copy(hs.through, through)
	hs.pending, hs.active = pending, active
	hs.c.Active[detHotspot].Store(int64(len(active)))
	return true
}
