//go:build unix

package capture

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFirstTimeFIFO: a FIFO can be read only once; FirstTime says so without opening it
// (an open would wait for a writer).
func TestFirstTimeFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "cap.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FirstTime(fifo); !errors.Is(err, ErrReadOnce) {
		t.Fatalf("FirstTime(FIFO) = %v, want ErrReadOnce", err)
	}
}
