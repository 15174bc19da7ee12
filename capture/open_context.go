package capture

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// OpenContext is Open for a reader that may be told to stop (ctx ends) while it waits for
// a pipe or FIFO: tcpdump -w into a FIFO on a quiet link, or a writer not started yet.
// When ctx ends, a read waiting for data returns an error, and so does every later read
// that needs more (Interrupt); an open still waiting for a FIFO's writer (open(2) waits
// until one opens it) returns, as this side opens the FIFO for writing and closes it at
// once. An open or a header read that ctx's end cut short returns ctx's error. A regular
// file never waits: it is read as Open reads it. Close stops watching ctx.
func OpenContext(ctx context.Context, path string) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		fh     atomic.Pointer[os.File]
		opened atomic.Bool // os.Open returned, with a file or an error
	)
	fifo := false
	if fi, err := os.Stat(osPath(path)); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		fifo = true
	}
	unwatch := context.AfterFunc(ctx, func() {
		if f := fh.Load(); f != nil {
			interrupt(f)
			return
		}
		if !fifo {
			return
		}
		// Until the open returns: a writer's open fails (ENXIO) while no reader has the
		// FIFO open, which is the case until the reader's open(2) has begun.
		for !opened.Load() {
			if w, err := os.OpenFile(osPath(path), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	f, err := open(path, func(o *os.File) {
		fh.Store(o)
		opened.Store(true)
		if ctx.Err() != nil {
			interrupt(o) // ctx ended before fh was set: the watch did not see it
		}
	}, true)
	opened.Store(true)
	if err != nil {
		unwatch()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	f.unwatch = unwatch
	return f, nil
}
