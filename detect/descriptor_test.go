package detect

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/telescope-dev/telescope/configs"
)

// TestDescriptors fails when a detector's descriptor is incomplete or out of step with the
// engine's indexes, the config (struct and the documented default file), or itself.
func TestDescriptors(t *testing.T) {
	if len(Descriptors()) != numDetectors {
		t.Fatalf("%d descriptors, %d detector indexes", len(Descriptors()), numDetectors)
	}
	var doc struct {
		Detect map[string]map[string]any `yaml:"detect"`
	}
	if err := yaml.Unmarshal(configs.DefaultYAML, &doc); err != nil {
		t.Fatal(err)
	}
	sections := map[string]reflect.Value{}
	def := configs.Default()
	dv := reflect.ValueOf(&def.Detect).Elem()
	for i := 0; i < dv.NumField(); i++ {
		tag := strings.Split(dv.Type().Field(i).Tag.Get("yaml"), ",")[0]
		sections[tag] = dv.Field(i)
	}
	names, keys := map[string]bool{}, map[string]bool{}
	for i, d := range Descriptors() {
		where := fmt.Sprintf("descriptor %d (%q)", i, d.Name)
		if d.Name == "" || d.ReportKey == "" || d.ConfigKey == "" || d.StartMsg == "" || d.EndMsg == "" {
			t.Errorf("%s: empty name, report key, config key or log message: %+v", where, d)
		}
		if d.Enabled == nil || d.NewEntry == nil || d.AppendKey == nil {
			t.Fatalf("%s: Enabled, NewEntry and AppendKey are required", where)
		}
		if names[d.Name] || keys[d.ReportKey] {
			t.Errorf("%s: name or report key used twice", where)
		}
		names[d.Name], keys[d.ReportKey] = true, true
		if len(d.Classes) == 0 || len(d.Classes) > maxClasses {
			t.Errorf("%s: %d classes, want 1..%d", where, len(d.Classes), maxClasses)
		}
		if d.StartMsg == d.EndMsg {
			t.Errorf("%s: start and end events have the same message", where)
		}
		// The config: a section with an enabled switch, documented in the default file,
		// that turns the detector on and off.
		sec, ok := sections[d.ConfigKey]
		if !ok {
			t.Errorf("%s: no detect.%s section in configs.Detect", where, d.ConfigKey)
			continue
		}
		if _, ok := doc.Detect[d.ConfigKey]["enabled"]; !ok {
			t.Errorf("%s: detect.%s.enabled is not documented in configs/telescope.yaml", where, d.ConfigKey)
		}
		en := sec.FieldByName("Enabled")
		if !en.IsValid() || en.Kind() != reflect.Bool {
			t.Errorf("%s: detect.%s has no Enabled switch", where, d.ConfigKey)
			continue
		}
		if !d.Enabled(NewConfig(def, 1)) {
			t.Errorf("%s: not enabled by the default config", where)
		}
		off := configs.Default()
		reflect.ValueOf(&off.Detect).Elem().FieldByIndex(fieldIndex(t, sec.Type(), d.ConfigKey)).FieldByName("Enabled").SetBool(false)
		if d.Enabled(NewConfig(off, 1)) {
			t.Errorf("%s: still enabled with detect.%s.enabled false", where, d.ConfigKey)
		}
		// The log switch: read from the detector's own section.
		if d.Log == nil {
			t.Fatalf("%s: Log is required", where)
		}
		quiet := configs.Default()
		reflect.ValueOf(&quiet.Detect).Elem().FieldByIndex(fieldIndex(t, sec.Type(), d.ConfigKey)).FieldByName("Log").SetBool(false)
		if on, _ := d.Log(NewConfig(quiet, 1)); on {
			t.Errorf("%s: still logged with detect.%s.log false", where, d.ConfigKey)
		}
		if on, _ := d.Log(NewConfig(def, 1)); !on {
			t.Errorf("%s: not logged by the default config", where)
		}
		if d.Packets == nil && d.Name != TelnetSurge {
			t.Errorf("%s: no Packets function: log_min_packets would not apply", where)
		}
		if d.stop == nil && d.Name != TelnetSurge {
			t.Errorf("%s: no stop function: a reload that disables it would leave episodes open", where)
		}
		// The entry: logs as flat fields and marshals with a time field the report sorts on.
		e := d.NewEntry()
		enc := zapcore.NewMapObjectEncoder()
		if err := e.MarshalLogObject(enc); err != nil || len(enc.Fields) == 0 {
			t.Errorf("%s: entry logs no fields (%v)", where, err)
		}
		b, err := json.Marshal(e)
		if err != nil || !(strings.Contains(string(b), `"first_seen"`) || strings.Contains(string(b), `"start"`)) {
			t.Errorf("%s: entry JSON %s (%v) lacks first_seen/start", where, b, err)
		}
		if d.SortKey(e) == "" || d.SortKey(e) != d.SortKey(d.NewEntry()) {
			t.Errorf("%s: sort key of an empty entry %q, not stable", where, d.SortKey(e))
		}
	}
}

// fieldIndex finds the index of configs.Detect's field of type typ with yaml tag key.
func fieldIndex(t *testing.T, typ reflect.Type, key string) []int {
	t.Helper()
	dt := reflect.TypeOf(configs.Detect{})
	for i := 0; i < dt.NumField(); i++ {
		f := dt.Field(i)
		if f.Type == typ && strings.Split(f.Tag.Get("yaml"), ",")[0] == key {
			return f.Index
		}
	}
	t.Fatalf("no field %s", key)
	return nil
}

