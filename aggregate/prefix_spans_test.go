package aggregate

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// scanMatch is MatchDst as a scan of the prefixes, most specific first: what the spans'
// search must answer.
func scanMatch(p *Prefixes, a *packet.Addr, v4 bool) (int, int32) {
	if v4 {
		x := binary.BigEndian.Uint32(a[12:])
		for _, e := range p.v4 {
			if x&e.mask == e.addr {
				if e.base < 0 {
					return e.slot, -1
				}
				return e.slot, e.base + int32(x-e.addr)
			}
		}
		return 0, -1
	}
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	for _, e := range p.v6 {
		if hi&e.mhi == e.hi && lo&e.mlo == e.lo {
			return e.slot, -1
		}
	}
	return 0, -1
}

// TestPrefixSpansMatchScan: for sets of 17 to 400 prefixes of each family, nested in one
// another, adjacent, at both ends of the address space, the spans' search gives every
// address the prefix (slot and dense index) the scan gives: at each prefix's first and
// last address, on either side of them, and at random addresses in and around them.
func TestPrefixSpansMatchScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for trial := range 60 {
		n := 17 + rng.IntN(384)
		seen := map[netip.Prefix]bool{}
		var list []netip.Prefix
		add := func(pf netip.Prefix) {
			if pf = pf.Masked(); !seen[pf] {
				seen[pf] = true
				list = append(list, pf)
			}
		}
		if trial%10 == 0 { // everything dark, with more specific prefixes inside
			add(netip.MustParsePrefix("0.0.0.0/0"))
			add(netip.MustParsePrefix("::/0"))
		}
		for len(list) < n {
			switch k := rng.IntN(10); {
			case k == 0: // the ends of the IPv4 space
				add(netip.PrefixFrom(netip.AddrFrom4([4]byte{255, 255, 255, byte(rng.IntN(256))}), 24+rng.IntN(9)))
				add(netip.PrefixFrom(netip.AddrFrom4([4]byte{0, 0, byte(rng.IntN(4)), 0}), 16+rng.IntN(17)))
			case k < 6: // crowded in 10.0.0.0/14 (many nest or touch)
				a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				add(netip.PrefixFrom(a, 14+rng.IntN(19)))
			case k < 9: // in 2001:db8::/44, and the ends of the IPv6 space
				var b [16]byte
				b[0], b[1], b[2], b[3], b[4] = 0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(16))
				for i := 5; i < 16; i++ {
					b[i] = byte(rng.IntN(256))
				}
				add(netip.PrefixFrom(netip.AddrFrom16(b), 44+rng.IntN(85)))
				if rng.IntN(8) == 0 {
					for i := range b {
						b[i] = 0xff
					}
					add(netip.PrefixFrom(netip.AddrFrom16(b), 100+rng.IntN(29)))
				}
			default: // anywhere, sometimes a large block
				add(netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), 0, 0}), 4+rng.IntN(29)))
			}
		}
		p, err := NewPrefixes(list, NewPrefixSlots())
		if err != nil {
			t.Fatal(err)
		}
		if len(p.v4) > prefixScanMax && (p.s4.starts == nil || len(p.s4.starts) > 2*len(p.v4)+1) ||
			len(p.v6) > prefixScanMax && (p.s6.starts == nil || len(p.s6.starts) > 2*len(p.v6)+1) {
			t.Fatalf("trial %d: %d and %d spans for %d and %d prefixes", trial, len(p.s4.starts), len(p.s6.starts), len(p.v4), len(p.v6))
		}
		check := func(a netip.Addr) {
			ca := packet.AddrFromNetip(a)
			slot, ix := p.MatchDst(&ca, a.Is4())
			wslot, wix := scanMatch(p, &ca, a.Is4())
			if slot != wslot || ix != wix {
				t.Fatalf("trial %d (%d prefixes): %s matched slot %d index %d, the scan slot %d index %d", trial, len(list), a, slot, ix, wslot, wix)
			}
		}
		for _, pf := range list {
			first := pf.Addr()
			last := lastAddr(pf)
			check(first)
			check(last)
			if prev := first.Prev(); prev.IsValid() {
				check(prev)
			}
			if next := last.Next(); next.IsValid() {
				check(next)
			}
			for range 4 {
				check(randomIn(rng, pf, 0))
				check(randomIn(rng, pf, 4)) // around it: four bits shorter
			}
		}
		for range 2000 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], rng.Uint64())
			binary.BigEndian.PutUint64(b[8:], rng.Uint64())
			check(netip.AddrFrom16(b))
			check(netip.AddrFrom4([4]byte(b[:4])))
		}
	}
}

// lastAddr is the last address of pf.
func lastAddr(pf netip.Prefix) netip.Addr {
	b := pf.Addr().AsSlice()
	for i := pf.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// randomIn is a random address of pf widened by wider bits.
func randomIn(rng *rand.Rand, pf netip.Prefix, wider int) netip.Addr {
	b := pf.Addr().AsSlice()
	for i := max(pf.Bits()-wider, 0); i < len(b)*8; i++ {
		if rng.IntN(2) == 0 {
			b[i/8] |= 0x80 >> (i % 8)
		} else {
			b[i/8] &^= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestPrefixSpansFewScan: up to prefixScanMax prefixes of a family are scanned (no spans).
func TestPrefixSpansFewScan(t *testing.T) {
	var list []netip.Prefix
	for i := range prefixScanMax {
		list = append(list, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24))
	}
	p, err := NewPrefixes(list, NewPrefixSlots())
	if err != nil {
		t.Fatal(err)
	}
	if p.s4.starts != nil {
		t.Errorf("%d prefixes searched by %d spans", len(list), len(p.s4.starts))
	}
	// One more: searched. Spans: none up to 198.18.0.0, each /24 its own, none, the 17th,
	// none to the end.
	list = append(list, netip.MustParsePrefix("198.18.200.0/24"))
	p, err = NewPrefixes(list, NewPrefixSlots())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.s4.starts) != 1+16+1+1+1 || p.s4.starts[1] != 198<<24|18<<16 || p.s4.idx[0] != -1 || p.s4.idx[17] != -1 {
		t.Errorf("spans %v of %v", p.s4.starts, p.s4.idx)
	}
}

// BenchmarkMatchDst: a destination looked up among n dark /24s (a distributed telescope),
// half of the destinations dark: scanned up to prefixScanMax, searched past it.
//
//	go test -run '^$' -bench MatchDst ./aggregate/
func BenchmarkMatchDst(b *testing.B) {
	for _, n := range []int{1, 4, 16, 17, 256, 1000, 4095} {
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			var list []netip.Prefix
			for i := range n { // every other /24 of 100.64.0.0/10
				list = append(list, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>7), byte(i << 1), 0}), 24))
			}
			p, err := NewPrefixes(list, NewPrefixSlots())
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			dsts := make([]packet.Addr, 4096)
			for i := range dsts { // a /24 of the 2n the prefixes alternate with
				k := rng.IntN(2 * n)
				dsts[i] = packet.AddrFromNetip(netip.AddrFrom4([4]byte{100, 64 + byte(k>>8), byte(k), byte(rng.IntN(256))}))
			}
			b.ResetTimer()
			var sum int
			for i := range b.N {
				s, _ := p.MatchDst(&dsts[i&4095], true)
				sum += s
			}
			if sum < 0 {
				b.Fatal(sum)
			}
		})
	}
}
