package pipeline

import (
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
	"weak"

	"github.com/telescope-dev/telescope/detect"
)

// groups builds the coordinated groups from the scanner episodes scans.
func groups(scans []*detect.ScannerEntry) []Group {
	var ga groupAgg
	for _, e := range scans {
		ga.add(e)
	}
	return ga.groups()
}

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

// takingTurns in one pass says what the comparison of every pair of members says.
func TestTakingTurnsEveryPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[bool]int{}
	for n := range 2000 {
		members := make([]GroupMember, 1+n%7)
		at := detect.Time(0)
		for i := range members {
			at += detect.Time(rng.IntN(3)) // ties and gaps
			members[i] = GroupMember{FirstSeen: at, LastSeen: at + detect.Time(rng.IntN(4))}
		}
		want := true
		for i := range members {
			for j := range i {
				if members[i].FirstSeen <= members[j].LastSeen && members[j].FirstSeen <= members[i].LastSeen {
					want = false
				}
			}
		}
		if got := takingTurns(members); got != want {
			t.Fatalf("%+v: taking turns %v, every pair says %v", members, got, want)
		}
		seen[want]++
	}
	if seen[true] < 100 || seen[false] < 100 {
		t.Fatalf("cases taking turns / not: %d / %d: too few of one to prove much", seen[true], seen[false])
	}
}

// The groups' aggregator keeps no episode: a replay reads a day's scanner episodes back
// from its spool one at a time, and each kept would stay in memory to the report's end.
func TestGroupAggKeepsNoEpisode(t *testing.T) {
	var ga groupAgg
	var refs []weak.Pointer[detect.ScannerEntry]
	for i := range 300 {
		src := "198.51." + strconv.Itoa(100+i%3) + "." + strconv.Itoa(1+i/3)
		e := scanEntry(src, 23, 23, time.Duration(i)*time.Hour, time.Duration(i)*time.Hour+time.Minute, uint64(100+i%5))
		e.Profile.TopPorts = []detect.PortShare{{Proto: "tcp", Port: 23, Packets: e.Packets, Share: 1}}
		ga.add(e)
		refs = append(refs, weak.Make(e))
	}
	gs := ga.groups()
	runtime.GC()
	runtime.GC()
	kept := 0
	for _, r := range refs {
		if r.Value() != nil {
			kept++
		}
	}
	if kept != 0 {
		t.Errorf("%d of %d episodes still in memory after they were added", kept, len(refs))
	}
	if len(gs) != 3 || gs[0].Sources != 100 || gs[0].Profile.TopPorts[0].Packets != 104 {
		t.Errorf("groups %d, want 3 of 100 sources whose top port is the largest episode's (104 packets): %+v", len(gs), gs[0].Profile)
	}
	runtime.KeepAlive(&ga)
}

// The sieve keeps the aggregator to the candidates of two sources or more, and the groups
// are those found without it.
func TestGroupSieve(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var scans []*detect.ScannerEntry
	for i := range 5000 {
		// Sources of 400 /24s, a few port ranges: some candidates of one source (one or
		// several episodes), some of many.
		src := "198.51." + strconv.Itoa(rng.IntN(400)%256) + "." + strconv.Itoa(1+rng.IntN(3))
		if i%2 == 0 {
			src = "203." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ".1" // a /24 of its own
		}
		lo := uint16(1 + rng.IntN(3))
		at := time.Duration(rng.IntN(1000)) * time.Minute
		scans = append(scans, scanEntry(src, lo, lo+10, at, at+time.Minute, uint64(100+rng.IntN(50))))
		if i%10 == 0 { // one source's second episode: still one source
			scans = append(scans, scanEntry(src, lo, lo+10, at+time.Hour, at+2*time.Hour, 100))
		}
	}
	want := groups(scans)
	ga := groupAgg{sieve: newGroupSieve(maphash.MakeSeed())}
	for _, e := range scans {
		ga.sieve.add(e)
	}
	for _, e := range scans {
		ga.add(e)
	}
	got := ga.groups()
	if len(want) < 50 {
		t.Fatalf("%d groups: too few to prove much", len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("%d groups through the sieve, %d without", len(got), len(want))
	}
	for i := range got {
		if g, w := got[i], want[i]; g.Prefix != w.Prefix || g.Sources != w.Sources || g.Packets != w.Packets || g.TakingTurns != w.TakingTurns {
			t.Fatalf("group %d: %+v through the sieve, %+v without", i, g, w)
		}
	}
	if len(ga.byKey) != len(want) || ga.sieve.multi != len(want) {
		t.Errorf("the aggregator kept %d candidates (the sieve passed %d) for %d groups", len(ga.byKey), ga.sieve.multi, len(want))
	}
	// Sieves of three parts (a spool's workers) merge into the sieve of the whole.
	parts := []*groupSieve{newGroupSieve(ga.sieve.seed), newGroupSieve(ga.sieve.seed), newGroupSieve(ga.sieve.seed)}
	for i, e := range scans {
		parts[i*7%3].add(e)
	}
	merged := newGroupSieve(ga.sieve.seed)
	for _, p := range parts {
		merged.merge(p)
	}
	if merged.multi != ga.sieve.multi || !maps.Equal(merged.first, ga.sieve.first) {
		t.Errorf("merged parts: %d candidates of two sources, the whole %d; maps equal %v",
			merged.multi, ga.sieve.multi, maps.Equal(merged.first, ga.sieve.first))
	}
}
