package aggregate

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
)

// nilIdx ends the int32 links of Table (LRU list, free list) and TopK (group siblings).
const nilIdx int32 = -1

// maxTableCap bounds capacities so every slot index fits an int32 and the bucket count
// (twice the capacity, rounded up to a power of two) fits one too.
const maxTableCap = 1 << 29

// TableEntry is one slot of a Table. Its fields are exported so a Table can be checkpointed
// (gob, JSON); treat them as read-only.
//
// The key and the links come first: a lookup reads the key, a touch the LRU links, so
// with them on the value's first cache line a hit touches as few lines as it can.
type TableEntry[K comparable, V any] struct {
	Key K
	// Prev and Next link the LRU list (Prev: touched more recently). Next also links free slots.
	Prev, Next int32
	// hash is the low 32 bits of the key's hash (the index uses at most 31 for the position),
	// kept so that rebuilding the index and evicting do not hash keys again; Restore
	// recomputes it.
	hash uint32
	// stamp is the table's clock when the entry last went to the front (see SetSlack).
	stamp uint32
	Val   V
}

// Table maps keys to values with a hard capacity; when full, inserting evicts the least
// recently touched entry (or one near it: SetSlack). Its slots grow by doubling up to the
// capacity, so a table holds memory for the entries it has had, never more than the
// capacity; once grown, operations do not allocate.
//
// The exported fields are the whole state (for checkpoints); the bucket index, the free-slot
// list and the callbacks are rebuilt or re-attached by Restore. A Table is not safe for
// concurrent use.
type Table[K comparable, V any] struct {
	// Chunks hold the slots allocated so far, chunkSlots each (the last may be shorter);
	// live slots are those on the LRU list. Growing appends a chunk: entries never move.
	Chunks  [][]TableEntry[K, V]
	Max     int32  // capacity: the chunks grow up to this many slots in all
	Head    int32  // most recently touched slot, -1 when empty
	Tail    int32  // least recently touched slot, -1 when empty
	Count   int32  // live entries
	Evicted uint64 // entries evicted to make room

	// index finds a key's slot (index.go): open addressing, probes that read index words,
	// not entries.
	index []uint64
	// indexRegion is address space for the largest index (Reserve), whose prefix
	// holds index: huge pages, where a heap index of millions of words took a TLB miss
	// (a page walk, dear in a virtual machine) on nearly every probe. nil: heap.
	indexRegion []uint64
	free        int32 // deleted slots, linked by Next
	fresh       int32 // slots [fresh, slots) were never used
	freshWarm   int32 // slots [fresh, freshWarm) were requested (warmFresh)
	slots       int32 // slots allocated in Chunks
	hash        func(*K) uint64
	evict       func(*K, *V)
	region      []TableEntry[K, V] // address space reserved for every slot (pointer-free K, V on Linux), or nil
	scratch     K                  // the key being hashed: &k of a parameter would escape through hash
	// clock counts the moves to the front (wrapping); slack is how many moves behind the
	// head a touched entry may be and keep its place (SetSlack; 0: exact LRU).
	clock, slack uint32
	// The next victims, walked ahead (Ahead): ahead[aheadAt:aheadAt+aheadN] (a ring) were
	// the entries from the tail on when walked, cursor the next one (its line requested).
	// Hints only: an eviction checks the first against the tail and drops them all if they
	// went stale.
	ahead           [aheadMax]int32
	aheadAt, aheadN int
	cursor          int32
	victim          func(*K) // SetVictimHint
}

// aheadMax is how many victims Ahead walks ahead of the evictions: two groups of packets.
const aheadMax = 64

// NewTable returns an empty table holding at most capacity entries (at least 1, at most
// 2^29). hash must spread keys over all 64 bits (packet.Addr.Hash, packet.Mix64).
func NewTable[K comparable, V any](capacity int, hash func(*K) uint64) *Table[K, V] {
	capacity = min(max(capacity, 1), maxTableCap)
	t := &Table[K, V]{Max: int32(capacity), hash: hash}
	t.Head, t.Tail, t.free = nilIdx, nilIdx, nilIdx
	t.region = Reserve[TableEntry[K, V]](t, capacity)
	t.indexRegion = Reserve[uint64](t, bucketsFor(capacity))
	t.grow()
	return t
}

