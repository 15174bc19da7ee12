package aggregate

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/telescope-dev/telescope/packet"
)

// PrefixSlots assigns each dark prefix a counter slot while it is configured, so a reload
// that keeps a prefix keeps its counter and one that adds a prefix starts it at 0. Slot 0
// is "not dark".
//
// The slot of a prefix a reload removed is freed by Release once no worker can count into
// it any more (every worker has adopted the new configuration), and a later reload may give
// it to another prefix. The slot's counters are not reset (workers' shards are only ever
// added to, and a concurrent scrape must never see a counter go back): Release records the
// slot's final sum, the base that the next prefix's count subtracts (Prefixes.Count). So
// the budget is one of prefixes configured at once, never one over the life of the
// process: the old and the new set of one reload, at most MaxPrefixes each, fit. A removed
// prefix's series ends; re-added while its slot is still free it continues its count,
// once the slot went to another prefix it starts again at 0 (a new series to Prometheus).
type PrefixSlots struct {
	mu    sync.Mutex
	slots map[netip.Prefix]int
	names []string // by slot (a free slot keeps the name of its last prefix)
	base  []uint64 // by slot: what its prefix's count starts from
	final []uint64 // by slot: the slot's summed counter when it was last freed
	free  []int    // freed slots, reused last freed first (entries no longer free are skipped)
	// freed maps a removed prefix to its slot while that slot is still free: re-added, the
	// prefix gets it back and its count continues.
	freed  map[netip.Prefix]int
	isFree []bool // by slot
}

// NewPrefixSlots returns an empty registry.
func NewPrefixSlots() *PrefixSlots {
	return &PrefixSlots{slots: map[netip.Prefix]int{}, freed: map[netip.Prefix]int{},
		names: []string{"not_dark"}, base: []uint64{0}, final: []uint64{0}, isFree: []bool{false}}
}

// slot returns p's slot and the base its count starts from, assigning a free slot to a
// prefix that has none.
func (r *PrefixSlots) slot(p netip.Prefix) (int, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.slots[p]; ok {
		return s, r.base[s], nil
	}
	if s, ok := r.freed[p]; ok {
		// Removed and re-added before its slot went to another prefix: the count continues.
		delete(r.freed, p)
		r.isFree[s] = false
		r.slots[p] = s
		return s, r.base[s], nil
	}
	for len(r.free) > 0 && !r.isFree[r.free[len(r.free)-1]] {
		r.free = r.free[:len(r.free)-1]
	}
	var s int
	switch {
	case len(r.free) > 0:
		s = r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		delete(r.freed, netip.MustParsePrefix(r.names[s]))
		r.isFree[s] = false
		r.names[s] = p.String()
		r.base[s] = r.final[s]
	case len(r.names) < MaxPrefixSlots:
		s = len(r.names)
		r.names = append(r.names, p.String())
		r.base = append(r.base, 0)
		r.final = append(r.final, 0)
		r.isFree = append(r.isFree, false)
	default:
		return 0, 0, fmt.Errorf("dark_prefixes: no free counter slot: %d prefixes counted (the old and the new configuration of a reload together), at most %d configured at once",
			len(r.slots), MaxPrefixes)
	}
	r.slots[p] = s
	return s, r.base[s], nil
}

// Release frees the slot of every prefix keep does not count. It must only be called once
// no worker can count into those slots any more (each worker counts with keep or a
// Prefixes holding the same slots, its earlier counts flushed); counts holds each slot's
// counter summed over all workers, read after that point, so the freed slots' values are
// final: they become the bases of the prefixes the slots are given to next. It returns the
// number of slots freed.
func (r *PrefixSlots) Release(keep *Prefixes, counts *[MaxPrefixSlots]uint64) int {
	used := make(map[int]bool, len(keep.slots))
	for _, s := range keep.slots {
		used[s] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []int
	for p, s := range r.slots {
		if used[s] {
			continue
		}
		delete(r.slots, p)
		r.freed[p] = s
		r.final[s] = counts[s]
		r.isFree[s] = true
		gone = append(gone, s)
	}
	sort.Ints(gone) // reused in a stable order: the lowest slot first
	for i := len(gone) - 1; i >= 0; i-- {
		r.free = append(r.free, gone[i])
	}
	if len(r.free) > 2*MaxPrefixSlots {
		// Drop the entries no longer free, so the list stays bounded by the slots.
		live := r.free[:0]
		for _, s := range r.free {
			if r.isFree[s] {
				live = append(live, s)
			}
		}
		r.free = live
	}
	return len(gone)
}

// InUse returns the number of slots held by prefixes (slot 0 not included).
func (r *PrefixSlots) InUse() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots)
}

