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

// TestDenseCountsReserved: a wide dark space's per-address counts (a /8's: 64 MiB a
// worker) are reserved with huge pages requested, at start and after a reload that
// renumbers the space: on the heap each 4 KiB page's first packet faulted twice and sent
// a TLB shoot-down to the other cores.
func TestDenseCountsReserved(t *testing.T) {
	p, err := New(Options{Config: parseConfig(t, "dark_prefixes: [44.0.0.0/8]\n"), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, w := range p.workers {
			if len(w.dstExact) != 1<<24 || w.dstMem == nil || &w.dstMem.c[0] != &w.dstExact[0] {
				t.Fatalf("%s: worker %d: %d dense counts, owned %v", when, i, len(w.dstExact), w.dstMem != nil)
			}
			a := uintptr(unsafe.Pointer(&w.dstExact[0]))
			if huge, err := procmaps.HugePages(a); err != nil || !huge {
				t.Fatalf("%s: worker %d: dense counts not in a mapping with huge pages requested (%v)", when, i, err)
			}
		}
	}
	check("start")
	p.workers[0].dstExact[5] = 7
	if err := p.Reload(parseConfig(t, "dark_prefixes: [45.0.0.0/8]\n")); err != nil {
		t.Fatal(err)
	}
	for _, w := range p.workers {
		w.applyConfig()
	}
	check("reload")
	if c := p.workers[0].dstExact[5]; c != 0 {
		t.Fatalf("after the reload the new space's counts start at %d, want 0", c)
	}
	runtime.KeepAlive(p)
}
