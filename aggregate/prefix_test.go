package aggregate

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

func prefixes(t *testing.T, reg *PrefixSlots, ps ...string) *Prefixes {
	t.Helper()
	var list []netip.Prefix
	for _, s := range ps {
		list = append(list, netip.MustParsePrefix(s))
	}
	p, err := NewPrefixes(list, reg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrefixMatch(t *testing.T) {
	reg := NewPrefixSlots()
	p := prefixes(t, reg, "203.0.113.0/24", "198.51.100.0/22", "198.51.100.128/25", "2001:db8:1::/48")
	for _, tc := range []struct {
		addr, prefix string
	}{
		{"203.0.113.7", "203.0.113.0/24"},
		{"203.0.114.7", "not_dark"},
		{"198.51.101.1", "198.51.100.0/22"},
		{"198.51.100.200", "198.51.100.128/25"}, // the most specific prefix wins
		{"198.51.100.127", "198.51.100.0/22"},
		{"2001:db8:1:ffff::1", "2001:db8:1::/48"},
		{"2001:db8:2::1", "not_dark"},
		{"::ffff:203.0.113.7", "not_dark"}, // an IPv6 packet to a mapped address is not IPv4 dark space
	} {
		a := netip.MustParseAddr(tc.addr)
		ca := packet.AddrFromNetip(a)
		v4 := a.Is4()
		if got := reg.Name(p.Match(&ca, v4)); got != tc.prefix {
			t.Errorf("%s: %s, want %s", tc.addr, got, tc.prefix)
		}
	}
	// Slots survive a reload: a kept prefix keeps its counter, a new one gets a new slot.
	before := p.Slots()
	q := prefixes(t, reg, "2001:db8:1::/48", "192.0.2.0/24", "203.0.113.0/24")
	if reg.Name(q.Slots()[0]) != "2001:db8:1::/48" || q.Slots()[2] != before[0] || reg.Name(q.Slots()[1]) != "192.0.2.0/24" {
		t.Errorf("slots after reload: %v (before %v)", q.Slots(), before)
	}
	// No prefixes: everything is dark.
	all := prefixes(t, reg)
	for _, s := range []string{"8.8.8.8", "2001:db8::1"} {
		a := netip.MustParseAddr(s)
		ca := packet.AddrFromNetip(a)
		if all.Match(&ca, a.Is4()) == 0 {
			t.Errorf("%s is not dark with no prefixes configured", s)
		}
	}
}

// TestExactAddrManyPrefixes: with few prefixes and with many (searched, not scanned),
// every dense index maps to the address that MatchDst gives it, and ExactRuns lists the
// same addresses run by run, covering the indexes in order.
func TestExactAddrManyPrefixes(t *testing.T) {
	for _, n := range []int{1, 3, prefixScanMax, prefixScanMax + 1, 300} {
		var ps []string
		for i := range n { // /24s and /28s, scattered over 10.0.0.0/8 in no order
			k := (i * 7919) % 65536
			if i%3 == 0 {
				ps = append(ps, fmt.Sprintf("10.%d.%d.16/28", k>>8, k&255))
			} else {
				ps = append(ps, fmt.Sprintf("10.%d.%d.0/24", k>>8, k&255))
			}
		}
		p := prefixes(t, NewPrefixSlots(), ps...)
		next := int32(0)
		p.ExactRuns(func(base int32, first uint32, size int) {
			if base != next {
				t.Fatalf("%d prefixes: a run starts at index %d, want %d", n, base, next)
			}
			next += int32(size)
			for j := range size {
				i := base + int32(j)
				a := p.ExactAddr(i)
				if got := binary.BigEndian.Uint32(a[12:]); got != first+uint32(j) {
					t.Fatalf("%d prefixes: index %d is %s in ExactAddr, %d in its run", n, i, a.Netip(), first+uint32(j))
				}
				if _, idx := p.MatchDst(&a, true); idx != i {
					t.Fatalf("%d prefixes: %s has index %d, ExactAddr gave it for %d", n, a.Netip(), idx, i)
				}
			}
		})
		if int(next) != p.ExactSize() {
			t.Errorf("%d prefixes: runs cover %d indexes of %d", n, next, p.ExactSize())
		}
	}
}

func TestPrefixDenseIndex(t *testing.T) {
	reg := NewPrefixSlots()
	p := prefixes(t, reg, "203.0.113.0/24", "198.51.100.0/22", "2001:db8:1::/48")
	if p.ExactSize() != 256+1024 {
		t.Fatalf("ExactSize %d, want 1280", p.ExactSize())
	}
	seen := map[int32]bool{}
	for _, s := range []string{"203.0.113.0", "203.0.113.255", "198.51.100.0", "198.51.103.255", "198.51.102.17"} {
		a := netip.MustParseAddr(s)
		ca := packet.AddrFromNetip(a)
		_, idx := p.MatchDst(&ca, true)
		if idx < 0 || int(idx) >= p.ExactSize() || seen[idx] {
			t.Fatalf("%s: index %d", s, idx)
		}
		seen[idx] = true
		if back := p.ExactAddr(idx); back != ca {
			t.Errorf("%s: index %d maps back to %s", s, idx, back)
		}
	}
	for _, s := range []string{"2001:db8:1::5", "192.0.2.1"} {
		a := netip.MustParseAddr(s)
		ca := packet.AddrFromNetip(a)
		if _, idx := p.MatchDst(&ca, a.Is4()); idx != -1 {
			t.Errorf("%s has dense index %d", s, idx)
		}
	}
	// A /8 is counted per address (the largest telescopes'); more is not.
	big := prefixes(t, reg, "10.0.0.0/8")
	if big.ExactSize() != 1<<24 {
		t.Errorf("a /8 got a dense index of %d, want %d", big.ExactSize(), 1<<24)
	}
	last := packet.AddrFromNetip(netip.MustParseAddr("10.255.255.255"))
	if _, idx := big.MatchDst(&last, true); idx != 1<<24-1 || big.ExactAddr(idx) != last {
		t.Errorf("10.255.255.255 has dense index %d", idx)
	}
	if huge := prefixes(t, reg, "10.0.0.0/8", "44.0.0.0/24"); huge.ExactSize() != 0 {
		t.Errorf("a /8 and a /24 got a dense index of %d", huge.ExactSize())
	}
	if !p.SameExact(prefixes(t, reg, "2001:db8:1::/48", "198.51.100.0/22", "203.0.113.0/24")) || p.SameExact(big) {
		t.Error("SameExact")
	}
}

// TestPrefixSlotsReuse reloads 10 times with 1 000 new prefixes each (and one kept): the
// budget is of prefixes configured at once, never of prefixes over the life of the
// process. A reused slot's prefix counts from 0, the kept prefix's count continues, and
// the old prefixes' names are gone.
func TestPrefixSlotsReuse(t *testing.T) {
	reg := NewPrefixSlots()
	kept := netip.MustParsePrefix("203.0.113.0/24")
	var counts [MaxPrefixSlots]uint64 // the workers' shards, summed
	var keptWant uint64
	var last *Prefixes
	reused := 0
	for round := 0; round < 10; round++ {
		list := []netip.Prefix{kept}
		for i := 0; i < 1000; i++ {
			list = append(list, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(round), byte(i >> 8), byte(i)}), 32))
		}
		p, err := NewPrefixes(list, reg)
		if err != nil {
			t.Fatalf("reload %d: %v", round, err)
		}
		// Every worker has adopted p: the slots only the previous configuration held are freed.
		reg.Release(p, &counts)
		if got := reg.InUse(); got != len(list) {
			t.Fatalf("reload %d: %d slots in use, want %d", round, got, len(list))
		}
		var tot Totals
		tot.Prefix = counts
		for i, s := range p.Slots() {
			if i == 0 {
				if p.Name(0) != kept.String() {
					t.Fatalf("reload %d: first prefix is %q", round, p.Name(0))
				}
				if last != nil && s != last.Slots()[0] {
					t.Errorf("reload %d: kept prefix moved from slot %d to %d", round, last.Slots()[0], s)
				}
				if got := p.Count(0, &tot); got != keptWant {
					t.Errorf("reload %d: kept prefix counts %d, want %d (its count continues)", round, got, keptWant)
				}
				continue
			}
			if counts[s] != 0 {
				reused++
			}
			if got := p.Count(i, &tot); got != 0 {
				t.Errorf("reload %d: new prefix %s on slot %d starts at %d, want 0", round, p.Name(i), s, got)
			}
			if p.Name(i) != list[i].String() || reg.Name(s) != list[i].String() {
				t.Errorf("reload %d: slot %d named %q/%q, want %s", round, s, p.Name(i), reg.Name(s), list[i])
			}
		}
		// The workers count: the kept prefix 3 packets, the i-th new prefix i+1.
		for i, s := range p.Slots() {
			n := uint64(i + 1)
			if i == 0 {
				n = 3
				keptWant += n
			}
			counts[s] += n
		}
		tot.Prefix = counts
		for i := range p.Slots() {
			want := uint64(i + 1)
			if i == 0 {
				want = keptWant
			}
			if got := p.Count(i, &tot); got != want {
				t.Errorf("reload %d: %s counts %d, want %d", round, p.Name(i), got, want)
			}
		}
		last = p
	}
	if reused < 1000 {
		t.Errorf("only %d slots with counts were reused", reused)
	}
	// The old prefixes' slots went to others or are free: no name of an earlier round is left.
	for s := 1; s < MaxPrefixSlots; s++ {
		if n := reg.Name(s); n != "" && n != kept.String() && !strings.HasPrefix(n, "10.9.") {
			t.Fatalf("slot %d still named %s", s, n)
		}
	}
}

