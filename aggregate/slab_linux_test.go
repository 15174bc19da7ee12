package aggregate

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/procmaps"
)

// TestSlabChunksReserved: a slab's chunks are cut from reserved memory (Reserve: outside
// the Go heap, huge pages requested), slabRegion at a time, and each is capped at its own
// length so no append or reslice reaches the next one.
func TestSlabChunksReserved(t *testing.T) {
	var s Slab
	for len(s.Chunks) < 2*slabRegion+1 {
		s.Alloc(slabMaxWords)
	}
	for i, c := range s.Chunks {
		if len(c) != slabChunk || cap(c) != slabChunk {
			t.Fatalf("chunk %d: len %d cap %d, want %d", i, len(c), cap(c), slabChunk)
		}
		if huge, err := procmaps.HugePages(uintptr(unsafe.Pointer(&c[0]))); err != nil || !huge {
			t.Fatalf("chunk %d is not in a mapping with huge pages requested (%v): not reserved", i, err)
		}
	}
	runtime.KeepAlive(&s) // its cleanup unmaps the chunks
}

// TestReserveOrMake: n zeroed, writable values either way, reserved (huge pages requested)
// from 2 MiB up, on the heap below.
func TestReserveOrMake(t *testing.T) {
	var owner struct{ _ int }
	for _, n := range []int{1000, hugePage / 8} {
		s := ReserveOrMake[uint64](&owner, n)
		if len(s) != n || cap(s) != n || s[0] != 0 || s[n-1] != 0 {
			t.Fatalf("n=%d: len %d cap %d, first and last %d %d", n, len(s), cap(s), s[0], s[n-1])
		}
		s[n-1] = 1
		huge, err := procmaps.HugePages(uintptr(unsafe.Pointer(&s[0])))
		if err != nil || huge != (n*8 >= hugePage) {
			t.Errorf("n=%d: huge pages %v (%v)", n, huge, err)
		}
	}
	runtime.KeepAlive(&owner)
}
