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
