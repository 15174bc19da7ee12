package aggregate

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// topkSeed keeps TopK's bucket choice independent of the worker and table hashes.
const topkSeed = 0x746f706b

// TopKEntry is one monitored key. Its count is its group's.
type TopKEntry struct {
	Key        packet.Addr
	Err        uint64 // overestimation bound: the count the key inherited when it took the slot
	Group      int32  // index in TopK.Groups
	Prev, Next int32  // siblings in the group (unordered), -1 at the ends
}

// TopKGroup holds the entries sharing one count (a "bucket" of Metwally's stream summary).
type TopKGroup struct {
	Count      uint64
	First      int32 // an entry of the group; -1 marks a free group
	Prev, Next int32 // neighbour groups: Prev has the next smaller count, Next the next larger
}

// TopK finds heavy hitters with Space-Saving (Metwally, Agrawal, El Abbadi, "Efficient
// computation of frequent and top-k elements in data streams", 2005) over the stream-summary
// structure: groups of equal count in a sorted list, so adding 1 moves an entry to the next
// group in O(1). With capacity k every key whose true count exceeds Total/k is held, and each
// held key's true count is in [Count-Err, Count].
//
// The exported fields are the whole state (for checkpoints; the hash index is rebuilt by
// Restore); treat them as read-only. A TopK is not safe for concurrent use.
type TopK struct {
	Capacity  int
	Entries   []TopKEntry // the held keys, len <= Capacity
	Groups    []TopKGroup // len == Capacity: a group per distinct count, the rest free
	MinGroup  int32       // group with the smallest count, -1 when empty
	FreeGroup int32       // freed groups, linked by Next
	// FreshGroup: groups [FreshGroup, Capacity) were never used (free too, and not linked),
	// so an empty summary writes none of its groups and their memory stays untouched.
	FreshGroup int32
	Sum        uint64 // total weight added
	// Dropped counts the keys that lost their entry to a new key, by the log2 of the count
	// the summary guaranteed them (Count - Err, >= 1), and those the caller kept out (Drop):
	// Dropped[i] those with 2^i to 2^(i+1)-1. With the held entries, a distribution of every
	// key (one that came back after losing its entry counts twice).
	Dropped [64]uint64

	// index finds a key's entry (index.go; Restore rebuilds it): open addressing, so that
	// replacing the minimum entry's key reads index words, not a chain of entries.
	index []uint64
}

// NewTopK returns an empty summary of at most capacity keys (clamped to [1, 2^29]).
func NewTopK(capacity int) *TopK {
	capacity = min(max(capacity, 1), maxTableCap)
	// Nothing is initialised element by element: the three arrays (about 5 MiB for 2^16
	// keys) are only written, and so only take memory, as keys arrive. Those of 2 MiB or
	// more (a worker's 65 536 entries) are mapped outside the Go heap, as the tables are
	// (Reserve, huge pages requested): the garbage collector lets the heap grow to
	// twice its live size, into fresh pages that each take a fault, and the workers'
	// summaries allocated 20 of the 20x day's 48 MiB of live heap.
	t := &TopK{Capacity: capacity, MinGroup: nilIdx, FreeGroup: nilIdx}
	t.Entries = ReserveOrMake[TopKEntry](t, capacity)[:0]
	t.Groups = ReserveOrMake[TopKGroup](t, capacity)
	t.index = ReserveOrMake[uint64](t, bucketsFor(capacity))
	return t
}

// Len returns the number of keys held.
func (t *TopK) Len() int { return len(t.Entries) }

// Total returns the sum of all weights added.
func (t *TopK) Total() uint64 { return t.Sum }

// Reset empties the summary without releasing memory.
func (t *TopK) Reset() {
	t.Entries = t.Entries[:0]
	t.MinGroup, t.FreeGroup, t.FreshGroup, t.Sum = nilIdx, nilIdx, 0, 0
	t.Dropped = [64]uint64{}
	clear(t.index)
}

