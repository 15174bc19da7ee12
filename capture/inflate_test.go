package capture

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// zeroReader returns nothing and no error, forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestInflater: the data of the stream in order, in reads of any size, then its error:
// io.EOF at its end (also when it comes with the last data), another error as it is, after
// the data before it, and again at every later read; a stream that makes no progress is
// io.ErrNoProgress. iotest.TestReader checks the reads' contract.
func TestInflater(t *testing.T) {
	data := make([]byte, 3*inflateBufSize+12345) // more than the buffers hold
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	if err := iotest.TestReader(newInflater(bytes.NewReader(data)), data); err != nil {
		t.Errorf("bytes.Reader: %v", err)
	}
	if err := iotest.TestReader(newInflater(iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(data)))), data); err != nil {
		t.Errorf("data with io.EOF, half reads: %v", err)
	}
	bad := errors.New("corrupt input")
	z := newInflater(io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(bad)))
	got, err := io.ReadAll(z)
	if !bytes.Equal(got, data[:1000]) || err != bad {
		t.Errorf("a failing stream: %d bytes, %v; want 1000 and %v", len(got), err, bad)
	}
	if n, err := z.Read(make([]byte, 10)); n != 0 || err != bad {
		t.Errorf("read after the error: %d, %v", n, err)
	}
	if _, err := io.ReadAll(newInflater(zeroReader{})); err != io.ErrNoProgress {
		t.Errorf("no progress: %v, want io.ErrNoProgress", err)
	}
	// Stopped while its buffers are full and none is read: it ends.
	z = newInflater(bytes.NewReader(data))
	z.stopping()
	z.wait()
}
