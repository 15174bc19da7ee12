package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// multi is several engines sharing one Surge, with source affinity as in the pipeline.
type multi struct {
	cfg     *Config
	sink    *recSink
	surge   *Surge
	engines []*Engine
	tables  []*aggregate.Table[packet.Addr, SourceState]
	c       []*Counters
}

func newMulti(t testing.TB, cfg *Config, workers int) *multi {
	m := &multi{cfg: cfg, sink: &recSink{}}
	m.surge = NewSurge(workers, m.sink)
	m.surge.SetConfig(cfg)
	for w := range workers {
		c := &Counters{}
		e := NewEngine(cfg, w, m.sink, m.surge, c)
		tab := newSourceTable(4096)
		tab.SetEvict(func(k *packet.Addr, v *SourceState) { e.Evicted(k, v, 0) })
		m.engines, m.tables, m.c = append(m.engines, e), append(m.tables, tab), append(m.c, c)
	}
	return m
}

func (m *multi) feed(pkts ...packet.Header) {
	for i := range pkts {
		p := &pkts[i]
		w := packet.WorkerIndex(p.AffinityKey(), len(m.engines))
		st, _ := m.tables[w].Touch(p.Src)
		m.engines[w].Packet(p, st)
	}
}

func (m *multi) advance(now int64) {
	for _, e := range m.engines {
		e.Advance(now)
	}
}

func (m *multi) setConfig(cfg *Config) {
	m.surge.SetConfig(cfg)
	for _, e := range m.engines {
		e.SetConfig(cfg)
	}
}

// bucketTraffic makes n distinct sources send two telnet SYNs each (to one dst, so no
// sweep) in the bucket starting at start: the count is per source, not per packet.
func bucketTraffic(n int, start int64) []packet.Header {
	var out []packet.Header
	for k := range 2 {
		for j := range n {
			out = append(out, syn(ip4("100.64.0.0", j), "203.0.113.1", 23, start+int64(k)*20*sec+int64(j)*int64(1e6)))
		}
	}
	return out
}

// playBuckets feeds counts[i] sources in bucket i (one minute each from t0) and advances
// every engine to the end of each bucket.
func (m *multi) playBuckets(counts []int, bucket int64) {
	m.advance(t0)
	for i, n := range counts {
		start := t0 + int64(i)*bucket
		m.feed(bucketTraffic(n, start)...)
		m.advance(start + bucket)
	}
}

// surgeEv is a surge event whose peak bucket had peak sources of bucketTraffic (two SYN
// probes each).
func surgeEv(p Phase, start, end int64, peak uint64, baseline float64) ev {
	return ev{TelnetSurge, p, "surge", TelnetSurgeEntry{Start: Time(start), End: Time(end), PeakSources: peak, PeakProbes: 2 * peak, Baseline: baseline}}
}

func TestTelnetSurge(t *testing.T) {
	b := func(i int) int64 { return t0 + int64(i)*mn }
	cases := []struct {
		name   string
		counts []int
		want   []ev
	}{
		{"first bucket only sets the baseline", []int{100, 100, 100, 100}, nil},
		{"factor-1: 29 < 3 x 10", []int{10, 10, 10, 29, 10}, nil},
		{"factor: 30 >= 3 x 10", []int{10, 10, 10, 30, 10}, []ev{
			surgeEv(Start, b(3), b(4), 30, 10), surgeEv(End, b(3), b(4), 30, 10)}},
		{"min_sources-1", []int{2, 2, 2, 19, 2}, nil},
		{"min_sources", []int{2, 2, 2, 20, 2}, []ev{
			surgeEv(Start, b(3), b(4), 20, 2), surgeEv(End, b(3), b(4), 20, 2)}},
		{"baseline is frozen during a surge", []int{10, 10, 40, 40, 40, 40, 10}, []ev{
			surgeEv(Start, b(2), b(3), 40, 10), surgeEv(End, b(2), b(6), 40, 10)}},
		{"peak", []int{10, 10, 40, 50, 35, 10}, []ev{
			surgeEv(Start, b(2), b(3), 40, 10), surgeEv(End, b(2), b(5), 50, 10)}},
		{"a rise is compared with the lowest baseline of the last five buckets", []int{10, 20, 10, 30, 10}, []ev{
			// baselines 10, 12, 11.6: 30 >= 3 x 10.
			surgeEv(Start, b(3), b(4), 30, 10), surgeEv(End, b(3), b(4), 30, 10)}},
		{"EWMA learns from a lasting rise", []int{10, 20, 20, 20, 20, 20, 20, 40, 20}, nil},
		// baselines 10, 12, 13.6, 14.88, 15.904, 16.7232, 17.37856: the lowest of the last
		// five is 13.6, and 40 < 3 x 13.6.
		{"EWMA learns from a lasting rise, then a surge", []int{10, 20, 20, 20, 20, 20, 20, 41, 20}, []ev{
			surgeEv(Start, b(7), b(8), 41, 13.6), surgeEv(End, b(7), b(8), 41, 13.6)}},
		{"a ramp does not hide the surge", []int{10, 10, 10, 10, 19, 29, 39, 39, 10}, []ev{
			// The EWMA follows the ramp (11.8, 15.24: 39 < 3 x 15.24), the lowest baseline
			// of the last five buckets does not.
			surgeEv(Start, b(6), b(7), 39, 10), surgeEv(End, b(6), b(8), 39, 10)}},
		{"the ramp is forgotten after the surge", []int{10, 10, 10, 10, 19, 29, 39, 10, 10, 10, 10, 10, 30, 10}, []ev{
			surgeEv(Start, b(6), b(7), 39, 10), surgeEv(End, b(6), b(7), 39, 10),
			// baseline reset to 10 at the start, then 10 x 0.8 + 10 x 0.2 = 10: 30 >= 3 x 10.
			surgeEv(Start, b(12), b(13), 30, 10), surgeEv(End, b(12), b(13), 30, 10)}},
		{"empty buckets decay the baseline", []int{10, 10, 0, 0, 0, 0, 0, 20, 0}, []ev{
			// 10 x 0.8^5 = 3.2768
			surgeEv(Start, b(7), b(8), 20, 3.2768), surgeEv(End, b(7), b(8), 20, 3.2768)}},
	}
	for _, tc := range cases {
		for _, workers := range []int{1, 2, 3} {
			t.Run(tc.name, func(t *testing.T) {
				m := newMulti(t, only(testConfig(t), TelnetSurge), workers)
				m.playBuckets(tc.counts, mn)
				checkEvents(t, m.sink.take(), tc.want)
				if got, want := m.surge.LastBucketSources(), uint64(tc.counts[len(tc.counts)-1]); got != want {
					t.Errorf("LastBucketSources = %d, want %d", got, want)
				}
				if got, want := m.surge.Detections(), uint64(len(tc.want)/2); got != want {
					t.Errorf("Detections = %d, want %d", got, want)
				}
				if a := m.surge.Active(); a != 0 {
					t.Errorf("Active = %d after the surge ended", a)
				}
			})
		}
	}
}

