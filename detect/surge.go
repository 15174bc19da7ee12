package detect

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
)

// ewmaAlpha weighs the newest bucket in the surge baseline.
const ewmaAlpha = 0.2

// surgeLag is how many buckets of baseline a bucket is compared with: the lowest EWMA
// baseline of the last surgeLag buckets (this one's included). A surge that ramps up over
// a few buckets teaches the EWMA its own first buckets; comparing with the baseline from
// before the ramp still sees it, as long as the ramp is shorter than surgeLag buckets.
const surgeLag = 5

// maxPendingBuckets bounds the buckets some workers have reported while others have not yet
// passed them. Workers run within a batch of each other, so this is never reached in
// practice; past it the oldest bucket is completed without the laggards.
const maxPendingBuckets = 4096

// Surge detects telnet surges: per bucket of Telnet.SurgeBucket (aligned to multiples of the
// bucket size in Unix time), the number of distinct sources sending SYN probes to the telnet
// ports, summed over the workers (sources are partitioned between them, so the sum is exact).
// A bucket is complete when every worker's clock has passed it. Engines report once per
// bucket, so the mutex is not on the packet path.
type Surge struct {
	mu   sync.Mutex
	sink Sink

	enabled    bool
	size       int64
	factor     float64
	minSources uint64

	joined   []bool
	through  []int64 // per worker: every bucket before this one is reported
	nJoined  int
	first    int64 // first bucket every worker saw whole
	next     int64 // next bucket to evaluate
	pending  []bucketSum
	baseSet  bool
	baseline float64
	// hist holds the baselines of the last surgeLag-1 buckets evaluated outside a surge
	// (a ring: nhist valid entries, the next one written at hpos).
	hist  [surgeLag - 1]float64
	nhist int
	hpos  int

	in        bool    // a surge is open
	start     int64   // its first bucket's start
	surgeEnd  int64   // end of its last bucket so far
	peak      uint64  // most sources in one of its buckets
	peakProbe uint64  // the telnet SYN probes of that bucket
	startBase float64 // baseline when it started
	resumed   bool    // restored after a restart: the next bucket follows a gap of unknown buckets

	lastSources atomic.Uint64
	active      atomic.Int64
	detections  atomic.Uint64
}

type bucketSum struct {
	bucket  int64
	sources uint64
	probes  uint64 // telnet SYN probes (for the bots estimate)
}

// NewSurge returns the surge detector shared by `workers` engines. Call SetConfig before use.
func NewSurge(workers int, sink Sink) *Surge {
	workers = max(workers, 1)
	return &Surge{sink: sink, joined: make([]bool, workers), through: make([]int64, workers)}
}

// SetConfig applies a (re)loaded config. A new bucket size, or turning the detector off or
// on, ends an open surge and restarts from scratch (a baseline in other units means nothing).
func (s *Surge) SetConfig(cfg *Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := int64(cfg.Telnet.SurgeBucket)
	enabled := cfg.Telnet.Enabled && size > 0
	if enabled != s.enabled || size != s.size {
		s.closeSurge()
		s.reset()
	}
	s.enabled, s.size = enabled, size
	s.factor = cfg.Telnet.SurgeFactor
	// A bucket with no source at all is never a surge, whatever the config says.
	s.minSources = uint64(max(cfg.Telnet.SurgeMinSources, 1))
}

func (s *Surge) reset() {
	clear(s.joined)
	clear(s.through)
	s.nJoined, s.first, s.next = 0, 0, 0
	s.pending = s.pending[:0]
	s.baseSet, s.baseline = false, 0
	s.nhist, s.hpos = 0, 0
	s.lastSources.Store(0)
}

// LastBucketSources returns the distinct telnet sources of the last complete bucket.
func (s *Surge) LastBucketSources() uint64 { return s.lastSources.Load() }

// Active returns 1 while a surge is open, else 0.
func (s *Surge) Active() int64 { return s.active.Load() }

// Detections returns the number of surges started.
func (s *Surge) Detections() uint64 { return s.detections.Load() }

// Finish ends an open surge (call it after every engine's Finish). Its end is the end of its
// last complete bucket: the bucket still being counted at the end of input is partial and
// says nothing either way.
func (s *Surge) Finish(now int64) {
	_ = now
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeSurge()
}

// join registers worker w, whose first whole bucket (of this size) is `first`.
func (s *Surge) join(w int, size, first int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled || size != s.size || w < 0 || w >= len(s.joined) {
		return
	}
	s.joinLocked(w, first)
	s.advance()
}

func (s *Surge) joinLocked(w int, first int64) {
	if s.joined[w] {
		return
	}
	s.joined[w], s.through[w] = true, first
	if s.nJoined == 0 || first > s.first {
		s.first = first
	}
	s.nJoined++
	if s.nJoined == len(s.joined) {
		s.next = s.first
	}
}

// report adds worker w's count for `bucket` and records that it has passed every bucket
// before `through`. Reports made under another bucket size (during a reload) are dropped.
func (s *Surge) report(w int, size, bucket int64, sources, probes uint64, through int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled || size != s.size || w < 0 || w >= len(s.joined) {
		return
	}
	if !s.joined[w] {
		// Joined under another size, or before a reset: this worker counted `bucket`
		// only partly, so its first whole bucket is the next one.
		s.joinLocked(w, through)
		s.advance()
		return
	}
	if sources > 0 && bucket >= s.first && (s.nJoined < len(s.joined) || bucket >= s.next) {
		s.add(bucket, sources, probes)
	}
	if through > s.through[w] {
		s.through[w] = through
	}
	s.advance()
}

