package detect

import (
	"math/rand/v2"
	"testing"
)

// TestEpisodesEndOnTime: many fingerprint and udp_then_syn episodes with random activity;
// Advance runs before every packet. Each episode must end at the first Advance after its
// last packet + window (never earlier, never at a later Advance), as the walk over every
// episode did before the due-time heaps; and the heaps stay bounded by their tables.
func TestEpisodesEndOnTime(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxFlows = 64 // small tables: evictions and heap rebuilds happen too
	h := newHarness(t, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	src := func(i int) string { return ip4("100.64.0.0", i) }
	now, prev := t0, t0
	ends := 0
	check := func() {
		for _, ev := range h.sink.take() {
			if ev.Phase != End {
				continue
			}
			var last int64
			switch x := ev.Entry.(type) {
			case *ToolEntry:
				last = int64(x.LastSeen)
			case *UDPThenSYNEntry:
				last = int64(x.LastSeen)
			case *ScannerEntry:
				last = int64(x.LastSeen)
			default:
				t.Fatalf("unexpected entry %T", ev.Entry)
			}
			ends++
			if due := last + win; now <= due || prev > due {
				t.Fatalf("%s episode with last packet at %d ended at Advance(%d) (previous %d): due after %d",
					ev.Detector, last-t0, now-t0, prev-t0, due-t0)
			}
		}
	}
	for i := range 20000 {
		prev, now = now, now+rng.Int64N(2*sec)
		h.now = now
		h.e.Advance(now)
		if h.c.Evictions.Load() != 0 {
			h.sink.take() // an evicted episode ends early by design
			h.c.Evictions.Store(0)
		} else {
			check()
		}
		s := rng.IntN(200)
		switch rng.IntN(3) {
		case 0: // a Mirai probe: a fingerprint episode that starts or continues
			p := syn(src(s), ip4("203.0.113.0", i), 8080, now)
			p.Seq = p.Dst.V4()
			h.feed(p)
		case 1: // UDP then, soon or later, a SYN to the same port: a pair
			h.feed(udp(src(s), "203.0.113.7", 6881, now, nil))
		default:
			h.feed(syn(src(s), "203.0.113.7", 6881, now))
		}
		h.sink.take() // start events, and ends caused by a packet that did not continue
		if n := h.e.srcDue.len(); n > dueLimit(h.e.eps.Cap()) {
			t.Fatalf("source heap holds %d entries for a table of %d", n, h.e.eps.Cap())
		}
		if n := len(h.e.flowDue); n > dueLimit(h.e.flows.Cap()) {
			t.Fatalf("flow heap holds %d entries for a table of %d", n, h.e.flows.Cap())
		}
		if n := h.e.toolDue.len(); n > toolDueLimit(h.srcs.Slots()) {
			t.Fatalf("tool queue holds %d entries for a source table of %d slots", n, h.srcs.Slots())
		}
		if i%1000 == 999 { // quiet for longer than the window: everything ends
			prev, now = now, now+win+sec
			h.e.Advance(now)
			check()
			if h.e.eps.Len() != 0 || h.c.Active[detUDPThenSYN].Load() != 0 || h.c.Active[detFingerprint].Load() != 0 {
				t.Fatalf("after a quiet window: %d records, %d flow and %d tool episodes still active",
					h.e.eps.Len(), h.c.Active[detUDPThenSYN].Load(), h.c.Active[detFingerprint].Load())
			}
		}
	}
	if ends < 1000 {
		t.Fatalf("only %d episodes ended by time: the test proves little", ends)
	}
}

// TestReloadRetimesEpisodes: a reload that shortens the window ends the episodes by the new
// window at the next Advance (their heap entries were timed with the old one).
func TestReloadRetimesEpisodes(t *testing.T) {
	h := newHarness(t, testConfig(t))
	p := syn("100.64.0.1", "203.0.113.1", 8080, t0)
	p.Seq = p.Dst.V4()
	h.feed(p, udp("100.64.0.2", "203.0.113.7", 6881, t0, nil), syn("100.64.0.2", "203.0.113.7", 6881, t0))
	h.sink.take()
	short := *h.cfg
	short.Window = h.cfg.Window / 5
	h.e.SetConfig(&short)
	h.e.Advance(t0 + int64(short.Window) + 1)
	got := 0
	for _, ev := range h.sink.take() {
		if ev.Phase == End {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("%d episodes ended after the shortened window, want 2 (fingerprint, udp_then_syn)", got)
	}
	if h.e.eps.Len() != 0 || h.e.flows.Get(flowKey{Src: addr("100.64.0.2"), Dst: addr("203.0.113.7"), Port: 6881}) != nil {
		t.Fatal("ended episodes left their records")
	}
}
