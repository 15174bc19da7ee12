package detect

// The detectors' filters of addresses (the sources evicted from the pipeline's table while
// the hotspot or udp_then_syn counts still need them, the destinations a hotspot table
// spilled) are bitsets of one bit per address, at the top bits of a hash of it: 1 Mbit
// (128 KiB) each, allocated at the first mark. An address whose bit is clear was not
// marked; one whose bit is set was, or shares the bit. (The spilled destinations' filter
// takes a dark address's dense index as its bit where it has one: spillBit.)
const (
	filterShift = 20
	filterWords = 1 << filterShift / 64
)

// filterBit is the bit of an address with hash x in a filter.
func filterBit(x uint64) uint32 { return uint32(x >> (64 - filterShift)) }

// markFilter sets the bit of hash x in the filter *f, allocating it first if need be, and
// reports whether the bit was clear.
func markFilter(f *[]uint64, x uint64) bool {
	if *f == nil {
		*f = make([]uint64, filterWords)
	}
	i := filterBit(x)
	if hasBit(*f, i) {
		return false
	}
	setBit(*f, i, true)
	return true
}

// markBit sets bit i of the filter *f, allocating it first if need be.
func markBit(f *[]uint64, i uint32) {
	if *f == nil {
		*f = make([]uint64, filterWords)
	}
	setBit(*f, i, true)
}

// hasBit reports whether bit i of the bitset is set.
func hasBit(set []uint64, i uint32) bool { return set[i/64]&(1<<(i%64)) != 0 }

// setBit sets or clears bit i of the bitset.
func setBit(set []uint64, i uint32, on bool) {
	if on {
		set[i/64] |= 1 << (i % 64)
	} else {
		set[i/64] &^= 1 << (i % 64)
	}
}
