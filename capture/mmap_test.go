//go:build linux

package capture

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
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
	// The mapping's resident size, from /proc/self/smaps: what was not released, at most the
	// last step and the part after it (the file is between 2 and 3 steps long).
	rss := -1
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
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
	if rss > len(b)-2*dropEvery+64<<10 {
		t.Errorf("%d bytes of the %d-byte file's mapping are resident after reading it, want at most %d", rss, len(b), len(b)-2*dropEvery+64<<10)
	}
}
