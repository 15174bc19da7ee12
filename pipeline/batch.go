package pipeline

import (
	"sync/atomic"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// batchSize frames per batch: large enough that the per-batch costs (channel sends, flushes,
// clock advance) vanish per packet, small enough (~180 KiB) to stay in L2.
const batchSize = 1024

// batch is a run of decoded frames in input order, shared read-only by every worker: each
// handles the frames it owns, listed in own[its id]. Broadcasting one batch costs one
// channel send per worker and copies no headers.
type batch struct {
	h    *[batchSize]packet.Header // in the pool's headers (batchHeaders)
	mem  *batchHeaders             // keeps them mapped
	own  [][]uint16                // by worker: the indexes in h of its frames, in order
	n    int
	now  int64  // packet time of the input when the batch was sent
	seg  uint32 // the summary's segment (summary.go)
	refs atomic.Int32
}

// batchPool recycles batches; its capacity bounds the memory in flight.
type batchPool chan *batch

// newBatchPool returns a pool of n batches for workers workers, their headers in mem (n
// batches' worth: newBatchHeaders).
func newBatchPool(n, workers int, mem *batchHeaders) batchPool {
	p := make(batchPool, n)
	for i := 0; i < n; i++ {
		p <- newBatch(workers, mem, i)
	}
	return p
}

// batchHeaders holds the headers of a pool's batches: one reserved region outside the Go
// heap where it can be (aggregate.Reserve, huge pages). The reader writes them and the
// workers read them, ~180 KiB a batch, all through the run: in 4 KiB pages the pool's
// headers (48 batches, 8.6 MB) take more TLB entries than the cores have.
type batchHeaders struct {
	h []packet.Header
}

// newBatchHeaders returns the headers of n batches.
func newBatchHeaders(n int) *batchHeaders {
	m := &batchHeaders{}
	m.h = aggregate.ReserveOrMake[packet.Header](m, n*batchSize)
	return m
}

// newBatch returns an empty batch for workers workers, whose headers are the i-th of mem's.
func newBatch(workers int, mem *batchHeaders, i int) *batch {
	b := &batch{own: make([][]uint16, workers), mem: mem, h: (*[batchSize]packet.Header)(mem.h[i*batchSize : (i+1)*batchSize])}
	all := make([]uint16, workers*batchSize)
	for w := range b.own {
		b.own[w] = all[w*batchSize : w*batchSize : (w+1)*batchSize]
	}
	return b
}

func (p batchPool) get() *batch {
	b := <-p
	b.n = 0
	for w := range b.own {
		b.own[w] = b.own[w][:0]
	}
	return b
}

// release is called by each worker when done with b; the last one recycles it.
func (p batchPool) release(b *batch) {
	if b.refs.Add(-1) == 0 {
		p <- b
	}
}
