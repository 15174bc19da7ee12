// Package snapshot holds the pipeline's state at one instant as plain values: what the
// metrics collector and the live overview page read. Sums over workers are done by the
// pipeline when it takes a snapshot; readers only map values to series or charts.
package snapshot

import (
	"github.com/telescope-dev/telescope/aggregate"
)

// Snapshot is the pipeline's state at one instant as plain values: sums over the workers
// are done here, once, so the metrics collector (and the live overview page) only map
// values to series and never read workers or detectors themselves.
type Snapshot struct {
	Totals *aggregate.Totals // counter shards summed over the workers

	// Prefixes are the configured dark prefixes with their packets, in slot order;
	// NotDark counts the packets outside all of them.
	Prefixes []NamedCount
	NotDark  uint64

	// Window is the last window every worker has closed (nil before the first one), of
	// length WindowLength; SourcesPerWindow is the packets-per-source histogram of every
	// closed window so far.
	Window           *aggregate.WindowStats
	WindowLength     string
	SourcesPerWindow Histogram
	// DestinationsPerWindow is the receiver distribution: packets per dark destination
	// address per closed window (counted by the hotspot detector; empty while it is off).
	DestinationsPerWindow Histogram

	// Detectors has one entry per detector, in descriptor order.
	Detectors []DetectorSnapshot
	// TelnetSources is the distinct telnet sources of the last complete surge bucket.
	TelnetSources      uint64
	FingerprintPackets []NamedCount // by tool
	UDPThenSYNSources  []NamedCount // by payload kind
	BackscatterPackets []NamedCount // by kind
	// WatchedPortScanners counts scanner episodes that probed each watched port.
	WatchedPortScanners []PortEpisodes

	// NoDarkPrefixes is true when no dark prefix is configured: every destination but the
	// host's own addresses counts as dark.
	NoDarkPrefixes bool

	// LogEntriesDropped counts log entries the bounded log queue dropped (a stalled or
	// too slow output).
	LogEntriesDropped uint64

	// Who is scanning (README, "Who is scanning"): packets by scan technique (every
	// technique, in order); scanner episode packets by known scanning service (every org of
	// the list) and by source country (ISO codes seen, "unknown"; only with a country
	// database); episodes of known scanners by detector and org; the last closed window's
	// top sources summed by AS (only with an ASN database), busiest first.
	TechniquePackets     []NamedCount
	KnownScannerPackets  []NamedCount
	CountryPackets       []NamedCount
	KnownScannerEpisodes []DetectorOrgCount
	TopASNs              []ASNCount

	Captures     []CaptureCounts
	WorkerFrames []uint64 // frames handled, by worker
	Tracked      int64    // entries in the bounded per-source tables
	Evictions    uint64
	// DetectionShed counts dark-space packets the detectors skipped because the capture ring
	// was filling up (capture.shed_backlog); the counters counted them.
	DetectionShed uint64
	LastPacketTS  int64 // ns of packet time, 0 before the first packet
	TopPorts      int   // metrics.top_ports in effect
	WatchPorts    []uint16
}

// NamedCount is a label value and its count.
type NamedCount struct {
	Name  string
	Count uint64
}

// Histogram is a cumulative-free histogram: Counts[i] observations in bucket i (upper bound
// 2^i; the last entry above every bound), their Sum and Count.
type Histogram struct {
	Counts     [aggregate.HistBuckets + 1]uint64
	Sum, Count uint64
}

// DetectorSnapshot is one detector's episode counts.
type DetectorSnapshot struct {
	Name    string
	Active  int64
	Started []NamedCount // episodes started, by class
}

// CaptureCounts is what a packet source reports about itself.
type CaptureCounts struct {
	Interface   string
	Packets     uint64 // received by the socket (records read, when replaying)
	KernelDrops uint64 // dropped by the kernel (ring full)
	// QueueFreezes counts the times the kernel found a TPACKET_V3 ring full and froze its
	// queue until the worker released a block (drops follow when that takes too long).
	QueueFreezes uint64
	Up           bool // the socket is open and bound
}

// PortEpisodes is a port and a number of episodes.
type PortEpisodes struct {
	Port     uint16
	Episodes uint64
}

// DetectorOrgCount is a count by detector and organisation.
type DetectorOrgCount struct {
	Detector, Org string
	Count         uint64
}

// ASNCount is an autonomous system and its packets.
type ASNCount struct {
	ASN     uint32
	Name    string
	Packets uint64
}
