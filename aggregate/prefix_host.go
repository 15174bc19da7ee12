package aggregate

import (
	"net/netip"

	"github.com/telescope-dev/telescope/packet"
)

// MaxExcluded bounds the host addresses a Prefixes excludes (a host has a handful).
const MaxExcluded = 256

// WithExcluded returns a copy of p under which the given addresses are never dark (slot 0):
// the sensor's own addresses when no dark prefix is configured, so that its management
// traffic and scrapes are not telescope traffic. At most MaxExcluded are kept.
func (p *Prefixes) WithExcluded(addrs []netip.Addr) *Prefixes {
	q := *p
	q.excl = nil
	for _, a := range addrs {
		if len(q.excl) == MaxExcluded {
			break
		}
		q.excl = append(q.excl, packet.AddrFromNetip(a))
	}
	return &q
}

// excluded reports whether a is one of the excluded addresses.
func (p *Prefixes) excluded(a *packet.Addr) bool {
	for i := range p.excl {
		if p.excl[i] == *a {
			return true
		}
	}
	return false
}
