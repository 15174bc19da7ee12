// Package configs loads and validates the telescope configuration: strict YAML over the
// documented defaults in telescope.yaml, with errors that name the key and its line.
package configs

import (
	"bytes"
	_ "embed" // DefaultYAML
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// DefaultYAML is the documented default config, embedded in the binary.
//
//go:embed telescope.yaml
var DefaultYAML []byte

// FilterCheck, when non-nil, is called by Validate for a non-empty capture.filter to check its
// syntax (the capture/filter package sets it from cmd/telescope; configs must not import it).
var FilterCheck func(expr string) error

// Config is the whole telescope configuration. The yaml tags are the config keys; every key
// is documented, with its default, in telescope.yaml.
type Config struct {
	Sensor       string         `yaml:"sensor"`
	DarkPrefixes []netip.Prefix `yaml:"dark_prefixes"`
	Capture      Capture        `yaml:"capture"`
	Window       Duration       `yaml:"window"`
	Detect       Detect         `yaml:"detect"`
	Limits       Limits         `yaml:"limits"`
	Metrics      Metrics        `yaml:"metrics"`
	Web          Web            `yaml:"web"`
	Log          Log            `yaml:"log"`
	State        State          `yaml:"state"`
	Enrich       Enrich         `yaml:"enrich"`
}

// Capture configures the packet source.
type Capture struct {
	Interface string `yaml:"interface"` // default "any"
	Method    string `yaml:"method"`    // "afpacket" (default) | "pcap"
	Workers   int    `yaml:"workers"`   // 0 = one per CPU
	Snaplen   int    `yaml:"snaplen"`   // default 256
	RingMB    int    `yaml:"ring_mb"`   // default 64
	Filter    string `yaml:"filter"`    // pcap-filter(7) expression; "" = none
	// ShedBacklog is the share of a worker's AF_PACKET ring, unread, at which the detectors
	// start skipping packets (the counters keep counting them) until the ring is down to a
	// quarter of that, in bytes; 0 = never (default 0.5).
	ShedBacklog float64 `yaml:"shed_backlog"`
}

// Detect holds one section per detector.
type Detect struct {
	Scanner     Scanner     `yaml:"scanner"`
	Telnet      Telnet      `yaml:"telnet"`
	UDPThenSYN  UDPThenSYN  `yaml:"udp_then_syn"`
	Backscatter Backscatter `yaml:"backscatter"`
	Fingerprint Fingerprint `yaml:"fingerprint"`
	Hotspot     Hotspot     `yaml:"hotspot"`
}

// Scanner configures the scanner detector.
type Scanner struct {
	Enabled    bool `yaml:"enabled"`
	MinPackets int  `yaml:"min_packets"`
	MinTargets int  `yaml:"min_targets"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// Telnet configures the telnet sweep and surge detectors.
type Telnet struct {
	Enabled         bool     `yaml:"enabled"`
	Ports           []uint16 `yaml:"ports"`
	MinTargets      int      `yaml:"min_targets"`
	SurgeBucket     Duration `yaml:"surge_bucket"`
	SurgeFactor     float64  `yaml:"surge_factor"`
	SurgeMinSources int      `yaml:"surge_min_sources"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// UDPThenSYN configures the BitTorrent-like UDP-then-SYN detector.
type UDPThenSYN struct {
	Enabled bool     `yaml:"enabled"`
	MaxGap  Duration `yaml:"max_gap"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// Backscatter configures the backscatter (DoS victim) detector.
type Backscatter struct {
	Enabled          bool     `yaml:"enabled"`
	MinPackets       int      `yaml:"min_packets"`
	MinDuration      Duration `yaml:"min_duration"`
	MinRatePerMinute int      `yaml:"min_rate_per_minute"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// Fingerprint configures the per-SYN tool fingerprints.
type Fingerprint struct {
	Enabled bool `yaml:"enabled"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// Hotspot configures the receiver-side detector: dark destinations (address, and address
// + port) that many distinct sources reach in one window.
type Hotspot struct {
	Enabled    bool `yaml:"enabled"`
	MinSources int  `yaml:"min_sources"`
	// Log and LogMinPackets control the detector's episode log lines (README, "Log volume").
	Log           bool `yaml:"log"`
	LogMinPackets int  `yaml:"log_min_packets"`
}

// Limits bounds memory.
type Limits struct {
	MaxSources      int `yaml:"max_sources"`
	MaxDestinations int `yaml:"max_destinations"`
	// MaxSetsMB bounds, in MiB over all workers, the memory of the per-source and per-episode
	// distinct-count sets (targets, ports): past it they estimate inline.
	MaxSetsMB int `yaml:"max_sets_mb"`
	// Prefault commits the source tables' memory at start (telescope run only).
	Prefault bool `yaml:"prefault"`
}

// Metrics shapes the Prometheus series.
type Metrics struct {
	TopPorts   int      `yaml:"top_ports"`
	WatchPorts []uint16 `yaml:"watch_ports"`
	TopSources int      `yaml:"top_sources"`
}

// Enrich names the files that label detections and top sources (package enrich).
type Enrich struct {
	KnownScanners string `yaml:"known_scanners"` // "CIDR organisation" lines; "" = none
	AlertKnown    bool   `yaml:"alert_known"`    // count known scanners' episodes in the alert series
	GeoIPCountry  string `yaml:"geoip_country"`  // MaxMind-format country database; "" = none
	GeoIPASN      string `yaml:"geoip_asn"`      // MaxMind-format ASN database; "" = none
}

// Web configures the HTTP server.
type Web struct {
	ListenAddress string `yaml:"listen_address"`
}

// Log configures the zap logger.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// SummaryInterval is the time between two summary lines per detector (README, "Log
	// volume"); 0 = none.
	SummaryInterval Duration `yaml:"summary_interval"`
}

// State configures the detector-state checkpoint (run: restored at start, written every
// CheckpointInterval and at shutdown). An empty Path turns checkpoints off.
type State struct {
	Path               string   `yaml:"path"`
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
}

// Default returns a fresh copy of the documented defaults, parsed from DefaultYAML.
func Default() *Config {
	c, err := defaults()
	if err != nil {
		// The embedded file is part of the program, not input; the tests parse it.
		panic(err)
	}
	return c
}

func defaults() (*Config, error) {
	c := new(Config)
	if _, err := decode(DefaultYAML, "telescope.yaml", c); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	return c, nil
}

// Marshal returns the effective config as YAML with the same keys as telescope.yaml,
// durations in compact form and lists of scalars on one line.
func (c *Config) Marshal() ([]byte, error) {
	var root yaml.Node
	if err := root.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	flowScalarLists(&root)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}

// flowScalarLists writes lists of scalars in flow style, [23, 2323], as telescope.yaml does.
func flowScalarLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		flow := true
		for _, item := range n.Content {
			flow = flow && item.Kind == yaml.ScalarNode
		}
		if flow {
			n.Style = yaml.FlowStyle
		}
	}
	for _, child := range n.Content {
		flowScalarLists(child)
	}
}
