package detect

import (
	"testing"
	"unsafe"
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
