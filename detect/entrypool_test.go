package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestEntryPoolNeverReuses: every entry handed out is a distinct, zeroed value (sinks keep
// entries: the log queue, the report's spool), across chunk boundaries.
func TestEntryPoolNeverReuses(t *testing.T) {
	var p entryPool[ToolEntry]
	seen := map[*ToolEntry]bool{}
	for i := range 3*entryChunk + 5 {
		e := p.get()
		if seen[e] {
			t.Fatalf("entry %d handed out twice", i)
		}
		seen[e] = true
		if *e != (ToolEntry{}) {
			t.Fatalf("entry %d not zeroed: %+v", i, *e)
		}
		e.Packets = uint64(i) + 1 // a later get must not see this
	}
}

// TestToolEntryAllocations: a fingerprint entry costs one allocation per chunk of entries,
// not one per episode start or end.
func TestToolEntryAllocations(t *testing.T) {
	var e Engine
	w := &ToolWindow{Probes: 1, Match: [4]uint64{1}}
	src := packet.AddrFrom4([]byte{192, 0, 2, 1})
	var last *ToolEntry
	allocs := testing.AllocsPerRun(10*entryChunk, func() { last = e.toolEntry(src, w, 0) })
	if allocs > 2.0/entryChunk {
		t.Errorf("%.3f allocations per entry, want one per %d entries", allocs, entryChunk)
	}
	if last.Src != IP(src) || last.Tool != Tools[0] || last.Packets != 1 || last.Probes != 1 {
		t.Errorf("entry %+v", *last)
	}
}
