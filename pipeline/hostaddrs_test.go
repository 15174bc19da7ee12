package pipeline

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestHostAddrsAreNotDark: with no dark prefixes, the host's own addresses (SetHostAddrs)
// are not dark; with dark prefixes configured, only they count, host addresses or not.
func TestHostAddrsAreNotDark(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for i := range 10 {
		dst := "203.0.113.5" // the host
		if i%2 == 1 {
			dst = "203.0.113.6"
		}
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Millisecond), Src: spoofed(i),
			Dst: netip.MustParseAddr(dst), DstPort: 9813, Flags: 0x02})
	}
	path := filepath.Join(t.TempDir(), "host.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	host := []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("::1")}
	for _, tc := range []struct {
		yaml          string
		host          []netip.Addr
		notDark, dark uint64
		noPrefixes    bool
	}{
		{"", nil, 0, 10, true},
		{"", host, 5, 5, true},
		{"dark_prefixes: [203.0.113.0/24]\n", host, 0, 10, false},
		{"dark_prefixes: [203.0.113.6/32]\n", host, 5, 5, false},
	} {
		cfg, err := configs.Parse([]byte(tc.yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(Options{Config: cfg, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if tc.host != nil {
			if changed, err := p.SetHostAddrs(tc.host); err != nil || !changed {
				t.Fatalf("SetHostAddrs: changed %v, %v", changed, err)
			}
			if changed, _ := p.SetHostAddrs([]netip.Addr{tc.host[1], tc.host[0]}); changed {
				t.Errorf("the same set in another order counts as a change")
			}
		}
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		s := p.Snapshot()
		var dark uint64
		for _, pf := range s.Prefixes {
			dark += pf.Count
		}
		if s.NotDark != tc.notDark || dark != tc.dark || s.NoDarkPrefixes != tc.noPrefixes {
			t.Errorf("%q host %v: not dark %d, dark %d, NoDarkPrefixes %v; want %d, %d, %v",
				tc.yaml, tc.host, s.NotDark, dark, s.NoDarkPrefixes, tc.notDark, tc.dark, tc.noPrefixes)
		}
	}
}
