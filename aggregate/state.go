package aggregate

import (
	"github.com/telescope-dev/telescope/checkpoint"
)

// Save appends the table's state (its exported fields; chunks as memory) to e. K and V
// must be pointer-free (the caller puts them in the file's layout fingerprint).
func (t *Table[K, V]) Save(e *checkpoint.Encoder) {
	e.I64(int64(t.Max))
	e.I64(int64(t.Head))
	e.I64(int64(t.Tail))
	e.I64(int64(t.Count))
	e.U64(t.Evicted)
	e.Len(int(t.slots))
	for _, c := range t.Chunks {
		checkpoint.Slice(e, c)
	}
}

// Load replaces the state of t (made by NewTable with the same capacity, hash and evict
// callback) by one written by Save, then checks it (Restore). After an error t is unusable.
func (t *Table[K, V]) Load(d *checkpoint.Decoder) {
	max := d.I64()
	head, tail, count := int32(d.I64()), int32(d.I64()), int32(d.I64())
	evicted := d.U64()
	if d.Err() == nil && max != int64(t.Max) {
		d.Fail("table capacity %d, want %d", max, t.Max)
	}
	slots := d.Len(0, int(t.Max))
	if d.Err() != nil {
		return
	}
	// Grow while empty: the index grow builds is empty, Restore rebuilds it from the
	// entries read below.
	t.Head, t.Tail, t.Count = nilIdx, nilIdx, 0
	for int(t.slots) < slots {
		t.grow()
	}
	t.Head, t.Tail, t.Count, t.Evicted = head, tail, count, evicted
	if int(t.slots) != slots {
		d.Fail("table of %d slots, this one has %d", slots, t.slots)
		return
	}
	for _, c := range t.Chunks {
		checkpoint.SliceInto(d, c)
	}
	if d.Err() != nil {
		return
	}
	if err := t.Restore(t.hash); err != nil {
		d.Fail("%v", err)
	}
}

// Save appends the summary's state to e.
func (t *TopK) Save(e *checkpoint.Encoder) {
	e.Len(t.Capacity)
	e.I64(int64(t.MinGroup))
	e.I64(int64(t.FreeGroup))
	e.U64(t.Sum)
	checkpoint.Slice(e, t.Entries)
	checkpoint.Slice(e, t.Groups)
	checkpoint.Raw(e, &t.Dropped)
}

// Load replaces the state of t (same capacity) by one written by Save, and checks it.
func (t *TopK) Load(d *checkpoint.Decoder) {
	if c := d.Len(0, maxTableCap); d.Err() == nil && c != t.Capacity {
		d.Fail("top-k capacity %d, want %d", c, t.Capacity)
		return
	}
	t.MinGroup, t.FreeGroup = int32(d.I64()), int32(d.I64())
	t.Sum = d.U64()
	t.Entries = checkpoint.ReadSlice[TopKEntry](d, t.Capacity)
	checkpoint.SliceInto(d, t.Groups)
	checkpoint.RawInto(d, &t.Dropped)
	if d.Err() != nil {
		return
	}
	if err := t.Restore(); err != nil {
		d.Fail("%v", err)
	}
}

// Save appends the sketch to e.
func (h *HLL) Save(e *checkpoint.Encoder) {
	e.U64(uint64(h.P))
	checkpoint.Slice(e, h.Reg)
}

// Load replaces the sketch (same precision) by one written by Save, and checks it.
func (h *HLL) Load(d *checkpoint.Decoder) {
	if p := d.U64(); d.Err() == nil && p != uint64(h.P) {
		d.Fail("HLL precision %d, want %d", p, h.P)
		return
	}
	checkpoint.SliceInto(d, h.Reg)
	if d.Err() != nil {
		return
	}
	if err := h.Validate(); err != nil {
		d.Fail("%v", err)
	}
}

// Save appends the slab to e.
func (s *Slab) Save(e *checkpoint.Encoder) {
	s.Settle()
	checkpoint.Raw(e, &s.Free)
	e.U64(uint64(s.Next))
	checkpoint.Raw(e, &s.InUse)
	e.U64(s.BigLimit)
	e.U64(s.Big)
	e.Len(len(s.Chunks))
	for _, c := range s.Chunks {
		checkpoint.Elems(e, c)
	}
}

// Load replaces the slab by one written by Save. Block references into it are checked by
// the owners' Distinct.Validate; here the free lists are.
func (s *Slab) Load(d *checkpoint.Decoder) {
	s.npend = 0 // raises of the replaced contents
	checkpoint.RawInto(d, &s.Free)
	s.Next = uint32(d.U64())
	checkpoint.RawInto(d, &s.InUse)
	s.BigLimit, s.Big = d.U64(), d.U64()
	n := d.Len(slabChunk*8, 1<<16)
	if d.Err() != nil {
		return
	}
	if uint64(s.Next) > uint64(n)*slabChunk {
		d.Fail("slab: %d words in use in %d chunks", s.Next, n)
		return
	}
	s.Chunks = make([][]uint64, n)
	for i := range s.Chunks {
		s.Chunks[i] = make([]uint64, slabChunk)
		checkpoint.ElemsInto(d, s.Chunks[i])
	}
	for c := range s.Free {
		words := slabMinWords << c
		for ref, hops := s.Free[c], 0; ref != 0; hops++ {
			if err := s.Validate(ref, words); err != nil || hops > int(s.Next) {
				d.Fail("slab: free list of %d-word blocks broken at %d", words, ref)
				return
			}
			ref = uint32(s.Words(ref, words)[0])
		}
	}
}
