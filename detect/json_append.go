package detect

import (
	"encoding/json"
	"math"
	"strconv"
)

// JSONAppender is an entry that writes its own JSON, byte for byte what encoding/json
// writes for it, without reflection: the report spools every episode's entry as it ends,
// and a flood of one-packet fingerprint episodes makes one per packet (encoding/json's
// reflection and its copies were a tenth of such a replay's CPU).
type JSONAppender interface {
	AppendJSON(b []byte) []byte
}

// AppendLogJSON appends e's fields as one JSON object when its report form (JSONAppender)
// is also the form its JSON log line holds, byte for byte (zap's encoding of its
// MarshalLogObject): an entry without labels (Who, whose log form differs: as_name is logged
// whenever asn is) whose strings hold nothing that either escapes (zap and encoding/json
// escape differently). ok=false otherwise: only MarshalLogObject gives the line.
func AppendLogJSON(b []byte, e Entry) (_ []byte, ok bool) {
	f, ok := e.(logForm)
	if !ok || *f.Labels() != (Who{}) || !f.plainStrings() {
		return b, false
	}
	return f.AppendJSON(b), true
}

// logForm is an entry whose report form may be its log form (AppendLogJSON).
type logForm interface {
	JSONAppender
	Labels() *Who
	plainStrings() bool // its strings but the labels' are PlainString
}

func (e *ToolEntry) plainStrings() bool       { return PlainString(e.Tool) }
func (e *UDPThenSYNEntry) plainStrings() bool { return PlainString(e.Payload) }

// PlainString reports whether s is written as it is, between quotes, by zap and by
// encoding/json: printable ASCII but for the characters either escapes.
func PlainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c-0x20 > 0x7e-0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// AppendJSON implements JSONAppender.
func (e *ToolEntry) AppendJSON(b []byte) []byte {
	b = append(b, `{"src":"`...)
	b, _ = e.Src.AppendText(b)
	b = append(b, `","tool":`...)
	b = appendJSONString(b, e.Tool)
	b = append(b, `,"packets":`...)
	b = strconv.AppendUint(b, e.Packets, 10)
	b = append(b, `,"syn_probes":`...)
	b = strconv.AppendUint(b, e.Probes, 10)
	return appendSeenWho(b, e.FirstSeen, e.LastSeen, &e.Who)
}

// AppendJSON implements JSONAppender (udp_then_syn: one entry per pair, tens of thousands
// on a telescope day).
func (e *UDPThenSYNEntry) AppendJSON(b []byte) []byte {
	b = append(b, `{"src":"`...)
	b, _ = e.Src.AppendText(b)
	b = append(b, `","dst":"`...)
	b, _ = e.Dst.AppendText(b)
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(e.Port), 10)
	b = append(b, `,"udp_packets":`...)
	b = strconv.AppendUint(b, e.UDPPackets, 10)
	b = append(b, `,"syn_packets":`...)
	b = strconv.AppendUint(b, e.SYNPackets, 10)
	b = append(b, `,"payload":`...)
	b = appendJSONString(b, e.Payload)
	return appendSeenWho(b, e.FirstSeen, e.LastSeen, &e.Who)
}

// appendSeenWho ends an entry whose last fields are first_seen, last_seen and the labels.
func appendSeenWho(b []byte, first, last Time, w *Who) []byte {
	b = append(b, `,"first_seen":"`...)
	b = appendTime(b, int64(first))
	b = append(b, `","last_seen":"`...)
	b = appendTime(b, int64(last))
	b = append(b, '"')
	b = w.appendJSON(b)
	return append(b, '}')
}

// appendJSON appends the labels' fields as encoding/json writes them embedded in an
// entry (each omitted when empty), each after a comma.
func (w *Who) appendJSON(b []byte) []byte {
	if w.Org != "" {
		b = append(b, `,"org":`...)
		b = appendJSONString(b, w.Org)
	}
	if w.Country != "" {
		b = append(b, `,"country":`...)
		b = appendJSONString(b, w.Country)
	}
	if w.ASN != 0 {
		b = append(b, `,"asn":`...)
		b = strconv.AppendUint(b, uint64(w.ASN), 10)
	}
	if w.ASName != "" {
		b = append(b, `,"as_name":`...)
		b = appendJSONString(b, w.ASName)
	}
	if w.Silenced {
		b = append(b, `,"silenced":true`...)
	}
	return b
}

