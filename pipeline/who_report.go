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
	type key struct {
		prefix   netip.Prefix
		tech     string
		lo, hi   uint16
		protocol string
	}
	byKey := map[key][]*detect.ScannerEntry{}
	var keys []key
	for _, e := range scans {
		pf, ok := groupPrefix(e.Src)
		if !ok || e.Profile == nil {
			continue
		}
		k := key{prefix: pf, tech: e.Technique, lo: e.Profile.PortMin, hi: e.Profile.PortMax}
		if len(e.Profile.Protocols) > 0 {
			k.protocol = e.Profile.Protocols[0]
		}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], e)
	}
	out := []Group{}
	for _, k := range keys {
		eps := byKey[k]
		members := map[string]*GroupMember{}
		g := Group{Prefix: k.prefix.String(), Technique: k.tech, FirstSeen: eps[0].FirstSeen, LastSeen: eps[0].LastSeen}
		var prof detect.Profile
		var biggest *detect.ScannerEntry
		for _, e := range eps {
			m := members[e.Src]
			if m == nil {
				m = &GroupMember{Src: e.Src, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen}
				members[e.Src] = m
			}
			m.Packets += e.Packets
			m.Episodes++
			m.FirstSeen, m.LastSeen = min(m.FirstSeen, e.FirstSeen), max(m.LastSeen, e.LastSeen)
			g.Packets += e.Packets
			g.FirstSeen, g.LastSeen = min(g.FirstSeen, e.FirstSeen), max(g.LastSeen, e.LastSeen)
			if biggest == nil || e.Packets > biggest.Packets {
				biggest = e
			}
			prof.Ports = max(prof.Ports, e.Profile.Ports)
			prof.Addresses += e.Profile.Addresses
			prof.AddressesAtLeast = prof.AddressesAtLeast || e.Profile.AddressesAtLeast
		}
		if len(members) < 2 {
			continue
		}
		prof.PortMin, prof.PortMax = k.lo, k.hi
		prof.TopPorts, prof.Protocols = biggest.Profile.TopPorts, biggest.Profile.Protocols
		g.Profile = &prof
		g.Summary = detect.Summary(k.tech, &prof)
		for _, m := range members {
			g.Members = append(g.Members, *m)
		}
		sort.Slice(g.Members, func(i, j int) bool {
			a, b := g.Members[i], g.Members[j]
			return a.FirstSeen < b.FirstSeen || a.FirstSeen == b.FirstSeen && a.Src < b.Src
		})
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
