package packet

import (
	"encoding/binary"
	"math/bits"
)

// EtherTypes and link-layer constants the decoder dispatches on.
const (
	EtherIPv4    = 0x0800
	EtherIPv6    = 0x86DD
	EtherDot1Q   = 0x8100
	EtherDot1AD  = 0x88A8
	EtherQinQOld = 0x9100 // pre-standard QinQ outer tag
	EtherMinType = 0x0600 // values below are 802.3 lengths, not EtherTypes

	// SLLProto8022 is the Linux cooked-capture protocol for frames that carry an
	// 802.2 LLC header instead of an EtherType (LINUX_SLL_P_802_2).
	SLLProto8022 = 0x0004

	MaxVLANTags  = 8  // deeper stacks are not IP traffic we can attribute
	maxIPv6Exts  = 10 // extension headers walked before giving up
	sllHeaderLen = 16
	sll2HdrLen   = 20
)

// Decode fills h from one frame of link type link. It resets every field of h except TS and
// WireLen (set by the caller, who reads them from the capture record), sets CapLen = len(frame),
// and never allocates or panics, whatever the bytes.
func Decode(link LinkType, frame []byte, h *Header) {
	resetHeader(h, len(frame))
	switch link {
	case LinkEthernet:
		if len(frame) < 14 {
			h.Result = ResultTruncated
			return
		}
		et := binary.BigEndian.Uint16(frame[12:14])
		if et == EtherIPv4 {
			decodeIPv4(frame[14:], h) // the common case skips the tag loop
			return
		}
		decodeEther(et, frame[14:], h)
	case LinkRaw, LinkRawBSD1, LinkRawBSD2:
		decodeRawIP(frame, h)
	case LinkIPv4:
		decodeIPv4(frame, h)
	case LinkIPv6:
		decodeIPv6(frame, h)
	case LinkLinuxSLL:
		if len(frame) < sllHeaderLen {
			h.Result = ResultTruncated
			return
		}
		decodeSLLProto(binary.BigEndian.Uint16(frame[14:16]), frame[sllHeaderLen:], h)
	case LinkLinuxSLL2:
		if len(frame) < sll2HdrLen {
			h.Result = ResultTruncated
			return
		}
		decodeSLLProto(binary.BigEndian.Uint16(frame[0:2]), frame[sll2HdrLen:], h)
	case LinkNull, LinkLoop:
		if len(frame) < 4 {
			h.Result = ResultTruncated
			return
		}
		af := binary.BigEndian.Uint32(frame[0:4])
		if link == LinkNull && af > 0xFFFF {
			// Written in little-endian host order: no family value needs the high half.
			af = bits.ReverseBytes32(af)
		}
		decodeAddrFamily(af, frame[4:], h)
	default:
		h.Result = ResultNonIP
	}
}

// DecodeNetwork is Decode for frames that start at the network header (AF_PACKET SOCK_DGRAM):
// ethertype is the frame's protocol (0x0800, 0x86DD, or 0x8100/0x88a8 when an in-band VLAN tag
// still precedes the network header). Same contract as Decode. Decode(LinkNetwork, ...) is not
// used; callers use DecodeNetwork for that link type.
func DecodeNetwork(ethertype uint16, frame []byte, h *Header) {
	resetHeader(h, len(frame))
	decodeSLLProto(ethertype, frame, h)
}

// DecodeNetworkVLAN is DecodeNetwork for a frame whose outer VLAN tag the kernel stripped
// into the packet metadata (vlan, its TCI): the stripped tag counts like an in-band one,
// toward the tag limit too, so a live frame decodes exactly as the same frame replayed
// from a capture file with the tag in place.
func DecodeNetworkVLAN(ethertype uint16, frame []byte, vlan uint16, h *Header) {
	resetHeader(h, len(frame))
	h.VLANs, h.VLAN = 1, vlan&0x0FFF
	decodeSLLProto(ethertype, frame, h)
}

// resetHeader clears every field but the caller-owned TS and WireLen. One struct store lets the
// compiler zero the whole value with wide moves instead of field by field.
func resetHeader(h *Header, capLen int) {
	*h = Header{TS: h.TS, WireLen: h.WireLen, CapLen: uint32(capLen)}
}

// decodeSLLProto handles a Linux protocol value (SLL, SLL2, sockaddr_ll): unlike an Ethernet
// type field, small values are protocol codes, of which only 802.2 carries an LLC header.
func decodeSLLProto(proto uint16, b []byte, h *Header) {
	switch {
	case proto == SLLProto8022:
		decodeLLC(b, h)
	case proto < EtherMinType:
		h.Result = ResultNonIP
	default:
		decodeEther(proto, b, h)
	}
}

