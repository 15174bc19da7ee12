package aggregate

import (
	"fmt"
	"math/bits"
	"slices"
)

// DistinctExactLimit is how many distinct values Distinct counts exactly (unless its slab's
// budget for large sets is spent: see Slab.BigLimit).
const DistinctExactLimit = 4096

const (
	distinctP      = 10                   // sketch precision: 1024 registers, ~3.3 % error (1.04/sqrt(1024))
	distinctWords  = (1 << distinctP) / 8 // registers packed 8 per uint64: 1 KiB
	distinctMinSet = 8                    // first open-addressing table size
	// The last table: twice the values it may hold, so that it is at most half full. Filled
	// to the end, a table of 4 096 slots took ~50 linear probes an insert past 1 536 values.
	distinctMaxSet = 2 * DistinctExactLimit
	distinctRegMax = 64 - distinctP + 1 // largest register value
	distinctInline = 4                  // values held without heap memory
)

// Distinct counts distinct 64-bit hashes exactly up to DistinctExactLimit values, then
// switches to a HyperLogLog with p=10 (1 KiB, ~3 % error); it switches earlier, past 192
// values (a set of 256 slots 3/4 full), when its slab's budget for large sets
// (Slab.BigLimit) is spent. The zero value is ready to use and holds no memory. Its 40 bytes are plain fields without pointers (for checkpoints, and so the tables
// holding them are not scanned by the garbage collector); treat them as read-only.
//
// When its slab's Limit is reached and no block of the size it needs is free, a Distinct
// that needs one switches instead to a sketch of 64 four-bit registers kept in Small (~13 %
// error; Exact is false), so that the slab's memory stays bounded whatever the traffic.
//
// Phases: the first 4 values live in Small; then a block of the caller's Slab (Ref, 1<<Shift
// words) holds an open-addressing set (0 marks an empty slot, so the value 0 is a flag)
// doubling from 8 to 8192 slots, at most 3/4 full (the last one at most half); the 4097th
// distinct value turns the block into the sketch's 1024 one-byte registers, packed 8 per
// word. After the switch N keeps the exact count reached, a floor for the estimate. Every
// method that may touch the block takes the Slab; Reset returns the block to it.
type Distinct struct {
	Small [distinctInline]uint64
	Ref   uint32 // slab block (0: none)
	N     uint16 // distinct values seen (exact phase), or seen before the switch (sketch)
	// Shift is the block's size: 1<<Shift words (blocks are powers of two). With the flags
	// in one byte beside it, a Distinct is 40 bytes, not 48: three of them are in every
	// source's table entry.
	Shift uint8
	Flags uint8 // distinctZero, distinctSketch
}

// Bits of Distinct.Flags.
const (
	distinctZero   = 1 << iota // the value 0 was seen (set phase)
	distinctSketch             // switched to the HyperLogLog
	distinctTiny               // switched to the inline sketch (the slab's Limit was reached)
)

// The inline sketch, for a Distinct that needs a block when its slab's Limit is reached:
// 64 registers of 4 bits in Small (a HyperLogLog with p=6 over hashes whose ranks saturate
// at 15, Ertl's q=14: ~13 % error, 1.04/sqrt(64), and unbiased up to about a million
// values), so that memory stays bounded whatever the traffic, at an estimate's cost.
const (
	tinyP   = 6
	tinyQ   = 14
	tinyMax = tinyQ + 1 // the largest rank kept
)

// distinctMaxShift is the largest valid Shift (the largest set).
var distinctMaxShift = uint8(bits.Len(distinctMaxSet) - 1)

func (d *Distinct) zero() bool   { return d.Flags&distinctZero != 0 }
func (d *Distinct) sketch() bool { return d.Flags&distinctSketch != 0 }
func (d *Distinct) tiny() bool   { return d.Flags&distinctTiny != 0 }

// size is the block's words, 0 without a block.
func (d *Distinct) size() int {
	if d.Ref == 0 || d.Shift > distinctMaxShift {
		return 0
	}
	return 1 << d.Shift
}

// vals returns the block, nil when there is none. It does not settle the slab: every
// method that reads or writes the block settles it first.
func (d *Distinct) vals(s *Slab) []uint64 {
	if d.Ref == 0 {
		return nil
	}
	return s.words(d.Ref, d.size())
}

