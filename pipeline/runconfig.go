// Package pipeline runs the data path: packets from a source are handed to source-affine
// workers, each counting into its own shard and running its own detectors on packet time.
// The same workers serve live capture and file replay.
package pipeline

import (
	"net/netip"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
)

// runConfig is the part of the configuration the workers read on the packet path. It is
// immutable; a reload publishes a new one and each worker picks it up between batches.
type runConfig struct {
	cfg        *configs.Config
	prefixes   *aggregate.Prefixes
	det        *detect.Config
	detectOn   bool  // any detector enabled
	winLen     int64 // ns
	topSources int
	shed       float64 // capture.shed_backlog
}

func newRunConfig(c *configs.Config, workers int, slots *aggregate.PrefixSlots, host []netip.Addr) (*runConfig, error) {
	pf, err := aggregate.NewPrefixes(c.DarkPrefixes, slots)
	if err != nil {
		return nil, err
	}
	if len(c.DarkPrefixes) == 0 && len(host) != 0 {
		// Everything is dark but the sensor's own addresses (SetHostAddrs).
		pf = pf.WithExcluded(host)
	}
	det := detect.NewConfig(c, workers)
	return &runConfig{
		cfg:        c,
		prefixes:   pf,
		det:        det,
		detectOn:   detect.AnyEnabled(det),
		winLen:     int64(c.Window.D()),
		topSources: c.Metrics.TopSources,
		shed:       c.Capture.ShedBacklog,
	}, nil
}
