package enrich

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/mmdbtest"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKnownLookup(t *testing.T) {
	p := writeFile(t, "known.txt", `# example list
192.0.2.0/24     Example Research Scanner   # a comment
192.0.2.128/25   Example Subnet Owner
198.51.100.7/32	Tab Separated Org
2001:db8::/32    Example IPv6 Scanner

`)
	k, err := LoadKnown(p)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"192.0.2.1":        "Example Research Scanner",
		"192.0.2.200":      "Example Subnet Owner", // longest prefix
		"198.51.100.7":     "Tab Separated Org",
		"198.51.100.8":     "",
		"2001:db8::1":      "Example IPv6 Scanner",
		"2001:db9::1":      "",
		"::ffff:192.0.2.1": "Example Research Scanner",
		"203.0.113.1":      "",
	}
	for a, want := range cases {
		if got := k.Lookup(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
	want := []string{"Example IPv6 Scanner", "Example Research Scanner", "Example Subnet Owner", "Tab Separated Org"}
	if got := strings.Join(k.Orgs(), "|"); got != strings.Join(want, "|") {
		t.Errorf("orgs %q", got)
	}
}

func TestKnownErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"192.0.2.0/24 A\n192.0.2.x/24 B\n", ":2: \"192.0.2.x/24\" is not a CIDR prefix"},
		{"192.0.2.1/24 A\n", ":1: 192.0.2.1/24 has host bits set (did you mean 192.0.2.0/24?)"},
		{"\n\n192.0.2.0/24\n", ":3: 192.0.2.0/24 has no organisation"},
		{"192.0.2.0/24 A\n192.0.2.0/24 B\n", ":2: 192.0.2.0/24 is listed twice"},
		{"192.0.2.0/24 " + strings.Repeat("x", 65) + "\n", ":1: organisation"},
	}
	for _, c := range cases {
		p := writeFile(t, "bad.txt", c.text)
		_, err := LoadKnown(p)
		if err == nil || !strings.Contains(err.Error(), p+c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", c.text, err, p+c.want)
		}
	}
	if _, err := LoadKnown(filepath.Join(t.TempDir(), "missing.txt")); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: %v", err)
	}
}

func TestGeoIP(t *testing.T) {
	dir := t.TempDir()
	country := mmdbtest.Country(t, dir, map[string]string{"192.0.2.0/24": "UA", "2001:db8::/32": "IE", "198.51.100.0/24": "XX1"})
	asn := mmdbtest.ASN(t, dir, map[string]mmdbtest.AS{"192.0.2.0/25": {Number: 64500, Org: "Example Transit"}})
	e, err := Open(Paths{GeoIPCountry: country, GeoIPASN: asn})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cases := []struct {
		addr string
		want detect.Who
	}{
		{"192.0.2.1", detect.Who{Country: "UA", ASN: 64500, ASName: "Example Transit"}},
		{"192.0.2.200", detect.Who{Country: "UA"}},
		{"::ffff:192.0.2.1", detect.Who{Country: "UA", ASN: 64500, ASName: "Example Transit"}},
		{"2001:db8::5", detect.Who{Country: "IE"}},
		{"198.51.100.1", detect.Who{}}, // not an ISO code: left out
		{"203.0.113.1", detect.Who{}},
	}
	for _, c := range cases {
		var w detect.Who
		e.Label(netip.MustParseAddr(c.addr), &w)
		if w != c.want {
			t.Errorf("%s: %+v, want %+v", c.addr, w, c.want)
		}
	}
}

func TestGeoIPErrors(t *testing.T) {
	dir := t.TempDir()
	country := mmdbtest.Country(t, dir, map[string]string{"192.0.2.0/24": "UA"})
	asn := mmdbtest.ASN(t, dir, map[string]mmdbtest.AS{"192.0.2.0/24": {Number: 1, Org: "x"}})
	good, _ := os.ReadFile(country)
	corrupt := writeFile(t, "corrupt.mmdb", string(good[:len(good)/2])+strings.Repeat("\x00", 64))
	notDB := writeFile(t, "text.mmdb", "hello\n")
	cases := []struct {
		p    Paths
		want string
	}{
		{Paths{GeoIPCountry: filepath.Join(dir, "missing.mmdb")}, "geoip country database " + filepath.Join(dir, "missing.mmdb")},
		{Paths{GeoIPCountry: corrupt}, "geoip country database " + corrupt},
		{Paths{GeoIPASN: notDB}, "geoip ASN database " + notDB},
		{Paths{GeoIPCountry: asn}, `its type "GeoLite2-ASN" is not a country database`},
		{Paths{GeoIPASN: country}, `its type "GeoLite2-Country" is not an ASN database`},
	}
	for _, c := range cases {
		e, err := Open(c.p)
		if err == nil {
			e.Close()
			t.Errorf("%+v: no error", c.p)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: error %q, want one line with %q", c.p, err, c.want)
		}
	}
}

// TestShippedExampleList: the example file of deploy/ loads and labels its examples.
func TestShippedExampleList(t *testing.T) {
	k, err := LoadKnown("../deploy/known-scanners.example.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Lookup(netip.MustParseAddr("198.51.100.70")); got != "Example Exposure Search" {
		t.Errorf("198.51.100.70: %q", got)
	}
	if len(k.Orgs()) != 2 {
		t.Errorf("orgs %q", k.Orgs())
	}
}

// TestEmpty: an enricher with no list and no database has nothing to look up (the pipeline
// then skips the per-episode address parse); one with either is not empty.
func TestEmpty(t *testing.T) {
	var none *Enricher
	if !none.Empty() {
		t.Error("nil enricher not empty")
	}
	e, err := Open(Paths{})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Empty() {
		t.Error("enricher of no files not empty")
	}
	k, err := Open(Paths{KnownScanners: "../deploy/known-scanners.example.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Empty() {
		t.Error("enricher with a known-scanners list is empty")
	}
	dir := t.TempDir()
	g, err := Open(Paths{GeoIPCountry: mmdbtest.Country(t, dir, map[string]string{"192.0.2.0/24": "UA"})})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Empty() {
		t.Error("enricher with a country database is empty")
	}
}
