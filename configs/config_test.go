package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// documented returns the defaults of the README's configuration section, written out independently of telescope.yaml.
func documented() *Config {
	return &Config{
		Sensor:       "",
		DarkPrefixes: nil,
		Capture: Capture{
			Interface:   "any",
			Method:      "afpacket",
			Workers:     0,
			Snaplen:     256,
			RingMB:      64,
			Filter:      "",
			ShedBacklog: 0.5,
		},
		Window: Duration(5 * time.Minute),
		Detect: Detect{
			Scanner: Scanner{Enabled: true, MinPackets: 100, MinTargets: 20, Log: true, LogMinPackets: 1},
			Telnet: Telnet{
				Enabled:         true,
				Ports:           []uint16{23, 2323},
				MinTargets:      20,
				SurgeBucket:     Duration(time.Minute),
				SurgeFactor:     3,
				SurgeMinSources: 20,
				Log:             true,
				LogMinPackets:   1,
			},
			UDPThenSYN: UDPThenSYN{Enabled: true, MaxGap: Duration(5 * time.Minute), Log: true, LogMinPackets: 3},
			Backscatter: Backscatter{
				Enabled:          true,
				MinPackets:       25,
				MinDuration:      Duration(60 * time.Second),
				MinRatePerMinute: 30,
				Log:              true,
				LogMinPackets:    1,
			},
			Fingerprint: Fingerprint{Enabled: true, Log: true, LogMinPackets: 2},
			Hotspot:     Hotspot{Enabled: true, MinSources: 100, Log: true, LogMinPackets: 1},
		},
		Limits: Limits{MaxSources: 1000000, MaxDestinations: 16384, MaxSetsMB: 512},
		Metrics: Metrics{
			TopPorts:   100,
			WatchPorts: []uint16{23, 2323, 22, 80, 443, 445, 8080, 52869},
			TopSources: 20,
		},
		Web:    Web{ListenAddress: ":9813"},
		Log:    Log{Level: "info", Format: "json", SummaryInterval: Duration(time.Minute)},
		State:  State{Path: "", CheckpointInterval: Duration(time.Minute)},
		Enrich: Enrich{AlertKnown: true},
	}
}

func TestDefaultIsDocumented(t *testing.T) {
	if _, err := defaults(); err != nil {
		t.Fatal(err) // before Default panics with it
	}
	got := Default()
	if !reflect.DeepEqual(got, documented()) {
		t.Errorf("Default() differs from the documented defaults:\n%s", diff(got, documented()))
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	// Each call returns its own copy: changing one must not leak into the next.
	got.Detect.Telnet.Ports[0] = 1
	got.Detect.Scanner.MinPackets = 1
	if again := Default(); !reflect.DeepEqual(again, documented()) {
		t.Errorf("Default() after changing an earlier result:\n%s", diff(again, documented()))
	}
}

// TestDefaultYAMLDocumentsEveryKey keeps telescope.yaml from drifting from the code: every
// key of Config is written out, with a comment saying what it does.
func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]*yaml.Node{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := joinKey(prefix, n.Content[i].Value)
			inFile[key] = n.Content[i]
			walk(n.Content[i+1], key)
		}
	}
	walk(doc.Content[0], "")

	keys := keyPaths(reflect.TypeFor[Config](), "")
	if len(keys) < 40 {
		t.Fatalf("keyPaths found only %d keys: %v", len(keys), keys)
	}
	for _, key := range keys {
		n, ok := inFile[key]
		switch {
		case !ok:
			t.Errorf("telescope.yaml lacks key %q", key)
		case strings.TrimSpace(n.HeadComment+n.LineComment) == "":
			t.Errorf("telescope.yaml: key %q (line %d) has no comment", key, n.Line)
		}
	}
	for key := range inFile {
		if !slices.Contains(keys, key) {
			t.Errorf("telescope.yaml has key %q that Config does not", key)
		}
	}
}