// SetSlack lets a touched entry keep its place in the LRU list while fewer than `moves`
// moves to the front (by touches and inserts) have happened since its own, where the order
// is exact by default. Its position is at most that far from the head, so an entry at the
// tail always moves when touched, and an eviction takes an entry untouched for at least
// capacity-moves moves instead of capacity. On a full table of a telescope day nearly every touch is of a
// source seen a few seconds before: a touch is then no write to three random entries (its
// two neighbours and the head). Tables whose sweeps rely on the exact order of last touches
// keep the default.
func (t *Table[K, V]) SetSlack(moves int) {
	t.slack = uint32(min(max(moves, 0), int(t.Max)))
	t.clock += t.slack // every entry there is now moves at its next touch
}

// Slots are allocated in chunks of chunkSlots, so a table holds memory for the entries it
// has had (never more than its capacity) and growing copies nothing: copying a large table
// into fresh memory costs far more than the chunk indirection.
const (
	chunkBits  = 12
	chunkSlots = 1 << chunkBits
)

// ent returns slot i.
func (t *Table[K, V]) ent(i int32) *TableEntry[K, V] {
	return &t.Chunks[i>>chunkBits][i&(chunkSlots-1)]
}

// grow adds a chunk of slots (up to Max) and, when the index becomes too small for them,
// rebuilds it at twice the size. Entries do not move.
//
// alloc grows only when every slot is live (no free slot, none fresh), so the rebuild
// reads the slots in memory order with their stored hashes: a sequential scan, where
// walking the LRU list and hashing every key again missed the cache on each entry.
func (t *Table[K, V]) grow() {
	old := t.slots
	n := min(chunkSlots, int(t.Max-t.slots))
	if t.region != nil {
		// Carved from the reserved mapping: its pages are only used once written.
		t.Chunks = append(t.Chunks, t.region[t.slots:int(t.slots)+n:int(t.slots)+n])
	} else {
		t.Chunks = append(t.Chunks, make([]TableEntry[K, V], n))
	}
	t.slots += int32(n)
	if len(t.index) >= 2*int(t.slots) {
		return
	}
	t.index = t.newIndex(int(t.slots))
	if t.Count == old {
		for c := range t.Chunks {
			chunk := t.Chunks[c]
			base := int32(c) << chunkBits
			for j := range chunk {
				if i := base + int32(j); i < old {
					indexInsert(t.index, chunk[j].hash, i)
				}
			}
		}
		return
	}
	for i := t.Head; i != nilIdx; i = t.ent(i).Next {
		indexInsert(t.index, t.ent(i).hash, i)
	}
}

// newIndex returns an empty index for n slots, in indexRegion when there is one. The old
// index is dropped: rebuilding reads the entries, never the old index.
func (t *Table[K, V]) newIndex(n int) []uint64 {
	if t.indexRegion == nil {
		return newIndex(n)
	}
	idx := t.indexRegion[:bucketsFor(n)]
	clear(idx)
	return idx
}

// bucketsFor is the index size for capacity slots (Table, TopK): a power of two >= 2*capacity.
func bucketsFor(capacity int) int {
	n := 2
	for n < 2*capacity {
		n <<= 1
	}
	return n
}

// SetVictimHint sets a function Ahead calls with the key of each coming victim it walks,
// so that the caller may request what its eviction callback will read beyond the entry.
// It must change nothing and not wait for memory.
func (t *Table[K, V]) SetVictimHint(fn func(k *K)) { t.victim = fn }

// SetEvict sets the callback that sees each evicted entry before its slot is reused. It must
// not modify the table. It is not called by Delete.
func (t *Table[K, V]) SetEvict(fn func(k *K, v *V)) { t.evict = fn }

