package configs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("5m", "90s", "1h30m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// durationUnits are the units String writes, largest first. "us" rather than "µs" keeps the
// effective config plain ASCII; time.ParseDuration accepts both.
var durationUnits = []struct {
	name string
	size uint64
}{
	{"h", uint64(time.Hour)},
	{"m", uint64(time.Minute)},
	{"s", uint64(time.Second)},
	{"ms", uint64(time.Millisecond)},
	{"us", uint64(time.Microsecond)},
	{"ns", uint64(time.Nanosecond)},
}

// String returns the compact form users write: "5m" rather than time.Duration's "5m0s",
// "1h30s" rather than "1h0m30s", "1s500ms" rather than "1.5s". Every unit with a non-zero
// count appears once, so time.ParseDuration(d.String()) == d exactly.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u // two's complement: correct even for math.MinInt64
	}
	for _, unit := range durationUnits {
		if q := u / unit.size; q > 0 {
			b.WriteString(strconv.FormatUint(q, 10))
			b.WriteString(unit.name)
			u -= q * unit.size
		}
	}
	return b.String()
}

// parseDuration parses a Go duration string, with an error that says what is expected.
func parseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return Duration(d), nil
	}
	hint := ""
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		hint = fmt.Sprintf(" (a duration needs a unit, e.g. %ss)", s)
	}
	return 0, fmt.Errorf("expected a duration such as \"5m\" or \"90s\", got %q%s", s, hint)
}

// UnmarshalYAML reads a duration from a scalar such as 5m or "90s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as \"5m\" or \"90s\", got %s", n.Line, describe(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML writes the compact form (see String).
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