// Name returns the `prefix` label of a slot ("" when the slot is free or was never used).
func (r *PrefixSlots) Name(slot int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slot < 0 || slot >= len(r.names) || r.isFree[slot] {
		return ""
	}
	return r.names[slot]
}

// Prefixes decides whether a destination is dark and which prefix counter it belongs to.
// Immutable once built; a reload builds a new one.
//
// When the IPv4 dark space holds at most MaxExactDst addresses, each of its addresses also
// gets an index into a dense counter array (MatchDst), so per-destination counts are exact
// and cost one array increment instead of a hash lookup.
type Prefixes struct {
	v4    []prefix4 // longest first
	v6    []prefix6
	slots []int         // the slots in use, in configuration order (for exposition)
	names []string      // their prefixes (the `prefix` label), in the same order
	bases []uint64      // their counters' bases (PrefixSlots.Release), in the same order
	exact int           // addresses with a dense index (0: none)
	excl  []packet.Addr // never dark (WithExcluded, prefix_host.go)
	// The spans of a family of more than prefixScanMax prefixes (prefix_spans.go), which
	// MatchDst then searches instead of scanning the prefixes.
	s4 spans4
	s6 spans6
}

// MaxExactDst bounds the IPv4 dark space counted per address: a /8, the largest
// telescopes' (4 bytes an address a worker: 64 MiB for a /8, touched as its addresses are
// hit). Beyond it every destination is a hash look-up in a bounded summary and the unique
// count an estimate; at a /8 that doubled a replay's counting time (the SYN benchmark file
// with its /16 configured as part of a /8, before this was raised from 2^20).
const MaxExactDst = 1 << 24

type prefix4 struct {
	addr, mask uint32
	slot       int
	base       int32 // dense index of addr, -1 when the space is too large
}

type prefix6 struct {
	hi, lo, mhi, mlo uint64
	slot             int
}

// NewPrefixes compiles the configured dark prefixes. With none configured every destination
// is dark, counted under 0.0.0.0/0 and ::/0.
func NewPrefixes(list []netip.Prefix, reg *PrefixSlots) (*Prefixes, error) {
	if len(list) == 0 {
		list = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	sorted := append([]netip.Prefix(nil), list...)
	// Longest prefix first, so overlapping prefixes count under the most specific one.
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Bits() > sorted[j].Bits() })
	p := &Prefixes{}
	for _, pf := range list {
		s, base, err := reg.slot(pf.Masked())
		if err != nil {
			return nil, err
		}
		p.slots = append(p.slots, s)
		p.names = append(p.names, pf.Masked().String())
		p.bases = append(p.bases, base)
	}
	for _, pf := range sorted {
		pf = pf.Masked()
		s, _, _ := reg.slot(pf)
		if pf.Addr().Is4() {
			a := pf.Addr().As4()
			mask := uint32(0)
			if pf.Bits() > 0 {
				mask = ^uint32(0) << (32 - pf.Bits())
			}
			p.v4 = append(p.v4, prefix4{addr: binary.BigEndian.Uint32(a[:]), mask: mask, slot: s, base: -1})
			continue
		}
		a := pf.Addr().As16()
		mhi, mlo := mask128(pf.Bits())
		p.v6 = append(p.v6, prefix6{
			hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]),
			mhi: mhi, mlo: mlo, slot: s,
		})
	}
	p.indexV4()
	if len(p.v4) > prefixScanMax {
		p.s4 = newSpans4(p.v4)
	}
	if len(p.v6) > prefixScanMax {
		p.s6 = newSpans6(p.v6)
	}
	return p, nil
}

// indexV4 gives every IPv4 dark address a dense index when the space is small enough.
func (p *Prefixes) indexV4() {
	total := 0
	for _, e := range p.v4 {
		total += int(^e.mask) + 1
		if total > MaxExactDst {
			return
		}
	}
	base := 0
	for i := range p.v4 {
		p.v4[i].base = int32(base)
		base += int(^p.v4[i].mask) + 1
	}
	p.exact = base
}

// ExactSize is the number of dark IPv4 addresses with a dense index (0: none).
func (p *Prefixes) ExactSize() int { return p.exact }

