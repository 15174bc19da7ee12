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
type eventSink struct {
	log   *zap.Logger
	next  detect.Sink
	who   *who                  // labels and estimates (who.go)
	cfg   func() *detect.Config // the published detector configuration
	tally []eventTally          // indexed like detect.Descriptors()
}

// eventTally counts one detector's events since the process started (monotonic).
type eventTally struct {
	started, ended                 atomic.Uint64
	startsNotLogged, endsNotLogged atomic.Uint64
}

func newEventSink(log *zap.Logger, next detect.Sink, wh *who, cfg func() *detect.Config) *eventSink {
	return &eventSink{log: log, next: next, who: wh, cfg: cfg,
		tally: make([]eventTally, len(detect.Descriptors()))}
}

func (s *eventSink) Detection(ev *detect.Event) {
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
		t := &s.tally[i]
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
	if s.next != nil {
		s.next.Detection(ev)
	}
}
