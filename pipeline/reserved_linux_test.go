package pipeline

import (
	"runtime"
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
	var got []*batch // kept: the last batch gone, the headers' cleanup unmaps them
	for range n {
		b := p.get()
		got = append(got, b)
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
	runtime.KeepAlive(got)
}

// TestWindowSlotsReserved: a worker's list of the window's slots has room for all it may
// list (twice the table's capacity) in a reserved mapping, so it never grows by copying.
func TestWindowSlotsReserved(t *testing.T) {
	p, err := New(Options{Config: testConfig(t), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range p.workers {
		if len(w.winSlots) != 0 || cap(w.winSlots) != 2*w.sources.Cap() {
			t.Fatalf("worker %d: winSlots len %d cap %d, want 0 and %d", i, len(w.winSlots), cap(w.winSlots), 2*w.sources.Cap())
		}
		a := uintptr(unsafe.Pointer(unsafe.SliceData(w.winSlots)))
		if huge, err := procmaps.HugePages(a); err != nil || !huge {
			t.Fatalf("worker %d: winSlots not in a mapping with huge pages requested (%v)", i, err)
		}
	}
	runtime.KeepAlive(p) // its workers' cleanups unmap the lists
}
