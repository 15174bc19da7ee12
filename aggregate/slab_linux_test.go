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
