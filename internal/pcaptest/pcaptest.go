// Package pcaptest builds frames and capture files with known contents for tests and
// benchmarks.
package pcaptest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Packet describes one frame to build. Zero fields get sensible values.
type Packet struct {
	TS       time.Time
	Src, Dst netip.Addr
	// Proto: "tcp", "udp", "icmp" (ICMPv6 for IPv6 addresses), or "" for TCP.
	Proto            string
	SrcPort, DstPort uint16
	Flags            uint8 // TCP flags byte (FIN=1, SYN=2, RST=4, PSH=8, ACK=16, URG=32, ECE=64, CWR=128)
	Seq              uint32
	Window           uint16
	IPID             uint16
	TTL              uint8
	MSS              uint16 // add an MSS option when non-zero
	ICMPType         uint8
	ICMPCode         uint8
	Payload          []byte
	VLAN             uint16 // 802.1Q tag when non-zero
	// Quote, for ICMP errors, is the packet quoted after the ICMP header.
	Quote *Packet
}

// ipLayers returns the serialisable network and transport layers of p.
func (p *Packet) ipLayers() ([]gopacket.SerializableLayer, error) {
	ttl := p.TTL
	if ttl == 0 {
		ttl = 64
	}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	v6 := p.Src.Is6() && !p.Src.Is4In6()
	proto := p.Proto
	if proto == "" {
		proto = "tcp"
	}
	ipProto := map[string]layers.IPProtocol{"tcp": layers.IPProtocolTCP, "udp": layers.IPProtocolUDP, "icmp": layers.IPProtocolICMPv4}[proto]
	if v6 && proto == "icmp" {
		ipProto = layers.IPProtocolICMPv6
	}
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: ipProto, SrcIP: net.IP(p.Src.AsSlice()), DstIP: net.IP(p.Dst.AsSlice())}
		ls, nl = append(ls, ip), ip
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Id: p.IPID, Protocol: ipProto, SrcIP: net.IP(p.Src.AsSlice()), DstIP: net.IP(p.Dst.AsSlice())}
		ls, nl = append(ls, ip), ip
	}
	switch proto {
	case "tcp":
		win := p.Window
		if win == 0 {
			win = 65535
		}
		t := &layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort), Seq: p.Seq, Window: win,
			FIN: p.Flags&1 != 0, SYN: p.Flags&2 != 0, RST: p.Flags&4 != 0, PSH: p.Flags&8 != 0,
			ACK: p.Flags&16 != 0, URG: p.Flags&32 != 0, ECE: p.Flags&64 != 0, CWR: p.Flags&128 != 0}
		if p.MSS != 0 {
			t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(p.MSS >> 8), byte(p.MSS)}}}
		}
		if err := t.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, err
		}
		ls = append(ls, t)
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, err
		}
		ls = append(ls, u)
	case "icmp":
		if v6 {
			ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.ICMPType, p.ICMPCode)}
			if err := ic.SetNetworkLayerForChecksum(nl); err != nil {
				return nil, err
			}
			ls = append(ls, ic, gopacket.Payload([]byte{0, 0, 0, 0}))
		} else {
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.ICMPType, p.ICMPCode)})
		}
	default:
		return nil, fmt.Errorf("pcaptest: unknown protocol %q", proto)
	}
	payload := p.Payload
	if p.Quote != nil {
		q, err := p.Quote.IPBytes()
		if err != nil {
			return nil, err
		}
		payload = append(append([]byte(nil), q...), payload...)
	}
	if len(payload) > 0 {
		ls = append(ls, gopacket.Payload(payload))
	}
	return ls, nil
}

var opts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

// IPBytes returns the packet from its IP header on (raw IP).
func (p *Packet) IPBytes() ([]byte, error) {
	ls, err := p.ipLayers()
	if err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EthernetBytes returns the packet as an Ethernet frame (802.1Q-tagged when VLAN != 0).
func (p *Packet) EthernetBytes() ([]byte, error) {
	ls, err := p.ipLayers()
	if err != nil {
		return nil, err
	}
	et := layers.EthernetTypeIPv4
	if p.Src.Is6() && !p.Src.Is4In6() {
		et = layers.EthernetTypeIPv6
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: et}
	head := []gopacket.SerializableLayer{eth}
	if p.VLAN != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		head = append(head, &layers.Dot1Q{VLANIdentifier: p.VLAN, Type: et})
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, append(head, ls...)...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Frame is a raw record for a capture file.
type Frame struct {
	TS      time.Time
	Data    []byte
	WireLen int // 0 = len(Data)
}

// Writer writes an Ethernet pcap with nanosecond timestamps.
type Writer struct {
	w *pcapgo.Writer
}

// EthernetFrames returns the Ethernet bytes of each packet (for a live sender).
func EthernetFrames(ps []Packet) ([][]byte, error) {
	out := make([][]byte, len(ps))
	for i := range ps {
		b, err := ps[i].EthernetBytes()
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// NewWriter writes the file header for link type link (layers.LinkTypeEthernet usually).
func NewWriter(out io.Writer, link layers.LinkType) (*Writer, error) {
	w := pcapgo.NewWriterNanos(out)
	if err := w.WriteFileHeader(65535, link); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WriteFrame writes one raw record.
func (w *Writer) WriteFrame(f Frame) error {
	wl := f.WireLen
	if wl == 0 {
		wl = len(f.Data)
	}
	return w.w.WritePacket(gopacket.CaptureInfo{Timestamp: f.TS, CaptureLength: len(f.Data), Length: wl}, f.Data)
}

// Write writes p as an Ethernet frame.
func (w *Writer) Write(p *Packet) error {
	b, err := p.EthernetBytes()
	if err != nil {
		return err
	}
	return w.WriteFrame(Frame{TS: p.TS, Data: b})
}

// WriteFile writes packets as an Ethernet pcap file at path.
func WriteFile(path string, ps []Packet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := NewWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		f.Close()
		return err
	}
	for i := range ps {
		if err := w.Write(&ps[i]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
