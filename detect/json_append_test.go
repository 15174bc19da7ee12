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
// depend on which path wrote an entry): random entries of each type that has it, with
// every label combination and strings that encoding/json escapes.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	// A field added to a type must be added to its AppendJSON (an omitempty field left
	// zero here would not show the difference).
	for typ, want := range map[reflect.Type]int{
		reflect.TypeFor[ToolEntry]():       7,
		reflect.TypeFor[UDPThenSYNEntry](): 9,
		reflect.TypeFor[Who]():             5,
	} {
		if n := typ.NumField(); n != want {
			t.Fatalf("%v has %d fields, not %d: update its AppendJSON and this test", typ, n, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:192.0.2.7", "fe80::1:2:3:4"}
	strs := []string{"", "Shodan", "US", "AS \"quoted\" \\ back", "<script>&", "Ünïcödé", "tab\there", "bad \xff utf8", "line\u2028sep", "\x00\x1f\x7f"}
	nums := []uint64{0, 1, 9, 10, 12345, math.MaxUint16, math.MaxUint32, math.MaxUint64}
	times := []int64{0, 1, 1_700_000_000_123_456_789, -1, 1e9, 4102444800 * 1e9, math.MaxInt64, math.MinInt64}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	num := func() uint64 { return nums[rng.IntN(len(nums))] }
	tm := func() Time { return Time(times[rng.IntN(len(times))]) }
	for i := range 5000 {
		var who Who
		if i%2 == 1 {
			who = Who{Org: pick(strs), Country: pick(strs), ASN: uint32(num()), ASName: pick(strs), Silenced: rng.IntN(2) == 1}
		}
		tool := &ToolEntry{
			Src:  IP(packet.AddrFromNetip(netip.MustParseAddr(pick(addrs)))),
			Tool: Tools[rng.IntN(len(Tools))], Packets: num(), Probes: num(),
			FirstSeen: tm(), LastSeen: tm(), Who: who,
		}
		pair := &UDPThenSYNEntry{
			Src: IP(packet.AddrFromNetip(netip.MustParseAddr(pick(addrs)))), Dst: IP(packet.AddrFromNetip(netip.MustParseAddr(pick(addrs)))), Port: uint16(num()),
			UDPPackets: num(), SYNPackets: num(), Payload: pick(append(PayloadKinds, strs...)),
			FirstSeen: tm(), LastSeen: tm(), Who: who,
		}
		if i == 0 {
			tool.Src, tool.Tool = IP{}, "" // the zero address and an empty string
			pair.Dst = IP{}
		}
		for _, e := range []JSONAppender{tool, pair} {
			want, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.AppendJSON([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("entry %+v:\nAppendJSON %s\njson       %s", e, got[len("prefix"):], want)
			}
		}
	}
}