func TestParseGoodFiles(t *testing.T) {
	tests := []struct {
		file string
		want func(c *Config) // applied to the documented defaults
	}{
		{"good-empty.yaml", func(c *Config) {}},
		{"good-comments-only.yaml", func(c *Config) {}},
		{"good-partial.yaml", func(c *Config) { c.Detect.Scanner.MinPackets = 50 }},
		{"good-empty-sections.yaml", func(c *Config) { c.Metrics.WatchPorts = nil }},
		{"good-ipv6.yaml", func(c *Config) {
			c.Sensor = "edge-2"
			c.DarkPrefixes = []netip.Prefix{
				netip.MustParsePrefix("2001:db8::/32"),
				netip.MustParsePrefix("192.0.2.0/24"),
				netip.MustParsePrefix("3fff:0:100::/48"),
				netip.MustParsePrefix("3fff::1/128"),
				netip.MustParsePrefix("198.51.100.7/32"),
			}
		}},
		{"good-full.yaml", func(c *Config) {
			*c = Config{
				Sensor: "lab-1",
				DarkPrefixes: []netip.Prefix{
					netip.MustParsePrefix("198.51.100.0/24"),
					netip.MustParsePrefix("2001:db8:100::/40"),
				},
				Capture: Capture{Interface: "eth1", Method: "pcap", Workers: 4, Snaplen: 192, RingMB: 256, Filter: "not port 22", ShedBacklog: 0.25},
				Window:  Duration(90 * time.Second),
				Detect: Detect{
					Scanner: Scanner{Enabled: false, MinPackets: 50, MinTargets: 10, Log: false, LogMinPackets: 5},
					Telnet: Telnet{Enabled: false, Ports: []uint16{23}, MinTargets: 5,
						SurgeBucket: Duration(30 * time.Second), SurgeFactor: 2.5, SurgeMinSources: 7, Log: false, LogMinPackets: 2},
					UDPThenSYN:  UDPThenSYN{Enabled: false, MaxGap: Duration(90 * time.Minute), Log: false, LogMinPackets: 10},
					Backscatter: Backscatter{Enabled: false, MinPackets: 3, MinDuration: 0, MinRatePerMinute: 4, Log: false, LogMinPackets: 100},
					Fingerprint: Fingerprint{Enabled: false, Log: false, LogMinPackets: 1},
					Hotspot:     Hotspot{Enabled: false, MinSources: 50, Log: false, LogMinPackets: 7},
				},
				Limits:  Limits{MaxSources: 5000, MaxDestinations: 2000, MaxSetsMB: 64, Prefault: true},
				Metrics: Metrics{TopPorts: 0, WatchPorts: []uint16{443}, TopSources: 1000},
				Web:     Web{ListenAddress: "[::1]:9100"},
				Log:     Log{Level: "debug", Format: "console", SummaryInterval: Duration(10 * time.Minute)},
				State:   State{Path: "/var/lib/telescope/state.ckpt", CheckpointInterval: Duration(30 * time.Second)},
				Enrich: Enrich{KnownScanners: "/etc/telescope/known-scanners.txt", AlertKnown: false,
					GeoIPCountry: "/var/lib/GeoIP/GeoLite2-Country.mmdb", GeoIPASN: "/var/lib/GeoIP/GeoLite2-ASN.mmdb"},
			}
		}},
	}
	tested := map[string]bool{}
	for _, tc := range tests {
		tested[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%s): %v", path, err)
			}
			want := documented()
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%s) differs:\n%s", path, diff(got, want))
			}
		})
	}
	untested(t, "good-*.yaml", tested)
}