// decodeAddrFamily dispatches on a BSD loopback address family. IPv6 has a different value
// on every BSD (Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30) and captures travel.
func decodeAddrFamily(af uint32, b []byte, h *Header) {
	switch af {
	case 2:
		decodeIPv4(b, h)
	case 10, 24, 28, 30:
		decodeIPv6(b, h)
	default:
		h.Result = ResultNonIP
	}
}

// decodeRawIP picks the IP version from the first nibble (DLT_RAW carries no link header).
func decodeRawIP(b []byte, h *Header) {
	if len(b) == 0 {
		h.atNet(b)
		h.Result = ResultTruncated
		return
	}
	switch b[0] >> 4 {
	case 4:
		decodeIPv4(b, h)
	case 6:
		decodeIPv6(b, h)
	default:
		h.atNet(b)
		h.Result = ResultMalformed
	}
}

// atNet notes that the network header starts at b, the rest of the frame (Header.NetOff).
func (h *Header) atNet(b []byte) {
	h.NetOff, h.Net = uint16(h.CapLen-uint32(len(b))), true
}

// decodeEther follows an EtherType through VLAN tags and LLC/SNAP to the IP header.
// et < 0x0600 is an 802.3 length: an 802.2 LLC header follows.
func decodeEther(et uint16, b []byte, h *Header) {
	// Each pass consumes a tag or a SNAP header, so the loop is bounded by the frame too;
	// the explicit cap keeps hostile SNAP-in-SNAP chains short.
	for range MaxVLANTags + 2 {
		switch et {
		case EtherIPv4:
			decodeIPv4(b, h)
			return
		case EtherIPv6:
			decodeIPv6(b, h)
			return
		case EtherDot1Q, EtherDot1AD, EtherQinQOld:
			if h.VLANs == MaxVLANTags {
				h.Result = ResultNonIP
				return
			}
			if len(b) < 4 {
				h.Result = ResultTruncated
				return
			}
			if h.VLANs == 0 {
				h.VLAN = binary.BigEndian.Uint16(b[0:2]) & 0x0FFF
			}
			h.VLANs++
			et = binary.BigEndian.Uint16(b[2:4])
			b = b[4:]
		default:
			if et >= EtherMinType {
				// Another network protocol (ARP...): the live rings hand the filter its
				// header, so replay runs capture.filter from here too.
				h.atNet(b)
				h.Result = ResultNonIP
				return
			}
			// An 802.3 length: the LLC data ends there and the rest is padding.
			if int(et) < len(b) {
				b = b[:et]
			}
			var ok bool
			if et, ok = snapType(b, h); !ok {
				return
			}
			b = b[8:]
		}
	}
	h.Result = ResultNonIP
}

// decodeLLC continues after an 802.2 LLC header that has no length field in front of it.
func decodeLLC(b []byte, h *Header) {
	if et, ok := snapType(b, h); ok {
		decodeEther(et, b[8:], h)
	}
}

// snapType reads an LLC/SNAP header (AA AA 03, 3-byte OUI, EtherType). Any other LLC is
// not IP; a frame that ends while the bytes still look like SNAP is truncated. When it
// returns false it has set h.Result.
func snapType(b []byte, h *Header) (uint16, bool) {
	snap := [3]byte{0xAA, 0xAA, 0x03}
	for i := range snap {
		if i >= len(b) {
			h.Result = ResultTruncated
			return 0, false
		}
		if b[i] != snap[i] {
			h.Result = ResultNonIP
			return 0, false
		}
	}
	if len(b) < 8 {
		h.Result = ResultTruncated
		return 0, false
	}
	return binary.BigEndian.Uint16(b[6:8]), true
}