// TestSortKeysOrder: keys order by time first (negative times too), then identity, with
// ports in numeric order.
func TestSortKeysOrder(t *testing.T) {
	ordered := [][2]any{
		{Time(-5), "b"}, {Time(-1), "a"}, {Time(0), "a"}, {Time(0), "a\x00x"}, {Time(0), "b"}, {Time(1 << 40), ""},
	}
	for i := 1; i < len(ordered); i++ {
		a := TimeKey(ordered[i-1][0].(Time)) + "\x00" + ordered[i-1][1].(string)
		b := TimeKey(ordered[i][0].(Time)) + "\x00" + ordered[i][1].(string)
		if a >= b {
			t.Errorf("key %d %q >= key %d %q", i-1, a, i, b)
		}
	}
	for _, p := range [][2]uint16{{0, 1}, {9, 10}, {99, 100}, {1023, 1024}, {65534, 65535}} {
		if portKey(p[0]) >= portKey(p[1]) {
			t.Errorf("port key %d >= %d", p[0], p[1])
		}
	}
	u := Lookup(UDPThenSYN)
	x := &UDPThenSYNEntry{Src: IP(addr("192.0.2.1")), Dst: IP(addr("203.0.113.1")), Port: 9, FirstSeen: 7}
	y := &UDPThenSYNEntry{Src: IP(addr("192.0.2.1")), Dst: IP(addr("203.0.113.1")), Port: 10, FirstSeen: 7}
	if u.SortKey(x) >= u.SortKey(y) {
		t.Errorf("udp_then_syn port 9 sorts after port 10")
	}
}

// TestLogged: which events are written under detect.*.log and log_min_packets, with the
// defaults (one-packet fingerprint episodes and one-datagram, one-SYN pairs are not) and
// with changed settings.
func TestLogged(t *testing.T) {
	def := NewConfig(configs.Default(), 1)
	set := func(f func(c *configs.Config)) *Config {
		c := configs.Default()
		f(c)
		return NewConfig(c, 1)
	}
	tests := []struct {
		name     string
		cfg      *Config
		detector string
		entry    Entry
		want     bool
	}{
		{"default fingerprint, 1 packet", def, Fingerprint, &ToolEntry{Packets: 1}, false},
		{"default fingerprint, 2 packets", def, Fingerprint, &ToolEntry{Packets: 2}, true},
		{"default udp_then_syn, 1+1", def, UDPThenSYN, &UDPThenSYNEntry{UDPPackets: 1, SYNPackets: 1}, false},
		{"default udp_then_syn, 2+1", def, UDPThenSYN, &UDPThenSYNEntry{UDPPackets: 2, SYNPackets: 1}, true},
		{"default udp_then_syn, 1+2", def, UDPThenSYN, &UDPThenSYNEntry{UDPPackets: 1, SYNPackets: 2}, true},
		{"default scanner, 1 packet", def, Scanner, &ScannerEntry{Packets: 1}, true},
		{"default backscatter", def, Backscatter, &BackscatterEntry{Packets: 1}, true},
		{"default hotspot", def, Hotspot, &HotspotEntry{Packets: 1}, true},
		{"default surge", def, TelnetSurge, &TelnetSurgeEntry{}, true},
		{"fingerprint min 1", set(func(c *configs.Config) { c.Detect.Fingerprint.LogMinPackets = 1 }), Fingerprint, &ToolEntry{Packets: 1}, true},
		{"fingerprint off", set(func(c *configs.Config) { c.Detect.Fingerprint.Log = false }), Fingerprint, &ToolEntry{Packets: 1000}, false},
		{"scanner min 500, 499", set(func(c *configs.Config) { c.Detect.Scanner.LogMinPackets = 500 }), Scanner, &ScannerEntry{Packets: 499}, false},
		{"scanner min 500, 500", set(func(c *configs.Config) { c.Detect.Scanner.LogMinPackets = 500 }), Scanner, &ScannerEntry{Packets: 500}, true},
		{"telnet min 50: sweep of 49", set(func(c *configs.Config) { c.Detect.Telnet.LogMinPackets = 50 }), TelnetSweep, &TelnetSweepEntry{Packets: 49}, false},
		{"telnet min 50: surge (no packet count)", set(func(c *configs.Config) { c.Detect.Telnet.LogMinPackets = 50 }), TelnetSurge, &TelnetSurgeEntry{}, true},
		{"telnet off: surge", set(func(c *configs.Config) { c.Detect.Telnet.Log = false }), TelnetSurge, &TelnetSurgeEntry{}, false},
		{"hotspot off", set(func(c *configs.Config) { c.Detect.Hotspot.Log = false }), Hotspot, &HotspotEntry{Packets: 9}, false},
		{"backscatter min 30, 29", set(func(c *configs.Config) { c.Detect.Backscatter.LogMinPackets = 30 }), Backscatter, &BackscatterEntry{Packets: 29}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lookup(tc.detector).Logged(tc.cfg, tc.entry); got != tc.want {
				t.Errorf("Logged = %v, want %v", got, tc.want)
			}
		})
	}
}