func TestParseBadFiles(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad-unknown-top-key.yaml", `bad.yaml:3: unknown key "windw" (did you mean "window"?)`},
		{"bad-unknown-nested-key.yaml", `bad.yaml:6: unknown key "detect.scanner.min_packet" (did you mean "min_packets"?)`},
		{"bad-misplaced-key.yaml", `bad.yaml:2: unknown key "listen_address" (did you mean "web.listen_address"?)`},
		{"bad-wrong-type.yaml", `bad.yaml:3: capture.workers: expected an integer, got "two"`},
		{"bad-null-value.yaml", `bad.yaml:2: capture.interface: no value (leave the key out to keep the default)`},
		{"bad-cidr.yaml", `bad.yaml:3: dark_prefixes[1]: "198.51.100.0/33" is not a valid CIDR prefix: prefix length out of range`},
		{"bad-host-bits.yaml", `bad.yaml:3: dark_prefixes[1]: "10.1.2.3/8" has host bits set (did you mean 10.0.0.0/8?)`},
		{"bad-duplicate-prefix.yaml", `bad.yaml:4: dark_prefixes[2]: "192.0.2.0/24" is listed twice (also dark_prefixes[0])`},
		{"bad-negative-count.yaml", `bad.yaml:3: detect.backscatter.min_packets: must be at least 1, got -5`},
		{"bad-zero-window.yaml", `bad.yaml:1: window: must be a duration greater than 0, got 0s`},
		{"bad-shed-backlog.yaml", `bad.yaml:2: capture.shed_backlog: must be a share of the ring from 0 (never shed) to less than 1, got 1`},
		{"bad-state-interval.yaml", `bad.yaml:3: state.checkpoint_interval: must be a duration greater than 0, got 0s`},
		{"bad-duration-words.yaml", `bad.yaml:3: detect.udp_then_syn.max_gap: expected a duration such as "5m" or "90s", got "5 minutes"`},
		{"bad-negative-duration.yaml", `bad.yaml:3: detect.backscatter.min_duration: must not be negative, got -30s`},
		{"bad-duration-too-long.yaml", `bad.yaml:2: window: must be at most 8760h (a year), got 2562047h`},
		{"bad-rate-too-high.yaml", `bad.yaml:3: detect.backscatter.min_rate_per_minute: must be between 1 and 1000000, got 9223372036854775807`},
		{"bad-port-range.yaml", `bad.yaml:2: metrics.watch_ports[2]: must be a port number 1..65535, got 70000`},
		{"bad-listen-address.yaml", `bad.yaml:2: web.listen_address: "localhost:http": the port must be a number 0..65535, got "http"`},
		{"bad-log-level.yaml", `bad.yaml:2: log.level: must be one of "debug", "info", "warn", "error", got "verbose"`},
		{"bad-method.yaml", `bad.yaml:2: capture.method: must be "afpacket" or "pcap", got "xdp"`},
		{"bad-syntax.yaml", `bad.yaml:4: mapping values are not allowed in this context`},
		{"bad-tabs.yaml", `bad.yaml:3: found a tab character that violates indentation (YAML indentation must be spaces, not tabs)`},
		{"bad-duplicate-key.yaml", `bad.yaml:5: duplicate key "detect.scanner.min_packets" (first on line 3)`},
		{"bad-two-documents.yaml", `bad.yaml:2: a second YAML document starts here; a config file holds one document (remove the "---")`},
		{"bad-float-for-integer.yaml", "bad.yaml:3: detect.scanner.min_packets: must be an integer, got 99.9\nbad.yaml:5: metrics.top_ports: must be an integer, got 1.5"},
		{"bad-sensor-too-long.yaml", `bad.yaml:1: sensor: must be at most 128 bytes (it labels every series), got 200`},
		{"bad-log-min-packets.yaml", "bad.yaml:4: detect.udp_then_syn.log_min_packets: must be at least 1, got -3\nbad.yaml:3: detect.fingerprint.log_min_packets: must be at least 1, got 0"},
		{"bad-summary-interval.yaml", `bad.yaml:3: log.summary_interval: must be 0 (no summary lines) or at least 1s, got 100ms`},
		{"bad-summary-interval-negative.yaml", `bad.yaml:2: log.summary_interval: must not be negative, got -1m`},
		{"bad-log-switch.yaml", `bad.yaml:3: detect.scanner.log: expected true or false, got "sometimes"`},
		{"bad-prefault.yaml", `bad.yaml:3: limits.prefault: expected true or false, got "1"`},
		{"bad-sets.yaml", `bad.yaml:3: limits.max_sets_mb: must be between 1 and 1048576, got 0`},
		{"bad-nested-overlaps.yaml", strings.Join([]string{
			`bad.yaml:4: dark_prefixes[2]: "10.0.0.0/8" overlaps dark_prefixes[0] "10.1.0.0/16"`,
			`bad.yaml:5: dark_prefixes[3]: "10.2.0.0/16" overlaps dark_prefixes[2] "10.0.0.0/8"`,
			`bad.yaml:6: dark_prefixes[4]: "192.0.2.128/25" overlaps dark_prefixes[1] "192.0.2.0/24"`,
		}, "\n")},
		{"bad-several-errors.yaml", strings.Join([]string{
			`bad.yaml:2: dark_prefixes[1]: "10.1.0.0/16" overlaps dark_prefixes[0] "10.0.0.0/8"`,
			`bad.yaml:4: capture.snaplen: must be between 168 and 262144, got 10`,
			`bad.yaml:5: capture.ring_mb: must be between 1 and 65536, got 0`,
			`bad.yaml:9: detect.scanner.min_targets: must be at least 1, got 0`,
			`bad.yaml:11: detect.telnet.ports[1]: port 23 is listed twice (also detect.telnet.ports[0])`,
			`bad.yaml:12: detect.telnet.surge_factor: must be a finite number greater than 1, got 1`,
			`bad.yaml:14: limits.max_sources: must be at least 1, got 0`,
			`bad.yaml:16: metrics.top_sources: must be between 0 and 1000, got 5000`,
			`bad.yaml:18: log.format: must be one of "json", "logfmt", "console", got "text"`,
		}, "\n")},
	}
	tested := map[string]bool{}
	for _, tc := range tests {
		tested[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data, "bad.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
	untested(t, "bad-*.yaml", tested)
}

// diff shows the lines of the effective YAML where got and want differ (equality itself is
// checked with reflect.DeepEqual; this is only to read the failure).
func diff(got, want *Config) string {
	g, err1 := got.Marshal()
	w, err2 := want.Marshal()
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
	var b strings.Builder
	for i := range max(len(gl), len(wl)) {
		var gs, ws string
		if i < len(gl) {
			gs = gl[i]
		}
		if i < len(wl) {
			ws = wl[i]
		}
		if gs != ws {
			fmt.Fprintf(&b, "got  %q\nwant %q\n", gs, ws)
		}
	}
	if b.Len() == 0 {
		return fmt.Sprintf("same YAML, different values:\ngot  %#v\nwant %#v", got, want)
	}
	return b.String()
}

// untested fails for a testdata file matching pattern that no table entry covers.
func untested(t *testing.T, pattern string, tested map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s: %v", pattern, err)
	}
	for _, f := range files {
		if !tested[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

// TestParseInline covers finer points with small inline documents.
func TestParseInline(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // error text; "" = must parse
	}{
		{"near miss with dashes", "capture: {ring-mb: 3}", `x.yaml:1: unknown key "capture.ring-mb" (did you mean "ring_mb"?)`},
		{"near miss in Title case", "Window: 1m", `x.yaml:1: unknown key "Window" (did you mean "window"?)`},
		{"transposed letters", "capture: {mehtod: pcap}", `x.yaml:1: unknown key "capture.mehtod" (did you mean "method"?)`},
		{"nothing close", "detect: {portscan: {}}", `x.yaml:1: unknown key "detect.portscan"`},
		{"key known in several places", "min_targets: 3",
			`x.yaml:1: unknown key "min_targets" (did you mean "detect.scanner.min_targets" or "detect.telnet.min_targets"?)`},
		{"all unknown keys at once", "a: 1\ncapture:\n  b: 2\n  workers: x\n",
			"x.yaml:1: unknown key \"a\"\nx.yaml:3: unknown key \"capture.b\"\nx.yaml:4: capture.workers: expected an integer, got \"x\""},
		{"not a mapping", "- window: 1m", `x.yaml:1: expected a mapping of config keys (such as "window: 5m"), got a list`},
		{"section not a mapping", "detect: on", `x.yaml:1: detect: expected a mapping of keys, got "on"`},
		{"scalar for a list", "metrics: {watch_ports: 23}", `x.yaml:1: metrics.watch_ports: expected a list, got "23" (write [23])`},
		{"list for a scalar", "sensor: [a]", `x.yaml:1: sensor: expected a string, got a list`},
		{"bool", "detect: {scanner: {enabled: maybe}}", `x.yaml:1: detect.scanner.enabled: expected true or false, got "maybe"`},
		{"float", "detect: {telnet: {surge_factor: lots}}", `x.yaml:1: detect.telnet.surge_factor: expected a number, got "lots"`},
		{"port name", "metrics: {watch_ports: [http]}", `x.yaml:1: metrics.watch_ports[0]: expected a port number 1..65535, got "http"`},
		{"negative port", "metrics: {watch_ports: [-1]}", `x.yaml:1: metrics.watch_ports[0]: must be a port number 1..65535, got -1`},
		{"port 0", "metrics: {watch_ports: [0]}", `x.yaml:1: metrics.watch_ports[0]: must be a port number 1..65535, got 0`},
		{"duration without unit", "window: 300",
			`x.yaml:1: window: expected a duration such as "5m" or "90s", got "300" (a duration needs a unit, e.g. 300s)`},
		{"address for a prefix", "dark_prefixes: [192.0.2.1]",
			`x.yaml:1: dark_prefixes[0]: "192.0.2.1" is an address, not a CIDR prefix (did you mean 192.0.2.1/32?)`},
		{"IPv4-mapped prefix", "dark_prefixes: ['::ffff:192.0.2.0/120']",
			`x.yaml:1: dark_prefixes[0]: "::ffff:192.0.2.0/120" is an IPv4-mapped IPv6 prefix; write IPv4 prefixes as a.b.c.d/n`},
		{"IPv6 host bits", "dark_prefixes: ['2001:db8::1/32']",
			`x.yaml:1: dark_prefixes[0]: "2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)`},
		{"IPv6 overlap", "dark_prefixes: ['2001:db8:1::/48', '2001:db8::/32']",
			`x.yaml:1: dark_prefixes[1]: "2001:db8::/32" overlaps dark_prefixes[0] "2001:db8:1::/48"`},
		{"telnet without ports", "detect:\n  telnet:\n    ports: []\n",
			`x.yaml:3: detect.telnet.ports: must not be empty while detect.telnet.enabled is true`},
		{"telnet off without ports", "detect: {telnet: {enabled: false, ports: []}}", ""},
		{"workers range", "capture: {workers: 1025}", `x.yaml:1: capture.workers: must be between 0 and 1024, got 1025`},
		{"top_ports range", "metrics: {top_ports: -1}", `x.yaml:1: metrics.top_ports: must be between 0 and 65536, got -1`},
		{"surge_factor infinite", "detect: {telnet: {surge_factor: .inf}}",
			`x.yaml:1: detect.telnet.surge_factor: must be a finite number greater than 1, got +Inf`},
		{"surge_factor NaN", "detect: {telnet: {surge_factor: .nan}}",
			`x.yaml:1: detect.telnet.surge_factor: must be a finite number greater than 1, got NaN`},
		{"zero surge bucket", "detect: {telnet: {surge_bucket: 0s}}",
			`x.yaml:1: detect.telnet.surge_bucket: must be a duration greater than 0, got 0s`},
		{"zero max_gap", "detect: {udp_then_syn: {max_gap: 0s}}",
			`x.yaml:1: detect.udp_then_syn.max_gap: must be a duration greater than 0, got 0s`},
		{"empty interface", `capture: {interface: ""}`,
			`x.yaml:1: capture.interface: must not be empty (use "any" for every interface)`},
		{"listen address without port", "web: {listen_address: localhost}",
			`x.yaml:1: web.listen_address: "localhost" is not a valid host:port such as ":9813" (missing port in address)`},
		{"listen port too big", `web: {listen_address: ":65536"}`,
			`x.yaml:1: web.listen_address: ":65536": the port must be a number 0..65535, got "65536"`},
		{"merge key", "base: &b {min_packets: 5}\ndetect: {scanner: {<<: *b}}",
			"x.yaml:1: unknown key \"base\"\nx.yaml:2: detect.scanner.<<: merge keys are not supported; write the keys out"},
		{"aliases are followed", "detect:\n  scanner: {min_targets: &n 7}\n  telnet: {min_targets: *n}\n", ""},
		{"alias to a bad value", "detect:\n  scanner: {min_targets: &n x}\n  telnet: {min_targets: *n}\n",
			"x.yaml:2: detect.scanner.min_targets: expected an integer, got \"x\"\nx.yaml:2: detect.telnet.min_targets: expected an integer, got \"x\""},
		{"null document", "~\n", ""},
		{"explicit document markers", "---\nwindow: 1m\n...\n", ""},
		{"YAML 1.1 booleans", "detect: {scanner: {enabled: no}}", ""},
		{"quoted duration", `window: "1h30m"`, ""},
		{"tab after a key", "capture:\n\tworkers: 2\n",
			`x.yaml:2: found character that cannot start any token (YAML indentation must be spaces, not tabs)`},
		{"second empty document", "window: 1m\n---\n",
			`x.yaml:2: a second YAML document starts here; a config file holds one document (remove the "---")`},
		{"invalid UTF-8 (yaml.v3 gives no line)", "sensor: \xff\n", `x.yaml: invalid leading UTF-8 octet`},
		{"byte order mark", "\ufeffwindow: 1m\n", ""},
		{"syntax error in a second document", "window: 1m\n---\n[\n", `x.yaml:3: did not find expected node content`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "x.yaml")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Parse(%q) error:\n%s\nwant:\n%s", tc.yaml, got, tc.want)
			}
		})
	}
}

