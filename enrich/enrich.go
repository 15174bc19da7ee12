package enrich

import (
	"net/netip"

	"github.com/telescope-dev/telescope/detect"
)

// Paths are the enrichment files of the configuration (enrich.* keys); empty = not used.
type Paths struct {
	KnownScanners string
	GeoIPCountry  string
	GeoIPASN      string
}

// Enricher labels addresses with what the files say. The zero value (or nil) labels nothing.
type Enricher struct {
	known *Known
	geo   *GeoIP
}

// Open loads every configured file. Any error (one line, naming the file) leaves nothing
// open.
func Open(p Paths) (*Enricher, error) {
	e := &Enricher{}
	if p.KnownScanners != "" {
		k, err := LoadKnown(p.KnownScanners)
		if err != nil {
			return nil, err
		}
		e.known = k
	}
	if p.GeoIPCountry != "" || p.GeoIPASN != "" {
		g, err := OpenGeoIP(p.GeoIPCountry, p.GeoIPASN)
		if err != nil {
			return nil, err
		}
		e.geo = g
	}
	return e, nil
}

// Label fills w for address a.
func (e *Enricher) Label(a netip.Addr, w *detect.Who) {
	if e == nil {
		return
	}
	w.Org = e.known.Lookup(a)
	w.Country, w.ASN, w.ASName = e.geo.Lookup(a)
}

// Orgs returns the organisations of the known-scanners list.
func (e *Enricher) Orgs() []string {
	if e == nil {
		return nil
	}
	return e.known.Orgs()
}

// Empty reports whether there is nothing to look up (no known-scanners list, no database).
func (e *Enricher) Empty() bool { return e == nil || e.known == nil && e.geo == nil }

// HasGeo reports whether a country or ASN database is open.
func (e *Enricher) HasGeo() bool { return e != nil && e.geo != nil }

// Close releases the databases. No Label may run concurrently or after.
func (e *Enricher) Close() {
	if e != nil {
		e.geo.Close()
	}
}
