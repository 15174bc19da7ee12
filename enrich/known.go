// Package enrich labels the addresses of detections and top sources at the moments that
// allow it (an episode starting or ending, a top list being built, never per packet): the
// organisation of a known scanning service from a user-maintained list, and the country and
// autonomous system from MaxMind-format databases (GeoLite2, DB-IP Lite).
package enrich

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
)

// Known is a list of known scanning services: CIDR prefixes and the organisation each
// belongs to. The longest matching prefix wins.
type Known struct {
	byLen map[int]map[netip.Prefix]string // prefix length (IPv4 lengths + 96) -> prefix -> org
	lens  []int                           // lengths present, longest first
	orgs  []string                        // sorted, distinct
}

// LoadKnown reads a known-scanners file. Format, one entry per line:
//
//	# comment (also after an entry)
//	CIDR  organisation name
//
// The CIDR has no host bits set; the organisation is the rest of the line (trimmed, not
// empty, at most 64 bytes, printable). The same CIDR twice is an error. Errors name the file
// and line: "known.txt:3: ...".
func LoadKnown(path string) (*Known, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("known scanners: %w", err)
	}
	defer f.Close()
	k := &Known{byLen: map[int]map[netip.Prefix]string{}}
	orgs := map[string]bool{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		cidr, org, _ := strings.Cut(text, " ")
		if i := strings.IndexByte(cidr, '\t'); i >= 0 {
			cidr, org = cidr[:i], cidr[i+1:]+" "+org
		}
		org = strings.Join(strings.Fields(org), " ")
		where := fmt.Sprintf("%s:%d", path, line)
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR prefix (want e.g. 192.0.2.0/24 or 2001:db8::/32)", where, cidr)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%s: %s has host bits set (did you mean %s?)", where, p, p.Masked())
		}
		if org == "" {
			return nil, fmt.Errorf("%s: %s has no organisation (want: CIDR organisation name)", where, p)
		}
		if len(org) > 64 || strings.ContainsFunc(org, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("%s: organisation %q must be printable and at most 64 bytes", where, org)
		}
		p = canonical(p)
		m := k.byLen[p.Bits()]
		if m == nil {
			m = map[netip.Prefix]string{}
			k.byLen[p.Bits()] = m
		}
		if old, dup := m[p]; dup {
			return nil, fmt.Errorf("%s: %s is listed twice (also for %q)", where, cidr, old)
		}
		m[p] = org
		orgs[org] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	for l := range k.byLen {
		k.lens = append(k.lens, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(k.lens)))
	for o := range orgs {
		k.orgs = append(k.orgs, o)
	}
	sort.Strings(k.orgs)
	return k, nil
}

// canonical maps IPv4 prefixes into the IPv4-mapped IPv6 space so one table serves both.
func canonical(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	return p
}

// Lookup returns the organisation of the longest listed prefix holding a, or "".
func (k *Known) Lookup(a netip.Addr) string {
	if k == nil || !a.IsValid() {
		return ""
	}
	a16 := netip.AddrFrom16(a.As16())
	for _, l := range k.lens {
		if !a.Is4() && !a.Is4In6() && l > 128 {
			continue
		}
		p, err := a16.Prefix(l)
		if err != nil {
			continue
		}
		if org, ok := k.byLen[l][p]; ok {
			return org
		}
	}
	return ""
}

// Orgs returns the organisations of the list, sorted (the bounded label set of
// telescope_known_scanner_packets_total).
func (k *Known) Orgs() []string {
	if k == nil {
		return nil
	}
	return k.orgs
}
