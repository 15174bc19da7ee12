package pipeline

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/procmaps"
	"github.com/telescope-dev/telescope/packet"
)

// TestBatchHeadersReserved: a pool's batches have their headers in one reserved mapping
// with huge pages requested (not the Go heap), each batch its own batchSize of them.
func TestBatchHeadersReserved(t *testing.T) {
	n := batchesInFlight(2)
	p := newBatchPool(n, 2, newBatchHeaders(n))
	var starts []uintptr
	for range n {
		b := p.get()
		a := uintptr(unsafe.Pointer(&b.h[0]))
		if huge, err := procmaps.HugePages(a); err != nil || !huge {
			t.Fatalf("batch headers at %#x: not in a mapping with huge pages requested (%v)", a, err)
		}
		starts = append(starts, a)
	}
	slices.Sort(starts)
	size := uintptr(batchSize) * unsafe.Sizeof(packet.Header{})
	for i := 1; i < len(starts); i++ {
		if starts[i]-starts[i-1] < size {
			t.Fatalf("batches' headers overlap: %#x and %#x, %d bytes each", starts[i-1], starts[i], size)
		}
	}
}
