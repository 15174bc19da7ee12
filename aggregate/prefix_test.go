package aggregate

import (
	"net/netip"
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
	big := prefixes(t, reg, "10.0.0.0/8")
	if big.ExactSize() != 0 {
		t.Errorf("a /8 got a dense index of %d", big.ExactSize())
	}
	if !p.SameExact(prefixes(t, reg, "2001:db8:1::/48", "198.51.100.0/22", "203.0.113.0/24")) || p.SameExact(big) {
		t.Error("SameExact")
	}
}
