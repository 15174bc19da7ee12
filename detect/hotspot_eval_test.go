package detect

import (
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/checkpoint"
)

// TestHotspotCheckpointWaitsForQueuedWindows: with the evaluator on, a window both engines
// have passed waits in its queue until the evaluator takes it. A checkpoint taken then must
// hold it, evaluated (its episode open) or pending, never neither: here the evaluator is
// held (gate) until the checkpoint has its lock, so the window is still queued or held. The
// restored side ends the episode, with the counts of its window.
func TestHotspotCheckpointWaitsForQueuedWindows(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	hs, engines, sink := hotOnly(t, px, 30)
	cfg := engines[0].e.cfg
	gate := make(chan struct{})
	hs.gate = gate
	stop := hs.StartEvaluator()
	ts := t0
	for w, h := range engines {
		for i := range 20 {
			ts += sec / 100
			p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], i), "198.51.100.7", 23, ts)
			h.packetTo(&p, px)
		}
	}
	next := t0 + int64(cfg.Window) + sec
	for _, h := range engines {
		h.e.Advance(next) // both pass the window: it is complete, and queued
	}
	var enc checkpoint.Encoder
	hs.SaveState(&enc, func() { close(gate) })
	stop()
	if n := hs.EvaluatedWindows(); n != 1 {
		t.Fatalf("the evaluator evaluated %d windows, want the one", n)
	}
	starts := hotStarts(sink.take())
	if len(starts) != 1 || starts[0].Sources != 40 {
		t.Fatalf("before the checkpoint: %d episodes started (%+v), want one of 40 sources", len(starts), starts)
	}
	hs2 := NewHotspots(len(engines), sink, &Counters{})
	hs2.SetConfig(cfg)
	d := checkpoint.NewDecoder(enc.Bytes())
	if !hs2.LoadState(d) || d.Done() != nil {
		t.Fatalf("restore: %v", d.Done())
	}
	if n := hs2.Active(); n != 1 {
		t.Fatalf("restored: %d episodes open, want the window's one", n)
	}
	for _, h := range engines {
		h.e.SetHotspots(hs2)
		h.e.Finish(next)
	}
	hs2.Finish()
	var ends []*HotspotEntry
	for _, ev := range sink.take() {
		if ev.Detector == Hotspot && ev.Phase == End {
			ends = append(ends, ev.Entry.(*HotspotEntry))
		}
	}
	if len(ends) != 1 || ends[0].Sources != 40 || ends[0].Packets != 40 || ends[0].Port != 23 {
		t.Fatalf("after the restore: %d episodes ended (%+v), want the one of 40 sources and packets", len(ends), ends)
	}
}

// TestHotspotEvaluatorStopHandsBack: windows still queued when the evaluator stops are
// evaluated by whoever comes next (here Finish), once each and in order, however far the
// evaluator got: three windows, each with its own hot destination, give three episodes,
// each started and ended once with its window's 40 sources.
func TestHotspotEvaluatorStopHandsBack(t *testing.T) {
	px := darkSpace(t, "198.51.100.0/24")
	hs, engines, sink := hotOnly(t, px, 30)
	size := int64(engines[0].e.cfg.Window)
	gate := make(chan struct{})
	hs.gate = gate
	stop := hs.StartEvaluator()
	for win := range int64(3) {
		ts := t0 + win*size
		for w, h := range engines {
			for i := range 20 {
				ts += sec / 100
				p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], i), "198.51.100.1"+string(rune('0'+win)), 23, ts)
				h.packetTo(&p, px)
			}
		}
		if win < 2 {
			for _, h := range engines {
				h.e.Advance(t0 + (win+1)*size) // the window is complete: queued
			}
		}
	}
	close(gate) // the evaluator may take none, one or both before it stops
	stop()
	inline := hs.EvaluatedWindows()
	for _, h := range engines {
		h.e.Finish(t0 + 3*size)
	}
	hs.Finish()
	starts, ends := map[string]uint64{}, map[string]uint64{}
	var order []string
	for _, ev := range sink.take() {
		if ev.Detector != Hotspot {
			continue
		}
		e := ev.Entry.(*HotspotEntry)
		if ev.Phase == Start {
			starts[e.Dst]++
			order = append(order, e.Dst)
		} else if e.Sources == 40 && e.Packets == 40 {
			ends[e.Dst]++
		}
	}
	want := []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"}
	for _, d := range want {
		if starts[d] != 1 || ends[d] != 1 {
			t.Errorf("%s: %d starts, %d ends of 40 sources and packets; want one each", d, starts[d], ends[d])
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("episodes started in the order %v, want %v", order, want)
	}
	t.Logf("the evaluator took %d of the 2 windows queued before it stopped", inline)
}
