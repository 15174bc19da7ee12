package detect

import (
	"sync"
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
	Hotspot     configs.Hotspot
	// WatchPorts are metrics.watch_ports: scanner episodes that probe one of the first
	// MaxWatchPorts of them are counted by port (telescope_watched_port_scanners_total).
	WatchPorts []uint16
	// MaxFlows caps, per worker, the udp_then_syn flow table and the backscatter victim
	// table (limits.max_sources divided between the workers).
	MaxFlows int
	// MaxDestinations caps, per worker, the hotspot destination table
	// (limits.max_destinations divided between the workers).
	MaxDestinations int
	// MaxSetWords bounds the words of each engine's slab, the blocks of its Distinct sets
	// (limits.max_sets_mb divided between the workers; 0: none).
	MaxSetWords uint64
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
		Hotspot:     c.Detect.Hotspot,
		WatchPorts:  c.Metrics.WatchPorts,
		MaxFlows:    flows,
		// Every worker sees every destination (workers own sources), so each holds its share.
		MaxDestinations: max(c.Limits.MaxDestinations/workers, 1),
		MaxSetWords:     uint64(c.Limits.MaxSetsMB) << 20 / 8 / uint64(workers),
	}
}

// Counters are one engine's metric counters: written by its worker with atomic adds
// (only on rare events or on the packets they describe), read at scrape time.
type Counters struct {
	// Detections counts episodes started, by detector and class, indexed like Descriptors()
	// and their Classes.
	Detections [numDetectors][maxClasses]atomic.Uint64
	// Active is the number of episodes in progress, by detector.
	Active [numDetectors]atomic.Int64
	// FingerprintPackets counts SYN probes matching each tool's fingerprint (index of Tools).
	FingerprintPackets [4]atomic.Uint64
	// UDPThenSYNSources counts udp_then_syn detections by payload kind (index of PayloadKinds).
	UDPThenSYNSources [3]atomic.Uint64
	// BackscatterPackets counts backscatter packets by kind (index of BackscatterKinds).
	BackscatterPackets [17]atomic.Uint64
	// TechniquePackets counts packets by scan technique (index of Techniques), published
	// by the engine after each batch.
	TechniquePackets [NumTechniques]atomic.Uint64
	// watchedMu guards watchedScanners: scanner episodes by watched port they probed
	// (written once per episode and port, read at scrape time).
	watchedMu       sync.Mutex
	watchedScanners map[uint16]uint64
	// Tracked and Evictions describe the engine's own tables (flows, victims).
	Tracked   atomic.Int64
	Evictions atomic.Uint64
}

// MaxWatchPorts bounds the watched ports whose scanners are counted by port.
const MaxWatchPorts = 64

func (c *Counters) addWatched(port uint16) {
	c.watchedMu.Lock()
	if c.watchedScanners == nil {
		c.watchedScanners = map[uint16]uint64{}
	}
	c.watchedScanners[port]++
	c.watchedMu.Unlock()
}

// WatchedScanners returns the scanner episodes counted for a watched port so far.
func (c *Counters) WatchedScanners(port uint16) uint64 {
	c.watchedMu.Lock()
	defer c.watchedMu.Unlock()
	return c.watchedScanners[port]
}

// watchSet is an engine's set of watched ports: a bitset for the packet path and the
// ordered list that gives each port its bit in ScanWindow.Watched.
type watchSet struct {
	bits  [1024]uint64
	ports []uint16
}

func newWatchSet(ports []uint16) *watchSet {
	w := &watchSet{}
	for _, p := range ports {
		if len(w.ports) == MaxWatchPorts || w.has(p) {
			continue
		}
		w.bits[p>>6] |= 1 << (p & 63)
		w.ports = append(w.ports, p)
	}
	return w
}

func (w *watchSet) has(p uint16) bool { return w.bits[p>>6]&(1<<(p&63)) != 0 }

func (w *watchSet) index(p uint16) int {
	for i, q := range w.ports {
		if q == p {
			return i
		}
	}
	return -1
}
