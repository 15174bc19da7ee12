package detect

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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
	strs := []string{"", "Shodan", "US", "AS \"quoted\" \\ back", "<script>&", "Ünïcödé", "tab\there", "bad \xff utf8", "line\u2028sep", "\x00\x1f\x7f"}
	pick, num, tm, addr := entryValues(rng)
	for i := range 5000 {
		var who Who
		if i%2 == 1 {
			who = Who{Org: pick(strs), Country: pick(strs), ASN: uint32(num()), ASName: pick(strs), Silenced: rng.IntN(2) == 1}
		}
		tool := &ToolEntry{
			Src:  addr(),
			Tool: Tools[rng.IntN(len(Tools))], Packets: num(), Probes: num(),
			FirstSeen: tm(), LastSeen: tm(), Who: who,
		}
		pair := &UDPThenSYNEntry{
			Src: addr(), Dst: addr(), Port: uint16(num()),
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

// AppendLogJSON must write what zap's JSON encoder writes for the entry's MarshalLogObject
// whenever it accepts the entry (the log writer then writes the line itself): random
// entries of the types that have it, with strings zap and encoding/json escape
// differently, which it refuses, as a labelled entry or one of a type without a JSON
// appender.
func TestAppendLogJSONMatchesZap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "dht", "utp", "<script>&", "Ünïcödé", "tab\there", "q\"uote", "\x00\x7f"}
	pick, num, tm, addr := entryValues(rng)
	zapJSON := func(e Entry) string {
		buf, err := zapcore.NewJSONEncoder(zapcore.EncoderConfig{}).EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(e)})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
	plain := 0
	for i := range 5000 {
		var who Who
		if i%4 == 3 {
			who = Who{Org: pick(strs), Country: pick(strs), ASN: uint32(num()), ASName: pick(strs), Silenced: rng.IntN(2) == 1}
		}
		tool := &ToolEntry{Src: addr(), Tool: Tools[rng.IntN(len(Tools))], Packets: num(), Probes: num(),
			FirstSeen: tm(), LastSeen: tm(), Who: who}
		if i%5 == 0 {
			tool.Tool = pick(strs)
		}
		pair := &UDPThenSYNEntry{Src: addr(), Dst: addr(), Port: uint16(num()), UDPPackets: num(), SYNPackets: num(),
			Payload: pick(append(PayloadKinds, strs...)), FirstSeen: tm(), LastSeen: tm(), Who: who}
		for _, e := range []Entry{tool, pair} {
			got, ok := AppendLogJSON([]byte("prefix"), e)
			str := tool.Tool
			if e == Entry(pair) {
				str = pair.Payload
			}
			if want := who == (Who{}) && !strings.ContainsAny(str, "\"\\<>&\t\x00\x7f") && str == strings.ToValidUTF8(str, "") &&
				!strings.ContainsFunc(str, func(r rune) bool { return r > 0x7e }); ok != want {
				t.Fatalf("entry %+v: ok %v, want %v", e, ok, want)
			}
			if !ok {
				if string(got) != "prefix" {
					t.Fatalf("entry %+v refused, but appended %q", e, got)
				}
				continue
			}
			obj := string(got[len("prefix"):])
			plain++
			if want := zapJSON(e); obj != want {
				t.Fatalf("entry %+v:\nAppendLogJSON %s\nzap           %s", e, obj, want)
			}
		}
	}
	if plain < 4000 {
		t.Errorf("only %d entries compared", plain)
	}
	scan := &ScannerEntry{Src: "192.0.2.1"}
	if got, ok := AppendLogJSON(nil, scan); ok || len(got) != 0 {
		t.Errorf("a scanner entry (no JSON appender): ok %v, %q", ok, got)
	}
}

// entryValues returns random field values for entries from rng: a string of a list, a
// count, a time and an address, each among edge cases (zero, maxima, times before 1970,
// IPv4-mapped IPv6).
func entryValues(rng *rand.Rand) (pick func([]string) string, num func() uint64, tm func() Time, addr func() IP) {
	addrs := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:192.0.2.7", "fe80::1:2:3:4"}
	nums := []uint64{0, 1, 9, 10, 12345, math.MaxUint16, math.MaxUint32, math.MaxUint64}
	times := []int64{0, 1, 1_700_000_000_123_456_789, -1, 1e9, 4102444800 * 1e9, math.MaxInt64, math.MinInt64}
	pick = func(s []string) string { return s[rng.IntN(len(s))] }
	num = func() uint64 { return nums[rng.IntN(len(nums))] }
	tm = func() Time { return Time(times[rng.IntN(len(times))]) }
	addr = func() IP { return IP(packet.AddrFromNetip(netip.MustParseAddr(pick(addrs)))) }
	return pick, num, tm, addr
}

// TestScannerAppendJSONAsMarshal: a scanner entry writes json.Marshal's bytes (profiles or
// none, empty and null lists, labels, estimates, floats of every form, strings it
// escapes), and refuses a float json.Marshal refuses.
func TestScannerAppendJSONAsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	n := 0
	for _, e := range scannerCases(rng) {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := e.AppendJSONOK([]byte("x"))
		if !ok || string(got) != "x"+string(want) {
			t.Fatalf("AppendJSONOK %v:\n%s\njson.Marshal:\n%s", ok, got, want)
		}
		n++
	}
	if n < 1000 {
		t.Fatalf("%d cases", n)
	}
	for _, e := range []*ScannerEntry{
		{ScanEstimates: ScanEstimates{ProbesPerSecondEstimated: math.Inf(1)}},
		{ScanEstimates: ScanEstimates{IPv4SweepSecondsEstimated: math.NaN()}},
		{Profile: &Profile{TopPorts: []PortShare{{Share: math.NaN()}}}},
	} {
		if b, ok := e.AppendJSONOK([]byte("x")); ok || string(b) != "x" {
			t.Errorf("%+v: written %q (%v), want refused", e, b, ok)
		}
		if _, err := json.Marshal(e); err == nil {
			t.Errorf("%+v: json.Marshal takes it", e)
		}
	}
}