func TestTelnetSurgeWaitsForEveryWorker(t *testing.T) {
	m := newMulti(t, only(testConfig(t), TelnetSurge), 2)
	m.advance(t0)
	for i, n := range []int{10, 10, 40} {
		m.feed(bucketTraffic(n, t0+int64(i)*mn)...)
	}
	// Only worker 0 has passed bucket 2: it is not complete yet.
	m.engines[0].Advance(t0 + 3*mn)
	if ev := m.sink.take(); len(ev) != 0 {
		t.Fatalf("bucket completed before every worker passed it: %v", evs(ev))
	}
	m.engines[1].Advance(t0 + 3*mn)
	checkEvents(t, m.sink.take(), []ev{surgeEv(Start, t0+2*mn, t0+3*mn, 40, 10)})
	if m.surge.Active() != 1 || m.surge.Detections() != 1 || m.surge.LastBucketSources() != 40 {
		t.Fatalf("active %d detections %d last %d", m.surge.Active(), m.surge.Detections(), m.surge.LastBucketSources())
	}
	// Finish ends the open surge at the end of its last complete bucket.
	for _, e := range m.engines {
		e.Finish(t0 + 3*mn + 30*sec)
	}
	m.surge.Finish(t0 + 3*mn + 30*sec)
	checkEvents(t, m.sink.take(), []ev{surgeEv(End, t0+2*mn, t0+3*mn, 40, 10)})
	if m.surge.Active() != 0 {
		t.Fatal("surge still active after Finish")
	}
}

func TestTelnetSurgeJoinMidBucket(t *testing.T) {
	// The clock starts 30 s into a bucket: that bucket is partial, so the next one sets the
	// baseline and a partial first bucket cannot fake a low baseline.
	m := newMulti(t, only(testConfig(t), TelnetSurge), 2)
	m.advance(t0 + 30*sec)
	m.feed(bucketTraffic(1, t0+30*sec)...)
	for i, n := range []int{30, 30, 90} {
		start := t0 + int64(i+1)*mn
		m.feed(bucketTraffic(n, start)...)
		m.advance(start + mn)
	}
	checkEvents(t, m.sink.take(), []ev{surgeEv(Start, t0+3*mn, t0+4*mn, 90, 30)})
}

func TestTelnetSurgeBucketReload(t *testing.T) {
	cfg := only(testConfig(t), TelnetSurge)
	m := newMulti(t, cfg, 2)
	m.playBuckets([]int{10, 10, 10}, mn) // clocks at t0+3m, baseline 10 (1-minute buckets)
	two := *cfg
	two.Telnet.SurgeBucket *= 2
	m.setConfig(&two)
	// Rejoined at t0+3m: the first whole 2-minute bucket is [t0+4m, t0+6m); it sets the
	// baseline (20) on its own. Without the reset the old baseline would make it 12.
	m.feed(bucketTraffic(5, t0+3*mn)...)
	m.advance(t0 + 4*mn)
	for i, n := range []int{20, 60} {
		start := t0 + 4*mn + int64(i)*2*mn
		m.feed(bucketTraffic(n, start)...)
		m.advance(start + 2*mn)
	}
	checkEvents(t, m.sink.take(), []ev{surgeEv(Start, t0+6*mn, t0+8*mn, 60, 20)})
}
