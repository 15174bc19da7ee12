package detect

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// parseCases are entries in AppendJSON's form: plain ones (the parser must take them) and
// ones with labels, escaped or non-ASCII strings and extreme numbers and times.
func parseCases(rng *rand.Rand) []Entry {
	addrs := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:10.0.0.1"}
	strs := []string{"mirai", "", "dht", "other", `a"b`, `back\slash`, "<tag>", "é", "tab\t", "zmap scan"}
	times := []Time{0, 1, -1, 1714521600123456789, 1714521600000000000, 1<<62 - 1, -1 << 62}
	nums := []uint64{0, 1, 9, 10, 1 << 32, 1<<64 - 1}
	ip := func() IP {
		return IP(packet.AddrFromNetip(netip.MustParseAddr(addrs[rng.IntN(len(addrs))])))
	}
	who := func() Who {
		if rng.IntN(4) != 0 {
			return Who{}
		}
		return Who{Org: strs[rng.IntN(len(strs))], Country: "NL", ASN: uint32(rng.IntN(70000)), Silenced: rng.IntN(2) == 0}
	}
	var out []Entry
	for range 2000 {
		out = append(out,
			&ToolEntry{Src: ip(), Tool: strs[rng.IntN(len(strs))], Packets: nums[rng.IntN(len(nums))], Probes: nums[rng.IntN(len(nums))],
				FirstSeen: times[rng.IntN(len(times))], LastSeen: times[rng.IntN(len(times))], Who: who()},
			&UDPThenSYNEntry{Src: ip(), Dst: ip(), Port: uint16(rng.IntN(65536)), UDPPackets: nums[rng.IntN(len(nums))], SYNPackets: nums[rng.IntN(len(nums))],
				Payload: strs[rng.IntN(len(strs))], FirstSeen: times[rng.IntN(len(times))], LastSeen: times[rng.IntN(len(times))], Who: who()})
	}
	return out
}

// TestParseJSONAsEncodingJSON: what ParseJSON takes, it reads as json.Unmarshal reads it;
// it takes every entry whose strings (labels included) are plain, and leaves the entry as
// it was when it refuses.
func TestParseJSONAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	taken, refused := 0, 0
	for _, e := range parseCases(rng) {
		b := e.(JSONAppender).AppendJSON(nil)
		want := reflect.New(reflect.TypeOf(e).Elem()).Interface()
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		got := reflect.New(reflect.TypeOf(e).Elem()).Interface().(JSONParser)
		ok := got.ParseJSON(b)
		plainWho := func(w Who) bool {
			return PlainString(w.Org) && PlainString(w.Country) && PlainString(w.ASName)
		}
		var plain bool
		switch x := e.(type) {
		case *ToolEntry:
			plain = plainWho(x.Who) && PlainString(x.Tool)
		case *UDPThenSYNEntry:
			plain = plainWho(x.Who) && PlainString(x.Payload)
		}
		switch {
		case ok && !reflect.DeepEqual(got, want):
			t.Fatalf("%s: parsed %+v, encoding/json %+v", b, got, want)
		case !ok && plain:
			t.Fatalf("%s: refused a plain entry", b)
		case !ok && !reflect.ValueOf(got).Elem().IsZero():
			t.Fatalf("%s: refused, but the entry changed: %+v", b, got)
		}
		if ok {
			taken++
		} else {
			refused++
		}
	}
	if taken == 0 || refused == 0 {
		t.Errorf("%d taken, %d refused: both paths must be tried", taken, refused)
	}
	for _, b := range []string{
		``, `{}`, `{"src":"192.0.2.1","tool":"x","packets":01,"syn_probes":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z"}`,
		`{"src":"192.0.2.1","tool":"x","packets":18446744073709551616,"syn_probes":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z"}`,
		`{"src":"192.0.2.1","tool":"x","packets":1,"syn_probes":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z"} `,
		`{"src":"192.0.2.1","dst":"192.0.2.2","port":65536,"udp_packets":1,"syn_packets":1,"payload":"dht","first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z"}`,
		`{"src":"300.0.2.1","tool":"x","packets":1,"syn_probes":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z"}`,
	} {
		var te ToolEntry
		var ue UDPThenSYNEntry
		if te.ParseJSON([]byte(b)) || ue.ParseJSON([]byte(b)) {
			t.Errorf("%s: taken", b)
		}
	}
}

// FuzzParseJSON: whatever the bytes, ParseJSON does not panic, and what it takes
// json.Unmarshal reads the same.
func FuzzParseJSON(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, e := range parseCases(rng)[:40] {
		f.Add(e.(JSONAppender).AppendJSON(nil))
	}
	for _, e := range scannerCases(rng)[:40] {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mk := range []func() JSONParser{func() JSONParser { return &ToolEntry{} }, func() JSONParser { return &UDPThenSYNEntry{} },
			func() JSONParser { return &ScannerEntry{} }} {
			got := mk()
			if !got.ParseJSON(b) {
				continue
			}
			want := mk()
			if err := json.Unmarshal(b, want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: parsed %+v, encoding/json %+v (%v)", b, got, want, err)
			}
		}
	})
}