// setBlock replaces the block by a new zeroed one of size words and returns it; nil, with
// no block left, when the slab refuses one (its Limit).
func (d *Distinct) setBlock(s *Slab, size int) []uint64 {
	s.Release(d.Ref, d.size())
	d.Ref, d.Shift = s.TryAlloc(size), uint8(bits.Len(uint(size))-1)
	if d.Ref == 0 {
		d.Shift = 0
		return nil
	}
	return s.Words(d.Ref, size)
}

// toTiny replaces d by the inline sketch of vals (0 among them when zero), after seen
// distinct values, and adds x (a value not among them).
func (d *Distinct) toTiny(vals []uint64, zero bool, seen uint16, x uint64) {
	*d = Distinct{Flags: distinctTiny, N: seen}
	for _, v := range vals {
		if v != 0 {
			d.addTiny(v)
		}
	}
	if zero {
		d.addTiny(0)
	}
	d.addTiny(x)
}

// addTiny raises x's register of the inline sketch; it reports whether it grew.
func (d *Distinct) addTiny(x uint64) bool {
	idx, r := hllSplit(x, tinyP)
	r = min(r, tinyMax)
	w, shift := &d.Small[idx/16], idx%16*4
	if uint8(*w>>shift&15) >= r {
		return false
	}
	*w = *w&^(15<<shift) | uint64(r)<<shift
	return true
}

// countTiny is the inline sketch's estimate.
func (d *Distinct) countTiny() uint64 {
	var c [tinyMax + 1]uint32
	for _, w := range d.Small {
		for range 16 {
			c[w&15]++
			w >>= 4
		}
	}
	return max(ertlEstimate(c[:], 1<<tinyP), uint64(d.N)+1)
}

// addSwitched adds x to the sketch d has just switched to (toSketch).
func (d *Distinct) addSwitched(s *Slab, x uint64) {
	if d.tiny() {
		d.addTiny(x)
		return
	}
	d.addSketch(d.vals(s), x)
}

// Add adds x, a well-mixed hash. In the exact phase it reports whether x was new; after the
// switch, whether a sketch register grew. It takes slab blocks only when the set grows (at
// the 5th, 7th, 13th, 25th, 49th and 97th value) and once at the switch.
func (d *Distinct) Add(s *Slab, x uint64) (added bool) {
	s.Settle()
	if d.sketch() {
		return d.addSketch(d.vals(s), x)
	}
	if d.tiny() {
		return d.addTiny(x)
	}
	vals := d.vals(s)
	if vals == nil {
		for _, v := range d.Small[:min(int(d.N), distinctInline)] {
			if v == x {
				return false
			}
		}
		if d.N < distinctInline {
			d.Small[d.N] = x
			d.N++
			return true
		}
		small := d.Small
		if vals = d.setBlock(s, distinctMinSet); vals == nil {
			d.toTiny(small[:], slices.Contains(small[:], 0), d.N, x)
			return true
		}
		for _, v := range small {
			d.insertNew(vals, v)
		}
		d.Small = [distinctInline]uint64{}
	}
	if x == 0 {
		if d.zero() {
			return false
		}
		if d.N >= DistinctExactLimit {
			d.toSketch(s)
			d.addSwitched(s, 0)
			return true
		}
		d.Flags, d.N = d.Flags|distinctZero, d.N+1
		return true
	}
	mask := uint64(len(vals) - 1)
	i := x & mask
	for range vals {
		switch vals[i] {
		case x:
			return false
		case 0:
			return d.insertAt(s, vals, x, i)
		}
		i = (i + 1) & mask
	}
	// Every slot is taken and none holds x: x is value number DistinctExactLimit+1.
	d.toSketch(s)
	d.addSwitched(s, x)
	return true
}

// AddAll adds every value of xs (well-mixed hashes, as Add takes) and ends as adding them
// one by one with Add would. In the sketch phase it updates the registers in one loop,
// without Add's per-value call, slab settling and phase checks (the hotspot's sets of a
// window's sources, hotWinSets, add thousands at a time).
func (d *Distinct) AddAll(s *Slab, xs []uint64) {
	s.Settle()
	for i, x := range xs {
		if d.tiny() {
			for _, x := range xs[i:] {
				d.addTiny(x)
			}
			return
		}
		if d.sketch() {
			vals := d.vals(s)
			if len(vals) < distinctWords { // only a corrupt checkpoint lacks registers
				return
			}
			vals = vals[:distinctWords]
			for _, x := range xs[i:] {
				// idx>>3 < distinctWords: no bounds check.
				idx, r := hllSplit(x, distinctP)
				raiseRegister(&vals[(idx>>3)&(distinctWords-1)], uint8(idx&7*8), r)
			}
			return
		}
		d.Add(s, x)
	}
}

