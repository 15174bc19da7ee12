package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/logq"
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
	// onShared is told each event of the shared detectors' part (the summary's segments).
	onShared func(i int, c tallyCounts)
	// lines encodes the workers' event lines for q (nil: every line is zap's).
	lines EventLineEncoder
	q     *logq.Queue
}

// EventLineEncoder encodes a detection event's log line as the logger's encoder writes
// the line zap makes of it (level info, time t, message msg, then event, phase and the
// entry's fields inlined, as the event sink logs it), or reports ok=false where it cannot
// (zap then writes it). A log queue's line encoder (logq.Lines) that implements it takes the
// workers' lines (cmd/telescope's JSON encoder).
type EventLineEncoder interface {
	AppendEventLine(b []byte, t time.Time, msg, event, phase string, e detect.Entry) ([]byte, bool)
}

// LogJSONAppender appends a log line's fields as one JSON object, as zap's JSON encoder
// writes them, or reports ok=false where it cannot (a character to escape).
type LogJSONAppender interface {
	AppendLogJSON(b []byte) ([]byte, bool)
}

// InfoLineEncoder encodes an info line (message msg, time t) with the fields a appends
// inlined, as the logger's encoder writes the line zap makes of the same fields, or reports
// ok=false where it cannot. A log queue's line encoder that implements it takes the
// summary lines (summary.go).
type InfoLineEncoder interface {
	AppendInfoLine(b []byte, t time.Time, msg string, a LogJSONAppender) ([]byte, bool)
}

// workerSink is one worker's (or the shared detectors') way into the eventSink: its own
// tallies (indexed like detect.Descriptors()) and episode series.
//
// A worker's own part counts into pend and run, which only its worker touches (on its
// goroutine, or holding its state lock), and publish adds them to the tallies and the
// series after each batch (worker.flush): a flood starts and ends an episode per packet,
// and the tallies' locked adds and the series' lock were 5 % of its CPU. The shared
// detectors' part (pend nil), written from any worker, counts at once.
type workerSink struct {
	s      *eventSink
	tally  []eventTally
	series *episodeSeries
	pend   []tallyCounts
	run    seriesRun   // the latest run of starts of one detector in one minute
	next   detect.Sink // the eventSink's next, or the worker's part of it (partOf)
	// lines holds nlines encoded event lines of a worker's own part (lineTo), handed to
	// the log queue by publish.
	lines  []byte
	nlines int
}

// Detection implements detect.Sink.
func (w *workerSink) Detection(ev *detect.Event) { w.s.detection(ev, w) }

// TransientEntries implements detect.TransientSink: a logged entry is copied for the log
// queue (LogEntry), so the part keeps none unless the sink it passes events on to does.
func (w *workerSink) TransientEntries() bool { return detect.IsTransient(w.next) }

// lineTo encodes ev's line (message msg) in w's buffer of lines, which publish hands to the
// log queue, and reports whether it did: only for a worker's own part, with a line encoder
// (the JSON log format), and a line the encoder can write (else zap writes it, after the
// lines before it). A line the log level leaves out counts as done.
//
// A line at a time, each event took a zap check and entry, a copy of its entry, a queue
// item, and an encoding on the queue's goroutine: ~1.5 µs, a tenth of the 20x day's CPU
// time for its 90 000 lines. Encoded here, a batch's lines go to the queue in one item.
func (s *eventSink) lineTo(w *workerSink, msg string, ev *detect.Event) bool {
	if s.lines == nil || w.pend == nil {
		return false
	}
	if !s.q.Enabled(zapcore.InfoLevel) {
		return true
	}
	n := len(w.lines)
	b, ok := s.lines.AppendEventLine(w.lines, time.Now(), msg, ev.Detector, ev.Phase.String(), ev.Entry)
	if !ok {
		w.lines = b[:n]
		w.writeLines()
		return false
	}
	w.lines = b
	if w.nlines++; len(b) >= linesFlush {
		w.writeLines()
	}
	return true
}

// linesFlush is the size at which a worker's buffer of lines goes to the log queue before
// the batch ends (an Advance may end tens of thousands of episodes): the queue bounds its
// lines in bytes (logq), and a buffer below logq.LineBuffer's size never grows.
const linesFlush = 48 << 10

// writeLines hands the buffered lines to the log queue.
func (w *workerSink) writeLines() {
	if w.nlines == 0 {
		return
	}
	w.s.q.WriteLines(w.lines, w.nlines)
	w.lines, w.nlines = logq.LineBuffer(), 0
}

// publish adds the counts of a worker's part since the last call to its tallies and series,
// and hands its lines to the log queue.
func (w *workerSink) publish() {
	w.writeLines()
	for i := range w.pend {
		w.tally[i].add(w.pend[i])
		w.pend[i] = tallyCounts{}
	}
	if w.run.n > 0 {
		w.series.add(w.run)
		w.run.n = 0
	}
}

// tallies returns the part's tallies (indexed like detect.Descriptors()).
func (w *workerSink) tallies() []tallyCounts {
	c := make([]tallyCounts, len(w.tally))
	for i := range w.tally {
		c[i] = w.tally[i].load()
	}
	return c
}