// add adds sources and probes to the pending sums of bucket (pending is sorted by bucket).
func (s *Surge) add(bucket int64, sources, probes uint64) {
	i := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].bucket >= bucket })
	if i < len(s.pending) && s.pending[i].bucket == bucket {
		s.pending[i].sources += sources
		s.pending[i].probes += probes
		return
	}
	s.pending = append(s.pending, bucketSum{})
	copy(s.pending[i+1:], s.pending[i:])
	s.pending[i] = bucketSum{bucket, sources, probes}
	if len(s.pending) <= maxPendingBuckets {
		return
	}
	if s.nJoined < len(s.joined) {
		// A worker that never reports: keep the newest buckets only.
		s.pending = append(s.pending[:0], s.pending[1:]...)
		return
	}
	// Force completion of the oldest pending bucket: raise every laggard past it.
	lim := s.pending[0].bucket + 1
	for w := range s.through {
		s.through[w] = max(s.through[w], lim)
	}
}

// advance evaluates every bucket that all workers have passed, in order.
func (s *Surge) advance() {
	if s.nJoined < len(s.joined) {
		return
	}
	lim := s.through[0]
	for _, t := range s.through[1:] {
		lim = min(lim, t)
	}
	done := 0 // pending entries consumed
	for s.next < lim {
		for done < len(s.pending) && s.pending[done].bucket < s.next {
			done++ // reported for a bucket before the first whole one
		}
		if done < len(s.pending) && s.pending[done].bucket == s.next {
			s.bucket(s.next, s.pending[done].sources, s.pending[done].probes)
			done++
			s.next++
			continue
		}
		// A run of buckets nobody counted a source in.
		runEnd := lim
		if done < len(s.pending) && s.pending[done].bucket < runEnd {
			runEnd = s.pending[done].bucket
		}
		s.empty(s.next, runEnd-s.next)
		s.next = runEnd
	}
	if done > 0 {
		s.pending = append(s.pending[:0], s.pending[done:]...)
	}
}

// empty evaluates n >= 1 consecutive buckets without sources, starting at b. The first may
// end a surge; none can start one (minSources >= 1), so the rest only decay the baseline,
// in closed form: a long silence (or a jump in packet time) costs O(1).
func (s *Surge) empty(b, n int64) {
	s.bucket(b, 0, 0)
	rest := n - 1
	if rest > surgeLag {
		// Baselines that the reference window no longer reaches: decay in one step.
		s.baseline *= math.Pow(1-ewmaAlpha, float64(rest-surgeLag))
		rest = surgeLag
	}
	for range rest {
		s.learn(0)
	}
}

// learn records the current baseline in the history and moves it towards sources.
func (s *Surge) learn(sources uint64) {
	s.hist[s.hpos] = s.baseline
	s.hpos = (s.hpos + 1) % len(s.hist)
	s.nhist = min(s.nhist+1, len(s.hist))
	s.baseline = (1-ewmaAlpha)*s.baseline + ewmaAlpha*float64(sources)
}

// reference is the baseline a bucket is compared with: the lowest of the current one and
// those of the last surgeLag-1 buckets.
func (s *Surge) reference() float64 {
	ref := s.baseline
	for _, b := range s.hist[:s.nhist] {
		ref = min(ref, b)
	}
	return ref
}

// bucket evaluates one complete bucket holding `sources` distinct telnet sources.
func (s *Surge) bucket(b int64, sources, probes uint64) {
	s.lastSources.Store(sources)
	if !s.baseSet {
		// The first complete bucket only initialises the baseline.
		s.baseSet, s.baseline = true, float64(sources)
		return
	}
	ref := s.baseline
	if !s.in {
		ref = s.reference()
	}
	surging := sources >= s.minSources && float64(sources) >= s.factor*ref
	switch {
	case surging && !s.in:
		s.in, s.start, s.surgeEnd = true, b*s.size, (b+1)*s.size
		s.peak, s.peakProbe, s.startBase = sources, probes, ref
		// What the EWMA learnt from the ramp is forgotten: the surge is measured against,
		// and afterwards learns from, the baseline from before it.
		s.baseline, s.nhist, s.hpos = ref, 0, 0
		s.detections.Add(1)
		s.active.Store(1)
		s.sink.Detection(&Event{Detector: TelnetSurge, Phase: Start, Class: "surge", Entry: s.entry()})
	case surging:
		if sources > s.peak {
			s.peak, s.peakProbe = sources, probes
		}
		s.surgeEnd = (b + 1) * s.size
	case s.in:
		if !s.resumed { // after a restart the surge ends at its last busy bucket before it
			s.surgeEnd = b * s.size
		}
		s.closeSurge()
	}
	s.resumed = false
	// The baseline learns only from buckets outside a surge: frozen during one, so a long
	// surge cannot raise its own baseline until it no longer looks like a surge.
	if !s.in {
		s.learn(sources)
	}
}

// closeSurge emits the End event of an open surge.
func (s *Surge) closeSurge() {
	if !s.in {
		return
	}
	s.in = false
	s.active.Store(0)
	s.sink.Detection(&Event{Detector: TelnetSurge, Phase: End, Class: "surge", Entry: s.entry()})
}

func (s *Surge) entry() *TelnetSurgeEntry {
	return &TelnetSurgeEntry{Start: Time(s.start), End: Time(s.surgeEnd), PeakSources: s.peak, PeakProbes: s.peakProbe, Baseline: s.startBase}
}