// topkHash is key's hash for the index.
func topkHash(key *packet.Addr) uint64 { return key.Hash(topkSeed) }

// Prefetch requests the index word where Add's look-up of key begins, without waiting.
func (t *TopK) Prefetch(key *packet.Addr) {
	if len(t.index) > 0 {
		prefetch.Line(unsafe.Pointer(&t.index[topkHash(key)&uint64(len(t.index)-1)]))
	}
}

// find returns key's entry, -1 when absent (h: its hash).
func (t *TopK) find(key *packet.Addr, h uint64) int32 {
	mask := uint64(len(t.index) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		v := t.index[p]
		if v == 0 {
			return nilIdx
		}
		if uint32(v>>32) == uint32(h) {
			if i := indexSlot(v); t.Entries[i].Key == *key {
				return i
			}
		}
	}
}

// Add counts w occurrences of key (w == 0 is ignored). O(1) for w == 1; a larger w may walk
// past groups with counts below the new one. No allocation.
func (t *TopK) Add(key packet.Addr, w uint64) {
	if w == 0 {
		return
	}
	t.Sum = satAdd(t.Sum, w)
	h := topkHash(&key)
	if i := t.find(&key, h); i != nilIdx {
		t.increment(i, w)
		return
	}
	if len(t.Entries) < t.Capacity {
		i := int32(len(t.Entries))
		t.Entries = append(t.Entries, TopKEntry{Key: key})
		indexInsert(t.index, uint32(h), i)
		t.place(i, w, nilIdx, t.MinGroup)
		return
	}
	// Full: the new key takes over an entry with the minimum count m, inheriting m as error.
	i := t.Groups[t.MinGroup].First
	e := &t.Entries[i]
	m := t.Groups[t.MinGroup].Count
	t.Drop(m - e.Err) // 0 only for a count saturated at its error: not binned
	indexUnlink(t.index, uint32(topkHash(&e.Key)), i)
	e.Key, e.Err = key, m
	indexInsert(t.index, uint32(h), i)
	t.increment(i, w)
	t.victimsAhead()
}

// victimsAhead requests what the next replacements read first: the index word of the next
// victim's key, whose entry the previous replacement requested, and the entry after it (the
// minimum group's list gives the victims in order). A stream of new keys (a scan of random
// IPv6 addresses, into the workers' destination summaries) replaces an entry per key, and
// its unlink waited for that index word at nearly every replacement.
func (t *TopK) victimsAhead() {
	if t.MinGroup == nilIdx {
		return
	}
	v := t.Groups[t.MinGroup].First
	if v == nilIdx {
		return
	}
	e := &t.Entries[v]
	prefetch.Line(unsafe.Pointer(&t.index[topkHash(&e.Key)&uint64(len(t.index)-1)]))
	if e.Next != nilIdx {
		prefetch.Line(unsafe.Pointer(&t.Entries[e.Next]))
	}
}

// Drop counts a key of weight w (> 0) in Dropped without adding it: for a caller that keeps
// the keys it knows cannot matter out of the summary.
func (t *TopK) Drop(w uint64) {
	if w > 0 {
		t.Dropped[bits.Len64(w)-1]++
	}
}

// increment moves entry i from its group to the group of count+w.
func (t *TopK) increment(i int32, w uint64) {
	g := t.Entries[i].Group
	c := satAdd(t.Groups[g].Count, w)
	if c == t.Groups[g].Count {
		return // saturated
	}
	// Find the neighbours of count c: prev < c <= Groups[next].Count.
	prev, next := g, t.Groups[g].Next
	for next != nilIdx && t.Groups[next].Count < c {
		prev, next = next, t.Groups[next].Next
	}
	if prev == g && t.Groups[g].First == i && t.Entries[i].Next == nilIdx &&
		(next == nilIdx || t.Groups[next].Count != c) {
		t.Groups[g].Count = c // i is alone and nothing lies in between: relabel the group
		return
	}
	t.detach(i)
	if t.Groups[g].First == nilIdx {
		if prev == g {
			prev = t.Groups[g].Prev
		}
		t.freeGroup(g)
	}
	t.place(i, c, prev, next)
}

