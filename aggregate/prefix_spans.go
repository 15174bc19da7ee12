package aggregate

import (
	"cmp"
	"math/bits"
	"slices"
)

// prefixScanMax is how many prefixes of a family MatchDst scans one by one: a telescope's
// handful, for which the scan beats any search. Past it (a distributed telescope of
// hundreds of scattered /24s: 1 000 prefixes took four times the counting time of one
// /16 on the SYN benchmark file, every packet scanning them) it searches the family's spans.
const prefixScanMax = 16

// The spans of a family: the address space cut into runs that lie under one prefix, the
// most specific that holds them, or under none (-1). starts are the runs' first addresses
// (the first is 0), ascending; idx their prefixes (indexes into v4 or v6). Two runs in a
// row never have the same prefix.

// spans4 are the IPv4 spans, and by16 the span holding each /16's first address (the
// 65 537th: the last span), so that a search starts among the spans of x's /16: a binary
// search of a thousand spans took 60 ns, its branches mispredicted at every step.
type spans4 struct {
	starts []uint32
	idx    []int32
	by16   []uint32
}

// find returns the prefix (index into v4) holding x, or -1.
func (s *spans4) find(x uint32) int32 {
	h := x >> 16
	lo, starts := int(s.by16[h]), s.starts
	for n := int(s.by16[h+1]) - lo + 1; n > 1; { // the last start <= x, from lo on
		half := n / 2
		// lo += half when starts[lo+half] <= x, without a branch (it would go either way
		// at random: each step a misprediction)
		above := int((uint64(x) - uint64(starts[lo+half])) >> 63)
		lo += half &^ -above
		n -= half
	}
	return s.idx[lo]
}

func newSpans4(v4 []prefix4) spans4 {
	first := func(i int32) uint32 { return v4[i].addr }
	last := func(i int32) uint32 { return v4[i].addr | ^v4[i].mask }
	order := make([]int32, len(v4))
	for i := range order {
		order[i] = int32(i)
	}
	// By first address, and a block before the blocks inside it.
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(first(a), first(b)), cmp.Compare(v4[a].mask, v4[b].mask))
	})
	starts, idx := buildSpans(order, first, last,
		func(a, b uint32) bool { return a < b },
		func(a uint32) (uint32, bool) { return a + 1, a != ^uint32(0) })
	by16 := make([]uint32, 1<<16+1)
	j := 0
	for h := range by16 {
		for j+1 < len(starts) && uint64(starts[j+1]) <= uint64(h)<<16 {
			j++
		}
		by16[h] = uint32(j)
	}
	return spans4{starts: starts, idx: idx, by16: by16}
}

// u128 is an IPv6 address as two words, most significant first.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) compare(b u128) int { return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo)) }

// spans6 are the IPv6 spans.
type spans6 struct {
	starts []u128
	idx    []int32
}

// find returns the prefix (index into v6) holding x, or -1.
func (s *spans6) find(x u128) int32 {
	lo, n := 0, len(s.starts)
	for n > 1 {
		half := n / 2
		if !x.less(s.starts[lo+half]) {
			lo += half
		}
		n -= half
	}
	return s.idx[lo]
}

func newSpans6(v6 []prefix6) spans6 {
	first := func(i int32) u128 { return u128{v6[i].hi, v6[i].lo} }
	last := func(i int32) u128 { return u128{v6[i].hi | ^v6[i].mhi, v6[i].lo | ^v6[i].mlo} }
	size := func(i int32) int { return bits.OnesCount64(v6[i].mhi) + bits.OnesCount64(v6[i].mlo) }
	order := make([]int32, len(v6))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Or(first(a).compare(first(b)), cmp.Compare(size(a), size(b)))
	})
	starts, idx := buildSpans(order, first, last, u128.less, func(a u128) (u128, bool) {
		if a.lo != ^uint64(0) {
			return u128{a.hi, a.lo + 1}, true
		}
		return u128{a.hi + 1, 0}, a.hi != ^uint64(0)
	})
	return spans6{starts: starts, idx: idx}
}

// buildSpans cuts the address space into spans under prefixes given in order (by first
// address, a block before the blocks inside it; aligned blocks either nest or do not
// meet), first and last their first and last addresses, succ an address's successor
// (false past the last address). A sweep with the open blocks on a stack, innermost on
// top: the addresses up to a block's start are its enclosing block's (or none's), the rest
// of a block once the blocks inside it are done is its own.
func buildSpans[K any](order []int32, first, last func(int32) K, less func(a, b K) bool, succ func(K) (K, bool)) ([]K, []int32) {
	var (
		starts []K
		idx    []int32
		open   []int32
		pos    K    // the first address not yet in a span (the zero value: the first address)
		done   bool // every address is in a span
	)
	emit := func(i int32) {
		if n := len(idx); n > 0 && idx[n-1] == i {
			return // the previous span goes on
		}
		starts, idx = append(starts, pos), append(idx, i)
	}
	top := func() int32 {
		if len(open) == 0 {
			return -1
		}
		return open[len(open)-1]
	}
	closeTop := func() {
		if t := top(); !done && !less(last(t), pos) {
			emit(t)
			next, ok := succ(last(t))
			pos, done = next, !ok
		}
		open = open[:len(open)-1]
	}
	for _, i := range order {
		for len(open) > 0 && less(last(top()), first(i)) {
			closeTop()
		}
		if !done && less(pos, first(i)) {
			emit(top())
			pos = first(i)
		}
		open = append(open, i)
	}
	for len(open) > 0 {
		closeTop()
	}
	if !done {
		emit(-1)
	}
	return starts, idx
}
