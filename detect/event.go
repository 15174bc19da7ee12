// Package detect recognises who is scanning a telescope and how: one file per detector,
// all driven by packet time inside the source-affine workers.
package detect

import (
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/packet"
)

// Detector names: the `event` log field and the `detector` metric label (Descriptor.Name).
const (
	Scanner     = "scanner"
	TelnetSweep = "telnet_sweep"
	TelnetSurge = "telnet_surge"
	UDPThenSYN  = "udp_then_syn"
	Backscatter = "backscatter"
	Fingerprint = "fingerprint"
)

// PayloadKinds are the udp_then_syn payload classes.
var PayloadKinds = []string{"dht", "utp", "other"}

// Tools are the fingerprinted scanning tools.
var Tools = []string{"mirai", "zmap", "masscan", "nmap"}

// BackscatterKinds are the reply kinds a DoS victim sends to spoofed sources.
var BackscatterKinds = []string{
	"syn_ack", "rst", "rst_ack",
	"icmp_echo_reply", "icmp_unreachable", "icmp_source_quench", "icmp_redirect",
	"icmp_time_exceeded", "icmp_param_problem", "icmp_timestamp_reply", "icmp_info_reply",
	"icmp_mask_reply",
	"icmp6_echo_reply", "icmp6_unreachable", "icmp6_packet_too_big", "icmp6_time_exceeded",
	"icmp6_param_problem",
}

// Phase says whether an event opens or closes an episode.
type Phase uint8

const (
	Start Phase = iota
	End
)

func (p Phase) String() string {
	if p == Start {
		return "start"
	}
	return "end"
}

// Event is one detection episode starting or ending. Entry is one of the *Entry types below
// (a pointer to a fresh value the receiver may keep); at End it holds the final values
// that go into the report.
type Event struct {
	Detector string
	Phase    Phase
	Class    string
	Entry    Entry
}

// Entry is a report entry that can also be logged as flat zap fields.
type Entry interface {
	zapcore.ObjectMarshaler
}

// Sink receives events. It is called from worker goroutines concurrently and must be safe
// for that. ev is valid only during the call (the engine reuses it): a sink may keep
// ev.Entry, or a copy of *ev, never ev itself. A TransientSink keeps entries only through
// KeepEntry.
type Sink interface {
	Detection(ev *Event)
}

// TransientSink is a Sink that keeps no event's Entry past Detection: an entry it keeps,
// it keeps through KeepEntry. An engine whose sink is one (TransientEntries true) reuses
// one entry of each type a flood makes one of per event (ToolEntry, UDPThenSYNEntry)
// instead of allocating one per event.
type TransientSink interface {
	Sink
	TransientEntries() bool
}

// IsTransient reports whether s is a TransientSink that keeps no entry (nil keeps none).
func IsTransient(s Sink) bool {
	if s == nil {
		return true
	}
	t, ok := s.(TransientSink)
	return ok && t.TransientEntries()
}

// KeepEntry returns an entry a sink may keep past Detection: a copy of one an engine may
// reuse (see TransientSink), e itself otherwise.
func KeepEntry(e Entry) Entry {
	switch x := e.(type) {
	case *ToolEntry:
		c := *x
		return &c
	case *UDPThenSYNEntry:
		c := *x
		return &c
	}
	return e
}

// LogEntry is KeepEntry for a log queue that gives back what it has written: the copy comes
// from a pool, and the queue calls its ReleaseLogged method once the line is written (see
// logq.Options.Release); e itself when it needs no copy. A copy never released is collected
// as usual. A day's fingerprint and udp_then_syn lines allocated one copy each, 2-3 % of the
// 20x day's samples with the fresh memory they took.
func LogEntry(e Entry) Entry {
	switch x := e.(type) {
	case *ToolEntry:
		c := loggedTools.Get().(*loggedTool)
		c.ToolEntry = *x
		return c
	case *UDPThenSYNEntry:
		c := loggedFlows.Get().(*loggedFlow)
		c.UDPThenSYNEntry = *x
		return c
	}
	return e
}

