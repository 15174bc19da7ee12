package aggregate

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/telescope-dev/telescope/packet"
)

// resident returns how many of the pages of [p, p+n) are in memory, and how many pages
// the range spans (mincore).
func resident(t *testing.T, p unsafe.Pointer, n int) (in, pages int) {
	t.Helper()
	page := unix.Getpagesize()
	off := int(uintptr(p) & uintptr(page-1))
	length := (off + n + page - 1) &^ (page - 1)
	vec := make([]byte, length/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Add(p, -off)), uintptr(length),
		uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, len(vec)
}

// TestTablePrefault: Prefault commits every page of the table's reserved slots and index
// (the table uses a fraction of them before), reports their size, and changes nothing the
// table holds: it keeps its entries and goes on inserting and evicting as before.
func TestTablePrefault(t *testing.T) {
	type val [40]uint64     // entries of 352 bytes, near the pipeline's sources (360)
	const capacity = 140000 // an index of 2^18 words, 2 MiB: reserved too
	hash := func(a *packet.Addr) uint64 { return a.Hash(1) }
	tb := NewTable[packet.Addr, val](capacity, hash)
	if tb.region == nil || tb.indexRegion == nil {
		t.Fatal("a table of ~48 MiB (index 2 MiB) was not reserved outside the heap")
	}
	entry := int(unsafe.Sizeof(TableEntry[packet.Addr, val]{}))
	slots, index := unsafe.Pointer(&tb.region[0]), unsafe.Pointer(&tb.indexRegion[0])
	slotBytes, indexBytes := len(tb.region)*entry, len(tb.indexRegion)*8
	key := func(i int) packet.Addr { return packet.AddrFrom4([]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range 1000 {
		v, _ := tb.Touch(key(i))
		v[0], v[39] = uint64(i), uint64(i)
	}
	if in, pages := resident(t, slots, slotBytes); in == pages {
		t.Fatalf("all %d pages of the slots resident before Prefault: the test cannot tell", pages)
	}

	n, err := tb.Prefault()
	if err != nil {
		t.Fatal(err)
	}
	if n != slotBytes+indexBytes {
		t.Errorf("Prefault = %d bytes, want %d (slots) + %d (index)", n, slotBytes, indexBytes)
	}
	for _, r := range []struct {
		name string
		p    unsafe.Pointer
		n    int
	}{{"slots", slots, slotBytes}, {"index", index, indexBytes}} {
		if in, pages := resident(t, r.p, r.n); in != pages {
			t.Errorf("%s: %d of %d pages resident after Prefault", r.name, in, pages)
		}
	}

	for i := range 1000 {
		if v := tb.Get(key(i)); v == nil || v[0] != uint64(i) || v[39] != uint64(i) {
			t.Fatalf("entry %d lost or changed by Prefault: %v", i, v)
		}
	}
	for i := 1000; i < capacity+5000; i++ {
		if v, created := tb.Touch(key(i)); !created || *v != (val{}) {
			t.Fatalf("insert %d after Prefault: created %v, value not zero", i, created)
		}
	}
	if tb.Len() != capacity || tb.Evictions() != 5000 {
		t.Fatalf("after Prefault and %d inserts: %d entries, %d evictions", capacity+5000, tb.Len(), tb.Evictions())
	}
	runtime.KeepAlive(tb) // its cleanup unmaps the regions

	small := NewTable[uint32, uint32](100, func(k *uint32) uint64 { return uint64(*k) * 0x9e3779b97f4a7c15 })
	if n, err := small.Prefault(); n != 0 || err != nil {
		t.Errorf("a table on the heap: Prefault = %d, %v, want 0, nil", n, err)
	}
}
