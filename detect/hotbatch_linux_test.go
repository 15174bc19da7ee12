package detect

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/procmaps"
)

// TestHotRecsReserved: a part's record arrays (the records and their sorted copy, owned by
// the shared Hotspots) are reserved outside the Go heap, huge pages requested, with room
// for recCap records.
func TestHotRecsReserved(t *testing.T) {
	hw := &hotWorker{recCap: hotRecCap(8192), shared: NewHotspots(2, nil, &Counters{})}
	for i := range 2 {
		r := hw.newRecs()
		if len(r) != 0 || cap(r) != hw.recCap {
			t.Fatalf("array %d: len %d cap %d, want 0 and %d", i, len(r), cap(r), hw.recCap)
		}
		r = r[:hw.recCap]
		r[hw.recCap-1].ID = 1 // all of it is writable
		if huge, err := procmaps.HugePages(uintptr(unsafe.Pointer(&r[0]))); err != nil || !huge {
			t.Fatalf("array %d: not in a mapping with huge pages requested (%v)", i, err)
		}
	}
	runtime.KeepAlive(hw) // its Hotspots' cleanup unmaps the arrays
}
