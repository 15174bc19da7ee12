package packet

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// fuzzDecode runs the decoder the way the fuzz target does. For LinkNetwork the first two
// bytes are the EtherType passed to DecodeNetwork and the rest is the frame.
func fuzzDecode(link uint32, data []byte, h *Header) (frame []byte) {
	if LinkType(link) == LinkNetwork {
		if len(data) < 2 {
			return nil
		}
		DecodeNetwork(binary.BigEndian.Uint16(data), data[2:], h)
		return data[2:]
	}
	Decode(LinkType(link), data, h)
	return data
}

// FuzzDecode checks the decoder's invariants on arbitrary bytes of every link type, and
// compares it with gopacket wherever the oracle understands the link type (see
// TestDecodeMatchesGopacket for the rules). The seeds live in testdata/fuzz/FuzzDecode (see
// TestWriteFuzzSeeds).
func FuzzDecode(f *testing.F) {
	var h Header
	o := newGopacketOracle()
	st := diffStats{skipped: map[string]int{}}
	f.Fuzz(func(t *testing.T, link uint32, data []byte) {
		// Decode into a Header full of stale values: nothing may leak into the result.
		h.TS, h.WireLen = 7, 9
		frame := fuzzDecode(link, data, &h)
		if LinkType(link) == LinkNetwork && len(data) < 2 {
			return
		}
		var fresh Header
		fresh.TS, fresh.WireLen = 7, 9
		fuzzDecode(link, data, &fresh)
		if h != fresh {
			t.Fatalf("decode into a used Header differs from a fresh one:%s", diffHeaders(h, fresh))
		}
		if err := checkInvariants(&h, frame); err != nil {
			t.Fatalf("link %d frame % x: %v", link, frame, err)
		}
		if err := o.compare(LinkType(link), frame, &st); err != nil {
			t.Fatalf("link %d frame % x: differs from gopacket: %v", link, frame, err)
		}
	})
}

// checkInvariants states what must hold for any input.
func checkInvariants(h *Header, frame []byte) error {
	switch {
	case h.Result >= NumResults:
		return fmt.Errorf("Result %d out of range", h.Result)
	case h.Result == ResultIP && h.IPVersion != 4 && h.IPVersion != 6:
		return fmt.Errorf("ResultIP with IPVersion %d", h.IPVersion)
	case h.Result != ResultIP && (h.IPVersion != 0 || h.L4 || h.Src != Addr{} || h.Proto != 0):
		return fmt.Errorf("Result %v but IP fields set: %+v", h.Result, *h)
	case h.L4 && h.Result != ResultIP:
		return fmt.Errorf("L4 without ResultIP")
	case h.PayloadCap > PayloadMax:
		return fmt.Errorf("PayloadCap %d", h.PayloadCap)
	case h.CapLen != uint32(len(frame)):
		return fmt.Errorf("CapLen %d, frame %d bytes", h.CapLen, len(frame))
	case h.TS != 7 || h.WireLen != 9:
		return fmt.Errorf("TS/WireLen changed to %d/%d", h.TS, h.WireLen)
	case int(h.IPHdrLen) > len(frame):
		return fmt.Errorf("IPHdrLen %d beyond the %d-byte frame", h.IPHdrLen, len(frame))
	case int(h.PayloadCap) > int(h.PayloadLen):
		return fmt.Errorf("PayloadCap %d > PayloadLen %d", h.PayloadCap, h.PayloadLen)
	case h.Frag&FragNonFirst != 0 && (h.L4 || h.SrcPort != 0 || h.DstPort != 0):
		return fmt.Errorf("non-first fragment with a transport header")
	case h.VLANs > MaxVLANTags:
		return fmt.Errorf("VLANs %d", h.VLANs)
	}
	return nil
}

// fuzzSeeds returns one or more valid frames per link type (and a few damaged ones).
func fuzzSeeds(t testing.TB) map[string]struct {
	link  LinkType
	frame []byte
} {
	ip4 := serializeLayers(t, ip4L(layers.IPProtocolTCP), synL())
	ip6 := serializeLayers(t, ip6L(layers.IPProtocolUDP), udpL(), gopacket.Payload("d1:ad2:id20:"))
	q := serializeLayers(t, &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolUDP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.UDP{SrcPort: 1, DstPort: 2})
	sll := append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x81, 0x00, 0, 5, 0x08, 0x00}, ip4...)
	sll2 := append([]byte{0x86, 0xDD, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}, ip6...)
	return map[string]struct {
		link  LinkType
		frame []byte
	}{
		"ethernet-ipv4-syn":   {LinkEthernet, ethIPv4SYN(t)},
		"ethernet-ipv4-udp":   {LinkEthernet, ethIPv4UDP(t, []byte("d1:ad2:id20:"))},
		"ethernet-ipv6-syn":   {LinkEthernet, ethIPv6SYN(t)},
		"ethernet-vlan":       {LinkEthernet, ethVLANIPv4SYN(t)},
		"ethernet-snap":       {LinkEthernet, append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0, 52, 0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00}, ip4...)},
		"raw-icmp-error":      {LinkRaw, icmp4(t, 3, 3, q)},
		"raw-icmpv6-error":    {LinkRaw, icmp6(t, 1, 4, ip6)},
		"raw-ipv6-ext":        {LinkRaw, ipv6Ext(t, 0, ext6(44, 1), []byte{6, 0, 0, 1, 0, 0, 0, 9}, serializeLayers(t, synL()))},
		"bsd-raw-12":          {LinkRawBSD1, ip4},
		"bsd-raw-14":          {LinkRawBSD2, ip6},
		"ipv4":                {LinkIPv4, ip4},
		"ipv6":                {LinkIPv6, ip6},
		"null":                {LinkNull, append([]byte{2, 0, 0, 0}, ip4...)},
		"loop":                {LinkLoop, append([]byte{0, 0, 0, 24}, ip6...)},
		"linux-sll":           {LinkLinuxSLL, sll},
		"linux-sll2":          {LinkLinuxSLL2, sll2},
		"network-vlan":        {LinkNetwork, append([]byte{0x81, 0x00, 0, 5, 0x86, 0xDD}, ip6...)},
		"ipv4-options-frag":   {LinkRaw, withU16(serializeLayers(t, ip4With(layers.IPProtocolUDP, func(l *layers.IPv4) { l.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 0}} }), udpL()), 6, 0x2000)},
		"ethernet-truncated":  {LinkEthernet, ethIPv4SYN(t)[:30]},
		"unknown-link-type-9": {LinkType(9), ip4},
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecode from the builders above when
// TELESCOPE_WRITE_FUZZ_SEEDS=1, and otherwise checks that the seed corpus holds one seed
// per builder, so a new link type cannot be added without a seed.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	seeds := fuzzSeeds(t)
	for name, s := range seeds {
		// For LinkNetwork the EtherType already leads the bytes (see fuzzDecode).
		body := fmt.Sprintf("go test fuzz v1\nuint32(%d)\n[]byte(%q)\n", uint32(s.link), s.frame)
		path := filepath.Join(dir, "seed-"+name)
		if os.Getenv("TELESCOPE_WRITE_FUZZ_SEEDS") == "1" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatalf("create %s: %v", dir, err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatalf("write seed: %v", err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s missing (run with TELESCOPE_WRITE_FUZZ_SEEDS=1): %v", name, err)
			continue
		}
		if !strings.HasPrefix(string(got), fmt.Sprintf("go test fuzz v1\nuint32(%d)\n", uint32(s.link))) {
			t.Errorf("seed %s has the wrong header: %q", name, got)
		}
	}
}