// loggedTool and loggedFlow are LogEntry's copies: types of their own, so that only they are
// given back, never an entry an engine or a report holds.
type loggedTool struct{ ToolEntry }

type loggedFlow struct{ UDPThenSYNEntry }

var (
	loggedTools = sync.Pool{New: func() any { return new(loggedTool) }}
	loggedFlows = sync.Pool{New: func() any { return new(loggedFlow) }}
)

// ReleaseLogged gives the copy back to LogEntry's pool; the caller must not use it after.
func (c *loggedTool) ReleaseLogged() { loggedTools.Put(c) }

// ReleaseLogged gives the copy back to LogEntry's pool; the caller must not use it after.
func (c *loggedFlow) ReleaseLogged() { loggedFlows.Put(c) }

// textBufs are the buffers addTime and addIP format into: a log line's times and addresses,
// made into strings on the log writer, were an allocation each (with the fresh memory they
// took, ~2.5 % of the 20x day's samples). AddByteString copies the bytes, as AddString does.
var textBufs = sync.Pool{New: func() any { return new([64]byte) }}

// addTime adds t to a log line as AddString(key, t.String()) would.
func addTime(enc zapcore.ObjectEncoder, key string, t Time) {
	b := textBufs.Get().(*[64]byte)
	enc.AddByteString(key, appendTime(b[:0], int64(t)))
	textBufs.Put(b)
}

// addIP adds a to a log line as AddString(key, a.String()) would.
func addIP(enc zapcore.ObjectEncoder, key string, a IP) {
	b := textBufs.Get().(*[64]byte)
	t, _ := a.AppendText(b[:0])
	enc.AddByteString(key, t)
	textBufs.Put(b)
}

// Time is a packet timestamp that marshals as RFC 3339 with nanoseconds, in UTC.
type Time int64

// MarshalText implements encoding.TextMarshaler (so encoding/json writes a string).
func (t Time) MarshalText() ([]byte, error) {
	return t.AppendText(make([]byte, 0, maxTimeLen))
}

// AppendText implements encoding.TextAppender.
func (t Time) AppendText(b []byte) ([]byte, error) {
	return appendTime(b, int64(t)), nil
}

// UnmarshalText parses RFC 3339 (so reports can be read back).
func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return err
	}
	*t = Time(v.UnixNano())
	return nil
}

func (t Time) String() string {
	var buf [maxTimeLen]byte
	return string(appendTime(buf[:0], int64(t)))
}

// maxTimeLen is the longest text of a Time: "2006-01-02T15:04:05.999999999Z".
const maxTimeLen = 30

// appendTime appends ns (nanoseconds since the Unix epoch) as time.RFC3339Nano formats it in
// UTC: every event's entry formats two times for its log line and its report entry, and
// time.Format's general layout machinery cost more than the detectors' work on an episode.
// An int64 of nanoseconds spans the years 1677 to 2262, so the year has four digits.
func appendTime(b []byte, ns int64) []byte {
	secs := ns / 1e9
	frac := ns - secs*1e9
	if frac < 0 {
		secs, frac = secs-1, frac+1e9
	}
	days := secs / 86400
	sod := secs - days*86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	// Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	// Built in place, two digits at a time, and appended once (a digit at a time and nine
	// divisions for the fraction took 48 ns a call; two calls an entry of every report and
	// log line).
	var t [maxTimeLen]byte
	put2(t[0:], y/100) // years 1677-2262: four digits
	put2(t[2:], y%100)
	t[4] = '-'
	put2(t[5:], m)
	t[7] = '-'
	put2(t[8:], d)
	t[10] = 'T'
	put2(t[11:], sod/3600)
	t[13] = ':'
	put2(t[14:], sod/60%60)
	t[16] = ':'
	put2(t[17:], sod%60)
	n := 19
	if frac != 0 {
		t[19], t[20] = '.', byte('0'+frac/1e8)
		r := frac % 1e8
		put2(t[21:], r/1e6)
		put2(t[23:], r/1e4%100)
		put2(t[25:], r/100%100)
		put2(t[27:], r%100)
		n = 29
		for t[n-1] == '0' {
			n--
		}
	}
	t[n] = 'Z'
	return append(b, t[:n+1]...)
}

