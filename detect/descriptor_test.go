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
		if d.Enabled == nil || d.NewEntry == nil || d.Less == nil {
			t.Fatalf("%s: Enabled, NewEntry and Less are required", where)
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
		if d.Less(e, d.NewEntry()) {
			t.Errorf("%s: Less of two equal entries is true", where)
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
