package configs

import (
	"reflect"
	"slices"
	"strings"
)

// Diff returns the dotted keys whose values differ between a and b, leaf by leaf
// ("capture.snaplen", not "capture"), in the order of the keys in telescope.yaml.
func Diff(a, b *Config) []string {
	var keys []string
	eachLeaf(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", func(a, b reflect.Value, key string) {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			keys = append(keys, key)
		}
	})
	return keys
}

// eachLeaf calls fn with each leaf key's values in a and b (values of the same type) and
// its dotted name, in the order of the fields.
func eachLeaf(a, b reflect.Value, prefix string, fn func(a, b reflect.Value, key string)) {
	t := a.Type()
	if t.Kind() == reflect.Struct && t != durationType && t != prefixType {
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			eachLeaf(a.Field(i), b.Field(i), name, fn)
		}
		return
	}
	fn(a, b, prefix)
}

// RestartOnly lists the keys fixed at start: a change to any of them (or under them)
// takes effect only after a restart, except the keys of reloadable. The checkpoint's path
// and interval (state) are read once, for the restore at start and the periodic writer.
var RestartOnly = []string{"sensor", "capture", "limits", "web", "log.format", "state"}

// reloadable are keys under RestartOnly ones that a reload applies.
var reloadable = []string{"capture.shed_backlog"}

// IsRestartOnly reports whether key (from Diff) is fixed at start.
func IsRestartOnly(key string) bool {
	if slices.Contains(reloadable, key) {
		return false
	}
	for _, r := range RestartOnly {
		if key == r || strings.HasPrefix(key, r+".") {
			return true
		}
	}
	return false
}

// Applied returns the configuration a reload applies: loaded, with every restart-only key
// (IsRestartOnly, leaf by leaf) as started has it. The process keeps running with, and its
// checkpoints describe, the limits and capture it started with until the restart, as the
// reload's log line says (the hotspot's shared limits once took a reloaded
// limits.max_destinations at once, the workers not).
func Applied(started, loaded *Config) *Config {
	out := *loaded
	eachLeaf(reflect.ValueOf(&out).Elem(), reflect.ValueOf(started).Elem(), "", func(dst, start reflect.Value, key string) {
		if IsRestartOnly(key) {
			dst.Set(start)
		}
	})
	return &out
}
