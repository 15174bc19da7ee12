package pipeline

import (
	"testing"
	"time"

	"github.com/telescope-dev/telescope/detect"
)

func scanEntry(src string, lo, hi uint16, first, last time.Duration, packets uint64) *detect.ScannerEntry {
	return &detect.ScannerEntry{Src: src, Packets: packets, Technique: "syn",
		FirstSeen: detect.Time(first), LastSeen: detect.Time(last),
		Profile: &detect.Profile{Ports: uint64(hi-lo) + 1, PortMin: lo, PortMax: hi, Addresses: 1, Protocols: []string{"tcp"}}}
}

func TestGroups(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name  string
		scans []*detect.ScannerEntry
		want  []string // prefix, sources, taking turns, summary of each group
	}{
		{"three of a /24 in turns", []*detect.ScannerEntry{
			scanEntry("198.51.100.1", 53601, 60800, 0, h, 100),
			scanEntry("198.51.100.9", 53601, 60800, 2*h, 3*h, 100),
			scanEntry("198.51.100.200", 53601, 60800, 4*h, 5*h, 100),
		}, []string{"198.51.100.0/24 3 true TCP-SYN to TCP/53601-60800"}},
		{"overlapping members do not take turns", []*detect.ScannerEntry{
			scanEntry("198.51.100.1", 23, 23, 0, 2*h, 100),
			scanEntry("198.51.100.2", 23, 23, h, 3*h, 100),
		}, []string{"198.51.100.0/24 2 false TCP-SYN to TCP/23"}},
		{"different /24s", []*detect.ScannerEntry{
			scanEntry("198.51.100.1", 1, 1000, 0, h, 100),
			scanEntry("198.51.101.1", 1, 1000, 2*h, 3*h, 100),
		}, nil},
		{"different port ranges", []*detect.ScannerEntry{
			scanEntry("198.51.100.1", 1, 1000, 0, h, 100),
			scanEntry("198.51.100.2", 1, 1001, 2*h, 3*h, 100),
		}, nil},
		{"one source, two episodes", []*detect.ScannerEntry{
			scanEntry("198.51.100.1", 1, 1000, 0, h, 100),
			scanEntry("198.51.100.1", 1, 1000, 2*h, 3*h, 100),
		}, nil},
		{"IPv6 /48", []*detect.ScannerEntry{
			scanEntry("2001:db8:1:1::1", 22, 22, 0, h, 100),
			scanEntry("2001:db8:1:ffff::2", 22, 22, 2*h, 3*h, 100),
			scanEntry("2001:db8:2::1", 22, 22, 2*h, 3*h, 100),
		}, []string{"2001:db8:1::/48 2 true TCP-SYN to TCP/22"}},
	}
	for _, c := range cases {
		got := groups(c.scans)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d groups, want %d: %+v", c.name, len(got), len(c.want), got)
			continue
		}
		for i, g := range got {
			s := g.Prefix + " " + itoa(g.Sources) + " " + map[bool]string{true: "true", false: "false"}[g.TakingTurns] + " " + g.Summary
			if s != c.want[i] {
				t.Errorf("%s: group %q, want %q", c.name, s, c.want[i])
			}
			if g.Packets != uint64(100*g.Sources) {
				t.Errorf("%s: %d packets", c.name, g.Packets)
			}
		}
	}
}
