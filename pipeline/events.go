package pipeline

import (
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/detect"
)

// eventSink logs detection events as one JSON line each and passes every event on. Which
// events are logged is the detectors' descriptors' concern (detect.Descriptor.Logged:
// detect.*.log and log_min_packets, read from the configuration published at the time of
// the event, so a reload applies at once); every event is counted in tally, for the
// summary lines (summary.go), and passed on to the report and the series whether or not it
// was logged.
//
// Every worker's engine reports through its own workerSink, with its own tallies and
// episode series: a flood of one-packet episodes (two events each) from every worker would
// otherwise spend its time handing the same locks and counters between the cores. The
// first of them (parts[0]) takes the events of the shared detectors (telnet surge,
// hotspot): eventSink.Detection.
type eventSink struct {
	log   *zap.Logger
	next  detect.Sink
	who   *who                  // labels and estimates (who.go)
	cfg   func() *detect.Config // the published detector configuration
	parts []*workerSink         // the shared detectors' part, then one per worker
}

// workerSink is one worker's (or the shared detectors') way into the eventSink: its own
// tallies (indexed like detect.Descriptors()) and episode series.
type workerSink struct {
	s      *eventSink
	tally  []eventTally
	series *episodeSeries
}

// Detection implements detect.Sink.
func (w *workerSink) Detection(ev *detect.Event) { w.s.detection(ev, w.tally, w.series) }

// eventTally counts one detector's events since the process started (monotonic).
type eventTally struct {
	started, ended                 atomic.Uint64
	startsNotLogged, endsNotLogged atomic.Uint64
}

func newEventSink(log *zap.Logger, next detect.Sink, wh *who, cfg func() *detect.Config) *eventSink {
	s := &eventSink{log: log, next: next, who: wh, cfg: cfg}
	s.forWorker() // parts[0]: the shared detectors'
	return s
}

// forWorker returns a new worker's sink (call it before the workers start).
func (s *eventSink) forWorker() *workerSink {
	// The tallies are written on every event: padded so that no other worker's share a
	// cache line with them.
	n := len(detect.Descriptors())
	w := &workerSink{s: s, tally: make([]eventTally, n+4)[2 : n+2 : n+2], series: newEpisodeSeries()}
	s.parts = append(s.parts, w)
	return w
}

// tallied returns detector i's events so far, over every sink.
func (s *eventSink) tallied(i int) tallyCounts {
	var c tallyCounts
	add := func(t *eventTally) {
		c.started += t.started.Load()
		c.ended += t.ended.Load()
		c.startsNotLogged += t.startsNotLogged.Load()
		c.endsNotLogged += t.endsNotLogged.Load()
	}
	for _, w := range s.parts {
		add(&w.tally[i])
	}
	return c
}

// Detection implements detect.Sink for the shared detectors.
func (s *eventSink) Detection(ev *detect.Event) { s.parts[0].Detection(ev) }

func (s *eventSink) detection(ev *detect.Event, tally []eventTally, series *episodeSeries) {
	if s.who != nil {
		s.who.event(ev)
	}
	var msg string // built only when logged: concatenating per event cost ~2 % of a flood's CPU
	logged := true
	if i := detect.DetectorIndex(ev.Detector); i >= 0 {
		d := detect.Descriptors()[i]
		msg = d.Message(ev.Phase)
		if s.cfg != nil {
			logged = d.Logged(s.cfg(), ev.Entry)
		}
		t := &tally[i]
		switch {
		case ev.Phase == detect.Start && logged:
			t.started.Add(1)
		case ev.Phase == detect.Start:
			t.started.Add(1)
			t.startsNotLogged.Add(1)
		case logged:
			t.ended.Add(1)
		default:
			t.ended.Add(1)
			t.endsNotLogged.Add(1)
		}
	}
	if logged {
		if msg == "" {
			msg = ev.Detector + " " + ev.Phase.String()
		}
		s.log.Info(msg,
			zap.String("event", ev.Detector),
			zap.String("phase", ev.Phase.String()),
			zap.Inline(ev.Entry))
	}
	series.Detection(ev)
	if s.next != nil {
		s.next.Detection(ev)
	}
}
