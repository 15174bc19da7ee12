package enrich

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// GeoIP reads a country and an ASN database in the MaxMind DB format (GeoLite2-Country and
// GeoLite2-ASN, or DB-IP's free "IP to Country Lite" and "IP to ASN Lite" in mmdb form).
// Either may be absent. Lookups are safe concurrently; Close is not (the Enricher guards it).
type GeoIP struct {
	country, asn *maxminddb.Reader
}

// OpenGeoIP opens the databases whose paths are not empty. A missing, unreadable or corrupt
// file, or one of the wrong type, is an error naming it.
func OpenGeoIP(countryPath, asnPath string) (*GeoIP, error) {
	g := &GeoIP{}
	var err error
	if countryPath != "" {
		if g.country, err = openDB(countryPath, "country", "Country", "City"); err != nil {
			return nil, err
		}
	}
	if asnPath != "" {
		if g.asn, err = openDB(asnPath, "ASN", "ASN", "ISP"); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// openDB opens one database and checks that its records hold what we read from them.
func openDB(path, what string, types ...string) (*maxminddb.Reader, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip %s database %s: %w", what, path, err)
	}
	if err := r.Verify(); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("geoip %s database %s: corrupt: %w", what, path, err)
	}
	for _, t := range types {
		if strings.Contains(r.Metadata.DatabaseType, t) {
			return r, nil
		}
	}
	_ = r.Close()
	article := "a"
	if what == "ASN" {
		article = "an"
	}
	return nil, fmt.Errorf("geoip %s database %s: its type %q is not %s %s database", what, path, r.Metadata.DatabaseType, article, what)
}

// countryRecord is the part of a GeoLite2/DB-IP country record we read.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
}

// asnRecord is a GeoLite2/DB-IP ASN record.
type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// Lookup returns the ISO 3166-1 alpha-2 country code ("" when unknown or not a two-letter
// code) and the AS number and organisation (0, "" when unknown) of a.
func (g *GeoIP) Lookup(a netip.Addr) (country string, asn uint32, asName string) {
	if g == nil || !a.IsValid() {
		return "", 0, ""
	}
	a = a.Unmap()
	if g.country != nil {
		var rec countryRecord
		if err := g.country.Lookup(a).Decode(&rec); err == nil && isISO(rec.Country.ISOCode) {
			country = rec.Country.ISOCode
		}
	}
	if g.asn != nil {
		var rec asnRecord
		if err := g.asn.Lookup(a).Decode(&rec); err == nil {
			asn, asName = rec.Number, rec.Org
		}
	}
	return country, asn, asName
}

// isISO accepts two upper-case ASCII letters: the country label stays a bounded set.
func isISO(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// Close closes the databases.
func (g *GeoIP) Close() {
	if g == nil {
		return
	}
	if g.country != nil {
		_ = g.country.Close()
	}
	if g.asn != nil {
		_ = g.asn.Close()
	}
}