// digitPairs holds "00" to "99", for put2.
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// put2 writes v (0-99) as two digits at b[0:2].
func put2(b []byte, v int64) {
	_ = b[1]
	b[0], b[1] = digitPairs[2*v], digitPairs[2*v+1]
}

// ScannerEntry is a report entry of detections.scanner.
type ScannerEntry struct {
	Src       string `json:"src"`
	Class     string `json:"class"`
	Packets   uint64 `json:"packets"`
	Targets   uint64 `json:"targets"`
	Ports     uint64 `json:"ports"`
	FirstSeen Time   `json:"first_seen"`
	LastSeen  Time   `json:"last_seen"`
	// TargetsEstimated: the distinct counts passed the exact limit (4 096, see
	// aggregate.Distinct) and are sketch estimates, capped at Packets.
	TargetsEstimated bool `json:"targets_estimated,omitempty"`
	// Technique (technique.go), Summary and Profile (profile.go) say how and what it probed.
	Technique string   `json:"technique"`
	Summary   string   `json:"summary"`
	Profile   *Profile `json:"profile,omitempty"`
	Who
	ScanEstimates
}

func (e *ScannerEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("src", e.Src)
	enc.AddString("class", e.Class)
	enc.AddUint64("packets", e.Packets)
	enc.AddUint64("targets", e.Targets)
	enc.AddUint64("ports", e.Ports)
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
	if e.TargetsEstimated {
		enc.AddBool("targets_estimated", true)
	}
	enc.AddString("technique", e.Technique)
	enc.AddString("summary", e.Summary)
	e.Profile.marshalLog(enc)
	e.Who.marshalLog(enc)
	e.ScanEstimates.marshalLog(enc)
	return nil
}

// TelnetSweepEntry is a report entry of detections.telnet_sweep.
type TelnetSweepEntry struct {
	Src       string `json:"src"`
	Targets   uint64 `json:"targets"`
	Packets   uint64 `json:"packets"`
	Mirai     bool   `json:"mirai"`
	FirstSeen Time   `json:"first_seen"`
	LastSeen  Time   `json:"last_seen"`
	// TargetsEstimated: the distinct counts passed the exact limit (4 096, see
	// aggregate.Distinct) and are sketch estimates, capped at Packets.
	TargetsEstimated bool `json:"targets_estimated,omitempty"`
	Who
}

func (e *TelnetSweepEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("src", e.Src)
	enc.AddUint64("targets", e.Targets)
	enc.AddUint64("packets", e.Packets)
	enc.AddBool("mirai", e.Mirai)
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
	if e.TargetsEstimated {
		enc.AddBool("targets_estimated", true)
	}
	e.Who.marshalLog(enc)
	return nil
}

// TelnetSurgeEntry is a report entry of detections.telnet_surge.
type TelnetSurgeEntry struct {
	Start       Time    `json:"start"`
	End         Time    `json:"end"`
	PeakSources uint64  `json:"peak_sources"`
	PeakProbes  uint64  `json:"peak_probes"` // the peak bucket's SYN probes to the telnet ports
	Baseline    float64 `json:"baseline"`
	// BotsEstimated is the bots behind the peak bucket, from its sources and probes and
	// the dark IPv4 space (README, "Internet-wide estimates"); left out when the dark IPv4
	// space is unknown.
	BotsEstimated float64 `json:"bots_estimated,omitempty"`
}

func (e *TelnetSurgeEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addTime(enc, "start", e.Start)
	addTime(enc, "end", e.End)
	enc.AddUint64("peak_sources", e.PeakSources)
	enc.AddUint64("peak_probes", e.PeakProbes)
	enc.AddFloat64("baseline", e.Baseline)
	if e.BotsEstimated > 0 {
		enc.AddFloat64("bots_estimated", e.BotsEstimated)
	}
	return nil
}

