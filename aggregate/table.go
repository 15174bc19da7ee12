package aggregate

import (
	"errors"
	"fmt"
)

// nilIdx ends the int32 links (LRU list, hash chains, free list) of Table and TopK.
const nilIdx int32 = -1

// maxTableCap bounds capacities so every slot index fits an int32 and the bucket count
// (twice the capacity, rounded up to a power of two) fits one too.
const maxTableCap = 1 << 29

// TableEntry is one slot of a Table. Its fields are exported so a Table can be checkpointed
// (gob, JSON); treat them as read-only.
type TableEntry[K comparable, V any] struct {
	Key K
	Val V
	// Prev and Next link the LRU list (Prev: touched more recently). Next also links free slots.
	Prev, Next int32
	// Chain links the slots of one hash bucket; Restore rebuilds it.
	Chain int32
}

// Table maps keys to values with a hard capacity; when full, inserting evicts the least
// recently touched entry. Its slots grow by doubling up to the capacity, so a table holds
// memory for the entries it has had, never more than the capacity; once grown, operations
// do not allocate.
//
// The exported fields are the whole state (for checkpoints); the bucket index, the free-slot
// list and the callbacks are rebuilt or re-attached by Restore. A Table is not safe for
// concurrent use.
type Table[K comparable, V any] struct {
	Entries []TableEntry[K, V] // the slots allocated so far; live slots are those on the LRU list
	Max     int32              // capacity: Entries grows up to this many slots
	Head    int32              // most recently touched slot, -1 when empty
	Tail    int32              // least recently touched slot, -1 when empty
	Count   int32              // live entries
	Evicted uint64             // entries evicted to make room

	buckets []int32 // hash & (len-1) -> first slot of the chain
	free    int32   // deleted slots, linked by Next
	fresh   int32   // slots [fresh, len(Entries)) were never used
	hash    func(*K) uint64
	evict   func(*K, *V)
	scratch K // the key being hashed: &k of a parameter would escape through hash
}

// NewTable returns an empty table holding at most capacity entries (at least 1, at most
// 2^29). hash must spread keys over all 64 bits (capture.Addr.Hash, capture.Mix64).
func NewTable[K comparable, V any](capacity int, hash func(*K) uint64) *Table[K, V] {
	capacity = min(max(capacity, 1), maxTableCap)
	initial := min(capacity, initialTableSlots)
	t := &Table[K, V]{Entries: make([]TableEntry[K, V], initial), Max: int32(capacity), hash: hash}
	t.Head, t.Tail, t.free = nilIdx, nilIdx, nilIdx
	t.buckets = newBuckets(initial)
	return t
}

// initialTableSlots is the size a table starts at before growing towards its capacity.
const initialTableSlots = 1024

// grow doubles the slots (up to Max) and rebuilds the bucket index. Pointers to values
// returned before are invalid afterwards.
func (t *Table[K, V]) grow() {
	n := min(2*len(t.Entries), int(t.Max))
	entries := make([]TableEntry[K, V], n)
	copy(entries, t.Entries)
	t.Entries = entries
	t.buckets = newBuckets(n)
	for i := t.Head; i != nilIdx; i = t.Entries[i].Next {
		e := &t.Entries[i]
		b := t.bucket(&e.Key)
		e.Chain = *b
		*b = i
	}
}

// newBuckets returns an empty bucket index for capacity slots: a power of two >= 2*capacity,
// so chains stay short (load <= 1/2) at 4 bytes per bucket.
func newBuckets(capacity int) []int32 {
	n := 2
	for n < 2*capacity {
		n <<= 1
	}
	b := make([]int32, n)
	for i := range b {
		b[i] = nilIdx
	}
	return b
}

// SetEvict sets the callback that sees each evicted entry before its slot is reused. It must
// not modify the table. It is not called by Delete.
func (t *Table[K, V]) SetEvict(fn func(k *K, v *V)) { t.evict = fn }

// Len returns the number of entries.
func (t *Table[K, V]) Len() int { return int(t.Count) }

// Cap returns the capacity.
func (t *Table[K, V]) Cap() int { return int(t.Max) }

// Slots returns how many slots are allocated (for memory accounting).
func (t *Table[K, V]) Slots() int { return len(t.Entries) }

// Evictions returns how many entries were evicted to make room for new keys.
func (t *Table[K, V]) Evictions() uint64 { return t.Evicted }

// bucket returns the chain head for k. k must point into the table (an entry or scratch):
// a pointer to a caller's variable would make it escape to the heap on every call.
func (t *Table[K, V]) bucket(k *K) *int32 {
	return &t.buckets[t.hash(k)&uint64(len(t.buckets)-1)]
}

// lookup hashes k via scratch and returns its chain head and slot (-1 when absent).
func (t *Table[K, V]) lookup(k K) (b *int32, i int32) {
	t.scratch = k
	b = t.bucket(&t.scratch)
	return b, t.find(k, b)
}

// find returns the slot of k in chain b, or -1.
func (t *Table[K, V]) find(k K, b *int32) int32 {
	for i := *b; i != nilIdx; i = t.Entries[i].Chain {
		if t.Entries[i].Key == k {
			return i
		}
	}
	return nilIdx
}

// Touch returns the value for k, inserting a zero V when absent (created=true), and marks the
// entry most recently used. When the table is full the least recently touched entry is evicted
// first: the evict callback (if set) sees its key and value before the slot is reused.
// The pointer stays valid until the entry is evicted or deleted, or until the next Touch
// of a new key (which may grow the table and move every entry).
func (t *Table[K, V]) Touch(k K) (v *V, created bool) {
	b, i := t.lookup(k)
	if i != nilIdx {
		if i != t.Head {
			t.unlinkLRU(i)
			t.pushFront(i)
		}
		return &t.Entries[i].Val, false
	}
	slots := len(t.Entries)
	i = t.alloc()
	if len(t.Entries) != slots {
		b = t.bucket(&t.scratch) // alloc grew the table: the bucket index is new
	}
	e := &t.Entries[i]
	e.Key = k
	var zero V
	e.Val = zero
	e.Chain = *b // read after alloc: evicting may have changed this very bucket
	*b = i
	t.pushFront(i)
	t.Count++
	return &e.Val, true
}

