package detect

import "testing"

// TestCheckLight: a light cell's packets must be a chain of exactly its packets in the log,
// each link to an earlier position; anything else in a checkpoint is refused.
func TestCheckLight(t *testing.T) {
	log := []hotEvent{{Prev: 0}, {Prev: 0}, {Prev: 1}, {Prev: 4}}
	ok := []hotCell{
		{Packets: 2, Ref: 3},          // log[2] -> log[0]
		{Packets: 1, Ref: 2},          // log[1]
		{Packets: 0, Ref: 0},          // nothing logged
		{Packets: hotLog + 1, Ref: 7}, // heavy: Ref is its full counts, not checked here
	}
	if err := checkLight(ok, log); err != "" {
		t.Fatalf("valid cells refused: %s", err)
	}
	for name, c := range map[string]hotCell{
		"too few links":   {Packets: 2, Ref: 2},
		"too many links":  {Packets: 1, Ref: 3},
		"past the log":    {Packets: 1, Ref: 5},
		"forward link":    {Packets: 2, Ref: 4}, // log[3].Prev = 4 points at itself
		"no packet, link": {Packets: 0, Ref: 1},
		"negative":        {Packets: 1, Ref: -1},
	} {
		if err := checkLight([]hotCell{c}, log); err == "" {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	// The walk gives the packets as they came.
	var buf [hotLog]hotEvent
	log[0].TS, log[2].TS = 1, 2
	if evs := ok[0].light(log, &buf); len(evs) != 2 || evs[0].TS != 1 || evs[1].TS != 2 {
		t.Errorf("light(): %+v, want the packets at 1 then 2", evs)
	}
}
