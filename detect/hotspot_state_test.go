package detect

import (
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// TestCheckLight: a light cell's packets after its first (which it holds) must be a chain
// of exactly those in the log, each link to an earlier position; anything else in a
// checkpoint is refused.
func TestCheckLight(t *testing.T) {
	log := []hotEvent{{Prev: 0}, {Prev: 0}, {Prev: 1}, {Prev: 4}}
	ok := []hotCell{
		{Packets: 2, Ref: 2},          // first in the cell, then log[1]
		{Packets: 1, Ref: 0},          // first in the cell
		{Packets: 0, Ref: 0},          // nothing
		{Packets: hotLog + 1, Ref: 7}, // heavy: Ref is its full counts, not checked here
	}
	if err := checkLight(ok, log); err != "" {
		t.Fatalf("valid cells refused: %s", err)
	}
	for name, c := range map[string]hotCell{
		"too few links":   {Packets: 2, Ref: 0},
		"too many links":  {Packets: 2, Ref: 3}, // log[2] -> log[0]: two logged, one expected
		"past the log":    {Packets: 2, Ref: 5},
		"self link":       {Packets: 2, Ref: 4}, // log[3].Prev = 4 points at itself
		"no packet, link": {Packets: 0, Ref: 1},
		"one, link":       {Packets: 1, Ref: 1},
		"negative":        {Packets: 2, Ref: -1},
	} {
		if err := checkLight([]hotCell{c}, log); err == "" {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	// The walk gives the packets as they came: the cell's first, then the logged ones.
	var buf [hotLog]hotEvent
	c := ok[0]
	c.First.TS, log[1].TS = 1, 2
	if evs := c.light(log, &buf); len(evs) != 2 || evs[0].TS != 1 || evs[1].TS != 2 {
		t.Errorf("light(): %+v, want the packets at 1 then 2", evs)
	}
}

// TestHotCellSize: a cell is one cache line and a logged packet half of one (the packet
// path writes a new cell for most packets; see hotCell).
func TestHotCellSize(t *testing.T) {
	if n := unsafe.Sizeof(hotCell{}); n != 64 {
		t.Errorf("hotCell is %d bytes, want 64", n)
	}
	if n := unsafe.Sizeof(hotEvent{}); n != 32 {
		t.Errorf("hotEvent is %d bytes, want 32", n)
	}
}

// TestHotHeavySame: while every packet goes to one port the address and the port share one
// set of counts; a packet to another port (or a pair noted on it) splits them. The
// summaries must equal counts kept apart from the start, whatever the slab holds.
func TestHotHeavySame(t *testing.T) {
	var s aggregate.Slab
	var hv hotHeavy
	var addr, p80, p443 hotStats // the reference: each level counted by itself
	var refSlab aggregate.Slab
	add := func(src int, port uint16, ts int64) {
		ev := hotEvent{TS: ts, Src: addrOf(src), Port: port, Proto: hotTCP, Bits: hotBitSYN}
		hv.add(&s, &ev)
		x := ev.Src.Hash(seedHotSrc)
		addr.add(&refSlab, &ev, x)
		switch port {
		case 80:
			p80.add(&refSlab, &ev, x)
		case 443:
			p443.add(&refSlab, &ev, x)
		}
	}
	for i := range 300 { // past the inline sources: the address's set is a slab block
		add(i%250, 80, int64(1000-i))
	}
	if !hv.Same || hv.Port[0] != (hotStats{}) {
		t.Fatalf("one port: Same %v, port counts of its own %+v", hv.Same, hv.Port[0].Packets)
	}
	check := func(when string) {
		t.Helper()
		dst := addrOf(-1)
		got := hv.appendSums(nil, &dst, false, &s)
		want := []HotSummary{summarize(&dst, 0, &addr, false, &refSlab), summarize(&dst, 80, &p80, false, &refSlab)}
		if p443.Packets > 0 {
			want = append(want, summarize(&dst, 443, &p443, false, &refSlab))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d summaries, want %d", when, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: summary %d\n got %+v\nwant %+v", when, i, got[i], want[i])
			}
		}
	}
	check("one port")
	add(7, 443, 2000) // splits: port 80 gets its own copy, then both go on apart
	if hv.Same {
		t.Fatal("still Same after a packet to another port")
	}
	for i := range 100 {
		add(300+i, 80, int64(3000+i))
	}
	check("two ports")
}

func addrOf(i int) packet.Addr {
	return packet.AddrFrom4([]byte{100, 64, byte(i >> 8), byte(i)})
}