// Len returns the number of entries.
func (t *Table[K, V]) Len() int { return int(t.Count) }

// Cap returns the capacity.
func (t *Table[K, V]) Cap() int { return int(t.Max) }

// Slots returns how many slots are allocated (for memory accounting).
func (t *Table[K, V]) Slots() int { return int(t.slots) }

// Evictions returns how many entries were evicted to make room for new keys.
func (t *Table[K, V]) Evictions() uint64 { return t.Evicted }

// Find returns k's slot, -1 when absent. It does not change recency. k is hashed via
// scratch: a pointer to a caller's variable would make it escape to the heap on every call.
func (t *Table[K, V]) Find(k K) int32 {
	t.scratch = k
	i, _ := t.find(k, t.hash(&t.scratch))
	return i
}

// Warm reads the index words a touch of a key with hash h reads first and, if one has its
// hash, requests every line of that entry (prefetch: no waiting). A caller about to touch
// several keys requests their index words first (Prefetch), then warms them all, so that
// their cache misses overlap instead of coming one after another. It reports whether the
// key is probably present (an entry has its hash): a caller may warm evictions (WarmEvict)
// for the others. Warm changes nothing.
func (t *Table[K, V]) Warm(h uint64) (likely bool) {
	mask := uint64(len(t.index) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		v := t.index[p]
		if v == 0 {
			return false
		}
		if uint32(v>>32) == uint32(h) {
			prefetch.Span(unsafe.Pointer(t.ent(indexSlot(v))), unsafe.Sizeof(TableEntry[K, V]{}))
			return true
		}
	}
}

// Prefetch starts loading the index word where a probe for hash h begins, without waiting:
// a group's prefetches overlap, and its Warm calls then find the words on their way.
func (t *Table[K, V]) Prefetch(h uint64) {
	if len(t.index) > 0 {
		prefetch.Line(unsafe.Pointer(&t.index[h&uint64(len(t.index)-1)]))
	}
}

// WarmEvict is Warm for the slots that inserting n new keys takes. When the table is full
// it loads the n least recently touched entries and their index words (walking the LRU list
// from its tail) and requests their values (the eviction callback reads them); before, it
// requests the never-used slots the inserts will fill (warmFresh). The same rules apply.
func (t *Table[K, V]) WarmEvict(n int) uint32 {
	if !t.evicts() {
		t.warmFresh(n)
		return 0
	}
	if n <= t.aheadN {
		return 0 // Ahead's walk warmed the victims
	}
	var x uint32
	for i := t.Tail; i != nilIdx && n > 0; n-- {
		e := t.ent(i)
		x ^= uint32(t.index[t.requestVictim(e)])
		i = e.Prev
	}
	return x
}

// warmFresh requests the never-used slots that the next n inserts take, when no deleted
// slot comes first. They are cold: a chunk was zeroed when allocated, the reserved
// region's huge pages when first touched, 2 MiB at a time, long before an insert reaches
// them. Each slot is requested once (freshWarm), so calls for overlapping groups cost
// nothing twice; past the chunks, only the reserved region's slots have an address yet.
func (t *Table[K, V]) warmFresh(n int) {
	if t.free != nilIdx {
		return
	}
	i := max(t.fresh, t.freshWarm)
	end := int32(min(int(t.fresh)+n, int(t.Max)))
	for ; i < end; i++ {
		var p unsafe.Pointer
		switch {
		case i < t.slots:
			p = unsafe.Pointer(t.ent(i))
		case t.region != nil:
			p = unsafe.Pointer(&t.region[i])
		default:
			end = i
		}
		if p != nil {
			prefetch.Span(p, unsafe.Sizeof(TableEntry[K, V]{}))
		}
	}
	t.freshWarm = max(t.freshWarm, end)
}

// evicts reports whether an insert evicts: the table is full, no slot free or never used.
func (t *Table[K, V]) evicts() bool {
	return t.free == nilIdx && t.fresh == t.slots && t.slots == t.Max
}

