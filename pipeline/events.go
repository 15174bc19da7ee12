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
// eventSink's own tallies and series take the events of the shared detectors (telnet
// surge, hotspot).
type eventSink struct {
	log    *zap.Logger
	next   detect.Sink
	who    *who                  // labels and estimates (who.go)
	cfg    func() *detect.Config // the published detector configuration
	tally  []eventTally          // indexed like detect.Descriptors()
	series *episodeSeries
	// workers are the workers' sinks (whose tallies the summary adds up).
	workers []*workerSink
}

// workerSink is one worker's way into the eventSink.
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
	return &eventSink{log: log, next: next, who: wh, cfg: cfg,
		tally: make([]eventTally, len(detect.Descriptors())), series: newEpisodeSeries()}
}

// forWorker returns a new worker's sink (call it before the workers start).
func (s *eventSink) forWorker() *workerSink {
	w := &workerSink{s: s, tally: make([]eventTally, len(detect.Descriptors())), series: newEpisodeSeries()}
	s.workers = append(s.workers, w)
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
	add(&s.tally[i])
	for _, w := range s.workers {
		add(&w.tally[i])
	}
	return c
}

// allSeries returns the episode series of every sink.
func (s *eventSink) allSeries() []*episodeSeries {
	out := []*episodeSeries{s.series}
	for _, w := range s.workers {
		out = append(out, w.series)
	}
	return out
}

// Detection implements detect.Sink for the shared detectors.
func (s *eventSink) Detection(ev *detect.Event) { s.detection(ev, s.tally, s.series) }

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
