package pipeline

import (
	"hash/maphash"
	"net/netip"
	"sort"
	"strconv"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// Group is a set of scanners that look coordinated: sources of one /24 (IPv4) or /48
// (IPv6) whose scanner episodes probed the same port range with the same technique.
type Group struct {
	Prefix    string          `json:"prefix"`
	Sources   int             `json:"sources"`
	Packets   uint64          `json:"packets"`
	FirstSeen detect.Time     `json:"first_seen"`
	LastSeen  detect.Time     `json:"last_seen"`
	Technique string          `json:"technique"`
	Summary   string          `json:"summary"`
	Profile   *detect.Profile `json:"profile"`
	// TakingTurns is true when no two members were active at the same time (each scanned
	// in its own slot of the report's span).
	TakingTurns bool          `json:"taking_turns"`
	Members     []GroupMember `json:"members"`
	detect.Who                // of the first member
}

// GroupMember is one source of a group, with its scanner episodes summed.
type GroupMember struct {
	Src       string      `json:"src"`
	Packets   uint64      `json:"packets"`
	Episodes  int         `json:"episodes"`
	FirstSeen detect.Time `json:"first_seen"`
	LastSeen  detect.Time `json:"last_seen"`
}

// describeReport adds what the report knows about its actors: technique, profile, summary
// and labels of the top sources, and the coordinated groups, from the scanner episodes eps
// holds (nil: none), read in one pass: a replay's are read back from its spool, so that
// memory does not grow with their number.
func (p *Pipeline) describeReport(r *Report, eps EpisodeReader) error {
	top := map[string]*AddrCount{}
	for i := range r.Sources.Top {
		top[r.Sources.Top[i].Addr] = &r.Sources.Top[i]
	}
	described, groups, err := describeScans(top, eps)
	for i := range r.Sources.Top {
		t := &r.Sources.Top[i]
		if !described[t.Addr] {
			t.Technique = p.sourceTechnique(t.Addr)
		}
		p.who.label(t.Addr, &t.Who)
	}
	r.Groups = groups
	for i := range r.Groups {
		r.Groups[i].Who = detect.Who{} // labelled now, not as the episode was
		p.who.label(r.Groups[i].Members[0].Src, &r.Groups[i].Who)
	}
	return err
}

// describeScans reads eps's scanner episodes: each source of top that has one gets the
// technique, summary and profile of its episode with the most packets (the first of
// them; only those are kept), and the coordinated groups are found among them all. It
// returns the sources it described and the groups. The groups' aggregator takes only the
// candidates a sieve passed: a DetectionSpool's, filled as the episodes were spooled, or
// one made in a first pass over them.
func describeScans(top map[string]*AddrCount, eps EpisodeReader) (map[string]bool, []Group, error) {
	largest := map[string]*detect.ScannerEntry{}
	var ga groupAgg
	if eps == nil {
		return nil, ga.groups(), nil
	}
	scanners := func(fn func(*detect.ScannerEntry)) error {
		return eps.EachOf(detect.Scanner, func(e detect.Entry) error {
			if s, ok := e.(*detect.ScannerEntry); ok {
				fn(s)
			}
			return nil
		})
	}
	describe := func(s *detect.ScannerEntry) {
		if top[s.Src] != nil {
			if l := largest[s.Src]; l == nil || s.Packets > l.Packets {
				largest[s.Src] = s
			}
		}
	}
	var err error
	if sp, ok := eps.(interface{ groupSieve() *groupSieve }); ok {
		ga.sieve = sp.groupSieve()
		gather := ga.sieve.multi > 0
		err = scanners(func(s *detect.ScannerEntry) {
			describe(s)
			if gather {
				ga.add(s)
			}
		})
	} else {
		ga.sieve = newGroupSieve(maphash.MakeSeed())
		err = scanners(func(s *detect.ScannerEntry) {
			describe(s)
			ga.sieve.add(s)
		})
		if err == nil && ga.sieve.multi > 0 {
			err = scanners(ga.add)
		}
	}
	described := map[string]bool{}
	for src, e := range largest {
		t := top[src]
		t.Technique, t.Summary, t.Profile = e.Technique, e.Summary, e.Profile
		described[src] = true
	}
	return described, ga.groups(), err
}

// sourceTechnique returns the technique mix's dominant technique of a tracked source.
func (p *Pipeline) sourceTechnique(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	k := packet.AddrFromNetip(a)
	for _, w := range p.workers {
		if e := w.sources.Get(k); e != nil {
			return detect.SourceTechnique(&e.det)
		}
	}
	return ""
}

// groupPrefix is the prefix a source's group is keyed by: /24 for IPv4, /48 for IPv6.
func groupPrefix(src string) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(src)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// groupKey is what the members of a group share.
type groupKey struct {
	prefix   netip.Prefix
	tech     string
	lo, hi   uint16
	protocol string
}

// groupKeyOf returns the key of e's candidate group (false: none, e has no profile).
func groupKeyOf(e *detect.ScannerEntry) (groupKey, bool) {
	pf, ok := groupPrefix(e.Src)
	if !ok || e.Profile == nil {
		return groupKey{}, false
	}
	k := groupKey{prefix: pf, tech: e.Technique, lo: e.Profile.PortMin, hi: e.Profile.PortMax}
	if len(e.Profile.Protocols) > 0 {
		k.protocol = e.Profile.Protocols[0]
	}
	return k, true
}

// groupSieve finds, before the groups are gathered, the candidate groups of two sources or
// more, in a 16-byte map entry a candidate (by the key's hash, its first source's hash, 0
// once a second source came), so that the groups' aggregator keeps records for those
// alone. Most candidates are one source (scanners of random /24s): an aggregator of them
// all held a record, a map and the largest episode's top ports per scanner. A hash shared
// by two keys only lets a one-source key through, which groups drops; a key of two
// sources is never kept out.
type groupSieve struct {
	seed  maphash.Seed
	first map[uint64]uint64
	multi int // keys of two sources or more
}

// newGroupSieve returns an empty sieve; sieves merge when they share the seed.
func newGroupSieve(seed maphash.Seed) *groupSieve {
	return &groupSieve{seed: seed, first: map[uint64]uint64{}}
}

// add counts a scanner episode.
func (s *groupSieve) add(e *detect.ScannerEntry) {
	k, ok := groupKeyOf(e)
	if !ok {
		return
	}
	kh, sh := maphash.Comparable(s.seed, k), maphash.String(s.seed, e.Src)|1
	switch v, seen := s.first[kh]; {
	case !seen:
		s.first[kh] = sh
	case v != 0 && v != sh:
		s.first[kh] = 0
		s.multi++
	}
}

// merge adds o's candidates (of the same seed).
func (s *groupSieve) merge(o *groupSieve) {
	for kh, v := range o.first {
		switch w, seen := s.first[kh]; {
		case !seen:
			s.first[kh] = v
			if v == 0 {
				s.multi++
			}
		case w != 0 && w != v:
			s.first[kh] = 0
			s.multi++
		}
	}
}

// keep reports whether k may be a group of two sources or more.
func (s *groupSieve) keep(k groupKey) bool { return s.first[maphash.Comparable(s.seed, k)] == 0 }

// groupAgg gathers scanner episodes, one at a time, into candidate groups: what it keeps
// is a record per group and source, not the episodes (a merge reads them back from its
// spool), and with a sieve only of the candidates it keeps.
type groupAgg struct {
	byKey map[groupKey]*groupAcc
	keys  []groupKey // in the order of their first episodes
	sieve *groupSieve
}

// groupAcc is one candidate group so far.
type groupAcc struct {
	g       Group
	members map[string]*groupMemberAcc
	prof    detect.Profile
	// Of its episode with the most packets (the first of them), what the group's profile
	// takes: kept, not the episode, whose decoded entry would stay in memory with it.
	hasBig     bool
	bigPackets uint64
	topPorts   []detect.PortShare
	protocols  []string
}

// groupMemberAcc is one source of a group, and its labels (its first episode's).
type groupMemberAcc struct {
	GroupMember
	who detect.Who
}

// add adds a scanner episode.
func (ga *groupAgg) add(e *detect.ScannerEntry) {
	k, ok := groupKeyOf(e)
	if !ok || ga.sieve != nil && !ga.sieve.keep(k) {
		return
	}
	if ga.byKey == nil {
		ga.byKey = map[groupKey]*groupAcc{}
	}
	a := ga.byKey[k]
	if a == nil {
		a = &groupAcc{g: Group{Prefix: k.prefix.String(), Technique: k.tech, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen},
			members: map[string]*groupMemberAcc{}}
		ga.byKey[k] = a
		ga.keys = append(ga.keys, k)
	}
	m := a.members[e.Src]
	if m == nil {
		m = &groupMemberAcc{GroupMember: GroupMember{Src: e.Src, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen}, who: e.Who}
		m.who.Silenced = false // the episode's alert state, not a label
		a.members[e.Src] = m
	}
	m.Packets += e.Packets
	m.Episodes++
	m.FirstSeen, m.LastSeen = min(m.FirstSeen, e.FirstSeen), max(m.LastSeen, e.LastSeen)
	a.g.Packets += e.Packets
	a.g.FirstSeen, a.g.LastSeen = min(a.g.FirstSeen, e.FirstSeen), max(a.g.LastSeen, e.LastSeen)
	if !a.hasBig || e.Packets > a.bigPackets {
		a.hasBig, a.bigPackets, a.topPorts, a.protocols = true, e.Packets, e.Profile.TopPorts, e.Profile.Protocols
	}
	a.prof.Ports = max(a.prof.Ports, e.Profile.Ports)
	a.prof.Addresses += e.Profile.Addresses
	a.prof.AddressesAtLeast = a.prof.AddressesAtLeast || e.Profile.AddressesAtLeast
}

// groups returns the groups of the episodes added (those of two sources or more), each
// labelled with its first member's labels as its episodes had them.
func (ga *groupAgg) groups() []Group {
	out := []Group{}
	for _, k := range ga.keys {
		a := ga.byKey[k]
		if len(a.members) < 2 {
			continue
		}
		g, prof := a.g, a.prof
		prof.PortMin, prof.PortMax = k.lo, k.hi
		prof.TopPorts, prof.Protocols = a.topPorts, a.protocols
		g.Profile = &prof
		g.Summary = detect.Summary(k.tech, &prof)
		for _, m := range a.members {
			g.Members = append(g.Members, m.GroupMember)
		}
		sort.Slice(g.Members, func(i, j int) bool {
			a, b := g.Members[i], g.Members[j]
			return a.FirstSeen < b.FirstSeen || a.FirstSeen == b.FirstSeen && a.Src < b.Src
		})
		g.Who = a.members[g.Members[0].Src].who
		g.Sources = len(g.Members)
		g.TakingTurns = takingTurns(g.Members)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Packets != out[j].Packets {
			return out[i].Packets > out[j].Packets
		}
		return out[i].Prefix+strconv.Itoa(int(out[i].Profile.PortMin)) < out[j].Prefix+strconv.Itoa(int(out[j].Profile.PortMin))
	})
	return out
}

// takingTurns reports whether no two members (in order of their first packets) were
// active at the same time: each starts after every earlier one has ended. One pass, not a
// comparison of every pair, whose time grew with the square of a group's sources.
func takingTurns(members []GroupMember) bool {
	if len(members) == 0 {
		return true
	}
	end := members[0].LastSeen // the latest end so far
	for _, m := range members[1:] {
		if m.FirstSeen <= end {
			return false
		}
		end = max(end, m.LastSeen)
	}
	return true
}
