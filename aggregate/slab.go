package aggregate

import (
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
)

// Slab hands out blocks of 8 to 8192 words from arenas of plain uint64s, addressed by a
// uint32 reference. Values that refer to blocks by reference (Distinct) hold no Go pointer,
// so the large per-source tables holding them are never scanned by the garbage collector
// and are copied without write barriers when they grow. Freed blocks are reused; a Slab
// never holds more than the peak of blocks in use. Not safe for concurrent use: each worker
// has its own.
type Slab struct {
	Chunks [][]uint64          // slabChunk words each
	Free   [slabClasses]uint32 // per size class, the first free block (0: none)
	Next   uint32              // first never-used word
	InUse  [slabClasses]uint32 // blocks handed out and not freed, per class
	// BigLimit bounds the words in blocks larger than slabBigWords (exact sets of more than
	// 256 values) in use at once; 0 means DefaultBigLimit. Past it, Distinct estimates.
	BigLimit uint64
	Big      uint64 // words in such blocks now
	// Limit bounds the words of memory the slab hands out (its chunks), 0: none: past it a
	// block is given only from the freed ones of its size (TryAlloc), and a Distinct that
	// gets none keeps a small sketch inline. Set by the owner (configured, not state).
	Limit uint64
	// Refused counts the blocks TryAlloc could not give (not state).
	Refused uint64

	scratch []uint64 // a copy of a set being rebuilt (Distinct), reused: not state
	fresh   []uint64 // reserved memory (Reserve) not yet handed out as chunks: not state

	// Sketch register raises waiting to be applied (Distinct.AddLater): every other method
	// applies them first, so no read or reuse of a block can miss one. Not state: Save
	// writes them out applied.
	pend  [slabPendMax]slabPend
	npend int
}

// slabPend raises the byte at bit shift of word w (an absolute word reference) to r.
type slabPend struct {
	w     uint32
	shift uint8
	r     uint8
}

// slabPendMax is how many register raises wait: enough for the cache misses of a group of
// packets' sketch adds to overlap (a flood's sketches of hundreds of destinations do not
// stay in a 1 MiB cache beside the source table).
const slabPendMax = 64

// raiseLater raises the byte at bit shift of word w to at least r once the raises before
// it are applied, asking for the word's line now.
func (s *Slab) raiseLater(w uint32, shift, r uint8) {
	if s.npend == slabPendMax {
		s.settle()
	}
	prefetch.Write(unsafe.Pointer(&s.Chunks[w/slabChunk][w%slabChunk]))
	s.pend[s.npend] = slabPend{w: w, shift: shift, r: r}
	s.npend++
}

// settle applies the waiting register raises. A max is order-free, so applying them late
// gives the words the values applying them at once would have. Not inlined, so that
// Settle, in every method, stays one test.
//
//go:noinline
func (s *Slab) settle() {
	for _, p := range s.pend[:s.npend] {
		raiseRegister(&s.Chunks[p.w/slabChunk][p.w%slabChunk], p.shift, p.r)
	}
	s.npend = 0
}

// Settle applies the register raises that wait (see Distinct.AddLater). Every method of
// the slab does that first; call it before reading the slab's words any other way.
func (s *Slab) Settle() {
	if s.npend > 0 {
		s.settle()
	}
}

// copyOut copies v into the slab's scratch buffer, which stays valid until the next call.
func (s *Slab) copyOut(v []uint64) []uint64 {
	s.Settle()
	if cap(s.scratch) < len(v) {
		s.scratch = make([]uint64, len(v), max(len(v), slabMaxWords))
	}
	s.scratch = s.scratch[:len(v)]
	copy(s.scratch, v)
	return s.scratch
}

// slabBigWords is the largest block size not counted against BigLimit.
const slabBigWords = 256

// DefaultBigLimit is the default Slab.BigLimit: 8 M words (64 MiB), room for 1 024 exact
// sets of more than 3 072 values (tables of 8 192 slots) at once, 2 048 of 1 537-3 072.
const DefaultBigLimit = 8 << 20

// bigOK reports whether a block of `from` words may be replaced by one of `to` words
// within BigLimit.
func (s *Slab) bigOK(from, to int) bool {
	if to <= slabBigWords {
		return true
	}
	lim := s.BigLimit
	if lim == 0 {
		lim = DefaultBigLimit
	}
	held := uint64(0)
	if from > slabBigWords {
		held = uint64(from)
	}
	return s.Big-held+uint64(to) <= lim
}

