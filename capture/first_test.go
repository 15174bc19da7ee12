package capture

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirstTime: the time of a file's first record with one, from each format, gzip and a
// mapped file; 0 for a file without a timed record; Open's errors for a file that is not
// a capture or missing; ErrReadOnce for standard input and a FIFO (first_unix_test.go),
// never for the others.
func TestFirstTime(t *testing.T) {
	const sec = 1714521600 // 2024-05-01
	le := binary.LittleEndian
	micro := pcapBytes(le, pcapMicro, 2, 4, 65535, 1, rec(sec, 5, frame(0, 60)), rec(sec-100, 0, frame(1, 60)))
	ng := newSection(le).idb(1, 65535).spb(60, frame(0, 60)).epb(0, (sec+7)*1e6+9, 60, frame(1, 60)).epb(0, sec*1e6, 60, frame(2, 60)).b
	// A file past mapMin is mapped (and FirstTime requests none of its pages ahead).
	var big []pcapRec
	for i := 0; i < 20000; i++ {
		big = append(big, rec(sec+uint32(i), 0, frame(i, 60)))
	}
	mapped := pcapBytes(le, pcapMicro, 2, 4, 65535, 1, big...)
	if int64(len(mapped)) < mapMin {
		t.Fatalf("the mapped case has %d bytes, under mapMin %d", len(mapped), mapMin)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte // nil: path is used as it is
		path string
		want int64
		err  string // a part of the error, "": none
	}{
		{name: "pcap µs", data: micro, want: sec*1e9 + 5000},
		{name: "pcap ns big-endian", data: pcapBytes(binary.BigEndian, pcapNano, 2, 4, 65535, 1, rec(sec, 7, frame(0, 60))), want: sec*1e9 + 7},
		{name: "pcapng after a simple packet block", data: ng, want: (sec+7)*1e9 + 9000},
		{name: "gzip", data: gzipped(t, micro), want: sec*1e9 + 5000},
		{name: "zstd", data: zstdded(t, micro), want: sec*1e9 + 5000},
		{name: "mapped", data: mapped, want: sec * 1e9},
		{name: "no record", data: pcapBytes(le, pcapMicro, 2, 4, 65535, 1), want: 0},
		{name: "no record with a time", data: newSection(le).idb(1, 65535).spb(60, frame(0, 60)).b, want: 0},
		{name: "not a capture", data: []byte("hello, world\n"), err: "not a pcap or pcapng file"},
		{name: "damaged first record", data: micro[:pcapFileHeaderLen+10], err: "truncated"},
		{name: "missing", path: filepath.Join(dir, "missing.pcap"), err: "no such file"},
		{name: "directory", path: dir, err: "is a directory"},
		{name: "standard input", path: Stdin, err: ErrReadOnce.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if tc.data != nil {
				path = filepath.Join(dir, tc.name)
				if err := os.WriteFile(path, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FirstTime(path)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("FirstTime = %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("FirstTime = %d, %v; want an error with %q", got, err, tc.err)
			}
			if readOnce := path == Stdin; errors.Is(err, ErrReadOnce) != readOnce {
				t.Errorf("errors.Is(%v, ErrReadOnce) = %v, want %v", err, !readOnce, readOnce)
			}
		})
	}
}
