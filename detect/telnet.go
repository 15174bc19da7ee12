package detect

import (
	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// Telnet sweep classes, indexes of the telnet_sweep descriptor's Classes.
const (
	classMirai = iota
	classOther
)

// telnetSweep counts one SYN probe to a telnet port: the sweep window (separate from the
// scanner's, same rules) and the source's membership in the current surge bucket. dst is
// the destination's hash (seedDstIP).
func (e *Engine) telnetSweep(h *packet.Header, st *SourceState, dst uint64) {
	if e.surge != nil && e.sb.joined {
		e.sb.probes++
		if st.SurgeSeq != e.sb.seq {
			st.SurgeSeq = e.sb.seq
			e.sb.count++
		}
	}
	w := &st.Tel
	rec := e.continuing(h.Src, st, epTel, h.TS)
	if rec != nil {
		w = &rec.Tel
	}
	t := h.TS
	if w.Packets > 0 { // the window is open
		t = later(t, w.Last)
		if rec == nil && t-w.Start >= e.window {
			e.clearTel(w)
		}
	}
	if w.Packets == 0 {
		w.Start = t
	}
	w.Last = t
	w.Packets++
	if h.Dst.Is4() && h.Seq == h.Dst.V4() {
		w.Mirai++
	}
	changed := w.Targets.Add(&e.slab, dst)
	if rec != nil {
		return
	}
	if e.reached(&w.Targets, e.cfg.Telnet.MinTargets, changed) {
		rec = e.promote(h.Src, st, epTel)
		rec.Tel, st.Tel = st.Tel, TelnetWindow{} // the window's slab block moves with it
		e.watch(rec.Tel.Last)
		entry := e.telnetEntry(h.Src, &rec.Tel)
		e.begin(detTelnetSweep, telnetClass(entry.Mirai), entry)
	}
}

func telnetClass(mirai bool) int {
	if mirai {
		return classMirai
	}
	return classOther
}

// telnetEntry reports the sweep; mirai when more than half of its SYNs carry seq == dst IP.
func (e *Engine) telnetEntry(src packet.Addr, w *TelnetWindow) *TelnetSweepEntry {
	return &TelnetSweepEntry{
		Src:              src.String(),
		Targets:          min(w.Targets.Count(&e.slab), w.Packets),
		Packets:          w.Packets,
		Mirai:            w.Mirai*2 > w.Packets,
		FirstSeen:        Time(w.Start),
		LastSeen:         Time(w.Last),
		TargetsEstimated: !w.Targets.Exact(),
	}
}

// endTelnet emits the End event of src's sweep and clears it from the record.
func (e *Engine) endTelnet(src packet.Addr, rec *episode) {
	entry := e.telnetEntry(src, &rec.Tel)
	rec.Active &^= epTel
	e.clearTel(&rec.Tel)
	e.end(detTelnetSweep, telnetClass(entry.Mirai), entry)
}

// clearTel empties a telnet window, returning its slab block.
func (e *Engine) clearTel(w *TelnetWindow) {
	w.Targets.Reset(&e.slab)
	*w = TelnetWindow{}
}

// surgeClock is one worker's view of the telnet surge buckets: the bucket it is counting
// and how many distinct sources it has seen in it.
type surgeClock struct {
	joined bool   // reported to the Surge under the current bucket size
	size   int64  // bucket size in ns
	bucket int64  // index of the bucket being counted (start = bucket*size)
	end    int64  // (bucket+1)*size
	seq    uint32 // bucket sequence number: SourceState.SurgeSeq marks sources counted in it
	count  uint64 // distinct telnet sources in this bucket
	probes uint64 // their SYN probes to the telnet ports
}

// surgeTick joins the Surge on the first clock tick (or after a bucket size change) and
// reports each bucket once the clock passes its end.
func (e *Engine) surgeTick() {
	sb := &e.sb
	size := int64(e.cfg.Telnet.SurgeBucket)
	if size <= 0 {
		return
	}
	nb := aggregate.FloorDiv(e.now, size)
	if sb.joined {
		e.surge.report(e.worker, size, sb.bucket, sb.count, sb.probes, nb)
	} else {
		sb.joined, sb.size = true, size
		// The first bucket this worker sees whole: the current one only when the clock
		// starts exactly at its beginning.
		e.surge.join(e.worker, size, aggregate.FloorDiv(e.now+size-1, size))
	}
	sb.bucket, sb.end, sb.count, sb.probes = nb, (nb+1)*size, 0, 0
	// A fresh sequence number: no source is counted in the new bucket yet. 0 means "never".
	if sb.seq++; sb.seq == 0 {
		sb.seq = 1
	}
}
