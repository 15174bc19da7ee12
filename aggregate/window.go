package aggregate

import (
	"encoding/binary"
	"math/bits"
	"sort"
	"sync/atomic"

	"github.com/telescope-dev/telescope/packet"
)

// HistBuckets is the number of finite buckets of the packets-per-source histogram:
// upper bounds 1, 2, 4, ... 2^20.
const HistBuckets = 21

// HistBucket returns the index of the smallest bucket whose upper bound holds n (n >= 1);
// HistBuckets means +Inf.
func HistBucket(n uint64) int {
	if n <= 1 {
		return 0
	}
	b := bits.Len64(n - 1) // smallest b with 2^b >= n
	if b > HistBuckets-1 {
		return HistBuckets
	}
	return b
}

// Histogram is a cumulative histogram of packets per source per closed window, written by
// one worker (atomic adds at window close) and read at scrape time.
type Histogram struct {
	Counts [HistBuckets + 1]atomic.Uint64 // non-cumulative per bucket; last is +Inf
	Sum    atomic.Uint64
	Count  atomic.Uint64
}

// Observe adds a batch of observations counted in a local array.
func (h *Histogram) Observe(local *[HistBuckets + 1]uint64, sum, count uint64) {
	for i, n := range local {
		if n != 0 {
			h.Counts[i].Add(n)
		}
	}
	h.Sum.Add(sum)
	h.Count.Add(count)
}

// HistBatch counts observations locally for one Histogram.ObserveBatch: one atomic add per
// bucket used rather than per observation.
type HistBatch struct {
	Counts     [HistBuckets + 1]uint64
	Sum, Count uint64
}

// Add counts one observation of n.
func (b *HistBatch) Add(n uint64) {
	b.Counts[HistBucket(n)]++
	b.Sum += n
	b.Count++
}

// ObserveBatch adds the observations counted in b.
func (h *Histogram) ObserveBatch(b *HistBatch) { h.Observe(&b.Counts, b.Sum, b.Count) }

// SourceCount is a source and its packets.
type SourceCount struct {
	Addr    packet.Addr
	Packets uint64
}

// WindowStats describes one closed window of one worker (or, merged, of all workers).
// Immutable once published.
type WindowStats struct {
	Index   int64 // window number: start time / window length
	Start   int64 // ns
	End     int64 // ns, exclusive
	Unique  uint64
	Packets uint64
	Top     []SourceCount // by packets descending, ties by address
}

// TopHeap keeps the n largest SourceCounts seen (a min-heap on packets).
type TopHeap struct {
	n int
	h []SourceCount
}

// NewTopHeap returns a heap keeping the n largest entries.
func NewTopHeap(n int) *TopHeap { return &TopHeap{n: n, h: make([]SourceCount, 0, n)} }

func less(a, b *SourceCount) bool { return lessThan(a, b.Packets, &b.Addr) }

// lessThan reports whether a ranks below a count of packets from addr (less, without a
// SourceCount to compare with).
func lessThan(a *SourceCount, packets uint64, addr *packet.Addr) bool {
	if a.Packets != packets {
		return a.Packets < packets
	}
	// Among equal counts the larger address ranks lower, so ties keep the smaller addresses.
	return addrLess(addr, &a.Addr)
}

// addrLess orders addresses as bytes.Compare does, in two word compares: a spoofed flood's
// sources all tie at one packet, so every eviction offered to a window's top compares
// addresses.
func addrLess(a, b *packet.Addr) bool {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	if ah != bh {
		return ah < bh
	}
	return binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:])
}

// Offer considers one entry. The address is read through its pointer: a value was copied
// to the stack in one 16-byte store and read back in two 8-byte loads, which wait for it
// (store forwarding) on the flood's path (worker.evicted offers every evicted source).
func (t *TopHeap) Offer(a *packet.Addr, packets uint64) {
	if t.n <= 0 {
		return
	}
	// Field by field, with no SourceCount built first: a composite literal went through a
	// temporary whose 16-byte copy read across its field stores, loads that cannot be
	// forwarded and wait for the stores to complete (40 % of the live flood's worker.evicted
	// samples, which offers every evicted source here).
	if len(t.h) < t.n {
		t.h = append(t.h, SourceCount{})
		e := &t.h[len(t.h)-1]
		e.Addr, e.Packets = *a, packets
		t.up(len(t.h) - 1)
		return
	}
	m := &t.h[0] // the least kept
	if !lessThan(m, packets, a) {
		return
	}
	m.Addr, m.Packets = *a, packets
	t.down(0)
}

func (t *TopHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(&t.h[i], &t.h[p]) {
			return
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

func (t *TopHeap) down(i int) {
	for {
		l, m := 2*i+1, i
		if l < len(t.h) && less(&t.h[l], &t.h[m]) {
			m = l
		}
		if r := l + 1; r < len(t.h) && less(&t.h[r], &t.h[m]) {
			m = r
		}
		if m == i {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// Sorted returns the kept entries, largest first, ties by address ascending.
func (t *TopHeap) Sorted() []SourceCount {
	out := append([]SourceCount(nil), t.h...)
	SortCounts(out)
	return out
}

// SortCounts orders by packets descending, ties by address ascending.
func SortCounts(s []SourceCount) {
	sort.Slice(s, func(i, j int) bool { return less(&s[j], &s[i]) })
}

// MergeWindows merges the per-worker stats of one window (the caller passes stats of the
// same window index). Sources are partitioned between workers, so uniques add up and the
// top lists are disjoint but for rare ICMP-error senders, whose counts are summed.
func MergeWindows(ws []*WindowStats, topN int) *WindowStats {
	var out *WindowStats
	sum := map[packet.Addr]uint64{}
	for _, w := range ws {
		if w == nil {
			continue
		}
		if out == nil {
			out = &WindowStats{Index: w.Index, Start: w.Start, End: w.End}
		}
		out.Unique += w.Unique
		out.Packets += w.Packets
		for _, t := range w.Top {
			sum[t.Addr] += t.Packets
		}
	}
	if out == nil {
		return nil
	}
	th := NewTopHeap(topN)
	for a, n := range sum {
		th.Offer(&a, n)
	}
	out.Top = th.Sorted()
	return out
}

// FloorDiv divides rounding towards minus infinity, so window and bucket numbers of
// packet times before 1970 stay ordered.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
