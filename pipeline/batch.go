package pipeline

import (
	"sync/atomic"

	"github.com/telescope-dev/telescope/packet"
)

// batchSize frames per batch: large enough that the per-batch costs (channel sends, flushes,
// clock advance) vanish per packet, small enough (~180 KiB) to stay in L2.
const batchSize = 1024

// batch is a run of decoded frames in input order, shared read-only by every worker: each
// handles the frames it owns (owner[i] == its id) and skips the rest. Broadcasting one batch
// costs one channel send per worker and copies no headers.
type batch struct {
	h     [batchSize]packet.Header
	owner [batchSize]uint16
	n     int
	now   int64  // packet time of the input when the batch was sent
	seg   uint32 // the summary's segment (summary.go)
	refs  atomic.Int32
}

// batchPool recycles batches; its capacity bounds the memory in flight.
type batchPool chan *batch

func newBatchPool(n int) batchPool {
	p := make(batchPool, n)
	for i := 0; i < n; i++ {
		p <- new(batch)
	}
	return p
}

func (p batchPool) get() *batch {
	b := <-p
	b.n = 0
	return b
}

// release is called by each worker when done with b; the last one recycles it.
func (p batchPool) release(b *batch) {
	if b.refs.Add(-1) == 0 {
		p <- b
	}
}
