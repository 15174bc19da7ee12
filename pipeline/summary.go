package pipeline

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/detect"
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
type logSummary struct {
	p  *Pipeline
	mu sync.Mutex
	// prev are the tallies at the last line; from is the start of the interval the next
	// line covers (0: no time seen yet); next is when it is due; iv the interval it was
	// computed with.
	prev        []tallyCounts
	prevDropped uint64
	from, next  int64
	iv          int64
}

type tallyCounts struct{ started, ended, startsNotLogged, endsNotLogged uint64 }

func (c *tallyCounts) add(d tallyCounts) {
	c.started += d.started
	c.ended += d.ended
	c.startsNotLogged += d.startsNotLogged
	c.endsNotLogged += d.endsNotLogged
}

func newSummary(p *Pipeline) *logSummary {
	return &logSummary{p: p, prev: make([]tallyCounts, len(detect.Descriptors()))}
}

// tick moves the summary's clock to now (ns) and writes the lines when an interval has
// passed. A jump over several intervals (a gap in a capture) gives one line per detector
// covering the whole gap.
func (s *logSummary) tick(now int64) {
	if now <= 0 {
		return
	}
	iv := int64(s.p.rc.Load().cfg.Log.SummaryInterval)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from == 0 {
		s.from = now
	}
	if iv <= 0 {
		s.iv = 0 // off: the counts wait for the next line once it is on again
		return
	}
	if iv != s.iv {
		s.iv = iv
		s.next = (aggregate.FloorDiv(max(now, s.from), iv) + 1) * iv
	}
	if now < s.next {
		return
	}
	to := aggregate.FloorDiv(now, iv) * iv
	s.write(to)
	s.next = to + iv
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

// write logs the lines of the interval [s.from, to) and starts the next one.
func (s *logSummary) write(to int64) {
	det := s.p.rc.Load().det
	dropped := s.p.logq.Dropped()
	from := detect.Time(s.from).String()
	until := detect.Time(to).String()
	for i, d := range detect.Descriptors() {
		cur := s.p.sink.tallied(i)
		prev := s.prev[i]
		s.prev[i] = cur
		delta := tallyCounts{cur.started - prev.started, cur.ended - prev.ended,
			cur.startsNotLogged - prev.startsNotLogged, cur.endsNotLogged - prev.endsNotLogged}
		if !d.Enabled(det) && delta == (tallyCounts{}) {
			continue
		}
		on, minPackets := d.Log(det)
		s.p.log.Info(summaryMsg,
			zap.String("detector", d.Name),
			zap.String("from", from),
			zap.String("to", until),
			zap.Uint64("started", delta.started),
			zap.Uint64("ended", delta.ended),
			zap.Uint64("started_not_logged", delta.startsNotLogged),
			zap.Uint64("ended_not_logged", delta.endsNotLogged),
			zap.Bool("log", on),
			zap.Int("log_min_packets", minPackets),
			zap.Uint64("log_entries_dropped", dropped-s.prevDropped))
	}
	s.prevDropped = dropped
	s.from = to
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
