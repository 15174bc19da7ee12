package detect

import (
	"encoding/json"
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