// AddLater adds x like Add when the result is not needed: in the sketch phase the
// register's update waits in the slab (asked for from memory now, applied by the slab's
// next use or Settle), so that the cache misses of many adds to many sketches overlap
// instead of each stalling its packet. The sketch ends the same either way.
func (d *Distinct) AddLater(s *Slab, x uint64) {
	if !d.sketch() || d.Ref == 0 {
		d.Add(s, x)
		return
	}
	idx, r := hllSplit(x, distinctP)
	if idx/8 >= uint64(d.size()) { // only a corrupt checkpoint lacks registers
		return
	}
	s.raiseLater(d.Ref+uint32(idx/8), uint8(idx%8*8), r)
}

// insertAt stores x (known absent) at the empty slot i, growing the set or switching to the
// sketch when it is full.
func (d *Distinct) insertAt(s *Slab, vals []uint64, x, i uint64) bool {
	if d.N >= DistinctExactLimit {
		d.toSketch(s)
		d.addSwitched(s, x)
		return true
	}
	used := int(d.N)
	if d.zero() {
		used--
	}
	// Keep the load at most 3/4 while the set may still grow (the last size holds at most
	// DistinctExactLimit values: half its slots).
	if n := len(vals); (used+1)*4 > n*3 && n < distinctMaxSet {
		if !s.bigOK(n, 2*n) {
			// The slab's budget for large sets is spent: estimate from here on.
			d.toSketch(s)
			d.addSwitched(s, x)
			return true
		}
		old := s.copyOut(vals)
		grown := d.setBlock(s, 2*n)
		if grown == nil {
			// The slab's memory is spent: estimate inline from here on.
			d.toTiny(old[:n], d.zero(), d.N, x)
			return true
		}
		for _, v := range old[:n] {
			if v != 0 {
				d.insertNew(grown, v)
			}
		}
		d.insertNew(grown, x)
	} else {
		vals[i] = x
	}
	d.N++
	return true
}

// insertNew places a value known to be absent during a rebuild (no count, no growth).
func (d *Distinct) insertNew(vals []uint64, x uint64) {
	if x == 0 {
		d.Flags |= distinctZero
		return
	}
	mask := uint64(len(vals) - 1)
	i := x & mask
	for vals[i] != 0 {
		i = (i + 1) & mask
	}
	vals[i] = x
}

// toSketch replaces the full exact set by a sketch holding the same values.
func (d *Distinct) toSketch(s *Slab) {
	set := s.copyOut(d.vals(s))
	zero, seen := d.zero(), d.N
	sketch := d.setBlock(s, distinctWords)
	if sketch == nil {
		*d = Distinct{Flags: distinctTiny, N: seen}
		for _, v := range set {
			if v != 0 {
				d.addTiny(v)
			}
		}
		if zero {
			d.addTiny(0)
		}
		return
	}
	*d = Distinct{Ref: d.Ref, Shift: d.Shift, Flags: distinctSketch, N: seen}
	for _, v := range set {
		if v != 0 {
			d.addSketch(sketch, v)
		}
	}
	if zero {
		d.addSketch(sketch, 0)
	}
}

func (d *Distinct) addSketch(vals []uint64, x uint64) bool {
	idx, r := hllSplit(x, distinctP)
	if idx/8 >= uint64(len(vals)) { // only a corrupt checkpoint lacks registers
		return false
	}
	return raiseRegister(&vals[idx/8], uint8(idx%8*8), r)
}

// raiseRegister raises the one-byte register at bit shift of w (8 packed a word) to r if
// it is lower, and reports whether it was.
func raiseRegister(w *uint64, shift, r uint8) bool {
	if uint8(*w>>shift) >= r {
		return false
	}
	*w = *w&^(0xff<<shift) | uint64(r)<<shift
	return true
}

