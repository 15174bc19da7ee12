package detect

import (
	"bytes"
	"strconv"
)

// JSONParser is an entry that reads back its own AppendJSON form without reflection: the
// study page reads a replay's spool back, a line an episode, and a flood's one-packet
// fingerprint episodes are most of them. ParseJSON reports false, leaving the entry as it
// was, for anything but that form exactly (a string that JSON escapes or that is not
// printable ASCII, another field order): the caller then decodes with encoding/json.
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
	s.seen(&v.FirstSeen, &v.LastSeen, &v.Who)
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
	s.seen(&v.FirstSeen, &v.LastSeen, &v.Who)
	if !s.ok {
		return false
	}
	*e = v
	return true
}

// ParseJSON implements JSONParser for json.Marshal's form of a scanner entry (it has no
// AppendJSON): a report's descriptions read every scanner episode back from the spool.
func (e *ScannerEntry) ParseJSON(b []byte) bool {
	var v ScannerEntry
	s := jsonScan{b: b, ok: true}
	s.lit(`{"src":"`)
	v.Src = s.str()
	s.lit(`,"class":"`)
	v.Class = s.str()
	s.lit(`,"packets":`)
	v.Packets = s.uint()
	s.lit(`,"targets":`)
	v.Targets = s.uint()
	s.lit(`,"ports":`)
	v.Ports = s.uint()
	s.lit(`,"first_seen":"`)
	s.time(&v.FirstSeen)
	s.lit(`,"last_seen":"`)
	s.time(&v.LastSeen)
	v.TargetsEstimated = s.opt(`,"targets_estimated":true`)
	s.lit(`,"technique":"`)
	v.Technique = s.str()
	s.lit(`,"summary":"`)
	v.Summary = s.str()
	if s.opt(`,"profile":`) {
		v.Profile = s.profile()
	}
	s.who(&v.Who)
	if s.opt(`,"probes_per_second_estimated":`) {
		v.ProbesPerSecondEstimated = s.float()
	}
	if s.opt(`,"ipv4_sweep_seconds_estimated":`) {
		v.IPv4SweepSecondsEstimated = s.float()
	}
	s.lit(`}`)
	if !s.ok || len(s.b) != 0 {
		return false
	}
	*e = v
	return true
}

// profile reads a scanner entry's profile as json.Marshal writes it.
func (s *jsonScan) profile() *Profile {
	p := &Profile{}
	s.lit(`{"ports":`)
	p.Ports = s.uint()
	s.lit(`,"addresses":`)
	p.Addresses = s.uint()
	p.AddressesAtLeast = s.opt(`,"addresses_at_least":true`)
	s.lit(`,"port_min":`)
	p.PortMin = s.u16()
	s.lit(`,"port_max":`)
	p.PortMax = s.u16()
	s.lit(`,"top_ports":`)
	if !s.opt(`null`) {
		s.lit(`[`)
		p.TopPorts = []PortShare{} // as encoding/json: [] is empty, not nil
		for s.ok && !s.opt(`]`) {
			if len(p.TopPorts) > 0 {
				s.lit(`,`)
			}
			var ps PortShare
			s.lit(`{"proto":"`)
			ps.Proto = s.str()
			s.lit(`,"port":`)
			ps.Port = s.u16()
			s.lit(`,"packets":`)
			ps.Packets = s.uint()
			s.lit(`,"share":`)
			ps.Share = s.float()
			s.lit(`}`)
			p.TopPorts = append(p.TopPorts, ps)
		}
	}
	s.lit(`,"protocols":`)
	if !s.opt(`null`) {
		s.lit(`[`)
		p.Protocols = []string{}
		for s.ok && !s.opt(`]`) {
			if len(p.Protocols) > 0 {
				s.lit(`,`)
			}
			s.lit(`"`)
			p.Protocols = append(p.Protocols, s.str())
		}
	}
	s.lit(`}`)
	return p
}

// who reads the labels json.Marshal writes of an embedded Who (each omitted when empty).
func (s *jsonScan) who(w *Who) {
	if s.opt(`,"org":"`) {
		w.Org = s.str()
	}
	if s.opt(`,"country":"`) {
		w.Country = s.str()
	}
	if s.opt(`,"asn":`) {
		if n := s.uint(); n <= 1<<32-1 {
			w.ASN = uint32(n)
		} else {
			s.ok = false
		}
	}
	if s.opt(`,"as_name":"`) {
		w.ASName = s.str()
	}
	w.Silenced = s.opt(`,"silenced":true`)
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

// opt consumes l when the input goes on with it, and says whether it did.
func (s *jsonScan) opt(l string) bool {
	if s.ok && len(s.b) >= len(l) && string(s.b[:len(l)]) == l {
		s.b = s.b[len(l):]
		return true
	}
	return false
}

// u16 reads a uint that fits a uint16.
func (s *jsonScan) u16() uint16 {
	n := s.uint()
	if n > 0xffff {
		s.ok = false
	}
	return uint16(n)
}

// float reads a JSON number as encoding/json reads it into a float64 (strconv.ParseFloat,
// out of range refused), only after checking JSON's grammar, which ParseFloat's is wider
// than ("1.", "+1", "0x1p3", "Inf").
func (s *jsonScan) float() float64 {
	if !s.ok {
		return 0
	}
	n := jsonNumber(s.b)
	f, err := strconv.ParseFloat(string(s.b[:n]), 64)
	if n == 0 || err != nil {
		s.ok = false
		return 0
	}
	s.b = s.b[n:]
	return f
}

// jsonNumber returns the length of the JSON number b starts with, 0 when none:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) int {
	i := 0
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

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

// seen reads the end appendSeenWho writes: the times, the labels, the closing brace.
func (s *jsonScan) seen(first, last *Time, w *Who) {
	s.lit(`,"first_seen":"`)
	s.time(first)
	s.lit(`,"last_seen":"`)
	s.time(last)
	s.who(w)
	s.lit(`}`)
	if len(s.b) != 0 {
		s.ok = false
	}
}
