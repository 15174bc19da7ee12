package detect

// Descriptor is what everything outside the packet path knows about one detector: the
// report, the metrics collector, the event log, reload and the config check all iterate
// Descriptors() instead of keeping lists of detector names of their own. The per-packet
// path (Engine.Packet and SourceState) stays hand-written.
//
// Adding a detector: its file (rule, entry type), its test, its config section, and one
// entry in descriptors below (see docs/DESIGN.md); TestDescriptors fails when a part is
// missing.
type Descriptor struct {
	// Name is the `event` log field and the `detector` metric label.
	Name string
	// ReportKey is the detector's key in the report's "detections" object.
	ReportKey string
	// ConfigKey is the detector's section under `detect:` in the config file (several
	// detectors may share one).
	ConfigKey string
	// Classes are the `class` label values of telescope_detections_total; the set is
	// fixed so every series exists (at 0) from the start.
	Classes []string
	// StartMsg and EndMsg are the log messages of an episode's start and end events.
	StartMsg, EndMsg string
	// Enabled reports whether a configuration runs the detector.
	Enabled func(c *Config) bool
	// NewEntry returns an empty report entry of the detector (reports are read back with it).
	NewEntry func() Entry
	// AppendKey appends the entry's sort key (see SortKey) to b: the spool writes keys
	// straight into its run buffer, with no string per episode.
	AppendKey func(b []byte, e Entry) []byte
	// Log returns the detector's episode-log settings in a configuration: whether its
	// start and end lines are written, and the fewest packets an episode must have for
	// them (detect.<section>.log and .log_min_packets; see Logged).
	Log func(c *Config) (on bool, minPackets int)
	// Packets returns the packet count of an entry that log_min_packets compares; nil for
	// a detector whose episodes have none (the surge), which log_min_packets never filters.
	Packets func(e Entry) uint64
	// stop ends every active episode of the detector in one engine (a reload disabled
	// it). Nil for detectors whose state is shared between engines (the surge).
	stop func(e *Engine)
}

// Detector indexes: positions in descriptors, the first index of Counters.Detections.
const (
	detScanner = iota
	detTelnetSweep
	detTelnetSurge
	detUDPThenSYN
	detBackscatter
	detFingerprint
	detHotspot
	numDetectors
)

// maxClasses bounds len(Classes) of every descriptor (the backscatter kinds).
const maxClasses = 17