// TestPrefixSlotsLimit: the old and the new configuration of a reload, at most MaxPrefixes
// each, fit together; more fails, and releasing frees the slots of a refused one.
func TestPrefixSlotsLimit(t *testing.T) {
	reg := NewPrefixSlots()
	set := func(octet byte, n int) []netip.Prefix {
		var l []netip.Prefix
		for i := 0; i < n; i++ {
			l = append(l, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, byte(i >> 8), byte(i)}), 32))
		}
		return l
	}
	var counts [MaxPrefixSlots]uint64
	if _, err := NewPrefixes(set(1, MaxPrefixes), reg); err != nil {
		t.Fatal(err)
	}
	b, err := NewPrefixes(set(2, MaxPrefixes), reg)
	if err != nil {
		t.Fatalf("the whole set replaced: %v", err)
	}
	if _, err := NewPrefixes(set(3, 2), reg); err == nil {
		t.Fatal("a third set while both others are held: no error")
	}
	reg.Release(b, &counts)
	if got := reg.InUse(); got != MaxPrefixes {
		t.Fatalf("%d slots in use after release, want %d", got, MaxPrefixes)
	}
	if _, err := NewPrefixes(set(3, MaxPrefixes), reg); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestPrefixSlotsReadded: a prefix removed and re-added while its slot is still free
