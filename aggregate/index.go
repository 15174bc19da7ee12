package aggregate

// The open-addressed hash index of Table and TopK: a power-of-two slice of words, each
// holding a key's 32-bit hash (high half) and 1 + the key's slot (low half), 0 when empty
// (zero memory is an empty index), probed linearly from hash & (len-1) and at most half
// full. A key is looked up, and a slot unlinked, by reading consecutive words, which
// compare hashes without reading entries: only a matching hash reads its entry's key.
// (Chained buckets read every entry of a chain, a cache miss each, and an eviction walked
// its victim's chain.)

// newIndex returns an empty index for capacity slots: a power of two >= 2*capacity words,
// so probes stay short (load <= 1/2) at 8 bytes a word.
func newIndex(capacity int) []uint64 {
	return make([]uint64, bucketsFor(capacity))
}

// indexWord is the index word of slot i whose key has hash h.
func indexWord(h uint32, i int32) uint64 { return uint64(h)<<32 | uint64(uint32(i+1)) }

// indexSlot is the slot of word v (not 0).
func indexSlot(v uint64) int32 { return int32(uint32(v)) - 1 }

// indexInsert adds slot i, whose key has hash h, to index (the key must be absent).
func indexInsert(index []uint64, h uint32, i int32) {
	mask := uint64(len(index) - 1)
	p := uint64(h) & mask
	for index[p] != 0 {
		p = (p + 1) & mask
	}
	index[p] = indexWord(h, i)
}

// indexUnlink removes slot i, whose key has hash h, from index: the word's place is filled
// by shifting back the words after it that may move (linear probing's deletion, no
// tombstones: looking up absent keys stays short however many deletions there were).
func indexUnlink(index []uint64, h uint32, i int32) {
	mask := uint64(len(index) - 1)
	w := indexWord(h, i)
	p := uint64(h) & mask
	for n := 0; index[p] != w; n++ {
		if n == len(index) { // a slot that is not in the index: a caller's bug, not a hang
			panic("aggregate: unlinking a slot the index does not hold")
		}
		p = (p + 1) & mask
	}
	for j := p; ; {
		j = (j + 1) & mask
		v := index[j]
		if v == 0 {
			break
		}
		// v may fill p unless its home lies cyclically in (p, j].
		if home := (v >> 32) & mask; (j-home)&mask >= (j-p)&mask {
			index[p] = v
			p = j
		}
	}
	index[p] = 0
}