// descriptors lists every detector in report order.
var descriptors = [numDetectors]*Descriptor{
	detScanner: {
		Name: Scanner, ReportKey: "scanner", ConfigKey: "scanner",
		Classes:  []string{"horizontal", "vertical", "mixed"},
		StartMsg: "scanner detected", EndMsg: "scanner went quiet",
		Enabled:  func(c *Config) bool { return c.Scanner.Enabled },
		Log:      func(c *Config) (bool, int) { return c.Scanner.Log, c.Scanner.LogMinPackets },
		Packets:  func(e Entry) uint64 { return e.(*ScannerEntry).Packets },
		NewEntry: func() Entry { return new(ScannerEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*ScannerEntry)
			return appendTimeID(b, x.FirstSeen, x.Src)
		},
	},
	detTelnetSweep: {
		Name: TelnetSweep, ReportKey: "telnet_sweep", ConfigKey: "telnet",
		Classes:  []string{"mirai", "other"},
		StartMsg: "telnet sweep detected", EndMsg: "telnet sweep went quiet",
		Enabled:  func(c *Config) bool { return c.Telnet.Enabled },
		Log:      func(c *Config) (bool, int) { return c.Telnet.Log, c.Telnet.LogMinPackets },
		Packets:  func(e Entry) uint64 { return e.(*TelnetSweepEntry).Packets },
		NewEntry: func() Entry { return new(TelnetSweepEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*TelnetSweepEntry)
			return appendTimeID(b, x.FirstSeen, x.Src)
		},
	},
	detTelnetSurge: {
		Name: TelnetSurge, ReportKey: "telnet_surge", ConfigKey: "telnet",
		Classes:  []string{"surge"},
		StartMsg: "telnet surge started", EndMsg: "telnet surge ended",
		Enabled:  func(c *Config) bool { return c.Telnet.Enabled && c.Telnet.SurgeBucket > 0 },
		Log:      func(c *Config) (bool, int) { return c.Telnet.Log, c.Telnet.LogMinPackets },
		NewEntry: func() Entry { return new(TelnetSurgeEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			return appendTimeKey(b, e.(*TelnetSurgeEntry).Start)
		},
	},
	detUDPThenSYN: {
		Name: UDPThenSYN, ReportKey: "udp_then_syn", ConfigKey: "udp_then_syn",
		Classes:  PayloadKinds,
		StartMsg: "udp then syn pair detected", EndMsg: "udp then syn pair went quiet",
		Enabled: func(c *Config) bool { return c.UDPThenSYN.Enabled },
		Log:     func(c *Config) (bool, int) { return c.UDPThenSYN.Log, c.UDPThenSYN.LogMinPackets },
		Packets: func(e Entry) uint64 {
			x := e.(*UDPThenSYNEntry)
			return x.UDPPackets + x.SYNPackets
		},
		NewEntry: func() Entry { return new(UDPThenSYNEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*UDPThenSYNEntry)
			b, _ = x.Dst.AppendText(append(appendTimeIP(b, x.FirstSeen, x.Src), 0))
			return appendPortKey(append(b, 0), x.Port)
		},
	},
	detBackscatter: {
		Name: Backscatter, ReportKey: "backscatter", ConfigKey: "backscatter",
		Classes:  BackscatterKinds,
		StartMsg: "dos attack backscatter detected", EndMsg: "dos attack backscatter ended",
		Enabled:  func(c *Config) bool { return c.Backscatter.Enabled },
		Log:      func(c *Config) (bool, int) { return c.Backscatter.Log, c.Backscatter.LogMinPackets },
		Packets:  func(e Entry) uint64 { return e.(*BackscatterEntry).Packets },
		NewEntry: func() Entry { return new(BackscatterEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*BackscatterEntry)
			return appendTimeID(b, x.FirstSeen, x.Victim)
		},
	},
	detFingerprint: {
		Name: Fingerprint, ReportKey: "tools", ConfigKey: "fingerprint",
		Classes:  Tools,
		StartMsg: "scanning tool fingerprinted", EndMsg: "fingerprinted source went quiet",
		Enabled:  func(c *Config) bool { return c.Fingerprint.Enabled },
		Log:      func(c *Config) (bool, int) { return c.Fingerprint.Log, c.Fingerprint.LogMinPackets },
		Packets:  func(e Entry) uint64 { return e.(*ToolEntry).Packets },
		NewEntry: func() Entry { return new(ToolEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*ToolEntry)
			return append(append(appendTimeIP(b, x.FirstSeen, x.Src), 0), x.Tool...)
		},
	},
	detHotspot: {
		Name: Hotspot, ReportKey: "hotspot", ConfigKey: "hotspot",
		Classes:  HotspotClasses,
		StartMsg: "hotspot detected", EndMsg: "hotspot went quiet",
		Enabled:  func(c *Config) bool { return c.Hotspot.Enabled },
		Log:      func(c *Config) (bool, int) { return c.Hotspot.Log, c.Hotspot.LogMinPackets },
		Packets:  func(e Entry) uint64 { return e.(*HotspotEntry).Packets },
		NewEntry: func() Entry { return new(HotspotEntry) },
		AppendKey: func(b []byte, e Entry) []byte {
			x := e.(*HotspotEntry)
			b = appendTimeID(b, x.FirstSeen, x.Dst)
			return appendPortKey(append(b, 0), x.Port)
		},
	},
}

// The stop functions end episodes through Engine.end, which reads descriptors: set here
// to break the initialisation cycle.
func init() {
	descriptors[detScanner].stop = func(e *Engine) { e.endSources(epScan, 0, true) }
	descriptors[detTelnetSweep].stop = func(e *Engine) { e.endSources(epTel, 0, true) }
	descriptors[detUDPThenSYN].stop = func(e *Engine) { e.endFlows() }
	descriptors[detBackscatter].stop = func(e *Engine) { e.endVictims() }
	descriptors[detFingerprint].stop = func(e *Engine) {
		e.endSources(epFP, 0, true)
		e.endToolsInPlace()
	}
	descriptors[detHotspot].stop = func(e *Engine) { e.hotStop() }
}

// Descriptors returns every detector's descriptor in report order. The slice is shared:
// callers must not modify it.
func Descriptors() []*Descriptor { return descriptors[:] }

// Lookup returns the descriptor of a detector name, or nil.
func Lookup(name string) *Descriptor {
	for _, d := range descriptors {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// AnyEnabled reports whether a configuration runs at least one detector.
func AnyEnabled(c *Config) bool {
	for _, d := range descriptors {
		if d.Enabled(c) {
			return true
		}
	}
	return false
}

// Message returns the log message of an event.
func (d *Descriptor) Message(p Phase) string {
	if p == Start {
		return d.StartMsg
	}
	return d.EndMsg
}

// Logged reports whether an event of the detector is written to the log under c: its
// section's log switch is on and the entry has at least log_min_packets packets. A start
// event's entry holds the packets up to the start, an end event's the episode's total, so
// with log_min_packets above the packets a detector needs to start an episode, an episode
// that grows past it has an end line only (the end line is the complete record: first_seen,
// last_seen, packets). Every event counts in the report, the metrics and the summary lines
// whatever this says.
func (d *Descriptor) Logged(c *Config, e Entry) bool {
	on, minPackets := d.Log(c)
	if !on {
		return false
	}
	if d.Packets == nil || minPackets <= 1 {
		return true
	}
	return d.Packets(e) >= uint64(minPackets)
}

// ClassIndex returns the index of class in d.Classes, or -1.
func (d *Descriptor) ClassIndex(class string) int {
	for i, c := range d.Classes {
		if c == class {
			return i
		}
	}
	return -1
}

// DetectorIndex returns the index of a detector name in Descriptors(), or -1.
func DetectorIndex(name string) int {
	for i, d := range descriptors {
		if d.Name == name {
			return i
		}
	}
	return -1
}

// SortKey orders the detector's report entries bytewise: first packet time, then
// identity (fields joined by NUL), so reports of the same input are identical whatever
// the worker count, and entries spooled to disk sort by key alone.
func (d *Descriptor) SortKey(e Entry) string { return string(d.AppendKey(nil, e)) }

// TimeKey encodes a packet time as a string that sorts bytewise in time order.
func TimeKey(t Time) string { return string(appendTimeKey(nil, t)) }

// appendTimeKey appends TimeKey(t) to b.
func appendTimeKey(b []byte, t Time) []byte {
	v := uint64(t) ^ 1<<63
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[v>>i&15])
	}
	return b
}

// appendTimeID appends the key of an entry first seen at t with identity id: TimeKey(t),
// NUL, id.
func appendTimeID(b []byte, t Time, id string) []byte {
	return append(append(appendTimeKey(b, t), 0), id...)
}

// appendTimeIP is appendTimeID with an address for the identity, as its text.
func appendTimeIP(b []byte, t Time, a IP) []byte {
	b, _ = a.AppendText(append(appendTimeKey(b, t), 0))
	return b
}

// portKey encodes a port in fixed width, so it sorts bytewise in numeric order.
func portKey(p uint16) string { return string(appendPortKey(nil, p)) }

// appendPortKey appends portKey(p) to b.
func appendPortKey(b []byte, p uint16) []byte {
	return append(b, '0'+byte(p/10000), '0'+byte(p/1000%10), '0'+byte(p/100%10), '0'+byte(p/10%10), '0'+byte(p%10))
}