// continues its count; once the slot went to another prefix it starts again at 0.
func TestPrefixSlotsReadded(t *testing.T) {
	reg := NewPrefixSlots()
	var counts [MaxPrefixSlots]uint64
	a := prefixes(t, reg, "192.0.2.0/24", "198.51.100.0/24")
	counts[a.Slots()[0]], counts[a.Slots()[1]] = 5, 7
	b := prefixes(t, reg, "198.51.100.0/24")
	reg.Release(b, &counts)
	if reg.Name(a.Slots()[0]) != "" {
		t.Errorf("a freed slot is named %q", reg.Name(a.Slots()[0]))
	}
	c := prefixes(t, reg, "198.51.100.0/24", "192.0.2.0/24")
	reg.Release(c, &counts)
	var tot Totals
	tot.Prefix = counts
	if c.Slots()[1] != a.Slots()[0] || c.Count(1, &tot) != 5 || c.Count(0, &tot) != 7 {
		t.Errorf("re-added: slot %d (was %d) counts %d, want 5", c.Slots()[1], a.Slots()[0], c.Count(1, &tot))
	}
	d := prefixes(t, reg, "198.51.100.0/24")
	reg.Release(d, &counts)
	e := prefixes(t, reg, "198.51.100.0/24", "203.0.113.0/24") // takes 192.0.2.0/24's slot
	reg.Release(e, &counts)
	f := prefixes(t, reg, "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24")
	tot.Prefix = counts
	if e.Slots()[1] != a.Slots()[0] || e.Count(1, &tot) != 0 || f.Count(2, &tot) != 0 || f.Count(1, &tot) != 0 {
		t.Errorf("slot reuse: %v %v counts %d %d %d", e.Slots(), f.Slots(), e.Count(1, &tot), f.Count(1, &tot), f.Count(2, &tot))
	}
}
