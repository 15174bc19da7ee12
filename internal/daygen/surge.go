package daygen

import "github.com/telescope-dev/telescope/packet"

// surgeTruth applies the telnet surge rule to the day, as a reference: per minute bucket the
// distinct sources of SYN probes to 23 or 2323; the first complete bucket sets the EWMA
// baseline (alpha 0.2); a bucket with >= 20 sources and >= 3 x the lowest baseline of the
// last five buckets starts a surge (which resets the baseline to that lowest one), the first
// bucket below 3 x it ends it; the baseline learns only outside surges. The bucket of the last
// packet is not complete (the clock never passes its end) and is not evaluated.
func surgeTruth(pkts []pkt, start int64) []Surge {
	const (
		alpha      = 0.2
		factor     = 3
		minSources = 20
	)
	b := int64(surgeBucket)
	if len(pkts) == 0 {
		return nil
	}
	sets := map[int64]map[packet.Addr]bool{}
	for i := range pkts {
		h := &pkts[i].h
		if h.SYNProbe() && (h.DstPort == 23 || h.DstPort == 2323) {
			k := h.TS / b
			if sets[k] == nil {
				sets[k] = map[packet.Addr]bool{}
			}
			sets[k][h.Src] = true
		}
	}
	// The first complete bucket: the one starting at or after the first packet.
	first := (pkts[0].h.TS + b - 1) / b
	_ = start
	var out []Surge
	var baseline float64
	var hist []float64 // baselines of the buckets before, newest last
	var cur *Surge
	for k := first; k < pkts[len(pkts)-1].h.TS/b; k++ {
		s := len(sets[k])
		if k == first {
			baseline = float64(s)
			continue
		}
		ref := baseline
		if cur == nil {
			for _, h := range hist[max(len(hist)-4, 0):] {
				ref = min(ref, h)
			}
		}
		surging := s >= minSources && float64(s) >= factor*ref
		switch {
		case surging && cur == nil:
			cur = &Surge{Start: tm(k * b), End: tm((k + 1) * b), PeakSources: uint64(s), Baseline: ref}
			baseline, hist = ref, hist[:0]
		case surging:
			cur.PeakSources = max(cur.PeakSources, uint64(s))
			cur.End = tm((k + 1) * b)
		case cur != nil:
			cur.End = tm(k * b)
			out = append(out, *cur)
			cur = nil
		}
		if cur == nil {
			hist = append(hist, baseline)
			baseline = (1-alpha)*baseline + alpha*float64(s)
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}
