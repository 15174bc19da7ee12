package main

import (
	"sync"
	"time"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
)

// eventJSONEncoder is zap's JSON encoder, which writes a detection event's line itself
// when the event's entry has a JSON form that is also its log form (pipeline's logLine,
// detect.AppendLogJSON): the same bytes, without zap's check of every byte of every key and
// value for escapes (3 % of the 20x day's instructions, whose 100 000 lines are 31 MB). Any
// other line, or one with a character to escape, is zap's.
type eventJSONEncoder struct {
	zapcore.Encoder // zap's JSON encoder, for every other line
	// fast: event lines are written here. Not in a clone, which may hold fields of a
	// logger's With (written by zap only), nor with other keys than newLogger's.
	fast bool
}

// newEventJSONEncoder returns zap's JSON encoder for ec, with the event lines written here
// when ec is newLogger's (its keys; its level and time encoders are the test's to check).
func newEventJSONEncoder(ec zapcore.EncoderConfig) zapcore.Encoder {
	fast := ec.LevelKey == "level" && ec.TimeKey == "ts" && ec.MessageKey == "msg" && ec.FunctionKey == "" &&
		(ec.LineEnding == "" || ec.LineEnding == zapcore.DefaultLineEnding)
	return &eventJSONEncoder{Encoder: zapcore.NewJSONEncoder(ec), fast: fast}
}

func (e *eventJSONEncoder) Clone() zapcore.Encoder {
	return &eventJSONEncoder{Encoder: e.Encoder.Clone()}
}

var lineScratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (e *eventJSONEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	if e.fast {
		p := lineScratch.Get().(*[]byte)
		b, ok := appendEventLine((*p)[:0], ent, fields)
		if ok {
			out := bufPool.Get()
			_, _ = out.Write(b)
			*p = b
			lineScratch.Put(p)
			return out, nil
		}
		*p = b
		lineScratch.Put(p)
	}
	return e.Encoder.EncodeEntry(ent, fields)
}

// appendEventLine appends an info line with the fields of a detection event (event,
// phase, the line's fields inlined) as zap's JSON encoder writes it with newLogger's
// encoder config: level, ts (RFC 3339 with nanoseconds), msg, then the fields, one line.
// ok=false: the line is not such a line, or has a character zap or encoding/json would
// escape (detect.PlainString; in the entry's fields, detect.AppendLogJSON refuses those).
func appendEventLine(b []byte, ent zapcore.Entry, fields []zapcore.Field) (_ []byte, ok bool) {
	if ent.Level != zapcore.InfoLevel || ent.LoggerName != "" || ent.Caller.Defined || ent.Stack != "" || len(fields) != 3 ||
		fields[0].Key != "event" || fields[0].Type != zapcore.StringType || !detect.PlainString(fields[0].String) ||
		fields[1].Key != "phase" || fields[1].Type != zapcore.StringType || !detect.PlainString(fields[1].String) ||
		fields[2].Type != zapcore.InlineMarshalerType || !detect.PlainString(ent.Message) {
		return b, false
	}
	a, isLine := fields[2].Interface.(pipeline.LogJSONAppender)
	if !isLine {
		return b, false
	}
	return appendLine(b, ent.Time, ent.Message, fields[0].String, fields[1].String, a, nil)
}

// AppendEventLine implements pipeline.EventLineEncoder: the line appendEventLine writes for
// the entry and fields the pipeline would log the event with (level info, event, phase,
// the entry's fields inlined), or ok=false where zap must write it.
func (e *eventJSONEncoder) AppendEventLine(b []byte, t time.Time, msg, event, phase string, entry detect.Entry) (_ []byte, ok bool) {
	if !e.fast || !detect.PlainString(msg) || !detect.PlainString(event) || !detect.PlainString(phase) {
		return b, false
	}
	return appendLine(b, t, msg, event, phase, nil, entry)
}

// AppendInfoLine implements pipeline.InfoLineEncoder: an info line of message msg whose
// fields a appends (the pipeline's summary lines).
func (e *eventJSONEncoder) AppendInfoLine(b []byte, t time.Time, msg string, a pipeline.LogJSONAppender) (_ []byte, ok bool) {
	if !e.fast || !detect.PlainString(msg) {
		return b, false
	}
	return appendFields(appendHead(b, t, msg), a, nil)
}

// appendLine appends an event line whose strings are plain (detect.PlainString), with the
// fields a appends (nil: entry's, detect.AppendLogJSON); ok=false: they cannot be.
func appendLine(b []byte, t time.Time, msg, event, phase string, a pipeline.LogJSONAppender, entry detect.Entry) (_ []byte, ok bool) {
	b = appendHead(b, t, msg)
	b = append(b, `,"event":"`...)
	b = append(b, event...)
	b = append(b, `","phase":"`...)
	b = append(b, phase...)
	b = append(b, '"')
	return appendFields(b, a, entry)
}

// appendHead appends an info line's level, time and message (msg plain), as zap's JSON
// encoder writes them with newLogger's encoder config.
func appendHead(b []byte, t time.Time, msg string) []byte {
	b = append(b, `{"level":"info","ts":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","msg":"`...)
	b = append(b, msg...)
	return append(b, '"')
}

// appendFields ends the line appendHead began with the fields of the JSON object a appends
// (nil: entry's, detect.AppendLogJSON), inlined; ok=false: they cannot be.
func appendFields(b []byte, a pipeline.LogJSONAppender, entry detect.Entry) (_ []byte, ok bool) {
	obj := len(b)
	if a != nil {
		b, ok = a.AppendLogJSON(b)
	} else {
		b, ok = detect.AppendLogJSON(b, entry)
	}
	if !ok || len(b)-obj < 2 || b[obj] != '{' || b[len(b)-1] != '}' {
		return b, false
	}
	if len(b)-obj == 2 { // no fields
		b = append(b[:obj], '}')
	} else {
		b[obj] = ','
	}
	return append(b, zapcore.DefaultLineEnding...), true
}
