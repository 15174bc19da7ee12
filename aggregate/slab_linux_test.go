package aggregate

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
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
		if flags := vmFlags(t, uintptr(unsafe.Pointer(&c[0]))); !strings.Contains(" "+flags+" ", " hg ") {
			t.Fatalf("chunk %d is in a mapping without huge pages requested (VmFlags %q): not reserved", i, flags)
		}
	}
}

// vmFlags returns the VmFlags of the mapping holding addr (/proc/self/smaps).
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && len(f[1]) == 4 && strings.Contains(f[0], "-") {
			lo, hi, _ := strings.Cut(f[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= a && uint64(addr) < b
		} else if in && len(f) > 0 && f[0] == "VmFlags:" {
			return strings.Join(f[1:], " ")
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
