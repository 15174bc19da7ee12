// Package daygen generates a synthetic "telescope day": a time-ordered mix of background
// radiation, scanners, telnet sweeps and a surge, BitTorrent-like UDP-then-SYN pollution, DoS
// backscatter and tool fingerprints, all to documentation prefixes, together with the exact
// detections a correct implementation must report under the default configuration. It feeds
// pipeline-level tests and benchmarks.
package daygen

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Options shape a generated day. The zero value is a valid default day.
type Options struct {
	// Seed makes the day reproducible: the same options give the same packets.
	Seed int64
	// Start is the time of the first packet, truncated to a whole minute (so the first
	// telnet surge bucket is whole). Zero: 2024-05-01T00:00:00Z.
	Start time.Time
	// Duration of the day; zero: 24h. At least MinDuration.
	Duration time.Duration
	// Scale multiplies the number of actors (1.0: about 300k packets over 24 h). Every kind
	// of actor is present at least once whatever the scale. Zero: 1.0; at most MaxScale
	// (MaxScaleTest for the test profile).
	Scale float64
	// Profile is the shape of the day: ProfileTest (the zero value: every detector rule at
	// its edges, a short surge) or ProfileTelescope (the traffic mix of a real telescope).
	Profile Profile
	// TelnetOnly generates only the telnet part of a ProfileTelescope day (the baseline
	// bots and the surge), for cheap surge tests at large scales.
	TelnetOnly bool
}

// Profile is the shape of a generated day.
type Profile uint8

const (
	// ProfileTest is the detector test day: about 300k packets over 24 h at scale 1, with
	// actors at every rule's edges.
	ProfileTest Profile = iota
	// ProfileTelescope is a real telescope's mix (see telescope.go): at scale 20 over the
	// default 2 h, about 3.4 M packets from 520 k sources.
	ProfileTelescope
)

// MaxScale bounds Scale (the IPv4 source space of the generator holds 4M sources).
const MaxScale = 50

// MaxScaleTest bounds Scale for ProfileTest, whose background alone has 110k sources per 1.0.
const MaxScaleTest = 20

// MinDuration is the shortest day with room for every actor and a surge in the middle.
const MinDuration = 2 * time.Hour

// The default detector settings the truth is computed for (configs/telescope.yaml).
const (
	window      = 5 * time.Minute
	surgeBucket = time.Minute
	maxGap      = 5 * time.Minute
)

func (o Options) withDefaults() (Options, error) {
	if o.Start.IsZero() {
		o.Start = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	}
	o.Start = o.Start.Truncate(time.Minute)
	if o.Duration == 0 {
		o.Duration = 24 * time.Hour
		if o.Profile == ProfileTelescope {
			o.Duration = 2 * time.Hour
		}
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	var errs []error
	if o.Duration < MinDuration {
		errs = append(errs, fmt.Errorf("daygen: duration %s is shorter than the minimum %s", o.Duration, MinDuration))
	}
	maxScale := MaxScale
	if o.Profile == ProfileTest {
		maxScale = MaxScaleTest
	}
	if !(o.Scale > 0) || math.IsInf(o.Scale, 0) || o.Scale > float64(maxScale) {
		errs = append(errs, fmt.Errorf("daygen: scale %g must be in (0, %d]", o.Scale, maxScale))
	}
	if o.Profile > ProfileTelescope {
		errs = append(errs, fmt.Errorf("daygen: unknown profile %d", o.Profile))
	}
	if o.TelnetOnly && o.Profile != ProfileTelescope {
		errs = append(errs, errors.New("daygen: TelnetOnly needs ProfileTelescope"))
	}
	return o, errors.Join(errs...)
}
