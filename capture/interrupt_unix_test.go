//go:build unix

package capture

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) { testInterruptQuietFIFO(t, gz) })
	}
}

// testInterruptQuietFIFO is TestInterruptQuietFIFO with the records plain or in a gzip
// stream flushed after them (inflated ahead by an inflater, whose goroutine Close ends).
func testInterruptQuietFIFO(t *testing.T, gz bool) {
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
		var out io.Writer = w
		var zw *gzip.Writer
		if gz {
			zw = gzip.NewWriter(w)
			out = zw
		}
		if _, err := out.Write(head); err != nil {
			t.Error(err)
		}
		if zw != nil {
			if err := zw.Flush(); err != nil { // the records can be inflated; the stream goes on
				t.Error(err)
			}
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
	if (f.inf != nil) != gz {
		t.Fatalf("inflater %v for gzip %v", f.inf != nil, gz)
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
	if gz {
		inf := f.inf
		f.Close()
		select {
		case <-inf.done:
		default:
			t.Error("the inflater's goroutine runs on after Close")
		}
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

// TestOpenContextStops: OpenContext of a FIFO returns ctx's error once ctx ends, whether
// the FIFO has no writer yet (the open waits for one), a writer that sent nothing (the
// header read waits), or a writer that went quiet after some records (a read waits).
func TestOpenContextStops(t *testing.T) {
	head := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, rec(1, 0, frame(1, 60)))
	for _, tc := range []struct {
		name  string
		write []byte // nil: no writer
	}{
		{"no writer", nil},
		{"quiet before the header", []byte{}},
		{"quiet after a record", head},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "capture.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.write != nil {
				go func() {
					w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the reader
					if err != nil {
						t.Error(err)
						return
					}
					t.Cleanup(func() { w.Close() })
					if _, err := w.Write(tc.write); err != nil {
						t.Error(err)
					}
				}()
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				f, err := OpenContext(ctx, fifo)
				if err != nil {
					done <- err
					return
				}
				defer f.Close()
				var r Record
				if err := f.Read(&r); err != nil {
					done <- fmt.Errorf("first record: %w", err)
					return
				}
				done <- f.Read(&r)
			}()
			select {
			case err := <-done:
				t.Fatalf("returned before ctx ended: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			cancel()
			select {
			case err := <-done:
				if len(tc.write) == 0 {
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("OpenContext: %v, want %v", err, context.Canceled)
					}
				} else if err == nil || errors.Is(err, io.EOF) {
					t.Fatalf("Read after ctx ended: %v, want an error that is not io.EOF", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still waiting 10 s after ctx ended")
			}
		})
	}
}

// TestOpenContextDone: a context already ended opens nothing.
func TestOpenContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f, err := OpenContext(ctx, "/nonexistent/x.pcap"); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenContext: %v, %v; want %v", f, err, context.Canceled)
	}
}
