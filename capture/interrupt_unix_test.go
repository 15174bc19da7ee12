//go:build unix

package capture

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestInterruptQuietFIFO: a Read waiting on a FIFO whose writer is quiet returns an error
// once Interrupt is called (from another goroutine, as replay does when told to stop), and
// so does every later Read; what came before was read.
func TestInterruptQuietFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "capture.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	head := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, rec(1, 0, frame(1, 60)), rec(2, 0, frame(2, 60)))
	wrote := make(chan *os.File, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the reader's open
		if err != nil {
			t.Error(err)
			wrote <- nil
			return
		}
		if _, err := w.Write(head); err != nil {
			t.Error(err)
		}
		wrote <- w // kept open and quiet: the reader waits for more
	}()
	f, err := Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w := <-wrote; w != nil {
		defer w.Close()
	}
	var r Record
	for i := range 2 {
		if err := f.Read(&r); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.Read(&r) }()
	select {
	case err := <-done:
		t.Fatalf("Read of a quiet FIFO returned before Interrupt: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	f.Interrupt()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("Read after Interrupt: %v, want an error that is not io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read of a quiet FIFO still waiting 10 s after Interrupt")
	}
	if err := f.Read(&r); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("second Read after Interrupt: %v, want the error again", err)
	}
}

// TestInterruptFile: a regular file (read, not mapped: under 1 MiB) never waits, and
// Interrupt leaves it to be read to its end.
func TestInterruptFile(t *testing.T) {
	var recs []pcapRec
	for i := range 100 {
		recs = append(recs, rec(uint32(i), 0, frame(i, 60)))
	}
	f, err := Open(writeTemp(t, "small.pcap", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, recs...)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.mapped != nil {
		t.Fatal("a file of 100 records is mapped; this test needs one that is read")
	}
	f.Interrupt()
	n := 0
	var r Record
	for {
		err := f.Read(&r)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		n++
	}
	if n != len(recs) {
		t.Fatalf("read %d records after Interrupt, want %d", n, len(recs))
	}
}