// eventTally counts one detector's events since the process started (monotonic).
type eventTally struct {
	started, ended                 atomic.Uint64
	startsNotLogged, endsNotLogged atomic.Uint64
}

// add adds c, with no locked add for a count of zero.
func (t *eventTally) add(c tallyCounts) {
	if c.started != 0 {
		t.started.Add(c.started)
	}
	if c.ended != 0 {
		t.ended.Add(c.ended)
	}
	if c.startsNotLogged != 0 {
		t.startsNotLogged.Add(c.startsNotLogged)
	}
	if c.endsNotLogged != 0 {
		t.endsNotLogged.Add(c.endsNotLogged)
	}
}

func (t *eventTally) load() tallyCounts {
	return tallyCounts{t.started.Load(), t.ended.Load(), t.startsNotLogged.Load(), t.endsNotLogged.Load()}
}

func newEventSink(log *zap.Logger, next detect.Sink, wh *who, cfg func() *detect.Config) *eventSink {
	s := &eventSink{log: log, next: next, who: wh, cfg: cfg}
	s.newPart() // parts[0]: the shared detectors'
	return s
}

// forWorker returns a new worker's sink (call it before the workers start), which counts
// until its worker publishes (workerSink.publish).
func (s *eventSink) forWorker() *workerSink {
	w := s.newPart()
	w.pend = make([]tallyCounts, len(w.tally))
	w.next = partOf(s.next)
	return w
}

func (s *eventSink) newPart() *workerSink {
	// The tallies are padded so that no other part's share a cache line with them.
	n := len(detect.Descriptors())
	w := &workerSink{s: s, tally: make([]eventTally, n+4)[2 : n+2 : n+2], series: newEpisodeSeries(), next: s.next}
	s.parts = append(s.parts, w)
	return w
}

// tallied returns detector i's events so far, over every sink.
func (s *eventSink) tallied(i int) tallyCounts {
	var c tallyCounts
	for _, w := range s.parts {
		c.add(w.tally[i].load())
	}
	return c
}

// Detection implements detect.Sink for the shared detectors.
func (s *eventSink) Detection(ev *detect.Event) { s.parts[0].Detection(ev) }

// TransientEntries implements detect.TransientSink, as workerSink's.
func (s *eventSink) TransientEntries() bool { return s.parts[0].TransientEntries() }

func (s *eventSink) detection(ev *detect.Event, w *workerSink) {
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
		var c tallyCounts // this event
		var notLogged uint64
		if !logged {
			notLogged = 1
		}
		if ev.Phase == detect.Start {
			c.started, c.startsNotLogged = 1, notLogged
		} else {
			c.ended, c.endsNotLogged = 1, notLogged
		}
		if w.pend != nil {
			w.pend[i].add(c)
		} else {
			w.tally[i].add(c)
			if s.onShared != nil {
				s.onShared(i, c)
			}
		}
	}
	if logged {
		if msg == "" {
			msg = ev.Detector + " " + ev.Phase.String()
		}
		// A worker's own line is encoded here, in its buffer of lines (lineTo). Otherwise
		// checked first: the entry is copied (the log queue keeps it) only for a line
		// written.
		if !s.lineTo(w, msg, ev) {
			if ce := s.log.Check(zap.InfoLevel, msg); ce != nil {
				l := logLines.Get().(*logLine)
				l.entry = detect.LogEntry(ev.Entry)
				l.fields = [3]zapcore.Field{zap.String("event", ev.Detector), zap.String("phase", ev.Phase.String()), zap.Inline(l)}
				ce.Write(l.fields[:]...)
			}
		}
	}
	if w.pend != nil {
		w.run.count(ev, w.series)
	} else {
		w.series.Detection(ev)
	}
	if w.next != nil {
		w.next.Detection(ev)
	}
}

// logLine is the fields of an event's log line, from a pool: the log queue gives it back
// once the line is written (logq.Options.Release), with the entry's copy (detect.LogEntry).
// Passed as a new slice, the fields (which the queue keeps until then) were an allocation
// per line, and the copy another: with the fresh memory they took, 2-3 % of the 20x day's
// samples each. A line a queue does not give back (one that keeps its fields) is collected.
type logLine struct {
	fields [3]zapcore.Field // event, phase, and the line itself inlined (the entry's fields)
	entry  detect.Entry
}

var logLines = sync.Pool{New: func() any { return new(logLine) }}

// MarshalLogObject writes the entry's fields.
func (l *logLine) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return l.entry.MarshalLogObject(enc)
}

// AppendLogJSON appends the entry's fields as one JSON object (detect.AppendLogJSON).
func (l *logLine) AppendLogJSON(b []byte) ([]byte, bool) { return detect.AppendLogJSON(b, l.entry) }

// ReleaseLogged implements logq.Releaser: the queue has written the line. Its fields are left
// as they are (the queue's loop over them is at its last one).
func (l *logLine) ReleaseLogged() {
	if r, ok := l.entry.(logq.Releaser); ok {
		r.ReleaseLogged()
	}
	l.entry = nil
	logLines.Put(l)
}