// requestVictim requests what evicting e reads beyond its index word (the entry, with the
// value the eviction callback reads, and the index line after the word: unlinking shifts
// back the words after the key's up to an empty one, often into the next line; a flood's
// evictions stalled there, on 62 % of indexUnlink's time) and returns the word's position.
func (t *Table[K, V]) requestVictim(e *TableEntry[K, V]) (home uint64) {
	mask := uint64(len(t.index) - 1)
	home = uint64(e.hash) & mask
	prefetch.Line(unsafe.Pointer(&t.index[(home|7+1)&mask]))
	prefetch.Span(unsafe.Pointer(e), unsafe.Sizeof(*e))
	return home
}

// Ahead takes one step of a walk of the LRU list ahead of the evictions, when the table is
// full: it reads the entry the previous step requested, requests its value and index words
// (an eviction reads them), and requests the next. Called once per packet, the walk stays
// up to aheadMax victims ahead of a flood that evicts at every packet, each of its loads
// a packet after its request: an eviction no longer waits for the tail entry, and the
// entries' chain of Prev links, which WarmEvict walked one cache miss after another, is
// followed at the pace of the packets. It changes nothing but hints.
func (t *Table[K, V]) Ahead() {
	if t.aheadN == aheadMax || !t.evicts() {
		return
	}
	i := t.cursor
	if t.aheadN == 0 {
		i = t.Tail // (re)start at the tail
	}
	if i < 0 || i >= t.slots {
		return // nilIdx: the walk reached the head
	}
	e := t.ent(i)
	t.ahead[(t.aheadAt+t.aheadN)%aheadMax] = i
	t.aheadN++
	prefetch.Line(unsafe.Pointer(&t.index[t.requestVictim(e)]))
	if t.victim != nil {
		t.victim(&e.Key)
	}
	if t.cursor = e.Prev; t.cursor != nilIdx {
		prefetch.Line(unsafe.Pointer(t.ent(t.cursor)))
	}
}

// aheadEvict notes the eviction of slot i, the tail: the walk's first victim if it is i,
// else the walk went stale (an entry of it touched or deleted) and starts again.
func (t *Table[K, V]) aheadEvict(i int32) {
	if t.aheadN > 0 && t.ahead[t.aheadAt] == i {
		t.aheadAt = (t.aheadAt + 1) % aheadMax
		t.aheadN--
	} else {
		t.aheadN = 0
	}
}

// find returns the slot of k, whose hash is h, or -1, and the index position where the
// probe ended (k's word, or the empty word where it would go).
func (t *Table[K, V]) find(k K, h uint64) (int32, uint64) {
	mask := uint64(len(t.index) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		v := t.index[p]
		if v == 0 {
			return nilIdx, p
		}
		if uint32(v>>32) == uint32(h) {
			if i := indexSlot(v); t.ent(i).Key == k {
				return i, p
			}
		}
	}
}

// Touch returns the value for k, inserting a zero V when absent (created=true), and marks the
// entry most recently used. When the table is full the least recently touched entry is evicted
// first: the evict callback (if set) sees its key and value before the slot is reused.
// The pointer stays valid until the entry is evicted or deleted (growth moves no entry).
func (t *Table[K, V]) Touch(k K) (v *V, created bool) {
	i, created := t.TouchSlot(k)
	return &t.ent(i).Val, created
}

// TouchSlot is Touch returning the entry's slot number instead of a pointer; At reads it.
func (t *Table[K, V]) TouchSlot(k K) (slot int32, created bool) {
	t.scratch = k
	return t.touch(k, t.hash(&t.scratch))
}

// TouchSlotHashed is TouchSlot for a caller that has k's hash already (the value the
// table's hash function gives for k), so that one hash per key serves the table and, say,
// a sketch. A different value breaks the table.
func (t *Table[K, V]) TouchSlotHashed(k K, hash uint64) (slot int32, created bool) {
	return t.touch(k, hash)
}

