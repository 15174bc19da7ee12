package daygen

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/telescope-dev/telescope/packet"
)

// Fixed MACs of the telescope's upstream router and capture interface.
var (
	routerMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	sensorMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
)

// snaplen of the written file: every generated frame fits whole.
const snaplen = 65535

// writePcap writes the packets as an Ethernet pcap with nanosecond timestamps.
func writePcap(w io.Writer, pkts []pkt) error {
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(snaplen, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("daygen: write pcap header: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	for i := range pkts {
		data, err := frame(buf, &pkts[i])
		if err != nil {
			return err
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, pkts[i].h.TS), CaptureLength: len(data), Length: len(data)}
		if err := pw.WritePacket(ci, data); err != nil {
			return fmt.Errorf("daygen: write packet %d: %w", i, err)
		}
	}
	return nil
}

// frame serialises p as an Ethernet frame (valid lengths and checksums) into buf.
func frame(buf gopacket.SerializeBuffer, p *pkt) ([]byte, error) {
	h := &p.h
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: sensorMAC}
	var ip gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	src, dst := net.IP(h.Src.Netip().AsSlice()), net.IP(h.Dst.Netip().AsSlice())
	if h.IPVersion == 4 {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, IHL: 5, TTL: h.TTL, Id: h.IPID, Protocol: layers.IPProtocol(h.Proto), SrcIP: src, DstIP: dst}
		if h.Frag&packet.FragDontFrag != 0 {
			v4.Flags = layers.IPv4DontFragment
		}
		ip, netLayer = v4, v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: h.TTL, NextHeader: layers.IPProtocol(h.Proto), SrcIP: src, DstIP: dst}
		ip, netLayer = v6, v6
	}
	ls := []gopacket.SerializableLayer{eth, ip}
	switch h.Proto {
	case packet.ProtoTCP:
		t := &layers.TCP{SrcPort: layers.TCPPort(h.SrcPort), DstPort: layers.TCPPort(h.DstPort), Seq: h.Seq, Ack: h.Ack,
			Window: h.Window, FIN: h.TCPFlags&packet.FlagFIN != 0, SYN: h.TCPFlags&packet.FlagSYN != 0,
			RST: h.TCPFlags&packet.FlagRST != 0, PSH: h.TCPFlags&packet.FlagPSH != 0, ACK: h.TCPFlags&packet.FlagACK != 0,
			URG: h.TCPFlags&packet.FlagURG != 0, ECE: h.TCPFlags&packet.FlagECE != 0, CWR: h.TCPFlags&packet.FlagCWR != 0}
		if h.Opts.Kinds&(1<<2) != 0 {
			t.Options = append(t.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4,
				OptionData: []byte{byte(h.Opts.MSS >> 8), byte(h.Opts.MSS)}})
		}
		if h.Opts.Kinds&(1<<3) != 0 {
			t.Options = append(t.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
				layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{h.Opts.WScale}})
		}
		if err := t.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, fmt.Errorf("daygen: tcp checksum: %w", err)
		}
		ls = append(ls, t)
	case packet.ProtoUDP:
		u := &layers.UDP{SrcPort: layers.UDPPort(h.SrcPort), DstPort: layers.UDPPort(h.DstPort)}
		if err := u.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, fmt.Errorf("daygen: udp checksum: %w", err)
		}
		ls = append(ls, u, gopacket.Payload(p.body))
	case packet.ProtoICMP:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(h.ICMPType, h.ICMPCode)}, gopacket.Payload(p.body))
	case packet.ProtoICMPv6:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(h.ICMPType, h.ICMPCode)}
		if err := icmp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, fmt.Errorf("daygen: icmpv6 checksum: %w", err)
		}
		// The 4 bytes after type, code and checksum: echo id and sequence, or unused.
		ls = append(ls, icmp, &layers.ICMPv6Echo{}, gopacket.Payload(p.body))
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, fmt.Errorf("daygen: serialise packet at %d: %w", h.TS, err)
	}
	return buf.Bytes(), nil
}
