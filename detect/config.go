package detect

import (
	"sync/atomic"
	"time"

	"github.com/telescope-dev/telescope/configs"
)

// Config is the immutable detector configuration one engine runs with. A reload builds a
// new Config and hands it to every engine; state survives (thresholds apply from then on).
type Config struct {
	Window      time.Duration
	Scanner     configs.Scanner
	Telnet      configs.Telnet
	UDPThenSYN  configs.UDPThenSYN
	Backscatter configs.Backscatter
	Fingerprint configs.Fingerprint
	// MaxFlows caps, per worker, the udp_then_syn flow table and the backscatter victim
	// table (limits.max_sources divided between the workers).
	MaxFlows int
}

// NewConfig derives the detector configuration from the daemon config for `workers` workers.
func NewConfig(c *configs.Config, workers int) *Config {
	if workers < 1 {
		workers = 1
	}
	flows := c.Limits.MaxSources / workers
	if flows < 1 {
		flows = 1
	}
	return &Config{
		Window:      c.Window.D(),
		Scanner:     c.Detect.Scanner,
		Telnet:      c.Detect.Telnet,
		UDPThenSYN:  c.Detect.UDPThenSYN,
		Backscatter: c.Detect.Backscatter,
		Fingerprint: c.Detect.Fingerprint,
		MaxFlows:    flows,
	}
}

// Counters are one engine's metric counters: written by its worker with atomic adds
// (only on rare events or on the packets they describe), read at scrape time.
type Counters struct {
	// Detections counts episodes started, by detector and class, indexed like Detectors
	// and Classes[detector].
	Detections [len6][maxClasses]atomic.Uint64
	// Active is the number of episodes in progress, by detector.
	Active [len6]atomic.Int64
	// FingerprintPackets counts SYN probes matching each tool's fingerprint (index of Tools).
	FingerprintPackets [4]atomic.Uint64
	// UDPThenSYNSources counts udp_then_syn detections by payload kind (index of PayloadKinds).
	UDPThenSYNSources [3]atomic.Uint64
	// BackscatterPackets counts backscatter packets by kind (index of BackscatterKinds).
	BackscatterPackets [17]atomic.Uint64
	// Tracked and Evictions describe the engine's own tables (flows, victims).
	Tracked   atomic.Int64
	Evictions atomic.Uint64
}

const (
	len6       = 6
	maxClasses = 17
)

// DetectorIndex returns the index of a detector name in Detectors, or -1.
func DetectorIndex(name string) int {
	for i, d := range Detectors {
		if d == name {
			return i
		}
	}
	return -1
}

// ClassIndex returns the index of class in Classes[detector], or -1.
func ClassIndex(detector, class string) int {
	for i, c := range Classes[detector] {
		if c == class {
			return i
		}
	}
	return -1
}