// scannerCases are scanner entries with and without profiles, top ports, labels and
// estimates, floats of every form json.Marshal writes, and strings it escapes.
func scannerCases(rng *rand.Rand) []*ScannerEntry {
	strs := []string{"syn", "", "TCP-SYN to TCP/22, TCP/80 and TCP/2222 (also UDP)", `a"b`, "<tag>", "AT&T", "é", "horizontal"}
	floats := []float64{0, 1, 13, 0.1, 1.0 / 3, 330000000, 1e-7, 1e21, 1.5e300, 123456789012345678, 5e-324}
	nums := []uint64{0, 1, 9, 10, 1 << 32, 1<<64 - 1}
	times := []Time{0, 1, 1714521600123456789, 1<<62 - 1}
	str := func() string { return strs[rng.IntN(len(strs))] }
	var out []*ScannerEntry
	for range 3000 {
		e := &ScannerEntry{Src: []string{"192.0.2.1", "2001:db8::1"}[rng.IntN(2)], Class: str(),
			Packets: nums[rng.IntN(len(nums))], Targets: nums[rng.IntN(len(nums))], Ports: nums[rng.IntN(len(nums))],
			FirstSeen: times[rng.IntN(len(times))], LastSeen: times[rng.IntN(len(times))],
			TargetsEstimated: rng.IntN(3) == 0, Technique: str(), Summary: str()}
		if rng.IntN(4) != 0 {
			p := &Profile{Ports: nums[rng.IntN(len(nums))], Addresses: nums[rng.IntN(len(nums))], AddressesAtLeast: rng.IntN(2) == 0,
				PortMin: uint16(rng.IntN(65536)), PortMax: uint16(rng.IntN(65536))}
			if n := rng.IntN(4); n > 0 {
				p.TopPorts = []PortShare{}
				for range n - 1 {
					p.TopPorts = append(p.TopPorts, PortShare{Proto: str(), Port: uint16(rng.IntN(65536)), Packets: nums[rng.IntN(len(nums))], Share: floats[rng.IntN(len(floats))]})
				}
			}
			if n := rng.IntN(4); n > 0 {
				p.Protocols = []string{}
				for range n - 1 {
					p.Protocols = append(p.Protocols, str())
				}
			}
			e.Profile = p
		}
		if rng.IntN(3) == 0 {
			e.Who = Who{Org: str(), Country: "NL", ASN: uint32(rng.IntN(70000)), ASName: str(), Silenced: rng.IntN(2) == 0}
		}
		if rng.IntN(2) == 0 {
			e.ProbesPerSecondEstimated, e.IPv4SweepSecondsEstimated = floats[rng.IntN(len(floats))], floats[rng.IntN(len(floats))]
		}
		out = append(out, e)
	}
	return out
}

// TestScannerParseJSONAsEncodingJSON: what ScannerEntry.ParseJSON takes of json.Marshal's
// form it reads as json.Unmarshal does (and marshals back to the same bytes); it takes
// every entry whose strings are plain, and leaves the entry as it was when it refuses.
func TestScannerParseJSONAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	plainStr := func(s string) bool { return PlainString(s) && !strings.ContainsAny(s, "<>&") }
	taken, refused := 0, 0
	for _, e := range scannerCases(rng) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var want ScannerEntry
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		plain := plainStr(e.Src) && plainStr(e.Class) && plainStr(e.Technique) && plainStr(e.Summary) &&
			plainStr(e.Org) && plainStr(e.Country) && plainStr(e.ASName)
		if e.Profile != nil {
			for _, p := range e.Profile.TopPorts {
				plain = plain && plainStr(p.Proto)
			}
			for _, p := range e.Profile.Protocols {
				plain = plain && plainStr(p)
			}
		}
		var got ScannerEntry
		ok := got.ParseJSON(b)
		switch {
		case ok && !reflect.DeepEqual(got, want):
			t.Fatalf("%s: parsed %+v, encoding/json %+v", b, got, want)
		case !ok && plain:
			t.Fatalf("%s: refused a plain entry", b)
		case !ok && !reflect.ValueOf(got).IsZero():
			t.Fatalf("%s: refused, but the entry changed: %+v", b, got)
		}
		if ok {
			if back, _ := json.Marshal(&got); string(back) != string(b) {
				t.Fatalf("%s: marshalled back as %s", b, back)
			}
			taken++
		} else {
			refused++
		}
	}
	if taken < 100 || refused < 100 {
		t.Errorf("%d taken, %d refused: both paths must be tried", taken, refused)
	}
	for _, b := range []string{
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","probes_per_second_estimated":1.}`,
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","probes_per_second_estimated":1e400}`,
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","probes_per_second_estimated":01}`,
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","profile":{"ports":1,"addresses":1,"port_min":70000,"port_max":1,"top_ports":null,"protocols":null}}`,
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","profile":{"ports":1,"addresses":1,"port_min":1,"port_max":1,"top_ports":[,],"protocols":null}}`,
		`{"src":"x","class":"c","packets":1,"targets":1,"ports":1,"first_seen":"1970-01-01T00:00:00Z","last_seen":"1970-01-01T00:00:00Z","technique":"syn","summary":"s","asn":4294967296}`,
	} {
		var e ScannerEntry
		if e.ParseJSON([]byte(b)) {
			t.Errorf("%s: taken", b)
		}
	}
}
