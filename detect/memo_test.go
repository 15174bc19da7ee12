package detect

import (
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// TestScannerMemo: a scanner episode over a small dark space with dense indexes (the memo
// of its targets and addresses answering repeated probes) reports exactly what the same
// probes give without dense indexes (every probe added to the exact sets), across a second
// port, ICMP, and a change of the dark space that renumbers the dense indexes mid-episode.
func TestScannerMemo(t *testing.T) {
	pxA, pxB := darkSpace(t, "203.0.0.0/20"), darkSpace(t, "198.51.0.0/20")
	src := "192.0.2.9"
	type step struct {
		px   *aggregate.Prefixes // SetDenseDsts before the packets (nil: unchanged)
		pkts []packet.Header
	}
	var steps []step
	ts := t0
	next := func() int64 { ts += sec / 10; return ts }
	var a []packet.Header
	for round := range 5 { // 40 addresses of A, port 80, five times: 160 repeats
		for i := range 40 {
			a = append(a, syn(src, ip4("203.0.113.0", i+round%2), 80, next()))
		}
	}
	for i := range 40 { // the same addresses on port 81: new targets
		a = append(a, syn(src, ip4("203.0.113.0", i), 81, next()))
	}
	for i := range 10 { // ICMP echo: targets (address, port 0)
		a = append(a, echo(src, ip4("203.0.113.0", i), next()))
	}
	for range 2 { // 20 more ports, twice: more ports than the memo has Pair bitmaps for
		for port := range uint16(20) {
			for i := range 3 {
				a = append(a, syn(src, ip4("203.0.113.0", i), 1000+port, next()))
			}
		}
	}
	steps = append(steps, step{pxA, a})
	// The dark space becomes B: dense index i now numbers 198.51.0.i, whose targets and
	// addresses are all new although their indexes were memoised for A.
	var b []packet.Header
	for round := range 2 {
		for i := range 30 {
			b = append(b, syn(src, ip4("198.51.100.0", i), 80, next()))
			_ = round
		}
	}
	steps = append(steps, step{pxB, b})

	run := func(dense bool) ([]*Event, *Engine) {
		cfg := only(testConfig(t), Scanner)
		h := newHarness(t, cfg)
		var px *aggregate.Prefixes
		for _, s := range steps {
			if s.px != nil {
				px = s.px
				if dense {
					h.e.SetDenseDsts(px)
				}
			}
			for i := range s.pkts {
				p := &s.pkts[i]
				h.now = max(h.now, p.TS)
				st, _ := h.srcs.Touch(p.Src)
				idx := int32(-1)
				if dense {
					_, idx = px.MatchDst(&p.Dst, true)
				}
				h.e.PacketAt(p, st, idx)
			}
			if dense && s.px == pxA && len(h.e.memos.memos) != 1 {
				t.Fatalf("the episode holds %d memos, want 1", len(h.e.memos.memos))
			}
		}
		h.finish(ts + sec)
		return h.sink.take(), h.e
	}
	want, _ := run(false)
	got, e := run(true)
	if len(want) != 2 {
		t.Fatalf("reference run gave %d events, want a start and an end", len(want))
	}
	end := want[1].Entry.(*ScannerEntry)
	if end.Targets != 40+1+40+10+60+30 || end.Packets != 200+40+10+120+60 || end.Profile.Addresses != 41+30 {
		t.Fatalf("reference end entry: %d packets, %d targets, %d addresses", end.Packets, end.Targets, end.Profile.Addresses)
	}
	if len(got) != len(want) {
		t.Fatalf("with dense indexes %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d with dense indexes:\n%+v\nwant\n%+v", i, got[i].Entry, want[i].Entry)
		}
	}
	if n := len(e.memos.memos) - len(e.memos.free); n != 0 {
		t.Errorf("%d memos still held after Finish", n)
	}
}

// TestMemoBitsPorts: a port that got a Pair bitmap gets the same one at every probe and no
// other port shares it; once the slots are taken, a port keeps its bitmap and a new port
// gets none (its probes add to the sets); every slot can be taken by some port.
func TestMemoBitsPorts(t *testing.T) {
	px := darkSpace(t, "203.0.113.0/24")
	e := newHarness(t, testConfig(t)).e
	e.SetDenseDsts(px)
	var pr profileRec
	if pr.Memo = e.memoGet(px); pr.Memo == 0 {
		t.Fatal("no memo for a /24")
	}
	slots := e.memos.ports
	owner := map[*uint64]uint16{}
	got := map[uint16]*uint64{}
	for port := range uint16(4096) {
		pair, addr := e.memoBits(&pr, port, 7)
		if addr == nil {
			t.Fatalf("port %d: no address bitmap", port)
		}
		if pair == nil {
			continue
		}
		if o, ok := owner[&pair[0]]; ok {
			t.Fatalf("ports %d and %d share a Pair bitmap", o, port)
		}
		owner[&pair[0]], got[port] = port, &pair[0]
	}
	if len(got) != slots {
		t.Fatalf("%d ports got a Pair bitmap, want all %d slots taken", len(got), slots)
	}
	for port, w := range got {
		if pair, _ := e.memoBits(&pr, port, 7); pair == nil || &pair[0] != w {
			t.Fatalf("port %d lost its Pair bitmap", port)
		}
	}
	if pair, _ := e.memoBits(&pr, 4097, 7); pair != nil {
		t.Fatalf("a new port got a Pair bitmap with every slot taken")
	}
}
