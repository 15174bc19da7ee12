package packet

import (
	"net/netip"
	"testing"
)

// TestAddrIs4 checks Is4 and V4, which read the address as two words, against netip on
// addresses that differ from the IPv4-mapped prefix in each of its bytes.
func TestAddrIs4(t *testing.T) {
	addrs := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "::ffff:203.0.113.9", "::", "::1",
		"2001:db8::1", "::fffe:c000:201", "::feff:c000:201", "::1:ffff:c000:201", "100::ffff:c000:201",
		"0:0:0:1::ffff:c000:201"}
	for _, s := range addrs {
		ip := netip.MustParseAddr(s)
		a := AddrFromNetip(ip)
		want := ip.Unmap().Is4()
		if got := a.Is4(); got != want {
			t.Errorf("%s: Is4 %v, want %v", s, got, want)
		}
		if want {
			v4 := ip.Unmap().As4()
			if got, w := a.V4(), uint32(v4[0])<<24|uint32(v4[1])<<16|uint32(v4[2])<<8|uint32(v4[3]); got != w {
				t.Errorf("%s: V4 %#x, want %#x", s, got, w)
			}
		}
	}
}

// TestAddrCompare checks Compare against netip.Addr.Compare of the unmapped addresses, on
// every pair of a list with both families, the mapped prefix's edges and addresses that
// differ in one word only, and on random pairs.
func TestAddrCompare(t *testing.T) {
	addrs := []string{"192.0.2.1", "192.0.2.2", "0.0.0.0", "255.255.255.255", "10.0.0.1", "::", "::1",
		"::fffe:ffff:ffff", "::1:0:0:0", "2001:db8::1", "2001:db8::1:0:0:0", "2001:db9::", "fe80::1",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::fffe:c000:201", "1::ffff:c000:201"}
	check := func(x, y netip.Addr) {
		a, b := AddrFromNetip(x), AddrFromNetip(y)
		if got, want := a.Compare(&b), x.Unmap().Compare(y.Unmap()); got != want {
			t.Errorf("Compare(%s, %s) = %d, want %d", x, y, got, want)
		}
	}
	for _, x := range addrs {
		for _, y := range addrs {
			check(netip.MustParseAddr(x), netip.MustParseAddr(y))
		}
	}
	var s uint64 = 1
	next := func() byte { s = s*6364136223846793005 + 1442695040888963407; return byte(s >> 56 & 3) }
	for range 20000 {
		// Bytes from {0, 1, 2, 3}: equal words are common, so the later words decide too.
		var p, q [16]byte
		for i := range p {
			p[i], q[i] = next(), next()
		}
		x, y := netip.AddrFrom16(p), netip.AddrFrom16(q)
		if next() == 0 {
			x = netip.AddrFrom4([4]byte{p[0], p[1], p[2], p[3]})
		}
		if next() == 0 {
			y = netip.AddrFrom4([4]byte{q[0], q[1], q[2], q[3]})
		}
		check(x, y)
	}
}
