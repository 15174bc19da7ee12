package pipeline

import (
	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/detect"
)

// eventSink logs every detection event as one JSON line and passes it on.
type eventSink struct {
	log  *zap.Logger
	next detect.Sink
	who  *who // labels and estimates (who.go)
}

func (s *eventSink) Detection(ev *detect.Event) {
	if s.who != nil {
		s.who.event(ev)
	}
	msg := ev.Detector + " " + ev.Phase.String()
	if d := detect.Lookup(ev.Detector); d != nil {
		msg = d.Message(ev.Phase)
	}
	s.log.Info(msg,
		zap.String("event", ev.Detector),
		zap.String("phase", ev.Phase.String()),
		zap.Inline(ev.Entry))
	if s.next != nil {
		s.next.Detection(ev)
	}
}
