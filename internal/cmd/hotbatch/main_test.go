package main

import (
	"net/netip"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestGroupCounts feeds one window of known shape and checks each destination's distinct
// sources, the groups and the candidates, counted at the close only and with early counts
// every 50 records (the sets): a prototype's numbers are only worth their counts.
func TestGroupCounts(t *testing.T) {
	for _, c := range []int{1 << 20, 50} {
		groupCounts(t, c)
	}
}

func groupCounts(t *testing.T, capRecs int) {
	addr := func(s string) packet.Addr { return packet.AddrFromNetip(netip.MustParseAddr(s)) }
	var ins []in
	ts := int64(1_000_000_000)
	// 203.0.113.1 (dense 1): 120 sources, the first 30 sending three packets, to two ports.
	for i := range 120 {
		src := addr(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String())
		n := 1
		if i < 30 {
			n = 3
		}
		for k := range n {
			ins = append(ins, in{ts: ts, src: src, dense: 1, port: uint16(23 + k%2), bits: bSYN})
			ts++
		}
	}
	// 203.0.113.2 (dense 2): one packet; 2001:db8::1 (no dense index): three from one source.
	ins = append(ins, in{ts: ts, src: addr("10.9.9.9"), dense: 2, port: 80, bits: bSYN})
	for range 3 {
		ins = append(ins, in{ts: ts + 1, src: addr("10.9.9.8"), dst: addr("2001:db8::1"), dense: -1, port: 53, bits: bUDP})
	}
	w := &worker{dense: 256, idK: make([]packet.Addr, 1<<16), idV: make([]uint32, 1<<16),
		minSources: 100, distinct: map[uint32]int{}, cap: capRecs}
	w.run(ins, int64(300e9), false)
	want := map[uint32]int{1: 120, 2: 1, 256: 1}
	for id, n := range want {
		if w.distinct[id] != n {
			t.Errorf("cap %d: destination %d: %d distinct sources, want %d", capRecs, id, w.distinct[id], n)
		}
	}
	if len(w.distinct) != len(want) || w.groups != 3 || w.multi != 2 || w.cands != 1 {
		t.Errorf("cap %d: %d destinations, %d groups, %d with 2+ packets, %d candidates; want 3, 3, 2, 1",
			capRecs, len(w.distinct), w.groups, w.multi, w.cands)
	}
	if capRecs < len(ins) {
		if want := len(ins) / capRecs; w.spills != want {
			t.Errorf("cap %d: %d early counts, want %d", capRecs, w.spills, want)
		}
	}
}
