//go:build linux

package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMappedLikeRead runs the file tests with every file mapped, however small: a mapped
// file reads exactly as a read one, records, warnings, errors and offsets alike.
func TestMappedLikeRead(t *testing.T) {
	old := mapMin
	mapMin = 1
	t.Cleanup(func() { mapMin = old })
	path := writeTemp(t, "small.pcap", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, rec(1, 0, frame(0, 60))))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.mapped == nil {
		t.Fatal("a file of at least mapMin bytes was not mapped")
	}
	f.Close()
	t.Run("good files", TestReadGoodFiles)
	t.Run("errors", TestReadErrors)
	t.Run("streams", TestStreams)
}

// bigPcap returns a pcap file of n records of 40 to 1439 bytes.
func bigPcap(n int) []byte {
	var recs []pcapRec
	for i := range n {
		recs = append(recs, rec(uint32(i), 0, frame(i, 40+i%1400)))
	}
	return pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, recs...)
}

// TestMappedFileShrinks: a mapped file cut short while it is read faults past its new end;
// under SetPanicOnFault that is a one-line error of the file (FaultError), as the replay
// reports it, and every later Read returns it.
func TestMappedFileShrinks(t *testing.T) {
	path := writeTemp(t, "shrinks.pcap", bigPcap(8000)) // about 5.8 MB: mapped
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.mapped == nil {
		t.Fatal("not mapped")
	}
	var r Record
	for range 5 {
		if err := f.Read(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(path, 64<<10); err != nil {
		t.Fatal(err)
	}
	readAll := func() (n int, err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if v := recover(); v != nil {
				if err = f.FaultError(v); err == nil {
					panic(v)
				}
			}
		}()
		for {
			if err := f.Read(&r); err != nil {
				return n, err
			}
			_ = r.Data[len(r.Data)-1] // decoding reads the data
			n++
		}
	}
	n, err := readAll()
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "the file shrank while it was being read") {
		t.Fatalf("after %d more records: %v, want the file's shrink error", n, err)
	}
	if fe.Offset < 64<<10 || fe.Offset > 64<<10+4096 {
		t.Errorf("fault at offset %d, want within the first page past the new end (%d)", fe.Offset, 64<<10)
	}
	if err2 := f.Read(&r); err2 != err {
		t.Errorf("Read after the fault: %v, want the same error", err2)
	}
	if f.FaultError(errors.New("not a fault")) != nil {
		t.Error("FaultError took a panic that is not a fault")
	}
}

// TestMappedFileReleasesPages: the pages of records read leave the process as the read goes
// on, so that its resident size does not grow with the file.
func TestMappedFileReleasesPages(t *testing.T) {
	b := bigPcap(30000) // about 21 MB
	path := writeTemp(t, "long.pcap", b)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r Record
	for {
		if err := f.Read(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// The mapping's resident size: what was not released, at most the last step and the
	// part after it (the file is between 2 and 3 steps long).
	rss := mappedRSS(t, path)
	if rss > len(b)-2*dropEvery+64<<10 {
		t.Errorf("%d bytes of the %d-byte file's mapping are resident after reading it, want at most %d", rss, len(b), len(b)-2*dropEvery+64<<10)
	}
}

// mappedRSS returns the resident bytes of the process's mapping of path (/proc/self/smaps).
func mappedRSS(t *testing.T, path string) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	rss, in := -1, false
	for _, line := range strings.Split(string(smaps), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			in = f[len(f)-1] == path // a mapping's first line (an anonymous one has no path)
		} else if in && len(f) == 3 && f[0] == "Rss:" {
			rss, _ = strconv.Atoi(f[1])
			rss <<= 10
		}
	}
	if rss < 0 {
		t.Fatal("the file's mapping is not in /proc/self/smaps")
	}
	return rss
}

// TestMappedFilePopulatedAhead: the reader maps the pages ahead of it populateEvery bytes at
// a time in one call (no fault per page): after the first record, every page of the first
// populateEvery bytes is present in the mapping (/proc/self/pagemap), and by the end the
// whole file was populated.
func TestMappedFilePopulatedAhead(t *testing.T) {
	probe, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	perr := unix.Madvise(probe, madvPopulateRead)
	_ = unix.Munmap(probe)
	if perr != nil {
		msg := fmt.Sprintf("MADV_POPULATE_READ unsupported (%v, Linux 5.14 or later): a mapped file faults its pages in", perr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	path := writeTemp(t, "ahead.pcap", bigPcap(12000)) // about 8.5 MB
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r Record
	if err := f.Read(&r); err != nil {
		t.Fatal(err)
	}
	if f.populated < populateEvery {
		t.Fatalf("%d bytes populated after the first record, want %d", f.populated, populateEvery)
	}
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapped)))
	entries := make([]byte, 8*populateEvery/4096)
	if _, err := pm.ReadAt(entries, int64(base/4096*8)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(entries); i += 8 {
		if binary.LittleEndian.Uint64(entries[i:])>>63 == 0 {
			t.Fatalf("page %d of the file is not present in the mapping after the first record", i/8)
		}
	}
	n := 1
	for {
		if err := f.Read(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 12000 || f.populated != len(f.mapped) {
		t.Errorf("%d records, %d of %d bytes populated; want 12000 records, all populated", n, f.populated, len(f.mapped))
	}
}
