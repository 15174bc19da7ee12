package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// logfmtEncoder writes each entry as one logfmt line (ts=... level=info msg="..." k=v), the
// other format the Prometheus exporters offer. It lets zap's JSON encoder do the field
// encoding and rewrites the resulting object, keeping the key order: logging is rare enough
// (detection episodes, lifecycle) for that to cost nothing that matters.
type logfmtEncoder struct {
	zapcore.Encoder
}

func newLogfmtEncoder(ec zapcore.EncoderConfig) zapcore.Encoder {
	return logfmtEncoder{zapcore.NewJSONEncoder(ec)}
}

func (e logfmtEncoder) Clone() zapcore.Encoder { return logfmtEncoder{e.Encoder.Clone()} }

var bufPool = buffer.NewPool()

func (e logfmtEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	js, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	defer js.Free()
	out := bufPool.Get()
	dec := json.NewDecoder(bytes.NewReader(js.Bytes()))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	first := true
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if !first {
			out.AppendByte(' ')
		}
		first = false
		out.AppendString(k.(string))
		out.AppendByte('=')
		out.AppendString(logfmtValue(v))
	}
	out.AppendByte('\n')
	return out, nil
}

// logfmtValue renders a JSON value: strings unquoted when they can be, quoted otherwise;
// numbers and booleans as they are; arrays and objects as their compact JSON, quoted.
func logfmtValue(v json.RawMessage) string {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			if s != "" && !strings.ContainsAny(s, " =\"\\\t\n\r") {
				return s
			}
			return strconv.Quote(s)
		}
	}
	if len(v) > 0 && (v[0] == '[' || v[0] == '{') {
		return strconv.Quote(string(v))
	}
	return string(v)
}