// appendJSONString appends s as a JSON string. Printable ASCII other than the characters
// encoding/json escapes (quote, backslash, and <, >, & for HTML) is copied; any other
// string is left to encoding/json, so the bytes are always its own.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// JSONAppenderOK is JSONAppender for an entry whose own writing may refuse (ok=false, b
// as it was): encoding/json then writes it, or fails as it would.
type JSONAppenderOK interface {
	AppendJSONOK(b []byte) (_ []byte, ok bool)
}

// AppendJSONOK implements JSONAppenderOK: json.Marshal's bytes for a scanner entry (a
// wide telescope's day holds a scanner episode for most of its bots, each marshalled by
// reflection as it was spooled: 8 % of a replay of a million bots' swarm). It refuses
// an entry with a float json.Marshal refuses (NaN, ±Inf).
func (e *ScannerEntry) AppendJSONOK(b []byte) ([]byte, bool) {
	if !finite(e.ProbesPerSecondEstimated) || !finite(e.IPv4SweepSecondsEstimated) {
		return b, false
	}
	if e.Profile != nil {
		for i := range e.Profile.TopPorts {
			if !finite(e.Profile.TopPorts[i].Share) {
				return b, false
			}
		}
	}
	b = append(b, `{"src":`...)
	b = appendJSONString(b, e.Src)
	b = append(b, `,"class":`...)
	b = appendJSONString(b, e.Class)
	b = append(b, `,"packets":`...)
	b = strconv.AppendUint(b, e.Packets, 10)
	b = append(b, `,"targets":`...)
	b = strconv.AppendUint(b, e.Targets, 10)
	b = append(b, `,"ports":`...)
	b = strconv.AppendUint(b, e.Ports, 10)
	b = append(b, `,"first_seen":"`...)
	b = appendTime(b, int64(e.FirstSeen))
	b = append(b, `","last_seen":"`...)
	b = appendTime(b, int64(e.LastSeen))
	b = append(b, '"')
	if e.TargetsEstimated {
		b = append(b, `,"targets_estimated":true`...)
	}
	b = append(b, `,"technique":`...)
	b = appendJSONString(b, e.Technique)
	b = append(b, `,"summary":`...)
	b = appendJSONString(b, e.Summary)
	if p := e.Profile; p != nil {
		b = append(b, `,"profile":{"ports":`...)
		b = strconv.AppendUint(b, p.Ports, 10)
		b = append(b, `,"addresses":`...)
		b = strconv.AppendUint(b, p.Addresses, 10)
		if p.AddressesAtLeast {
			b = append(b, `,"addresses_at_least":true`...)
		}
		b = append(b, `,"port_min":`...)
		b = strconv.AppendUint(b, uint64(p.PortMin), 10)
		b = append(b, `,"port_max":`...)
		b = strconv.AppendUint(b, uint64(p.PortMax), 10)
		b = append(b, `,"top_ports":`...)
		b = appendJSONList(b, p.TopPorts, func(b []byte, ps *PortShare) []byte {
			b = append(b, `{"proto":`...)
			b = appendJSONString(b, ps.Proto)
			b = append(b, `,"port":`...)
			b = strconv.AppendUint(b, uint64(ps.Port), 10)
			b = append(b, `,"packets":`...)
			b = strconv.AppendUint(b, ps.Packets, 10)
			b = append(b, `,"share":`...)
			b = appendJSONFloat(b, ps.Share)
			return append(b, '}')
		})
		b = append(b, `,"protocols":`...)
		b = appendJSONList(b, p.Protocols, func(b []byte, s *string) []byte { return appendJSONString(b, *s) })
		b = append(b, '}')
	}
	b = e.Who.appendJSON(b)
	if f := e.ProbesPerSecondEstimated; f != 0 {
		b = append(b, `,"probes_per_second_estimated":`...)
		b = appendJSONFloat(b, f)
	}
	if f := e.IPv4SweepSecondsEstimated; f != 0 {
		b = append(b, `,"ipv4_sweep_seconds_estimated":`...)
		b = appendJSONFloat(b, f)
	}
	return append(b, '}'), true
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

// appendJSONList appends xs as encoding/json writes a slice (null when nil), each element
// by elem.
func appendJSONList[T any](b []byte, xs []T, elem func([]byte, *T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, &xs[i])
	}
	return append(b, ']')
}

// appendJSONFloat appends a finite float64 as encoding/json writes it: the shortest
// decimal, in exponent form below 1e-6 or from 1e21, its exponent without a leading zero.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
