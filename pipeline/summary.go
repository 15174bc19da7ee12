package pipeline

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/logq"
)

// summaryMsg is the message of the per-detector summary lines.
const summaryMsg = "detector summary"

// logSummary writes, every log.summary_interval, one line per detector with the episodes
// started and ended since the previous line and how many of those events were not logged
// (detect.*.log, log_min_packets), so that filtered episodes never disappear silently. Its
// clock is packet time in a replay (the dispatcher ticks it per batch) and the wall clock
// live (a ticker); lines fall on multiples of the interval of that clock. A line is
// written for every enabled detector, with zeros when nothing happened (silence is
// information), and for a disabled one only when it had events in the interval (the ends a
// reload that disabled it caused). The lines name the detector in `detector`, not `event`:
// a line with `event` is an episode's start or end, as before.
//
// In a replay each line counts exactly the events of its interval, in every run alike: the
// reader runs up to a pool of batches (48 Ki packets with up to 11 workers) ahead of the workers,
// and lines written as it crossed an interval's end took whatever the workers had counted
// by then. So the reader ends a segment of batches at each line's end (cut: no batch holds
// packets of two lines), each worker hands over its counts as it leaves a segment (arrive)
// and the last one writes the line. The shared detectors' events (telnet surge, hotspot)
// are emitted by whichever worker passes a window's end last; every worker passes it in
// the same batch, so they count in that batch's segment: the lowest any worker is in
// (segNow).
type logSummary struct {
	p  *Pipeline
	mu sync.Mutex
	// lines encodes the lines for the log queue (nil: zap writes them; writeLine).
	lines InfoLineEncoder
	// prev are the tallies at the last line; from is the start of the interval the next
	// line covers (0: no time seen yet); next is when it is due; iv the interval it was
	// computed with.
	prev        []tallyCounts
	prevDropped uint64
	from, next  int64
	iv          int64

	// Segments (replay; segNow nil: none): the lines cut and not yet written, by segment,
	// with the workers' counts handed over for them; each worker's segment (read by shared
	// events); the shared detectors' counts by segment.
	cuts   map[uint32]summaryCut
	segNow []*atomic.Uint32
	shared map[uint32][]tallyCounts
	// sharedDone: the shared detectors' counts of the segments whose lines were written.
	sharedDone []tallyCounts
}

// summaryCut is a line cut at the end of a segment: its interval, and the counts the
// workers handed over (summed) and how many did.
type summaryCut struct {
	from, to int64
	counts   []tallyCounts
	arrived  int
}

type tallyCounts struct{ started, ended, startsNotLogged, endsNotLogged uint64 }

func (c *tallyCounts) add(d tallyCounts) {
	c.started += d.started
	c.ended += d.ended
	c.startsNotLogged += d.startsNotLogged
	c.endsNotLogged += d.endsNotLogged
}

func newSummary(p *Pipeline) *logSummary {
	enc, _ := p.logq.LineEncoder().(InfoLineEncoder)
	return &logSummary{p: p, lines: enc, prev: make([]tallyCounts, len(detect.Descriptors()))}
}

// segment switches the summary to lines by segment (replay: the dispatcher cuts, the
// workers arrive); segNow are the workers' segments.
func (s *logSummary) segment(segNow []*atomic.Uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segNow = segNow
	s.cuts, s.shared = map[uint32]summaryCut{}, map[uint32][]tallyCounts{}
	// The shared detectors' events so far (an earlier replay's), as the workers' tallies
	// count theirs since the start.
	s.sharedDone = s.p.sink.parts[0].tallies()
}

// interval reads the configured interval; a changed one moves the next line's time.
// Called with mu held.
func (s *logSummary) interval(now int64) int64 {
	iv := int64(s.p.rc.Load().cfg.Log.SummaryInterval)
	if iv <= 0 {
		s.iv = 0 // off: the counts wait for the next line once it is on again
		return 0
	}
	if iv != s.iv {
		s.iv = iv
		s.next = (aggregate.FloorDiv(max(now, s.from), iv) + 1) * iv
	}
	return iv
}

