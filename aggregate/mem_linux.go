//go:build linux

package aggregate

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reserve maps address space for n values of T outside the Go heap: anonymous, not
// committed (MAP_NORESERVE), with transparent huge pages requested, so memory is only used
// as slots are first written, 2 MiB at a time instead of 4 KiB page faults. owner's
// cleanup unmaps it: the slice must not outlive owner. Only for pointer-free T: the garbage
// collector never sees this memory. It returns nil below 2 MiB or when the mapping fails
// (the caller falls back to the heap).
func Reserve[T, O any](owner *O, n int) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if size < hugePage || hasPointers(zero) {
		return nil
	}
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // advice only: 4 KiB pages work too
	runtime.AddCleanup(owner, func(m []byte) { _ = unix.Munmap(m) }, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), n)
}

// populate commits the pages of [p, p+n) now, zero-filled and writable (MADV_POPULATE_WRITE,
// Linux 5.14), rather than at each page's first write. The range, rounded out to whole
// pages, must lie in one mapping of Reserve's (whose start is page-aligned and whose
// length is whole huge pages).
func populate(p unsafe.Pointer, n int) error {
	if n <= 0 {
		return nil
	}
	page := unix.Getpagesize()
	off := int(uintptr(p) & uintptr(page-1))
	length := (off + n + page - 1) &^ (page - 1)
	err := unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, -off)), length), unix.MADV_POPULATE_WRITE)
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w (MADV_POPULATE_WRITE needs Linux 5.14 or later)", err)
	}
	return err
}