func (t *Table[K, V]) touch(k K, hash uint64) (int32, bool) {
	i, _ := t.find(k, hash)
	if i != nilIdx {
		// Within the slack an entry keeps its place: moving it writes both its neighbours
		// and the head, three random lines, for an order that changes nothing yet.
		if i != t.Head && t.clock-t.ent(i).stamp >= t.slack {
			t.unlinkLRU(i)
			t.pushFront(i)
		}
		return i, false
	}
	i, used := t.alloc()
	e := t.ent(i)
	e.Key = k
	e.hash = uint32(hash)
	if used {
		// Only an evicted entry's value needs clearing: fresh slots are zero memory and
		// Delete zeroes the slots it frees. Not writing a large V here leaves the pages of
		// a fresh slot's unused fields untouched.
		var zero V
		e.Val = zero
	}
	// After alloc: evicting may have shifted the words of this very probe, growing rebuilt
	// the index.
	indexInsert(t.index, uint32(hash), i)
	t.pushFront(i)
	t.Count++
	return i, true
}

// At returns the key and value in slot i (0 <= i < Slots()), live or not: a slot that holds
// no entry has a zero or stale value, so scans over slots must recognise live values
// themselves (the pipeline marks them with a window generation).
func (t *Table[K, V]) At(i int32) (*K, *V) {
	e := t.ent(i)
	return &e.Key, &e.Val
}

// alloc returns an unused slot, evicting the least recently touched entry when full;
// used reports an evicted slot (whose value is not zero).
func (t *Table[K, V]) alloc() (i int32, used bool) {
	if i = t.free; i != nilIdx {
		t.free = t.ent(i).Next
		return i, false
	}
	if t.fresh == t.slots && t.slots < t.Max {
		t.grow()
	}
	if t.fresh < t.slots {
		t.fresh++
		return t.fresh - 1, false
	}
	i = t.Tail
	t.aheadEvict(i)
	e := t.ent(i)
	if t.evict != nil {
		t.evict(&e.Key, &e.Val)
	}
	indexUnlink(t.index, e.hash, i)
	t.unlinkLRU(i)
	t.Count--
	t.Evicted++
	return i, true
}

// Get returns the value for k, nil when absent. It does not change recency.
func (t *Table[K, V]) Get(k K) *V {
	if i := t.Find(k); i != nilIdx {
		return &t.ent(i).Val
	}
	return nil
}

// Delete removes k, reporting whether it was present. The evict callback is not called.
func (t *Table[K, V]) Delete(k K) bool {
	i := t.Find(k)
	if i == nilIdx {
		return false
	}
	t.remove(i)
	return true
}

// DeleteAt removes the entry in slot i (a slot At or TouchSlot gave, still in use): a caller
// that holds the slot spares the key's hash and look-up. The evict callback is not called.
func (t *Table[K, V]) DeleteAt(i int32) {
	t.remove(i)
}

// remove unlinks slot i and frees it.
func (t *Table[K, V]) remove(i int32) {
	indexUnlink(t.index, t.ent(i).hash, i)
	t.unlinkLRU(i)
	t.Count--
	// Zero the slot so the value's memory (slices inside V) can be collected.
	*t.ent(i) = TableEntry[K, V]{Prev: nilIdx, Next: t.free}
	t.free = i
}

// Oldest returns the least recently touched entry (for expiry sweeps), ok=false when empty.
func (t *Table[K, V]) Oldest() (k *K, v *V, ok bool) {
	if t.Tail == nilIdx {
		return nil, nil, false
	}
	e := t.ent(t.Tail)
	return &e.Key, &e.Val, true
}

// Range calls fn for every entry, most recently touched first, until fn returns false.
// fn must not modify the table.
func (t *Table[K, V]) Range(fn func(k *K, v *V) bool) {
	for i := t.Head; i != nilIdx; i = t.ent(i).Next {
		if e := t.ent(i); !fn(&e.Key, &e.Val) {
			return
		}
	}
}

