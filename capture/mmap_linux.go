package capture

import (
	"os"
	"syscall"
)

// mapFile maps a regular file of at least mapMin bytes for reading; nil: read it instead.
func mapFile(fh *os.File) []byte {
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < mapMin || fi.Size() != int64(int(fi.Size())) {
		return nil
	}
	data, err := syscall.Mmap(int(fh.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	return data
}

func unmapFile(b []byte) { _ = syscall.Munmap(b) }

// dropPages releases b's pages from the process (they stay in the page cache).
func dropPages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14): map the pages of a range, reading
// them in if needed, without a fault per page.
const madvPopulateRead = 22

// populatePages maps b's pages into the process in one call. On older kernels (EINVAL) it
// does nothing: the pages then fault in as they are read.
func populatePages(b []byte) { _ = syscall.Madvise(b, madvPopulateRead) }