// due returns when the next line is due (a record at or past it cuts the segment):
// math.MaxInt64 while lines are off; 1 before any time was seen (the first record with a
// time after 1970 starts the clock, as tick does; one before it would cut at every record).
func (s *logSummary) due() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from == 0 {
		return 1
	}
	if s.interval(s.from) <= 0 {
		return math.MaxInt64
	}
	return s.next
}

// cut is tick for a segmented summary, at a record of time now that the dispatcher has
// not added yet: it ends segment seg with a line when one is due (reported: the next
// batches are of seg+1), written once every worker has left the segment (arrive).
func (s *logSummary) cut(now int64, seg uint32) bool {
	if now <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	to, ok := s.lineEnd(now)
	if !ok {
		return false
	}
	s.cuts[seg] = summaryCut{from: s.from, to: to, counts: make([]tallyCounts, len(s.prev))}
	s.from = to
	return true
}

// lineEnd starts the clock at the first time seen and returns the end of the line due at
// now, if one is, moving the next one's time past it. Called with mu held.
func (s *logSummary) lineEnd(now int64) (int64, bool) {
	if s.from == 0 {
		s.from = now
	}
	iv := s.interval(now)
	if iv <= 0 || now < s.next {
		return 0, false
	}
	to := aggregate.FloorDiv(now, iv) * iv
	s.next = to + iv
	return to, true
}

// arrive hands over a worker's tallies (all its events so far) as it leaves segment seg;
// the last worker writes the segment's line.
func (s *logSummary) arrive(seg uint32, mine []tallyCounts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cuts[seg]
	if !ok {
		return
	}
	for i := range c.counts {
		c.counts[i].add(mine[i])
	}
	if c.arrived++; c.arrived < len(s.segNow) {
		s.cuts[seg] = c
		return
	}
	delete(s.cuts, seg)
	// The shared detectors' events of this segment and before: no worker is there now.
	for k, sh := range s.shared {
		if k <= seg {
			delete(s.shared, k)
			for i := range sh {
				s.sharedDone[i].add(sh[i])
			}
		}
	}
	for i := range c.counts {
		c.counts[i].add(s.sharedDone[i])
	}
	s.writeLine(c.from, c.to, c.counts)
}

// sharedEvent counts an event of a shared detector in the segment of the batch being
// handled when it came: the lowest segment a worker is in.
func (s *logSummary) sharedEvent(i int, c tallyCounts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segNow == nil {
		return
	}
	seg := uint32(math.MaxUint32)
	for _, n := range s.segNow {
		seg = min(seg, n.Load())
	}
	sh := s.shared[seg]
	if sh == nil {
		sh = make([]tallyCounts, len(s.prev))
		s.shared[seg] = sh
	}
	sh[i].add(c)
}

// tick moves the summary's clock to now (ns) and writes the lines when an interval has
// passed. A jump over several intervals (a gap in a capture) gives one line per detector
// covering the whole gap.
func (s *logSummary) tick(now int64) {
	if now <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if to, ok := s.lineEnd(now); ok {
		s.write(to)
	}
}

// final writes the last lines (up to now), after every episode has ended, unless summary
// lines are off.
func (s *logSummary) final(now int64) {
	if now <= 0 || s.p.rc.Load().cfg.Log.SummaryInterval <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from == 0 {
		s.from = now
	}
	s.write(max(now, s.from))
}

// write logs the lines of the interval [s.from, to) with the tallies so far and starts
// the next one.
func (s *logSummary) write(to int64) {
	cur := make([]tallyCounts, len(s.prev))
	for i := range cur {
		cur[i] = s.p.sink.tallied(i)
	}
	s.writeLine(s.from, to, cur)
	s.from = to
}

