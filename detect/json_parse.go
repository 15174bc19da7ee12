package detect

import "bytes"

// JSONParser is an entry that reads back its own AppendJSON form without reflection: the
// study page reads a replay's spool back, a line an episode, and a flood's one-packet
// fingerprint episodes are most of them. ParseJSON reports false, leaving the entry as it
// was, for anything but that form exactly (labels, a string that JSON escapes or that is
// not printable ASCII, another field order): the caller then decodes with encoding/json.
// What it accepts, it reads as encoding/json would (tested against it).
type JSONParser interface {
	ParseJSON(b []byte) bool
}

// ParseJSON implements JSONParser.
func (e *ToolEntry) ParseJSON(b []byte) bool {
	var v ToolEntry
	s := jsonScan{b: b, ok: true}
	s.lit(`{"src":"`)
	s.ip(&v.Src)
	s.lit(`,"tool":"`)
	v.Tool = s.str()
	s.lit(`,"packets":`)
	v.Packets = s.uint()
	s.lit(`,"syn_probes":`)
	v.Probes = s.uint()
	s.seen(&v.FirstSeen, &v.LastSeen)
	if !s.ok {
		return false
	}
	*e = v
	return true
}

// ParseJSON implements JSONParser.
func (e *UDPThenSYNEntry) ParseJSON(b []byte) bool {
	var v UDPThenSYNEntry
	s := jsonScan{b: b, ok: true}
	s.lit(`{"src":"`)
	s.ip(&v.Src)
	s.lit(`,"dst":"`)
	s.ip(&v.Dst)
	s.lit(`,"port":`)
	if p := s.uint(); p <= 0xffff {
		v.Port = uint16(p)
	} else {
		s.ok = false
	}
	s.lit(`,"udp_packets":`)
	v.UDPPackets = s.uint()
	s.lit(`,"syn_packets":`)
	v.SYNPackets = s.uint()
	s.lit(`,"payload":"`)
	v.Payload = s.str()
	s.seen(&v.FirstSeen, &v.LastSeen)
	if !s.ok {
		return false
	}
	*e = v
	return true
}

// jsonScan reads the fixed form AppendJSON writes; ok turns false at the first byte out
// of it, and every read after that is a no-op.
type jsonScan struct {
	b  []byte
	ok bool
}

func (s *jsonScan) lit(l string) {
	if s.ok && len(s.b) >= len(l) && string(s.b[:len(l)]) == l {
		s.b = s.b[len(l):]
		return
	}
	s.ok = false
}

// quoted returns the bytes up to the closing quote (consumed): printable ASCII that JSON
// does not escape only.
func (s *jsonScan) quoted() []byte {
	if !s.ok {
		return nil
	}
	i := bytes.IndexByte(s.b, '"')
	if i < 0 {
		s.ok = false
		return nil
	}
	q := s.b[:i]
	for _, c := range q {
		if c < 0x20 || c > 0x7e || c == '\\' {
			s.ok = false
			return nil
		}
	}
	s.b = s.b[i+1:]
	return q
}

func (s *jsonScan) str() string { return string(s.quoted()) }

func (s *jsonScan) ip(a *IP) {
	if q := s.quoted(); s.ok && a.UnmarshalText(q) != nil {
		s.ok = false
	}
}

func (s *jsonScan) time(t *Time) {
	if q := s.quoted(); s.ok && t.UnmarshalText(q) != nil {
		s.ok = false
	}
}

// uint reads a JSON number that is a uint64 written as strconv.AppendUint writes it.
func (s *jsonScan) uint() uint64 {
	if !s.ok {
		return 0
	}
	var v uint64
	i := 0
	for ; i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9'; i++ {
		d := uint64(s.b[i] - '0')
		if v > (1<<64-1-d)/10 {
			s.ok = false // past uint64
			return 0
		}
		v = v*10 + d
	}
	if i == 0 || i > 1 && s.b[0] == '0' {
		s.ok = false // none, or a leading zero JSON refuses
		return 0
	}
	s.b = s.b[i:]
	return v
}

// seen reads the end appendSeenWho writes for an entry without labels.
func (s *jsonScan) seen(first, last *Time) {
	s.lit(`,"first_seen":"`)
	s.time(first)
	s.lit(`,"last_seen":"`)
	s.time(last)
	s.lit(`}`)
	if len(s.b) != 0 {
		s.ok = false
	}
}