// decodeIPv4 decodes an IPv4 header and, unless the packet is a non-first fragment, its
// transport header. Everything past the header is bounded by the total length so that
// Ethernet padding never reads as payload.
func decodeIPv4(b []byte, h *Header) {
	h.atNet(b)
	if len(b) < 20 {
		h.Result = ResultTruncated
		return
	}
	vihl := b[0]
	if vihl>>4 != 4 || vihl&0x0F < 5 {
		h.Result = ResultMalformed
		return
	}
	hl := int(vihl&0x0F) * 4
	if len(b) < hl {
		h.Result = ResultTruncated
		return
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 {
		// Segmentation offload: the kernel hands over the super-packet without a length.
		total = min(len(b), 0xFFFF)
	} else if total < hl {
		h.Result = ResultMalformed
		return
	}
	// Locals, not h's fields, feed the branches below: stores through h may alias b.
	ff := binary.BigEndian.Uint16(b[6:8])
	fragOff := ff & 0x1FFF
	proto := b[9]
	var frag uint8
	if ff&0x4000 != 0 {
		frag |= FragDontFrag
	}
	if ff&0x2000 != 0 {
		frag |= FragMore | FragFragment
	}
	if fragOff != 0 {
		frag |= FragNonFirst | FragFragment
	}
	h.Result = ResultIP
	h.IPVersion = 4
	h.IPLen = uint16(total)
	h.IPHdrLen = uint16(hl)
	h.IPID = binary.BigEndian.Uint16(b[4:6])
	h.TTL = b[8]
	h.Proto = proto
	h.FragOff = fragOff
	h.Frag = frag
	h.Src[10], h.Src[11] = 0xFF, 0xFF
	h.Dst[10], h.Dst[11] = 0xFF, 0xFF
	copy(h.Src[12:], b[12:16])
	copy(h.Dst[12:], b[16:20])
	if fragOff != 0 {
		return
	}
	l4 := b[hl:min(len(b), total)]
	switch proto {
	case ProtoTCP:
		decodeTCP(l4, h)
	case ProtoUDP:
		decodeUDP(l4, h)
	case ProtoICMP:
		decodeICMP(l4, h)
	}
}

// decodeIPv6 decodes an IPv6 header, walks its extension headers and decodes the
// transport header, all bounded by the payload length.
func decodeIPv6(b []byte, h *Header) {
	h.atNet(b)
	if len(b) < 40 {
		h.Result = ResultTruncated
		return
	}
	if b[0]>>4 != 6 {
		h.Result = ResultMalformed
		return
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	end := len(b)
	if plen == 0 {
		// Jumbogram or segmentation offload: the capture is the only length we have.
		plen = len(b) - 40
	} else {
		end = min(end, 40+plen)
	}
	h.Result = ResultIP
	h.IPVersion = 6
	h.IPLen = uint16(min(plen+40, 0xFFFF))
	h.TTL = b[7]
	h.Src = Addr(b[8:24])
	h.Dst = Addr(b[24:40])
	b = b[:end]
	nh, off, cut := walkIPv6Ext(b[6], b, h)
	h.Proto = nh
	h.IPHdrLen = uint16(off)
	if cut || h.Frag&FragNonFirst != 0 {
		return
	}
	l4 := b[off:]
	switch nh {
	case ProtoTCP:
		decodeTCP(l4, h)
	case ProtoUDP:
		decodeUDP(l4, h)
	case ProtoICMPv6:
		decodeICMP(l4, h)
	}
}

// walkIPv6Ext follows the extension-header chain starting at next-header value nh and offset
// 40 of b. It returns the next-header value where the walk stopped, the offset of that
// header, and whether an extension header was cut short (no transport header then).
func walkIPv6Ext(nh uint8, b []byte, h *Header) (next uint8, off int, cut bool) {
	off = 40
	for range maxIPv6Exts {
		var n int
		switch nh {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, dest opts, mobility, HIP, shim6
			if len(b) < off+2 {
				return nh, off, true
			}
			n = (int(b[off+1]) + 1) * 8
		case 51: // AH counts 4-byte words minus 2
			if len(b) < off+2 {
				return nh, off, true
			}
			n = (int(b[off+1]) + 2) * 4
		case 44: // fragment
			if len(b) < off+8 {
				return nh, off, true
			}
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			h.FragOff = fo >> 3
			h.Frag |= FragFragment
			if fo&1 != 0 {
				h.Frag |= FragMore
			}
			if h.FragOff != 0 {
				h.Frag |= FragNonFirst
			}
			h.IPID = uint16(binary.BigEndian.Uint32(b[off+4 : off+8]))
			n = 8
		default:
			return nh, off, false
		}
		if len(b) < off+n {
			return nh, off, true
		}
		nh = b[off]
		off += n
	}
	return nh, off, false
}

// decodeTCP decodes a TCP header and summarises its options.
func decodeTCP(b []byte, h *Header) {
	if len(b) < 20 {
		return
	}
	doff := int(b[12] >> 4)
	if doff < 5 {
		return
	}
	h.L4 = true
	h.SrcPort = binary.BigEndian.Uint16(b[0:2])
	h.DstPort = binary.BigEndian.Uint16(b[2:4])
	h.Seq = binary.BigEndian.Uint32(b[4:8])
	h.Ack = binary.BigEndian.Uint32(b[8:12])
	h.TCPFlags = b[13]
	h.Window = binary.BigEndian.Uint16(b[14:16])
	if doff == 5 {
		return
	}
	h.Opts.Len = uint8(doff*4 - 20)
	o := b[20:min(len(b), doff*4)]
	if len(o) == 4 && o[0] == 2 && o[1] == 4 {
		// Scanners' SYNs carry a lone MSS option: skip the general walk.
		h.Opts.Kinds, h.Opts.Count = 1<<2, 1
		h.Opts.MSS = binary.BigEndian.Uint16(o[2:4])
		return
	}
	tcpOptions(o, &h.Opts)
}

// tcpOptions walks the captured options: EOL ends them, NOP pads, every other option has
// kind and length; a length below 2 or past the end stops the walk.
func tcpOptions(o []byte, t *TCPOptions) {
	for len(o) > 0 {
		kind := o[0]
		if kind == 0 {
			return
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			return
		}
		n := int(o[1])
		if n < 2 || n > len(o) {
			return
		}
		if kind < 32 {
			t.Kinds |= 1 << kind
		}
		t.Count++
		switch {
		case kind == 2 && n == 4:
			t.MSS = binary.BigEndian.Uint16(o[2:4])
		case kind == 3 && n == 3:
			t.WScale = o[2]
		}
		o = o[n:]
	}
}

// decodeUDP decodes a UDP header and keeps the first PayloadMax bytes of its payload.
func decodeUDP(b []byte, h *Header) {
	if len(b) < 8 {
		return
	}
	h.L4 = true
	h.SrcPort = binary.BigEndian.Uint16(b[0:2])
	h.DstPort = binary.BigEndian.Uint16(b[2:4])
	ulen := int(binary.BigEndian.Uint16(b[4:6])) - 8
	if ulen <= 0 {
		return
	}
	h.PayloadLen = uint16(ulen)
	n := min(len(b)-8, ulen, PayloadMax)
	h.PayloadCap = uint8(copy(h.Payload[:], b[8:8+n]))
	h.PayloadClass = ClassifyUDP(b[8:8+min(len(b)-8, ulen)], ulen)
}

// decodeICMP decodes an ICMP or ICMPv6 header (h.IPVersion tells which) and, for error
// messages, the IP header they quote 8 bytes in.
func decodeICMP(b []byte, h *Header) {
	if len(b) < 2 {
		return
	}
	h.ICMPType, h.ICMPCode = b[0], b[1]
	if len(b) < 8 {
		return
	}
	h.L4 = true
	if !ICMPError(h.IPVersion, h.ICMPType) {
		return
	}
	q := b[8:]
	if h.IPVersion == 4 {
		quotedIPv4(q, &h.Inner)
	} else {
		quotedIPv6(q, &h.Inner)
	}
}

// quotedIPv4 reads the IPv4 header (and ports) an ICMP error quotes.
func quotedIPv4(q []byte, in *Quoted) {
	if len(q) < 20 || q[0]>>4 != 4 || q[0]&0x0F < 5 {
		return
	}
	in.Valid = true
	in.Proto = q[9]
	in.Src[10], in.Src[11] = 0xFF, 0xFF
	in.Dst[10], in.Dst[11] = 0xFF, 0xFF
	copy(in.Src[12:], q[12:16])
	copy(in.Dst[12:], q[16:20])
	hl := int(q[0]&0x0F) * 4
	if binary.BigEndian.Uint16(q[6:8])&0x1FFF == 0 && len(q) >= hl+4 {
		quotedPorts(q[hl:], in)
	}
}

// quotedIPv6 reads the IPv6 header (and ports) an ICMPv6 error quotes. Extension headers
// are not walked: the quote is often cut short and errors about them are rare.
func quotedIPv6(q []byte, in *Quoted) {
	if len(q) < 40 || q[0]>>4 != 6 {
		return
	}
	in.Valid = true
	in.Proto = q[6]
	in.Src = Addr(q[8:24])
	in.Dst = Addr(q[24:40])
	if len(q) >= 44 {
		quotedPorts(q[40:], in)
	}
}

// quotedPorts fills the ports of a quoted TCP or UDP header (4 bytes or more present).
func quotedPorts(t []byte, in *Quoted) {
	if len(t) < 4 || (in.Proto != ProtoTCP && in.Proto != ProtoUDP) {
		return
	}
	in.SrcPort = binary.BigEndian.Uint16(t[0:2])
	in.DstPort = binary.BigEndian.Uint16(t[2:4])
}
