package prefetch

import (
	"bytes"
	"testing"
	"unsafe"
)

// A prefetch changes no byte, whatever the alignment and length, and faults on no address:
// the data path prefetches from words that may be stale (a slot reused since it was read).
func TestPrefetchChangesNothing(t *testing.T) {
	buf := make([]byte, 4096+3)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	want := bytes.Clone(buf)
	for off := 0; off < 130; off++ {
		for _, n := range []uintptr{1, 63, 64, 65, 200, 4096 - 130} {
			p := unsafe.Pointer(&buf[off])
			Line(p)
			Span(p, n)
			Write(p)
			WriteSpan(p, n)
		}
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("a prefetch changed memory")
	}
	Line(nil)
	Span(nil, 64)
	Write(nil)
	WriteSpan(nil, 64)
}