// UDPThenSYNEntry is a report entry of detections.udp_then_syn.
type UDPThenSYNEntry struct {
	Src        IP     `json:"src"`
	Dst        IP     `json:"dst"`
	Port       uint16 `json:"port"`
	UDPPackets uint64 `json:"udp_packets"`
	SYNPackets uint64 `json:"syn_packets"`
	Payload    string `json:"payload"`
	FirstSeen  Time   `json:"first_seen"`
	LastSeen   Time   `json:"last_seen"`
	Who
}

func (e *UDPThenSYNEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addIP(enc, "src", e.Src)
	addIP(enc, "dst", e.Dst)
	enc.AddUint16("port", e.Port)
	enc.AddUint64("udp_packets", e.UDPPackets)
	enc.AddUint64("syn_packets", e.SYNPackets)
	enc.AddString("payload", e.Payload)
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
	e.Who.marshalLog(enc)
	return nil
}

// BackscatterEntry is a report entry of detections.backscatter (one DoS attack).
type BackscatterEntry struct {
	Victim    string `json:"victim"`
	Kind      string `json:"kind"`
	Packets   uint64 `json:"packets"`
	Targets   uint64 `json:"targets"`
	PeakRate  uint64 `json:"peak_rate_per_minute"`
	FirstSeen Time   `json:"first_seen"`
	LastSeen  Time   `json:"last_seen"`
	// TargetsEstimated: the distinct counts passed the exact limit (4 096, see
	// aggregate.Distinct) and are sketch estimates, capped at Packets.
	TargetsEstimated bool `json:"targets_estimated,omitempty"`
	Who
}

func (e *BackscatterEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("victim", e.Victim)
	enc.AddString("kind", e.Kind)
	enc.AddUint64("packets", e.Packets)
	enc.AddUint64("targets", e.Targets)
	enc.AddUint64("peak_rate_per_minute", e.PeakRate)
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
	if e.TargetsEstimated {
		enc.AddBool("targets_estimated", true)
	}
	e.Who.marshalLog(enc)
	return nil
}

// IP is an address in a report entry, turned into text only when the entry is written
// (JSON, a log line): a flood of fingerprinted sources builds two entries per packet,
// and formatting each address twice cost a sixth of such a flood's CPU.
type IP packet.Addr

// String returns the address as netip writes it (IPv4 dotted, IPv6 RFC 5952).
func (a IP) String() string { return packet.Addr(a).String() }

// AppendText implements encoding.TextAppender: the address as String writes it (the zero
// IP: nothing).
func (a IP) AppendText(b []byte) ([]byte, error) { return packet.Addr(a).Netip().AppendTo(b), nil }

// MarshalText implements encoding.TextMarshaler (so encoding/json writes a string).
func (a IP) MarshalText() ([]byte, error) { return a.AppendText(nil) }

// UnmarshalText parses an address (so reports can be read back).
func (a *IP) UnmarshalText(b []byte) error {
	ip, err := netip.ParseAddr(string(b))
	if err != nil {
		return err
	}
	*a = IP(packet.AddrFromNetip(ip))
	return nil
}

// ToolEntry is a report entry of detections.tools (the fingerprint detector).
type ToolEntry struct {
	Src       IP     `json:"src"`
	Tool      string `json:"tool"`
	Packets   uint64 `json:"packets"`
	Probes    uint64 `json:"syn_probes"`
	FirstSeen Time   `json:"first_seen"`
	LastSeen  Time   `json:"last_seen"`
	Who
}

func (e *ToolEntry) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	addIP(enc, "src", e.Src)
	enc.AddString("tool", e.Tool)
	enc.AddUint64("packets", e.Packets)
	enc.AddUint64("syn_probes", e.Probes)
	addTime(enc, "first_seen", e.FirstSeen)
	addTime(enc, "last_seen", e.LastSeen)
	e.Who.marshalLog(enc)
	return nil
}
