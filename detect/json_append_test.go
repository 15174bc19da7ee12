package detect

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// AppendJSON must write exactly what encoding/json writes (the report's bytes do not
// depend on which path wrote an entry): random entries, with every label combination and
// strings that encoding/json escapes.
func TestToolEntryAppendJSONMatchesEncodingJSON(t *testing.T) {
	// A field added to either type must be added to AppendJSON (an omitempty field left
	// zero here would not show the difference).
	if n, m := reflect.TypeFor[ToolEntry]().NumField(), reflect.TypeFor[Who]().NumField(); n != 7 || m != 5 {
		t.Fatalf("ToolEntry has %d fields, Who %d: update AppendJSON and this test", n, m)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:192.0.2.7", "fe80::1:2:3:4"}
	strs := []string{"", "Shodan", "US", "AS \"quoted\" \\ back", "<script>&", "Ünïcödé", "tab\there", "bad \xff utf8", "line\u2028sep", "\x00\x1f\x7f"}
	nums := []uint64{0, 1, 9, 10, 12345, math.MaxUint32, math.MaxUint64}
	times := []int64{0, 1, 1_700_000_000_123_456_789, -1, 1e9, 4102444800 * 1e9, math.MaxInt64, math.MinInt64}
	for i := range 5000 {
		e := &ToolEntry{
			Src:       IP(packet.AddrFromNetip(netip.MustParseAddr(addrs[rng.IntN(len(addrs))]))),
			Tool:      Tools[rng.IntN(len(Tools))],
			Packets:   nums[rng.IntN(len(nums))],
			Probes:    nums[rng.IntN(len(nums))],
			FirstSeen: Time(times[rng.IntN(len(times))]),
			LastSeen:  Time(times[rng.IntN(len(times))]),
		}
		if i%2 == 1 {
			e.Who = Who{
				Org:      strs[rng.IntN(len(strs))],
				Country:  strs[rng.IntN(len(strs))],
				ASN:      uint32(nums[rng.IntN(len(nums))]),
				ASName:   strs[rng.IntN(len(strs))],
				Silenced: rng.IntN(2) == 1,
			}
		}
		if i == 0 {
			e.Src, e.Tool = IP{}, "" // the zero address and an empty string
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("entry %+v:\nAppendJSON %s\njson       %s", e, got[len("prefix"):], want)
		}
	}
}