// ExactAddr returns the address of dense index i.
func (p *Prefixes) ExactAddr(i int32) (a packet.Addr) {
	p.ExactAddrTo(&a, i)
	return a
}

// ExactAddrTo writes the address of dense index i to *a (ExactAddr in place: a caller that
// reads the address back soon after avoids a copy whose load waits for these stores).
func (p *Prefixes) ExactAddrTo(a *packet.Addr, i int32) {
	*a = packet.Addr{}
	k := 0
	if len(p.v4) > prefixScanMax {
		// The bases ascend in p.v4's order: the last prefix whose base is <= i. A scan
		// of 1 000 /24s took a microsecond an address (the report, the hotspot's windows).
		k = max(sort.Search(len(p.v4), func(j int) bool { return p.v4[j].base > i })-1, 0)
	}
	for _, e := range p.v4[k:] {
		if i >= e.base && i-e.base <= int32(^e.mask) {
			a[10], a[11] = 0xff, 0xff
			binary.BigEndian.PutUint32(a[12:], e.addr+uint32(i-e.base))
			return
		}
	}
}

// ExactRuns calls fn with each IPv4 dark prefix's run of dense indexes, in their order:
// the first index, the first address (as a big-endian number) and the run's length. A
// walk over every dense index takes its addresses from here, not one ExactAddr each.
func (p *Prefixes) ExactRuns(fn func(base int32, first uint32, n int)) {
	if p.exact == 0 {
		return
	}
	for _, e := range p.v4 {
		fn(e.base, e.addr, int(^e.mask)+1)
	}
}

// SameExact reports whether q indexes dark addresses exactly as p does.
func (p *Prefixes) SameExact(q *Prefixes) bool {
	if p.exact != q.exact || len(p.v4) != len(q.v4) {
		return false
	}
	for i := range p.v4 {
		if p.v4[i].addr != q.v4[i].addr || p.v4[i].mask != q.v4[i].mask || p.v4[i].base != q.v4[i].base {
			return false
		}
	}
	return true
}

func mask128(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits < 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 64:
		return ^uint64(0), 0
	case bits < 128:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
	return ^uint64(0), ^uint64(0)
}

// Match returns the slot of the most specific dark prefix holding a, or 0 when a is not
// dark. A linear scan of a handful of prefixes (telescopes configure a few, and for those
// it beats any search); a binary search of the spans past prefixScanMax.
func (p *Prefixes) Match(a *packet.Addr, v4 bool) int {
	slot, _ := p.MatchDst(a, v4)
	return slot
}

// MatchDst is Match also returning a's dense index (-1 when it has none).
func (p *Prefixes) MatchDst(a *packet.Addr, v4 bool) (slot int, idx int32) {
	if len(p.excl) != 0 && p.excluded(a) {
		return 0, -1
	}
	if v4 {
		x := binary.BigEndian.Uint32(a[12:])
		if p.s4.starts != nil {
			return p.matchSpans4(x)
		}
		for i := range p.v4 {
			if e := &p.v4[i]; x&e.mask == e.addr {
				if e.base < 0 {
					return e.slot, -1
				}
				return e.slot, e.base + int32(x-e.addr)
			}
		}
		return 0, -1
	}
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	if p.s6.starts != nil {
		if i := p.s6.find(u128{hi, lo}); i >= 0 {
			return p.v6[i].slot, -1
		}
		return 0, -1
	}
	for i := range p.v6 {
		e := &p.v6[i]
		if hi&e.mhi == e.hi && lo&e.mlo == e.lo {
			return e.slot, -1
		}
	}
	return 0, -1
}

// matchSpans4 is MatchDst for IPv4 address x through the spans.
func (p *Prefixes) matchSpans4(x uint32) (slot int, idx int32) {
	i := p.s4.find(x)
	if i < 0 {
		return 0, -1
	}
	e := &p.v4[i]
	if e.base < 0 {
		return e.slot, -1
	}
	return e.slot, e.base + int32(x-e.addr)
}

// Slots returns the slots of the configured prefixes in configuration order.
func (p *Prefixes) Slots() []int { return p.slots }

// Name returns the i-th configured prefix (configuration order), the `prefix` label.
func (p *Prefixes) Name(i int) string { return p.names[i] }

// Count returns the packets counted under the i-th configured prefix (configuration order)
// since its slot was assigned to it: the slot's total less the base it started from.
func (p *Prefixes) Count(i int, t *Totals) uint64 { return t.Prefix[p.slots[i]] - p.bases[i] }
