package capture

import "io"

// inflateBufs and inflateBufSize are the buffers an inflater fills ahead of the reader.
const (
	inflateBufs    = 4
	inflateBufSize = 256 << 10
)

// inflater reads a decompressing stream on a goroutine of its own, up to inflateBufs
// buffers ahead of the reader. Inflating a gzip file took two thirds of a gzip replay's
// reader time, on the one goroutine that also decodes and dispatches every record: the
// replay waited for the two in turn. Open uses it for the files it opens (it can close
// them to stop the goroutine), not for a stream given to NewReader.
type inflater struct {
	full  chan inflated // filled buffers, in stream order
	empty chan []byte   // buffers given back to fill
	stop  chan struct{}
	done  chan struct{}
	cur   []byte // the unread part of the buffer being read
	buf   []byte // that buffer, whole
	err   error  // the stream's error, returned once the data before it is read
}

// inflated is a buffer of the stream's data and, at its end, the error that ended it.
type inflated struct {
	b   []byte
	err error
}

func newInflater(src io.Reader) *inflater {
	z := &inflater{full: make(chan inflated, inflateBufs), empty: make(chan []byte, inflateBufs),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range inflateBufs {
		z.empty <- make([]byte, inflateBufSize)
	}
	go z.run(src)
	return z
}

func (z *inflater) run(src io.Reader) {
	defer close(z.done)
	for {
		var b []byte
		select {
		case b = <-z.empty:
		case <-z.stop:
			return
		}
		// One read a buffer: a quiet stream's data goes over as it comes, not once a
		// buffer is full (a gzip reader returns up to a window of 32 KiB a read).
		n, err := src.Read(b)
		for stalls := 0; n == 0 && err == nil; stalls++ {
			if stalls == 100 {
				err = io.ErrNoProgress
				break
			}
			n, err = src.Read(b)
		}
		z.full <- inflated{b[:n], err} // never blocks: a buffer in full is one not in empty
		if err != nil {
			return
		}
	}
}

// Read is io.Reader's: the stream's data in order, then its error.
func (z *inflater) Read(p []byte) (int, error) {
	for len(z.cur) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		if z.buf != nil {
			z.empty <- z.buf[:cap(z.buf)]
			z.buf = nil
		}
		x := <-z.full
		z.cur, z.buf, z.err = x.b, x.b, x.err
	}
	n := copy(p, z.cur)
	z.cur = z.cur[n:]
	return n, nil
}

// stopping tells the goroutine to stop at its next buffer, and wait waits until it has:
// the caller closes the file under it in between when its read may wait (a pipe).
func (z *inflater) stopping() { close(z.stop) }
func (z *inflater) wait()     { <-z.done }
