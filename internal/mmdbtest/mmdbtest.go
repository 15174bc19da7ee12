// Package mmdbtest builds small MaxMind-format databases for tests (GeoLite2-Country and
// GeoLite2-ASN shapes) with github.com/maxmind/mmdbwriter.
package mmdbtest

import (
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Country writes a country database mapping each CIDR to an ISO code and returns its path.
func Country(t testing.TB, dir string, entries map[string]string) string {
	t.Helper()
	return write(t, dir+"/country.mmdb", "GeoLite2-Country", func(cidr, v string) mmdbtype.DataType {
		return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(v)}}
	}, entries)
}

// AS is an autonomous system.
type AS struct {
	Number uint32
	Org    string
}

// ASN writes an ASN database mapping each CIDR to an AS and returns its path.
func ASN(t testing.TB, dir string, entries map[string]AS) string {
	t.Helper()
	m := map[string]string{}
	byCIDR := map[string]AS{}
	for k, v := range entries {
		m[k] = ""
		byCIDR[k] = v
	}
	return write(t, dir+"/asn.mmdb", "GeoLite2-ASN", func(cidr, _ string) mmdbtype.DataType {
		as := byCIDR[cidr]
		return mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(as.Number),
			"autonomous_system_organization": mmdbtype.String(as.Org),
		}
	}, m)
}

func write(t testing.TB, path, dbType string, rec func(cidr, v string) mmdbtype.DataType, entries map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true, RecordSize: 24,
		Description: map[string]string{"en": "telescope test database"}, Languages: []string{"en"}})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, v := range entries {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec(cidr, v)); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