// alloc returns an unused slot, evicting the least recently touched entry when full.
func (t *Table[K, V]) alloc() int32 {
	if i := t.free; i != nilIdx {
		t.free = t.Entries[i].Next
		return i
	}
	if int(t.fresh) == len(t.Entries) && len(t.Entries) < int(t.Max) {
		t.grow()
	}
	if int(t.fresh) < len(t.Entries) {
		t.fresh++
		return t.fresh - 1
	}
	i := t.Tail
	e := &t.Entries[i]
	if t.evict != nil {
		t.evict(&e.Key, &e.Val)
	}
	t.unlinkChain(i, t.bucket(&e.Key))
	t.unlinkLRU(i)
	t.Count--
	t.Evicted++
	return i
}

// Get returns the value for k, nil when absent. It does not change recency.
func (t *Table[K, V]) Get(k K) *V {
	if _, i := t.lookup(k); i != nilIdx {
		return &t.Entries[i].Val
	}
	return nil
}

// Delete removes k, reporting whether it was present. The evict callback is not called.
func (t *Table[K, V]) Delete(k K) bool {
	b, i := t.lookup(k)
	if i == nilIdx {
		return false
	}
	t.unlinkChain(i, b)
	t.unlinkLRU(i)
	t.Count--
	// Zero the slot so the value's memory (slices inside V) can be collected.
	t.Entries[i] = TableEntry[K, V]{Prev: nilIdx, Next: t.free, Chain: nilIdx}
	t.free = i
	return true
}

// Oldest returns the least recently touched entry (for expiry sweeps), ok=false when empty.
func (t *Table[K, V]) Oldest() (k *K, v *V, ok bool) {
	if t.Tail == nilIdx {
		return nil, nil, false
	}
	e := &t.Entries[t.Tail]
	return &e.Key, &e.Val, true
}

// Range calls fn for every entry, most recently touched first, until fn returns false.
// fn must not modify the table.
func (t *Table[K, V]) Range(fn func(k *K, v *V) bool) {
	for i := t.Head; i != nilIdx; i = t.Entries[i].Next {
		if !fn(&t.Entries[i].Key, &t.Entries[i].Val) {
			return
		}
	}
}

func (t *Table[K, V]) unlinkChain(i int32, b *int32) {
	p := b
	for *p != i {
		p = &t.Entries[*p].Chain
	}
	*p = t.Entries[i].Chain
}

func (t *Table[K, V]) unlinkLRU(i int32) {
	e := &t.Entries[i]
	if e.Prev != nilIdx {
		t.Entries[e.Prev].Next = e.Next
	} else {
		t.Head = e.Next
	}
	if e.Next != nilIdx {
		t.Entries[e.Next].Prev = e.Prev
	} else {
		t.Tail = e.Prev
	}
}

func (t *Table[K, V]) pushFront(i int32) {
	e := &t.Entries[i]
	e.Prev, e.Next = nilIdx, t.Head
	if t.Head != nilIdx {
		t.Entries[t.Head].Prev = i
	} else {
		t.Tail = i
	}
	t.Head = i
}

// Restore makes a table whose exported fields were decoded from a checkpoint usable again:
// it checks the LRU list, rebuilds the bucket index and free list with hash, and rejects a
// corrupt state (bad links, duplicate keys) with an error instead of failing later.
// The evict callback must be set again with SetEvict. After an error the table is unusable.
func (t *Table[K, V]) Restore(hash func(*K) uint64) error {
	if hash == nil {
		return errors.New("restore table: nil hash function")
	}
	n := len(t.Entries)
	if t.Max == 0 {
		t.Max = int32(n)
	}
	if n < 1 || n > int(t.Max) || t.Max > maxTableCap {
		return fmt.Errorf("restore table: %d slots for capacity %d out of range [1, %d]", n, t.Max, maxTableCap)
	}
	if t.Count < 0 || int(t.Count) > n {
		return fmt.Errorf("restore table: count %d out of range [0, %d]", t.Count, n)
	}
	live := make([]bool, n)
	prev := nilIdx
	i := t.Head
	for range t.Count {
		if i < 0 || int(i) >= n || live[i] {
			return fmt.Errorf("restore table: LRU list broken at slot %d after %d", i, prev)
		}
		if t.Entries[i].Prev != prev {
			return fmt.Errorf("restore table: slot %d links back to %d, want %d", i, t.Entries[i].Prev, prev)
		}
		live[i] = true
		prev, i = i, t.Entries[i].Next
	}
	if i != nilIdx || t.Tail != prev {
		return fmt.Errorf("restore table: LRU list of %d entries does not end at tail %d", t.Count, t.Tail)
	}
	t.hash = hash
	t.buckets = newBuckets(n)
	t.free, t.fresh = nilIdx, int32(n)
	for j := int32(n - 1); j >= 0; j-- {
		e := &t.Entries[j]
		if !live[j] {
			*e = TableEntry[K, V]{Prev: nilIdx, Next: t.free, Chain: nilIdx}
			t.free = j
			continue
		}
		b := t.bucket(&e.Key)
		if t.find(e.Key, b) != nilIdx {
			return fmt.Errorf("restore table: key of slot %d appears twice", j)
		}
		e.Chain = *b
		*b = j
	}
	return nil
}
