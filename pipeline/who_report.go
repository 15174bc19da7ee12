package pipeline

import (
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
// and labels of the top sources, and the coordinated groups.
func (p *Pipeline) describeReport(r *Report) {
	scans := EntriesOf[*detect.ScannerEntry](r.Detections, "scanner")
	largest := map[string]*detect.ScannerEntry{} // each source's scanner episode with most packets
	for _, e := range scans {
		if l := largest[e.Src]; l == nil || e.Packets > l.Packets {
			largest[e.Src] = e
		}
	}
	for i := range r.Sources.Top {
		t := &r.Sources.Top[i]
		if e := largest[t.Addr]; e != nil {
			t.Technique, t.Summary, t.Profile = e.Technique, e.Summary, e.Profile
		} else {
			t.Technique = p.sourceTechnique(t.Addr)
		}
		p.who.label(t.Addr, &t.Who)
	}
	r.Groups = groups(scans)
	for i := range r.Groups {
		r.Groups[i].Who = detect.Who{} // labelled now, not as the episode was
		p.who.label(r.Groups[i].Members[0].Src, &r.Groups[i].Who)
	}
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

// groups builds the coordinated groups from the scanner episodes: by (prefix, technique,
// port range), at least two distinct sources. Ordered by packets, then prefix.
func groups(scans []*detect.ScannerEntry) []Group {
	var ga groupAgg
	for _, e := range scans {
		ga.add(e)
	}
	return ga.groups()
}

// groupKey is what the members of a group share.
type groupKey struct {
	prefix   netip.Prefix
	tech     string
	lo, hi   uint16
	protocol string
}

// groupAgg gathers scanner episodes, one at a time, into candidate groups: what it keeps
// is a record per group and source, not the episodes (a merge reads them back from its
// spool).
type groupAgg struct {
	byKey map[groupKey]*groupAcc
	keys  []groupKey // in the order of their first episodes
}

// groupAcc is one candidate group so far.
type groupAcc struct {
	g       Group
	members map[string]*groupMemberAcc
	prof    detect.Profile
	biggest *detect.ScannerEntry // its episode with the most packets, the first of them
}

// groupMemberAcc is one source of a group, and its labels (its first episode's).
type groupMemberAcc struct {
	GroupMember
	who detect.Who
}

// add adds a scanner episode.
func (ga *groupAgg) add(e *detect.ScannerEntry) {
	pf, ok := groupPrefix(e.Src)
	if !ok || e.Profile == nil {
		return
	}
	k := groupKey{prefix: pf, tech: e.Technique, lo: e.Profile.PortMin, hi: e.Profile.PortMax}
	if len(e.Profile.Protocols) > 0 {
		k.protocol = e.Profile.Protocols[0]
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
	if a.biggest == nil || e.Packets > a.biggest.Packets {
		a.biggest = e
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
		prof.TopPorts, prof.Protocols = a.biggest.Profile.TopPorts, a.biggest.Profile.Protocols
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
		g.TakingTurns = true
		for i := 1; i < len(g.Members); i++ {
			for j := 0; j < i; j++ {
				if g.Members[i].FirstSeen <= g.Members[j].LastSeen && g.Members[j].FirstSeen <= g.Members[i].LastSeen {
					g.TakingTurns = false
				}
			}
		}
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
