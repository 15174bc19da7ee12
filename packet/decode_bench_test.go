package packet

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// benchDecode reports the cost of decoding one frame repeatedly into one Header, as a
// worker does.
func benchDecode(b *testing.B, link LinkType, frame []byte) {
	var h Header
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		Decode(link, frame, &h)
	}
	if h.Result != ResultIP || !h.L4 {
		b.Fatalf("frame did not decode: Result %v L4 %v", h.Result, h.L4)
	}
}

// BenchmarkDecodeEthIPv4TCPSYN is the telescope's dominant packet: a scanner SYN with one
// MSS option (58 bytes), followed by the 16 bytes of Ethernet padding and trailer a
// capture commonly carries, 74 bytes in all.
func BenchmarkDecodeEthIPv4TCPSYN(b *testing.B) {
	f := append(ethIPv4SYN(b)[:58:58], bytes.Repeat([]byte{0xEE}, 16)...)
	if len(f) != 74 {
		b.Fatalf("frame is %d bytes, want 74", len(f))
	}
	benchDecode(b, LinkEthernet, f)
}

// BenchmarkDecodeEthIPv4TCPSYNLinux is a 74-byte Linux client SYN (data offset 10: MSS,
// SACK permitted, timestamps, NOP, window scale).
func BenchmarkDecodeEthIPv4TCPSYNLinux(b *testing.B) {
	tcp := synL()
	tcp.Options = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xB4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	f := serializeLayers(b, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcp)
	if len(f) != 74 {
		b.Fatalf("frame is %d bytes, want 74", len(f))
	}
	benchDecode(b, LinkEthernet, f)
}

func BenchmarkDecodeEthIPv4UDP(b *testing.B) {
	benchDecode(b, LinkEthernet, ethIPv4UDP(b, bytes.Repeat([]byte("d1:ad2:id20:"), 9)))
}

func BenchmarkDecodeEthIPv6TCP(b *testing.B) {
	benchDecode(b, LinkEthernet, ethIPv6SYN(b))
}

func BenchmarkDecodeEthVLANIPv4TCP(b *testing.B) {
	benchDecode(b, LinkEthernet, ethVLANIPv4SYN(b))
}

func BenchmarkDecodeEthIPv4ICMPError(b *testing.B) {
	q := serializeLayers(b, &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolTCP, SrcIP: tQSrc4, DstIP: tQDst4},
		&layers.TCP{SrcPort: 80, DstPort: 61000})
	f := serializeLayers(b, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(q[:28]))
	benchDecode(b, LinkEthernet, f)
}