const (
	slabMinWords = 8
	slabMaxWords = 8192
	slabClasses  = 11      // 8, 16, 32, ... 8192 words
	slabChunk    = 1 << 16 // words per arena chunk (512 KiB), a multiple of slabMaxWords
)

// slabClass returns the class of a block of words words (a power of two from 8 to 8192).
func slabClass(words int) int { return bits.Len(uint(words)) - 4 }

// Alloc returns a zeroed block of words words (a power of two from 8 to 8192), whatever
// Limit says.
func (s *Slab) Alloc(words int) uint32 {
	s.Settle()
	return s.alloc(words)
}

// TryAlloc returns a zeroed block of words words, or 0 (counted in Refused) when none of
// that size is free and a new one would take the slab's memory past Limit.
func (s *Slab) TryAlloc(words int) uint32 {
	s.Settle()
	if s.Limit > 0 && s.Free[slabClass(words)] == 0 && uint64(s.newRef(words))+uint64(words) > s.Limit {
		s.Refused++
		return 0
	}
	return s.alloc(words)
}

// newRef is where a new block of words words would start: past the words handed out,
// aligned to its size (so that none spans two chunks); reference 0 means "no block".
func (s *Slab) newRef(words int) uint32 {
	return (max(s.Next, slabMinWords) + uint32(words) - 1) &^ (uint32(words) - 1)
}

func (s *Slab) alloc(words int) uint32 {
	c := slabClass(words)
	s.InUse[c]++
	if words > slabBigWords {
		s.Big += uint64(words)
	}
	if ref := s.Free[c]; ref != 0 {
		b := s.Words(ref, words)
		s.Free[c] = uint32(b[0])
		clear(b)
		return ref
	}
	ref := s.newRef(words)
	s.Next = ref + uint32(words)
	for int(s.Next) > len(s.Chunks)*slabChunk {
		s.Chunks = append(s.Chunks, s.newChunk())
	}
	return ref
}

// Release returns a block to the slab.
func (s *Slab) Release(ref uint32, words int) {
	if ref == 0 {
		return
	}
	s.Settle()
	c := slabClass(words)
	s.InUse[c]--
	if words > slabBigWords {
		s.Big -= uint64(words)
	}
	b := s.Words(ref, words)
	b[0] = uint64(s.Free[c])
	s.Free[c] = ref
}

// Words returns the block's words.
func (s *Slab) Words(ref uint32, words int) []uint64 {
	s.Settle()
	return s.words(ref, words)
}

// words is Words without Settle, for callers that settled already.
func (s *Slab) words(ref uint32, words int) []uint64 {
	off := int(ref % slabChunk)
	return s.Chunks[ref/slabChunk][off : off+words : off+words]
}

// Blocks returns the number of blocks in use.
func (s *Slab) Blocks() int {
	n := 0
	for _, b := range s.InUse {
		n += int(b)
	}
	return n
}

// Bytes returns the memory the slab holds (for memory accounting).
func (s *Slab) Bytes() int { return len(s.Chunks) * slabChunk * 8 }

// Validate checks a block reference (e.g. decoded from a checkpoint) against the slab.
func (s *Slab) Validate(ref uint32, words int) error {
	if words < slabMinWords || words > slabMaxWords || words&(words-1) != 0 {
		return fmt.Errorf("slab: block of %d words", words)
	}
	if ref == 0 || ref%uint32(words) != 0 || uint64(ref)+uint64(words) > uint64(s.Next) {
		return fmt.Errorf("slab: block %d of %d words outside the %d words in use", ref, words, s.Next)
	}
	return nil
}

// slabRegion is how many chunks newChunk reserves at a time: a huge page's worth.
const slabRegion = hugePage / (slabChunk * 8)

// hugePage is the size of a transparent huge page on Linux (x86-64, arm64 with 4 KiB
// pages), which Reserve rounds its regions up to; the slab's regions are one each.
const hugePage = 2 << 20

// newChunk returns a zeroed chunk, cut from memory reserved outside the Go heap when it
// can (Reserve): the blocks are read at random, one source's set after another's, and in
// the heap's 4 KiB pages each chunk costs 128 TLB entries and page faults where a huge page
// holds four chunks. The slab (its owner) outlives its chunks: a restored slab's chunks
// are in the heap.
func (s *Slab) newChunk() []uint64 {
	if len(s.fresh) == 0 {
		s.fresh = ReserveOrMake[uint64](s, slabRegion*slabChunk)
	}
	c := s.fresh[:slabChunk:slabChunk]
	s.fresh = s.fresh[slabChunk:]
	return c
}