// place puts entry i into the group of count c, which lies after group prev and at or before
// group next (either may be -1), creating the group when next does not hold count c.
func (t *TopK) place(i int32, c uint64, prev, next int32) {
	for next != nilIdx && t.Groups[next].Count < c {
		prev, next = next, t.Groups[next].Next
	}
	g := next
	if g == nilIdx || t.Groups[g].Count != c {
		// A free group exists: groups in use never outnumber the other entries.
		if g = t.FreeGroup; g != nilIdx {
			t.FreeGroup = t.Groups[g].Next
		} else {
			g = t.FreshGroup
			t.FreshGroup++
		}
		t.Groups[g] = TopKGroup{Count: c, First: nilIdx, Prev: prev, Next: next}
		if prev != nilIdx {
			t.Groups[prev].Next = g
		} else {
			t.MinGroup = g
		}
		if next != nilIdx {
			t.Groups[next].Prev = g
		}
	}
	e := &t.Entries[i]
	e.Group, e.Prev, e.Next = g, nilIdx, t.Groups[g].First
	if e.Next != nilIdx {
		t.Entries[e.Next].Prev = i
	}
	t.Groups[g].First = i
}

// detach removes entry i from its group's sibling list.
func (t *TopK) detach(i int32) {
	e := &t.Entries[i]
	if e.Prev != nilIdx {
		t.Entries[e.Prev].Next = e.Next
	} else {
		t.Groups[e.Group].First = e.Next
	}
	if e.Next != nilIdx {
		t.Entries[e.Next].Prev = e.Prev
	}
}

// freeGroup unlinks the empty group g from the count list and frees it.
func (t *TopK) freeGroup(g int32) {
	gr := &t.Groups[g]
	if gr.Prev != nilIdx {
		t.Groups[gr.Prev].Next = gr.Next
	} else {
		t.MinGroup = gr.Next
	}
	if gr.Next != nilIdx {
		t.Groups[gr.Next].Prev = gr.Prev
	}
	*gr = TopKGroup{First: nilIdx, Prev: nilIdx, Next: t.FreeGroup}
	t.FreeGroup = g
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}

// Counted is a key with its estimated count: the true count lies in [Count-Err, Count].
type Counted struct {
	Key   packet.Addr
	Count uint64
	Err   uint64
}

// Top returns up to n entries by Count descending, ties by key ascending (byte order).
// It allocates the result; call it at report time.
func (t *TopK) Top(n int) []Counted {
	if n <= 0 || len(t.Entries) == 0 {
		return nil
	}
	all := make([]Counted, len(t.Entries))
	for i, e := range t.Entries {
		all[i] = Counted{Key: e.Key, Count: t.Groups[e.Group].Count, Err: e.Err}
	}
	slices.SortFunc(all, func(a, b Counted) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return bytes.Compare(a.Key[:], b.Key[:])
	})
	return all[:min(n, len(all))]
}

// All yields every held key with its count and error, in no particular order: for a
// caller that visits them all (Top sorts them first).
func (t *TopK) All() iter.Seq[Counted] {
	return func(yield func(Counted) bool) {
		for i := range t.Entries {
			e := &t.Entries[i]
			if !yield(Counted{Key: e.Key, Count: t.Groups[e.Group].Count, Err: e.Err}) {
				return
			}
		}
	}
}

