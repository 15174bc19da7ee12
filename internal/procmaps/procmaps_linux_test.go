package procmaps

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestHugePages: a mapping advised MADV_HUGEPAGE is told from one that is not, and an
// address outside every mapping is an error.
func TestHugePages(t *testing.T) {
	for _, advise := range []bool{true, false} {
		m, err := unix.Mmap(-1, 0, 4<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		if advise {
			if err := unix.Madvise(m, unix.MADV_HUGEPAGE); err != nil {
				t.Fatal(err)
			}
		}
		got, err := HugePages(uintptr(unsafe.Pointer(&m[1<<20])))
		_ = unix.Munmap(m)
		if err != nil || got != advise {
			t.Errorf("advised %v: HugePages %v, %v", advise, got, err)
		}
	}
	if _, err := Flags(8); err == nil {
		t.Error("Flags of an unmapped address: no error")
	}
}
