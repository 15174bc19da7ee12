package pipeline

import (
	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/detect"
)

// eventMessages are the log messages of each detector's start and end events.
var eventMessages = map[string][2]string{
	detect.Scanner:     {"scanner detected", "scanner went quiet"},
	detect.TelnetSweep: {"telnet sweep detected", "telnet sweep went quiet"},
	detect.TelnetSurge: {"telnet surge started", "telnet surge ended"},
	detect.UDPThenSYN:  {"udp then syn pair detected", "udp then syn pair went quiet"},
	detect.Backscatter: {"dos attack backscatter detected", "dos attack backscatter ended"},
	detect.Fingerprint: {"scanning tool fingerprinted", "fingerprinted source went quiet"},
}

// eventSink logs every detection event as one JSON line and passes it on.
type eventSink struct {
	log  *zap.Logger
	next detect.Sink
}

func (s *eventSink) Detection(ev *detect.Event) {
	msg := eventMessages[ev.Detector][ev.Phase]
	if msg == "" {
		msg = ev.Detector + " " + ev.Phase.String()
	}
	s.log.Info(msg,
		zap.String("event", ev.Detector),
		zap.String("phase", ev.Phase.String()),
		zap.Inline(ev.Entry))
	if s.next != nil {
		s.next.Detection(ev)
	}
}