func (t *Table[K, V]) unlinkLRU(i int32) {
	e := t.ent(i)
	if e.Prev != nilIdx {
		t.ent(e.Prev).Next = e.Next
	} else {
		t.Head = e.Next
	}
	if e.Next != nilIdx {
		t.ent(e.Next).Prev = e.Prev
	} else {
		t.Tail = e.Prev
	}
}

func (t *Table[K, V]) pushFront(i int32) {
	e := t.ent(i)
	t.clock++
	e.stamp = t.clock
	e.Prev, e.Next = nilIdx, t.Head
	if t.Head != nilIdx {
		t.ent(t.Head).Prev = i
	} else {
		t.Tail = i
	}
	t.Head = i
}

// Restore makes a table whose exported fields were decoded from a checkpoint usable again:
// it checks the LRU list, rebuilds the index and free list with hash, and rejects a
// corrupt state (bad links, duplicate keys) with an error instead of failing later.
// The evict callback must be set again with SetEvict. After an error the table is unusable.
func (t *Table[K, V]) Restore(hash func(*K) uint64) error {
	if hash == nil {
		return errors.New("restore table: nil hash function")
	}
	t.aheadN = 0
	n := 0
	for c, chunk := range t.Chunks {
		if len(chunk) > chunkSlots || len(chunk) < chunkSlots && c != len(t.Chunks)-1 {
			return fmt.Errorf("restore table: chunk %d has %d slots", c, len(chunk))
		}
		n += len(chunk)
	}
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
		if t.ent(i).Prev != prev {
			return fmt.Errorf("restore table: slot %d links back to %d, want %d", i, t.ent(i).Prev, prev)
		}
		live[i] = true
		prev, i = i, t.ent(i).Next
	}
	if i != nilIdx || t.Tail != prev {
		return fmt.Errorf("restore table: LRU list of %d entries does not end at tail %d", t.Count, t.Tail)
	}
	t.hash = hash
	t.index = t.newIndex(n)
	t.slots, t.free, t.fresh, t.freshWarm = int32(n), nilIdx, int32(n), int32(n)
	for j := int32(n - 1); j >= 0; j-- {
		e := t.ent(j)
		if !live[j] {
			*e = TableEntry[K, V]{Prev: nilIdx, Next: t.free}
			t.free = j
			continue
		}
		h := t.hash(&e.Key)
		e.hash, e.stamp = uint32(h), 0
		if i, _ := t.find(e.Key, h); i != nilIdx {
			return fmt.Errorf("restore table: key of slot %d appears twice", j)
		}
		indexInsert(t.index, e.hash, j)
	}
	// The saved stamps belong to another clock: each entry moves at its first touch, as
	// under exact LRU.
	t.clock = t.slack
	return nil
}

// Prefault commits now the memory the table would take as it fills (every slot to its
// capacity, and its largest index) and returns its size in bytes: a daemon that fills its
// table anyway then pays the kernel's zeroing of those pages at start, not while a flood
// of new sources comes in (a fresh daemon spent about half again as much CPU per packet on
// its first flood), and a machine short of memory says so at start. Only memory reserved
// outside the Go heap (Linux; slots or an index of 2 MiB and more) is committed: for a
// table without any it returns 0. The table's contents do not change.
func (t *Table[K, V]) Prefault() (int, error) {
	n := 0
	for _, r := range []struct {
		p    unsafe.Pointer
		size int
	}{
		{unsafe.Pointer(unsafe.SliceData(t.region)), len(t.region) * int(unsafe.Sizeof(TableEntry[K, V]{}))},
		{unsafe.Pointer(unsafe.SliceData(t.indexRegion)), len(t.indexRegion) * 8},
	} {
		if r.size == 0 {
			continue
		}
		if err := populate(r.p, r.size); err != nil {
			return n, fmt.Errorf("commit %d bytes of the table's memory: %w", r.size, err)
		}
		n += r.size
	}
	return n, nil
}