// writeLine logs the lines of the interval [from, to) whose tallies (every event up to
// its end) are cur. With a line encoder (the JSON log format) they are encoded here and go
// to the log queue as one item: as zap entries of ten fields each, a day's 10 080 lines
// (7 detectors a minute) took 4 % of the CPU time of a replay of 5 M packets.
func (s *logSummary) writeLine(from, to int64, tallies []tallyCounts) {
	det := s.p.rc.Load().det
	dropped := s.p.logq.Dropped()
	l := summaryLine{from: detect.Time(from).String(), to: detect.Time(to).String(), dropped: dropped - s.prevDropped}
	var (
		b   []byte
		n   int
		now time.Time
	)
	if s.lines != nil && s.p.logq.Enabled(zapcore.InfoLevel) {
		b, now = logq.LineBuffer(), time.Now()
	}
	for i, d := range detect.Descriptors() {
		cur := tallies[i]
		prev := s.prev[i]
		s.prev[i] = cur
		delta := tallyCounts{cur.started - prev.started, cur.ended - prev.ended,
			cur.startsNotLogged - prev.startsNotLogged, cur.endsNotLogged - prev.endsNotLogged}
		if !d.Enabled(det) && delta == (tallyCounts{}) {
			continue
		}
		l.detector, l.counts = d.Name, delta
		l.log, l.minPackets = d.Log(det)
		if b != nil {
			m := len(b)
			var ok bool
			if b, ok = s.lines.AppendInfoLine(b, now, summaryMsg, &l); ok {
				n++
				continue
			}
			// Written by zap, after the lines before it.
			s.p.logq.WriteLines(b[:m], n)
			b, n = logq.LineBuffer(), 0
		}
		s.p.log.Info(summaryMsg, l.fields()...)
	}
	if b != nil {
		s.p.logq.WriteLines(b, n)
	}
	s.prevDropped = dropped
}

// summaryLine is the fields of a detector's summary line.
type summaryLine struct {
	detector, from, to string
	counts             tallyCounts
	log                bool
	minPackets         int
	dropped            uint64
}

// fields are the line's fields for zap.
func (l *summaryLine) fields() []zap.Field {
	return []zap.Field{
		zap.String("detector", l.detector),
		zap.String("from", l.from),
		zap.String("to", l.to),
		zap.Uint64("started", l.counts.started),
		zap.Uint64("ended", l.counts.ended),
		zap.Uint64("started_not_logged", l.counts.startsNotLogged),
		zap.Uint64("ended_not_logged", l.counts.endsNotLogged),
		zap.Bool("log", l.log),
		zap.Int("log_min_packets", l.minPackets),
		zap.Uint64("log_entries_dropped", l.dropped),
	}
}

// AppendLogJSON implements LogJSONAppender: the fields in zap's order and form, for plain
// strings (detect.PlainString; detector names and times are).
func (l *summaryLine) AppendLogJSON(b []byte) ([]byte, bool) {
	if !detect.PlainString(l.detector) || !detect.PlainString(l.from) || !detect.PlainString(l.to) {
		return b, false
	}
	b = append(b, `{"detector":"`...)
	b = append(b, l.detector...)
	b = append(b, `","from":"`...)
	b = append(b, l.from...)
	b = append(b, `","to":"`...)
	b = append(b, l.to...)
	b = append(b, `","started":`...)
	b = strconv.AppendUint(b, l.counts.started, 10)
	b = append(b, `,"ended":`...)
	b = strconv.AppendUint(b, l.counts.ended, 10)
	b = append(b, `,"started_not_logged":`...)
	b = strconv.AppendUint(b, l.counts.startsNotLogged, 10)
	b = append(b, `,"ended_not_logged":`...)
	b = strconv.AppendUint(b, l.counts.endsNotLogged, 10)
	b = append(b, `,"log":`...)
	b = strconv.AppendBool(b, l.log)
	b = append(b, `,"log_min_packets":`...)
	b = strconv.AppendInt(b, int64(l.minPackets), 10)
	b = append(b, `,"log_entries_dropped":`...)
	b = strconv.AppendUint(b, l.dropped, 10)
	return append(b, '}'), true
}

// startSummaryClock ticks the summary on the wall clock (live capture) until the returned
// function is called; that function waits for the ticker goroutine to end.
func (p *Pipeline) startSummaryClock() (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		p.summary.tick(time.Now().UnixNano())
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p.summary.tick(now.UnixNano())
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}
