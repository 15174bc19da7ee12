package pipeline

import (
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
)

// Load shedding (live AF_PACKET capture). A worker that falls behind its ring would, once
// the ring is full, leave the kernel no choice but to drop packets: counts that lie. Before
// that, the detectors, most of a packet's cost, skip the worker's packets while the counters
// still count every one: a flood the detectors cannot keep up with costs detections, which
// telescope_detection_shed_packets_total shows, not packets.

// shedder decides from a ring's backlog in bytes (capture.Frame.BehindBytes: what the ready
// blocks hold, the work waiting) whether the detectors skip packets: from `at` bytes until
// the backlog is down to `resume` (a quarter of at), so that a worker hovering at the
// threshold does not flip on every block. Bytes, not blocks: under light traffic a block
// retires on its timer with a packet or two, and a worker paused for a moment (a checkpoint)
// comes back to many blocks and little work, which shedding would only lose.
type shedder struct {
	at, resume int // bytes; 0: never
	on         bool
}

// setLimit sets the threshold to share of a ring of ring bytes in blocks of block bytes
// (share 0: never shed), at least two blocks (one ready block is the normal case), keeping
// the current state.
func (s *shedder) setLimit(share float64, ring, block int) {
	if share <= 0 || block <= 0 || ring < 2*block {
		s.at, s.resume, s.on = 0, 0, false
		return
	}
	s.at = min(max(int(math.Ceil(share*float64(ring))), 2*block), ring)
	s.resume = s.at / 4
}

// update takes the backlog of the block being read and reports whether to shed.
func (s *shedder) update(behind int) bool {
	switch {
	case s.at == 0:
		s.on = false
	case behind >= s.at:
		s.on = true
	case behind <= s.resume:
		s.on = false
	}
	return s.on
}

// shedLogEvery spaces a worker's lines about shedding.
const shedLogEvery = time.Minute

// noteShed logs that the worker started shedding, at most once per shedLogEvery, with the
// packets shed since its previous line.
func (w *worker) noteShed(f *capture.Frame, r *capture.Ring) {
	now := time.Now()
	if !w.shedLogged.IsZero() && now.Sub(w.shedLogged) < shedLogEvery {
		return
	}
	total := w.shedCount
	w.p.log.Warn("detection shed under load: the capture ring is filling up; the detectors skip packets, the counters keep counting them",
		zap.Int("worker", w.id), zap.Int("ring_bytes_unread", f.BehindBytes), zap.Int("ring_bytes", r.Bytes()),
		zap.Int("ring_blocks_unread", f.Behind), zap.Int("ring_blocks", r.Blocks()),
		zap.Uint64("packets_shed_since_last_line", total-w.shedLogTotal))
	w.shedLogged, w.shedLogTotal = now, total
}