func TestParseAppliesValues(t *testing.T) {
	c, err := Parse([]byte("detect:\n  scanner: {min_targets: &n 7}\n  telnet: {min_targets: *n}\nwindow: \"1h30m\"\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := documented()
	want.Detect.Scanner.MinTargets = 7
	want.Detect.Telnet.MinTargets = 7
	want.Window = Duration(90 * time.Minute)
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse differs:\n%s", diff(c, want))
	}
}

func TestLoad(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(missing)
	if err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("Load(missing) = %v, want %q", err, missing+": no such file or directory")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error %v is not fs.ErrNotExist", err)
	}
	path := filepath.Join("testdata", "bad-method.yaml")
	_, err = Load(path)
	if want := path + `:2: capture.method: must be "afpacket" or "pcap", got "xdp"`; err == nil || err.Error() != want {
		t.Errorf("Load(%s) = %v, want %q", path, err, want)
	}
}

// TestValidate covers configs built in code, where no line is known.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"defaults", func(c *Config) {}, ""},
		{"zero prefix", func(c *Config) { c.DarkPrefixes = []netip.Prefix{{}} }, "dark_prefixes[0]: invalid prefix"},
		{"zero config", func(c *Config) { *c = Config{} }, strings.Join([]string{
			`capture.interface: must not be empty (use "any" for every interface)`,
			`capture.method: must be "afpacket" or "pcap", got ""`,
			`capture.snaplen: must be between 168 and 262144, got 0`,
			`capture.ring_mb: must be between 1 and 65536, got 0`,
			`window: must be a duration greater than 0, got 0s`,
			`detect.scanner.min_packets: must be at least 1, got 0`,
			`detect.scanner.min_targets: must be at least 1, got 0`,
			`detect.telnet.min_targets: must be at least 1, got 0`,
			`detect.telnet.surge_bucket: must be a duration greater than 0, got 0s`,
			`detect.telnet.surge_factor: must be a finite number greater than 1, got 0`,
			`detect.telnet.surge_min_sources: must be at least 1, got 0`,
			`detect.udp_then_syn.max_gap: must be a duration greater than 0, got 0s`,
			`detect.backscatter.min_packets: must be at least 1, got 0`,
			`detect.backscatter.min_rate_per_minute: must be between 1 and 1000000, got 0`,
			`detect.hotspot.min_sources: must be at least 1, got 0`,
			`detect.scanner.log_min_packets: must be at least 1, got 0`,
			`detect.telnet.log_min_packets: must be at least 1, got 0`,
			`detect.udp_then_syn.log_min_packets: must be at least 1, got 0`,
			`detect.backscatter.log_min_packets: must be at least 1, got 0`,
			`detect.fingerprint.log_min_packets: must be at least 1, got 0`,
			`detect.hotspot.log_min_packets: must be at least 1, got 0`,
			`limits.max_sources: must be at least 1, got 0`,
			`limits.max_destinations: must be at least 1, got 0`,
			`limits.max_sets_mb: must be between 1 and 1048576, got 0`,
			`web.listen_address: "" is not a valid host:port such as ":9813" (missing port in address)`,
			`log.level: must be one of "debug", "info", "warn", "error", got ""`,
			`log.format: must be one of "json", "logfmt", "console", got ""`,
		}, "\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := documented()
			tc.change(c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate():\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestFilterCheck is not parallel: it sets the package-level hook.
func TestFilterCheck(t *testing.T) {
	var checked []string
	FilterCheck = func(expr string) error {
		checked = append(checked, expr)
		if expr == "tcp prot 23" {
			return errors.New("syntax error")
		}
		return nil
	}
	defer func() { FilterCheck = nil }()

	if _, err := Parse([]byte("sensor: a\n"), "x.yaml"); err != nil {
		t.Fatal(err)
	}
	if len(checked) != 0 {
		t.Errorf("FilterCheck called for an empty filter: %q", checked)
	}
	if _, err := Parse([]byte("capture: {filter: tcp port 23}\n"), "x.yaml"); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte("capture:\n  filter: tcp prot 23\n"), "x.yaml")
	want := `x.yaml:2: capture.filter: invalid pcap-filter expression "tcp prot 23": syntax error`
	if err == nil || err.Error() != want {
		t.Errorf("bad filter: %v, want %q", err, want)
	}
	if !slices.Equal(checked, []string{"tcp port 23", "tcp prot 23"}) {
		t.Errorf("FilterCheck saw %q", checked)
	}
}

func TestMarshal(t *testing.T) {
	c := documented()
	c.DarkPrefixes = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	c.Window = Duration(90 * time.Second)
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"dark_prefixes: [192.0.2.0/24, '2001:db8::/32']\n",
		"window: 1m30s\n",
		"    min_duration: 1m\n",
		"    ports: [23, 2323]\n",
		"  listen_address: :9813\n",
	} {
		if !strings.Contains(string(out), line) {
			t.Errorf("Marshal() lacks %q:\n%s", line, out)
		}
	}
}

// TestMarshalRoundTrip: the effective config printed by check-config parses back to itself.
func TestMarshalRoundTrip(t *testing.T) {
	configs := map[string]*Config{"defaults": documented()}
	files, _ := filepath.Glob(filepath.Join("testdata", "good-*.yaml"))
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		configs[f] = c
	}
	odd := documented()
	odd.Sensor = "yes" // a YAML 1.1 boolean word must stay a string
	odd.Capture.Filter = "port 23 and not src net 10.0.0.0/8: # x"
	odd.Detect.Telnet.SurgeBucket = Duration(1500 * time.Millisecond)
	odd.Detect.Backscatter.MinDuration = Duration(time.Hour + time.Nanosecond)
	odd.Detect.Telnet.SurgeFactor = 1.0000001
	odd.DarkPrefixes = []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")}
	odd.Metrics.WatchPorts = nil
	configs["odd"] = odd

	for name, c := range configs {
		t.Run(name, func(t *testing.T) {
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out, "effective.yaml")
			if err != nil {
				t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("Parse(Marshal(c)) differs:\n%s\nYAML:\n%s", diff(back, c), out)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"window", "window", 0},
		{"min_packet", "min_packets", 1},
		{"windw", "window", 1},
		{"mehtod", "method", 1},
		{"snaplen", "ring_mb", 7},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

// FuzzParse: no input panics, and whatever parses survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(DefaultYAML)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml:") {
				t.Errorf("error without the file name: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out, "effective.yaml")
		if err != nil {
			t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}

func BenchmarkDefault(b *testing.B) {
	for b.Loop() {
		Default()
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "good-full.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Parse(data, "good-full.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLoadLimits: a config file over 1 MiB is refused without being read whole, and more
// dark prefixes than the counters have slots are refused by the one validation every
// command uses (check-config, run, reload).
func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, append([]byte("sensor: x\n"), bytes.Repeat([]byte("# padding\n"), 110000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || err.Error() != big+": larger than 1048576 bytes; a config file is at most 1 MiB" {
		t.Fatalf("Load(1.1 MB file) = %v", err)
	}
	var b strings.Builder
	b.WriteString("dark_prefixes:\n")
	for i := 0; i < MaxDarkPrefixes+1; i++ {
		fmt.Fprintf(&b, "  - 10.%d.%d.0/24\n", i/256, i%256)
	}
	if _, err := Parse([]byte(b.String()), "many.yaml"); err == nil || err.Error() != "many.yaml:1: dark_prefixes: at most 4095 prefixes, got 4096" {
		t.Fatalf("Parse(4096 prefixes) = %v", err)
	}
	// 4095 disjoint prefixes and one overlap at the end: found (sorted, not pairwise).
	b.Reset()
	b.WriteString("dark_prefixes:\n")
	for i := 0; i < MaxDarkPrefixes-1; i++ {
		fmt.Fprintf(&b, "  - 10.%d.%d.0/24\n", i/256, i%256)
	}
	b.WriteString("  - 10.0.0.0/12\n")
	want := fmt.Sprintf(`many.yaml:%d: dark_prefixes[%d]: "10.0.0.0/12" overlaps dark_prefixes[0] "10.0.0.0/24"`, MaxDarkPrefixes+1, MaxDarkPrefixes-1)
	if _, err := Parse([]byte(b.String()), "many.yaml"); err == nil || err.Error() != want {
		t.Fatalf("Parse(overlap at the end) = %.300v\nwant %s", err, want)
	}
}

// TestRestartOnlyKeys: the capture section is fixed at start but for its shed_backlog.
func TestRestartOnlyKeys(t *testing.T) {
	for key, want := range map[string]bool{
		"sensor": true, "capture.snaplen": true, "capture.ring_mb": true, "limits.max_sources": true,
		"log.format": true, "capture.shed_backlog": false, "log.level": false, "window": false,
		"detect.scanner.min_targets": false, "dark_prefixes": false, "state.path": true,
		"state.checkpoint_interval": true, "log.summary_interval": false, "enrich.known_scanners": false,
	} {
		if got := IsRestartOnly(key); got != want {
			t.Errorf("IsRestartOnly(%q) = %v, want %v", key, got, want)
		}
	}
	a, b := Default(), Default()
	b.Capture.ShedBacklog = 0.25
	if got := Diff(a, b); len(got) != 1 || got[0] != "capture.shed_backlog" {
		t.Errorf("Diff of a new shed_backlog: %v", got)
	}
}

// TestAppliedKeepsRestartOnlyKeys: what a reload applies (Applied) has the started values
// of the restart-only keys the new file changed and the new values of every other key,
// capture.shed_backlog among them; the loaded config is left as it was.
func TestAppliedKeepsRestartOnlyKeys(t *testing.T) {
	started := Default()
	loaded, err := Parse([]byte("sensor: other\ncapture: {snaplen: 512, workers: 3, shed_backlog: 0.25}\n"+
		"limits: {max_sources: 2000, max_destinations: 999}\nweb: {listen_address: ':9999'}\n"+
		"log: {format: logfmt, level: debug}\nwindow: 10m\ndark_prefixes: [203.0.113.0/24]\n"+
		"detect: {hotspot: {min_sources: 7}}\n"), "new.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all := Diff(started, loaded)
	var restartOnly, reloadable []string
	for _, k := range all {
		if IsRestartOnly(k) {
			restartOnly = append(restartOnly, k)
		} else {
			reloadable = append(reloadable, k)
		}
	}
	if len(restartOnly) < 7 || len(reloadable) < 5 {
		t.Fatalf("the new file changes %q (restart-only) and %q: too few of either to check", restartOnly, reloadable)
	}
	before := Diff(Default(), loaded)
	applied := Applied(started, loaded)
	if got := Diff(started, applied); !slices.Equal(got, reloadable) {
		t.Errorf("applied differs from the started config in %q, want only the reloadable keys %q", got, reloadable)
	}
	if got := Diff(loaded, applied); !slices.Equal(got, restartOnly) {
		t.Errorf("applied differs from the new file in %q, want only the restart-only keys %q", got, restartOnly)
	}
	if got := Diff(Default(), loaded); !slices.Equal(got, before) {
		t.Errorf("Applied changed the loaded config: %q, was %q", got, before)
	}
}

// TestDurationsAtMostAYear: every duration key takes up to a year and names itself past it
// (a window of 2562047h, which time.ParseDuration accepts, hung replay: the detectors' due
// times wrapped past the int64 range).
func TestDurationsAtMostAYear(t *testing.T) {
	for _, key := range []string{"window", "detect.telnet.surge_bucket", "detect.udp_then_syn.max_gap",
		"detect.backscatter.min_duration", "log.summary_interval", "state.checkpoint_interval"} {
		yamlOf := func(d string) string {
			parts := strings.Split(key, ".")
			y, indent := "state: {path: /var/lib/telescope/state}\n", ""
			if parts[0] == "state" {
				y = "state:\n  path: /var/lib/telescope/state\n"
				parts, indent = parts[1:], "  "
			}
			for _, p := range parts[:len(parts)-1] {
				y += indent + p + ":\n"
				indent += "  "
			}
			return y + indent + parts[len(parts)-1] + ": " + d + "\n"
		}
		if _, err := Parse([]byte(yamlOf("8760h")), "ok.yaml"); err != nil {
			t.Errorf("%s: 8760h refused: %v", key, err)
		}
		_, err := Parse([]byte(yamlOf("8761h")), "bad.yaml")
		if want := key + ": must be at most 8760h (a year), got 8761h"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: 8761h gives %v, want %q", key, err, want)
		}
	}
}