// Restore makes a summary whose exported fields were decoded from a checkpoint usable again:
// it checks the group and entry links and rebuilds the hash index. A corrupt state is
// rejected with an error (after which t is unusable) instead of failing later.
//
// A checkpoint need not hold FreshGroup (Save does not write it): every group that is
// neither in use nor on the free list is taken as never used and put on the free list.
func (t *TopK) Restore() error {
	used, err := t.checkLinks(t.Capacity)
	if err != nil {
		return fmt.Errorf("restore top-k: %w", err)
	}
	for g := len(used) - 1; g >= 0; g-- {
		if !used[g] {
			t.Groups[g] = TopKGroup{First: nilIdx, Prev: nilIdx, Next: t.FreeGroup}
			t.FreeGroup = int32(g)
		}
	}
	t.FreshGroup = int32(t.Capacity)
	if cap(t.Entries) < t.Capacity { // a decoded slice has no room to grow
		t.Entries = slices.Grow(t.Entries, t.Capacity-len(t.Entries))
	}
	t.index = newIndex(t.Capacity)
	for i := range t.Entries {
		e := &t.Entries[i]
		h := topkHash(&e.Key)
		if t.find(&e.Key, h) != nilIdx {
			return fmt.Errorf("restore top-k: key %v held twice", e.Key)
		}
		indexInsert(t.index, uint32(h), int32(i))
	}
	return nil
}

// check verifies the stream summary: groups sorted by strictly increasing count, each with a
// non-empty, consistently linked entry list, every entry in exactly one group, Err <= Count,
// counts summing to Sum (each Add raises the sum by w, also when a key is replaced), and the
// other groups below FreshGroup on the free list.
func (t *TopK) check() error {
	if t.FreshGroup < 0 || int(t.FreshGroup) > t.Capacity {
		return fmt.Errorf("%d groups used so far, capacity %d", t.FreshGroup, t.Capacity)
	}
	linked, err := t.checkLinks(int(t.FreshGroup))
	if err != nil {
		return err
	}
	for g, ok := range linked {
		if !ok {
			return fmt.Errorf("group %d is neither in use nor free", g)
		}
	}
	return nil
}

// checkLinks verifies what check does for the groups below fresh (the rest must not be
// linked) and returns which of them are in use or on the free list.
func (t *TopK) checkLinks(fresh int) ([]bool, error) {
	n, k := len(t.Entries), t.Capacity
	if k < 1 || k > maxTableCap || n > k || len(t.Groups) != k || fresh > k {
		return nil, fmt.Errorf("capacity %d with %d entries and %d groups", k, n, len(t.Groups))
	}
	inGroup := make([]bool, n)
	usedGroup := make([]bool, k)
	seen, sum := 0, uint64(0)
	prev, g := nilIdx, t.MinGroup
	for g != nilIdx {
		if g < 0 || int(g) >= fresh || usedGroup[g] {
			return nil, fmt.Errorf("group list broken at %d", g)
		}
		gr := t.Groups[g]
		if gr.Prev != prev || prev != nilIdx && t.Groups[prev].Count >= gr.Count || gr.First == nilIdx {
			return nil, fmt.Errorf("group %d (count %d) is empty or out of order", g, gr.Count)
		}
		usedGroup[g] = true
		pe := nilIdx
		for i := gr.First; i != nilIdx; i = t.Entries[i].Next {
			if i < 0 || int(i) >= n || inGroup[i] {
				return nil, fmt.Errorf("entry list of group %d broken at %d", g, i)
			}
			e := t.Entries[i]
			if e.Prev != pe || e.Group != g || e.Err > gr.Count {
				return nil, fmt.Errorf("entry %d of group %d: bad links or error %d above count %d", i, g, e.Err, gr.Count)
			}
			inGroup[i] = true
			seen++
			sum = satAdd(sum, gr.Count)
			pe = i
		}
		prev, g = g, gr.Next
	}
	if seen != n || sum != t.Sum && t.Sum != ^uint64(0) {
		return nil, fmt.Errorf("groups hold %d of %d entries, counts sum to %d of total %d", seen, n, sum, t.Sum)
	}
	for g := t.FreeGroup; g != nilIdx; g = t.Groups[g].Next {
		if g < 0 || int(g) >= fresh || usedGroup[g] {
			return nil, fmt.Errorf("free group list broken at %d", g)
		}
		usedGroup[g] = true
	}
	return usedGroup[:fresh], nil
}
