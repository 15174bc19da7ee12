package aggregate

import (
	"math/rand/v2"
	"testing"
)

// TestSlabAllocRelease checks blocks against a model: every block in use is disjoint from
// the others, zeroed when handed out, aligned to its size (so none spans two chunks), and
// released blocks are reused before the slab grows.
func TestSlabAllocRelease(t *testing.T) {
	var s Slab
	type block struct {
		ref   uint32
		words int
		mark  uint64
	}
	var live []block
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			b := live[i]
			for j, w := range s.Words(b.ref, b.words) {
				if w != b.mark {
					t.Fatalf("step %d: block %d word %d = %#x, want %#x (overwritten)", step, b.ref, j, w, b.mark)
				}
			}
			s.Release(b.ref, b.words)
			live = append(live[:i], live[i+1:]...)
			continue
		}
		words := 8 << rng.IntN(slabClasses)
		next := s.Next
		ref := s.Alloc(words)
		if ref == 0 || ref%uint32(words) != 0 || ref/slabChunk != (ref+uint32(words)-1)/slabChunk {
			t.Fatalf("step %d: block %d of %d words is misplaced", step, ref, words)
		}
		if s.Free[slabClass(words)] != 0 && s.Next != next {
			t.Fatalf("step %d: the slab grew while a free block of the class existed", step)
		}
		mark := rng.Uint64() | 1
		for i, w := range s.Words(ref, words) {
			if w != 0 {
				t.Fatalf("step %d: new block word %d is %#x, not zero", step, i, w)
			}
		}
		b := s.Words(ref, words)
		for i := range b {
			b[i] = mark
		}
		live = append(live, block{ref, words, mark})
	}
	if s.Blocks() != len(live) {
		t.Errorf("Blocks %d, live %d", s.Blocks(), len(live))
	}
	for _, b := range live {
		s.Release(b.ref, b.words)
	}
	if s.Blocks() != 0 {
		t.Errorf("Blocks %d after releasing everything", s.Blocks())
	}
	if err := s.Validate(s.Next+8, 8); err == nil {
		t.Error("Validate accepts a block beyond the slab")
	}
}

// TestTableMappedChunksOutsideTheHeap: a pointer-free table large enough is backed by a
// reserved mapping on Linux, and behaves the same.
func TestTableLargePointerFree(t *testing.T) {
	tb := NewTable[uint64, [8]uint64](1<<16, func(k *uint64) uint64 { return *k * 0x9E3779B97F4A7C15 })
	for i := range uint64(3 << 16) {
		v, _ := tb.Touch(i)
		v[0] = i
	}
	if tb.Len() != 1<<16 || tb.Evictions() != 2<<16 {
		t.Fatalf("Len %d, evictions %d", tb.Len(), tb.Evictions())
	}
	for i := uint64(2 << 16); i < 3<<16; i++ {
		if v := tb.Get(i); v == nil || v[0] != i {
			t.Fatalf("key %d lost", i)
		}
	}
}
