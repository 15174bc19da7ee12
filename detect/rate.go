package detect

import (
	"time"

	"github.com/telescope-dev/telescope/aggregate"
)

const (
	minute = int64(time.Minute)
	second = int64(time.Second)
)

// rateWin tracks how many of a victim's packets fall in a sliding minute.
//
// Until the start condition holds it keeps the victim's last MinRatePerMinute timestamps in
// Ring, which decides "some interval (t-60s, t] holds MinRatePerMinute packets" exactly.
// From then on only the reported peak matters, and it is counted with 1-second granularity
// (packets per second over the last 60 whole seconds) in constant memory.
type rateWin struct {
	Ring []int64 // phase 1: timestamps, oldest overwritten first
	Head int     // next slot of Ring to write
	N    int     // timestamps held

	Secs [60]uint32 // phase 2: packets per second, slot = second mod 60
	Sec  int64      // newest second counted in Secs
	Sum  uint64     // packets in Secs
	Peak uint64     // most packets seen in one sliding minute
}

// acquireRate returns (as a victim.Rate value) a rate window with room for r timestamps,
// reusing a released one when it can. Victims refer to their window by index, so the
// victim table holds no pointers.
func (e *Engine) acquireRate(r int) int32 {
	var ref int32
	if n := len(e.rateFree); n > 0 {
		ref = e.rateFree[n-1]
		e.rateFree = e.rateFree[:n-1]
	} else {
		e.rates = append(e.rates, rateWin{})
		ref = int32(len(e.rates))
	}
	e.rates[ref-1].grow(r)
	return ref
}

// rate returns v's rate window (v.Rate != 0); valid until the next acquireRate.
func (e *Engine) rate(v *victim) *rateWin { return &e.rates[v.Rate-1] }

// releaseRate returns v's rate window to the pool.
func (e *Engine) releaseRate(v *victim) {
	if v.Rate == 0 {
		return
	}
	w := e.rate(v)
	*w = rateWin{Ring: w.Ring[:0]}
	e.rateFree = append(e.rateFree, v.Rate)
	v.Rate = 0
}

// grow makes room for r timestamps, keeping those held in order.
func (w *rateWin) grow(r int) {
	r = max(r, 1)
	if len(w.Ring) >= r {
		return
	}
	ring := w.Ring[:0]
	if cap(ring) < r || w.N > 0 { // never copy a ring onto itself
		ring = make([]int64, 0, r)
	}
	for i := w.N; i >= 1; i-- {
		ring = append(ring, w.nth(i))
	}
	w.Ring, w.Head = ring[:r], len(ring)%r
}

// nth returns the i-th most recent timestamp (1 <= i <= N).
func (w *rateWin) nth(i int) int64 {
	return w.Ring[((w.Head-i)%len(w.Ring)+len(w.Ring))%len(w.Ring)]
}

func (w *rateWin) push(t int64) {
	w.Ring[w.Head] = t
	w.Head = (w.Head + 1) % len(w.Ring)
	w.N = min(w.N+1, len(w.Ring))
}

// trackRate counts the packet at t (t never decreases for one victim) towards the rate
// condition, then towards the peak.
func (e *Engine) trackRate(v *victim, t int64) {
	if v.RateMet {
		e.rate(v).count(t)
		return
	}
	r := max(e.cfg.Backscatter.MinRatePerMinute, 1)
	if v.Rate == 0 {
		if v.Packets == 1 && r > 1 {
			return // a lone packet needs no ring: its time is v.First
		}
		v.Rate = e.acquireRate(r)
		if v.Packets > 1 {
			e.rate(v).push(v.First)
		}
	}
	w := e.rate(v)
	w.grow(r)
	w.push(t)
	if w.N >= r && t-w.nth(r) < minute {
		v.RateMet = true
		w.toSeconds(t)
	}
}

// toSeconds switches to per-second counting at time t: the packets held that fall in the
// last 60 whole seconds seed the counts, and the peak is the exact count in (t-60s, t].
func (w *rateWin) toSeconds(t int64) {
	sec := aggregate.FloorDiv(t, second)
	w.Sec, w.Sum, w.Secs = sec, 0, [60]uint32{}
	var exact uint64
	for i := 1; i <= w.N; i++ {
		ts := w.nth(i)
		if t-ts < minute {
			exact++
		}
		if s := aggregate.FloorDiv(ts, second); sec-s < 60 {
			w.Secs[slot(s)]++
			w.Sum++
		}
	}
	w.Peak = max(w.Peak, exact)
	w.Ring, w.Head, w.N = w.Ring[:0], 0, 0
}

// count adds a packet at t to the per-second counts and raises the peak.
func (w *rateWin) count(t int64) {
	s := aggregate.FloorDiv(t, second)
	if s > w.Sec {
		if s-w.Sec >= 60 {
			w.Secs, w.Sum = [60]uint32{}, 0
		} else {
			for x := w.Sec + 1; x <= s; x++ {
				w.Sum -= uint64(w.Secs[slot(x)])
				w.Secs[slot(x)] = 0
			}
		}
		w.Sec = s
	}
	if w.Secs[slot(s)] < ^uint32(0) {
		w.Secs[slot(s)]++
		w.Sum++
	}
	w.Peak = max(w.Peak, w.Sum)
}

func slot(sec int64) int { return int((sec%60 + 60) % 60) }
