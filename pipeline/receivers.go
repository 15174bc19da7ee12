package pipeline

import (
	"strconv"

	"github.com/telescope-dev/telescope/aggregate"
)

// ReceiverDistribution is the report's receiver distribution: how many (dark destination
// address, window) pairs received how many packets, from the hotspot detector's counts
// (empty while it is off). Buckets are not cumulative: Destinations counts the pairs with
// more packets than the previous bucket's LE and at most LE ("+Inf" for the last).
type ReceiverDistribution struct {
	Window       string `json:"window"`
	Destinations uint64 `json:"destinations"` // (destination, window) pairs observed
	Packets      uint64 `json:"packets"`
	// Unmerged destinations were counted on their own, unsummed with their other cells of
	// the window (detect.Hotspots.Unmerged): destinations may count one more than once.
	Unmerged uint64       `json:"unmerged"`
	Buckets  []HistBucket `json:"buckets"`
}

// HistBucket is one row of a histogram table.
type HistBucket struct {
	LE           string `json:"le"`
	Destinations uint64 `json:"destinations"`
}

// receiverDistribution builds the table from the hotspot aggregator's histogram: every
// bucket up to the last non-empty one.
func (p *Pipeline) receiverDistribution() ReceiverDistribution {
	h := &p.hot.Hist
	r := ReceiverDistribution{Window: p.rc.Load().cfg.Window.String(), Buckets: []HistBucket{},
		Destinations: h.Count.Load(), Packets: h.Sum.Load(), Unmerged: p.hot.Unmerged.Load()}
	last := -1
	for i := range h.Counts {
		if h.Counts[i].Load() != 0 {
			last = i
		}
	}
	for i := 0; i <= last; i++ {
		le := "+Inf"
		if i < aggregate.HistBuckets {
			le = strconv.FormatUint(1<<i, 10)
		}
		r.Buckets = append(r.Buckets, HistBucket{LE: le, Destinations: h.Counts[i].Load()})
	}
	return r
}
