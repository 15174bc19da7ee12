package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// firstTimeRecords is how many records FirstTime reads for one with a time before it
// gives up (pcapng simple packet blocks have none).
const firstTimeRecords = 1024

// ErrReadOnce is FirstTime's error for an input that can be read only once.
var ErrReadOnce = errors.New("can be read only once")

// FirstTime returns the time of the first record of the capture file at path (ns since
// the Unix epoch), reading nothing past it: the key replay --sort orders files by. It is 0
// when the file has no record, or none of its first firstTimeRecords records has a time.
// Only a file that can be read twice is accepted: standard input, a FIFO or a device is an
// ErrReadOnce error (reading its first packet would take it from the replay). Other errors
// are Open's and Read's.
func FirstTime(path string) (ts int64, err error) {
	if path == Stdin {
		return 0, fmt.Errorf("%s (standard input) %w", path, ErrReadOnce)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() { // a directory: Open's error says it
		return 0, fmt.Errorf("%s is not a regular file (%v): it %w", path, fi.Mode().Type(), ErrReadOnce)
	}
	// One record: a compressed file is not decompressed ahead (a megabyte a file).
	f, err := open(path, nil, false)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	f.populated = len(f.mapped) // nor are a mapped file's pages requested ahead (2 MiB a file)
	// A mapped file that shrinks while it is read faults past its new end (see Read).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			if err = f.FaultError(v); err == nil {
				panic(v)
			}
		}
	}()
	var rec Record
	for range firstTimeRecords {
		switch err := f.Read(&rec); {
		case err == io.EOF:
			return 0, nil
		case err != nil:
			return 0, err
		case rec.TS != 0:
			return rec.TS, nil
		}
	}
	return 0, nil
}