// Count returns the number of distinct values: exact while Exact, else the sketch's estimate,
// never below the exact count reached before the switch plus the value that caused it. After the switch it scans
// the 1 KiB sketch (about a microsecond): per-packet threshold checks above the exact limit
// should run only when Add reports a change.
func (d *Distinct) Count(s *Slab) uint64 {
	if d.tiny() {
		return d.countTiny()
	}
	if !d.sketch() {
		return uint64(d.N)
	}
	s.Settle()
	var c [distinctRegMax + 1]uint32
	vals := d.vals(s)
	for _, w := range vals {
		for range 8 {
			c[min(uint8(w), distinctRegMax)]++
			w >>= 8
		}
	}
	return max(ertlEstimate(c[:], 8*len(vals)), uint64(d.N)+1)
}

// Floor returns a lower bound of Count that costs nothing: the count while exact, else the
// exact count reached before the switch plus the value that caused it.
func (d *Distinct) Floor() uint64 {
	if d.sketch() || d.tiny() {
		return uint64(d.N) + 1
	}
	return uint64(d.N)
}

// Exact reports whether Count is exact (at most DistinctExactLimit values seen).
func (d *Distinct) Exact() bool { return !d.sketch() && !d.tiny() }

// Reset returns d to the zero value, returning its block to the slab.
func (d *Distinct) Reset(s *Slab) {
	s.Release(d.Ref, d.size())
	*d = Distinct{}
}

// Bytes returns the slab bytes d holds (for memory accounting), not counting d itself.
func (d *Distinct) Bytes() int { return d.size() * 8 }

// Validate reports whether d (e.g. decoded from a checkpoint) is consistent, so that a
// corrupt state is rejected before it miscounts.
func (d *Distinct) Validate(s *Slab) error {
	s.Settle()
	if d.tiny() {
		if d.Ref != 0 || d.Shift != 0 || d.Flags != distinctTiny || d.N > DistinctExactLimit {
			return fmt.Errorf("distinct: inline sketch with block %d of 2^%d words, flags %#x, count %d", d.Ref, d.Shift, d.Flags, d.N)
		}
		return nil
	}
	if d.Ref != 0 {
		if d.Shift > distinctMaxShift || d.Flags&^(distinctZero|distinctSketch) != 0 {
			return fmt.Errorf("distinct: block of 2^%d words, flags %#x", d.Shift, d.Flags)
		}
		if err := s.Validate(d.Ref, d.size()); err != nil {
			return fmt.Errorf("distinct: %w", err)
		}
	}
	vals := d.vals(s)
	switch {
	case d.sketch():
		if len(vals) != distinctWords {
			return fmt.Errorf("distinct: sketch has %d words, want %d", len(vals), distinctWords)
		}
		for i, w := range vals {
			for j := 0; j < 8; j, w = j+1, w>>8 {
				if uint8(w) > distinctRegMax {
					return fmt.Errorf("distinct: register %d holds %d, above %d", i*8+j, uint8(w), distinctRegMax)
				}
			}
		}
	case vals == nil:
		if d.N > distinctInline || d.Flags != 0 {
			return fmt.Errorf("distinct: inline phase with count %d (flags %#x)", d.N, d.Flags)
		}
		for i := 0; i < int(d.N); i++ {
			for j := 0; j < i; j++ {
				if d.Small[i] == d.Small[j] {
					return fmt.Errorf("distinct: inline value %#x held twice", d.Small[i])
				}
			}
		}
	default:
		n := len(vals)
		if n < distinctMinSet || n > distinctMaxSet || bits.OnesCount(uint(n)) != 1 {
			return fmt.Errorf("distinct: set of %d slots, want a power of two in [%d, %d]", n, distinctMinSet, distinctMaxSet)
		}
		used := 0
		if d.zero() {
			used++
		}
		mask := uint64(n - 1)
		for slot, v := range vals {
			if v == 0 {
				continue
			}
			used++
			// Linear probing: the first slot holding v from its home on must be this one.
			i := v & mask
			for vals[i] != 0 && vals[i] != v {
				i = (i + 1) & mask
			}
			if i != uint64(slot) {
				return fmt.Errorf("distinct: value %#x in slot %d is unreachable or duplicated", v, slot)
			}
		}
		if used != int(d.N) || d.N > DistinctExactLimit {
			return fmt.Errorf("distinct: count %d, set holds %d values", d.N, used)
		}
	}
	return nil
}
