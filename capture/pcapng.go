package capture

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/telescope-dev/telescope/packet"
)

// pcapng files, accepted and rejected by the rules of libpcap's sf-pcapng.c so that record
// counts equal tcpdump's, with three deliberate extensions that libpcap refuses: interfaces
// of different link types or snapshot lengths, and sections of different byte orders.

// Block types.
const (
	blockSHB = 0x0A0D0D0A // Section packet.Header Block (a palindrome: same in both byte orders)
	blockIDB = 0x00000001 // Interface Description Block
	blockPB  = 0x00000002 // Packet Block (obsolete)
	blockSPB = 0x00000003 // Simple Packet Block
	blockEPB = 0x00000006 // Enhanced Packet Block
)

const (
	byteOrderMagic = 0x1A2B3C4D

	blockHeaderLen = 8  // type, total length
	blockMinLen    = 12 // header and trailer
	shbMinLen      = 28 // header, byte-order magic, versions, section length, trailer
	shbMaxLen      = 1 << 20

	// initialMaxBlock is libpcap's cap on a block's size before any interface raises it.
	initialMaxBlock = 16 << 20

	epbFixedLen = 20 // interface, timestamp high and low, captured and original length
	pbFixedLen  = 20 // interface (16 bits), drops (16 bits), timestamp, lengths
	spbFixedLen = 4  // original length
	idbFixedLen = 8  // link type, reserved, snapshot length
	shbFixedLen = 16 // byte-order magic, major and minor version, section length

	optEndOfOpt = 0
	optTSResol  = 9
	optTSOffset = 14
)

// maxBlockFor is libpcap's MAX_BLOCKSIZE_FOR_SNAPLEN: an EPB of the largest sane packet
// with 128 KiB of options.
func maxBlockFor(l packet.LinkType) uint32 {
	return blockHeaderLen + epbFixedLen + maxSnaplenFor(l) + 131072 + 4
}

// Timestamp conversions of an interface (if_tsresol).
const (
	tsMul uint8 = iota // 10^-k s units with k <= 9: ns = t * mul
	tsDiv              // 10^-k s units with k > 9: ns = t / div
	tsBin              // 2^-shift s units
)

type ngIface struct {
	link    packet.LinkType
	snaplen uint32 // adjusted as libpcap does (0 or absurd: the link type's maximum)
	ts      uint8
	shift   uint8
	mul     uint64
	div     uint64
	offNs   int64 // if_tsoffset in ns
}

// nanos converts a timestamp in the interface's units to ns since the epoch, within
// [0, packet.MaxTS] (a time past it is MaxTS, before 1970 0): a 64-bit timestamp or its
// offset can be any value in a damaged file, and one converted past the int64 range
// wrapped to any other time. (libpcap keeps them in 64 bits, and tcpdump -w writes their
// low 32 bits of seconds.)
func (ifc *ngIface) nanos(t uint64) int64 {
	var ns int64
	switch ifc.ts {
	case tsMul:
		if t > packet.MaxTS/ifc.mul {
			return packet.MaxTS
		}
		ns = int64(t * ifc.mul)
	case tsDiv:
		ns = int64(min(t/ifc.div, packet.MaxTS))
	default:
		k := ifc.shift
		if t>>k > packet.MaxTS/1_000_000_000 {
			return packet.MaxTS
		}
		frac := t & (1<<k - 1)
		hi, lo := bits.Mul64(frac, 1e9) // exact: frac * 1e9 needs up to 94 bits
		ns = int64(t>>k)*1e9 + int64(lo>>k|hi<<(64-k))
	}
	// ns <= MaxTS + 1 s and |offNs| < MaxTS: the sum is within the int64 range.
	return packet.ClampTS(ns + ifc.offNs)
}

// tsOffset is if_tsoffset (seconds) in ns, within ±MaxTS.
func tsOffset(sec int64) int64 {
	const most = packet.MaxTS / 1_000_000_000
	return min(max(sec, -most), most) * 1e9
}

type ngState struct {
	ifaces    []ngIface // interfaces of the current section
	ifaceBase int       // interfaces of the earlier sections (Record.Iface is file-wide)
	sawIDB    bool
	first     ngIface // the first interface of the file, for the libpcap-compatibility warnings
	firstBE   bool    // byte order of the first section
	maxBlock  uint32
}

// openPcapng reads the first Section Header Block.
func (f *File) openPcapng() error {
	f.format = fmtPcapng
	n, err := f.fill(blockMinLen)
	if err != nil {
		return f.readError(0, err)
	}
	if n < blockMinLen {
		return f.errorf(0, "truncated pcapng file header: %d bytes needed, %d present", shbMinLen, n)
	}
	be, ok := sectionByteOrder(f.buf[f.r+8:])
	if !ok {
		return f.errorf(0, "not a pcap or pcapng file (starts like a pcapng section header, but the byte-order magic is % x)",
			f.buf[f.r+8:f.r+12])
	}
	f.be, f.ng.firstBE = be, be
	length := f.u32(f.buf[f.r+4:])
	if length < shbMinLen || length > shbMaxLen {
		return f.errorf(0, "pcapng section header block length %d is outside %d..%d", length, shbMinLen, shbMaxLen)
	}
	if n, err = f.fill(int(length)); err != nil {
		return f.readError(0, err)
	}
	if n < int(length) {
		return f.errorf(0, "truncated pcapng file header: %d bytes needed, %d present", length, n)
	}
	major, minor := f.u16(f.buf[f.r+12:]), f.u16(f.buf[f.r+14:])
	if major != 1 || minor != 0 && minor != 2 {
		return f.errorf(0, "unsupported pcapng version %d.%d", major, minor)
	}
	// Like libpcap, the first section header's trailer is not checked.
	f.r += int(length)
	f.ng.maxBlock = initialMaxBlock
	return nil
}

// sectionByteOrder reads a byte-order magic: big-endian or not, and whether it is valid.
func sectionByteOrder(b []byte) (be, ok bool) {
	switch binary.LittleEndian.Uint32(b) {
	case byteOrderMagic:
		return false, true
	case bits.ReverseBytes32(byteOrderMagic):
		return true, true
	}
	return false, false
}

// nextPcapng reads blocks up to the next packet block and returns its record.
func (f *File) nextPcapng(rec *Record) error {
	ng := &f.ng
	for {
		if f.w-f.r < blockMinLen {
			if n, err := f.fill(blockMinLen); n < blockMinLen {
				if n == 0 && err == nil && !ng.sawIDB {
					f.recOff = f.base + int64(f.r)
					return f.errorf(f.recOff, "pcapng file has no Interface Description Block")
				}
				if n >= blockHeaderLen && err == nil {
					// The header is complete: report a bad length before the truncation.
					if err := f.checkBlockLength(f.u32(f.buf[f.r+4:])); err != nil {
						return err
					}
					return f.short(n, blockHeaderLen, int(f.u32(f.buf[f.r+4:])), nil)
				}
				return f.short(n, blockHeaderLen, blockMinLen, err)
			}
		}
		off := f.base + int64(f.r)
		f.recOff = off
		typ := f.u32(f.buf[f.r:])
		if typ == blockSHB {
			// A new section may change the byte order; its magic says which.
			be, ok := sectionByteOrder(f.buf[f.r+8:])
			if !ok {
				return f.errorf(off, "section header block has a bad byte-order magic % x", f.buf[f.r+8:f.r+12])
			}
			f.be = be
		}
		length := f.u32(f.buf[f.r+4:])
		if length < blockMinLen || length%4 != 0 || length > ng.maxBlock {
			return f.checkBlockLength(length)
		}
		need := int(length)
		if f.w-f.r < need {
			if n, err := f.fill(need); n < need {
				return f.short(n, blockHeaderLen, need, err)
			}
		}
		block := f.buf[f.r : f.r+need : f.r+need]
		if trailer := f.u32(block[need-4:]); trailer != length {
			return f.errorf(off, "block length %d in header and %d in trailer differ", length, trailer)
		}
		body := block[blockHeaderLen : need-4]
		f.r += need
		switch typ {
		case blockEPB:
			// The hot path: a well-formed EPB of a known interface; anything else is
			// sorted out (error or warning) by enhancedPacket.
			if len(body) >= epbFixedLen {
				id, caplen, wire := f.u32(body), f.u32(body[12:]), f.u32(body[16:])
				if uint64(id) < uint64(len(ng.ifaces)) {
					ifc := &ng.ifaces[id]
					if uint64(caplen) <= uint64(len(body)-epbFixedLen) && caplen <= ifc.snaplen && caplen <= wire &&
						(caplen == wire || !f.cutShort(caplen)) {
						rec.Data = body[epbFixedLen : epbFixedLen+caplen : epbFixedLen+caplen]
						rec.TS = ifc.nanos(uint64(f.u32(body[4:]))<<32 | uint64(f.u32(body[8:])))
						rec.WireLen = wire
						rec.Link = ifc.link
						rec.Iface = ng.ifaceBase + int(id)
						return nil
					}
				}
			}
			return f.enhancedPacket(rec, body, off)
		case blockSPB:
			return f.simplePacket(rec, body, off)
		case blockPB:
			return f.obsoletePacket(rec, body, off)
		case blockIDB:
			if err := f.addInterface(body, off); err != nil {
				return err
			}
		case blockSHB:
			if err := f.newSection(body, off); err != nil {
				return err
			}
		}
		// Any other block type is skipped by its length.
	}
}

// checkBlockLength applies libpcap's sanity rules to a block's total length: nil if it
// passes, else the error.
func (f *File) checkBlockLength(length uint32) error {
	off := f.base + int64(f.r)
	f.recOff = off
	switch {
	case length < blockMinLen:
		return f.errorf(off, "block length %d is less than the minimum of %d", length, blockMinLen)
	case length%4 != 0:
		return f.errorf(off, "block length %d is not a multiple of 4", length)
	case length > f.ng.maxBlock:
		return f.errorf(off, "block length %d exceeds the maximum of %d", length, f.ng.maxBlock)
	}
	return nil
}

// enhancedPacket returns the record of an Enhanced Packet Block.
func (f *File) enhancedPacket(rec *Record, body []byte, off int64) error {
	if len(body) < epbFixedLen {
		return f.errorf(off, "enhanced packet block too short (%d bytes of body)", len(body))
	}
	id := f.u32(body[0:])
	t := uint64(f.u32(body[4:]))<<32 | uint64(f.u32(body[8:]))
	return f.packet(rec, body[epbFixedLen:], id, t, f.u32(body[12:]), f.u32(body[16:]), off, "enhanced packet block")
}

// obsoletePacket returns the record of a Packet Block (superseded by the EPB).
func (f *File) obsoletePacket(rec *Record, body []byte, off int64) error {
	if len(body) < pbFixedLen {
		return f.errorf(off, "packet block too short (%d bytes of body)", len(body))
	}
	id := uint32(f.u16(body[0:]))
	t := uint64(f.u32(body[4:]))<<32 | uint64(f.u32(body[8:]))
	return f.packet(rec, body[pbFixedLen:], id, t, f.u32(body[12:]), f.u32(body[16:]), off, "packet block")
}

// packet builds the record of an EPB or PB whose data (with padding and options) is rest.
func (f *File) packet(rec *Record, rest []byte, id uint32, t uint64, caplen, wire uint32, off int64, what string) error {
	ng := &f.ng
	if uint64(id) >= uint64(len(ng.ifaces)) {
		return f.errorf(off, "%s on interface %d, but the section has %d interfaces", what, id, len(ng.ifaces))
	}
	ifc := &ng.ifaces[id]
	if uint64(caplen) > uint64(len(rest)) {
		return f.errorf(off, "%s too short for its captured length %d", what, caplen)
	}
	if caplen > ifc.snaplen {
		f.warn(warnOverSnaplen, off,
			"record of %d bytes exceeds the snapshot length %d of its interface; kept whole (libpcap refuses the file)",
			caplen, ifc.snaplen)
	}
	if caplen > wire {
		f.warn(warnCapOverWire, off, "record captured length %d exceeds its original length %d; kept as is", caplen, wire)
	}
	if caplen < wire && f.cutShort(caplen) {
		f.warnCut(caplen, wire, off)
	}
	rec.Data = rest[:caplen:caplen]
	rec.TS = ifc.nanos(t)
	rec.WireLen = wire
	rec.Link = ifc.link
	rec.Iface = ng.ifaceBase + int(id)
	return nil
}

// simplePacket returns the record of a Simple Packet Block: interface 0 of the section, no
// timestamp, captured length the smaller of the original length and the snapshot length.
func (f *File) simplePacket(rec *Record, body []byte, off int64) error {
	ng := &f.ng
	if len(body) < spbFixedLen {
		return f.errorf(off, "simple packet block too short (%d bytes of body)", len(body))
	}
	if len(ng.ifaces) == 0 {
		return f.errorf(off, "simple packet block, but the section has no interfaces")
	}
	ifc := &ng.ifaces[0]
	wire := f.u32(body)
	caplen := min(wire, ifc.snaplen)
	if uint64(caplen) > uint64(len(body)-spbFixedLen) {
		return f.errorf(off, "simple packet block too short for its captured length %d", caplen)
	}
	f.warn(warnNoTimestamp, off, "simple packet blocks carry no timestamp; their records have time 0 (as in libpcap)")
	rec.Data = body[spbFixedLen : spbFixedLen+caplen : spbFixedLen+caplen]
	rec.WireLen = wire
	rec.Link = ifc.link
	rec.Iface = ng.ifaceBase
	return nil
}

// newSection starts a section: its interfaces replace those of the previous one.
func (f *File) newSection(body []byte, off int64) error {
	ng := &f.ng
	if len(body) < shbFixedLen {
		return f.errorf(off, "section header block too short (%d bytes of body)", len(body))
	}
	if major := f.u16(body[4:]); major != 1 {
		return f.errorf(off, "unsupported pcapng major version %d", major)
	}
	if f.be != ng.firstBE {
		f.warn(warnMixedByteOrder, off, "sections of different byte orders (libpcap refuses the file)")
	}
	ng.ifaceBase += len(ng.ifaces)
	ng.ifaces = ng.ifaces[:0]
	return nil
}

// addInterface adds the interface an Interface Description Block describes, reading its
// timestamp options with libpcap's checks.
func (f *File) addInterface(body []byte, off int64) error {
	ng := &f.ng
	if len(body) < idbFixedLen {
		return f.errorf(off, "interface description block too short (%d bytes of body)", len(body))
	}
	ifc := ngIface{link: packet.LinkType(f.u16(body[0:])), ts: tsMul, mul: 1000} // default: µs
	ifc.snaplen = f.u32(body[4:])
	if ifc.snaplen == 0 || ifc.snaplen > math.MaxInt32 {
		ifc.snaplen = maxSnaplenFor(ifc.link)
	}
	f.warnSnaplen(ifc.snaplen, off)
	if err := f.interfaceOptions(&ifc, body[idbFixedLen:], off); err != nil {
		return err
	}
	if !ng.sawIDB {
		ng.sawIDB = true
		ng.first = ifc
	} else {
		if ifc.link != ng.first.link {
			f.warn(warnMixedLinkTypes, off, "interfaces of different link types, %v and %v (libpcap refuses the file)",
				ng.first.link, ifc.link)
		}
		if ifc.snaplen != ng.first.snaplen {
			f.warn(warnMixedSnaplens, off, "interfaces with different snapshot lengths, %d and %d (libpcap refuses the file)",
				ng.first.snaplen, ifc.snaplen)
		}
	}
	ng.maxBlock = max(ng.maxBlock, maxBlockFor(ifc.link))
	ng.ifaces = append(ng.ifaces, ifc)
	return nil
}

// interfaceOptions reads if_tsresol and if_tsoffset from the options of an IDB.
func (f *File) interfaceOptions(ifc *ngIface, opts []byte, off int64) error {
	sawResol, sawOffset := false, false
	for len(opts) > 0 {
		if len(opts) < 4 {
			return f.errorf(off, "interface description block: option header cut short")
		}
		code, olen := f.u16(opts), int(f.u16(opts[2:]))
		padded := (olen + 3) &^ 3
		if len(opts)-4 < padded {
			return f.errorf(off, "interface description block: option %d of %d bytes cut short", code, olen)
		}
		val := opts[4 : 4+olen]
		opts = opts[4+padded:]
		switch code {
		case optEndOfOpt:
			if olen != 0 {
				return f.errorf(off, "interface description block: opt_endofopt has length %d", olen)
			}
			return nil
		case optTSResol:
			if olen != 1 {
				return f.errorf(off, "interface description block: if_tsresol has length %d, not 1", olen)
			}
			if sawResol {
				return f.errorf(off, "interface description block: more than one if_tsresol")
			}
			sawResol = true
			if err := f.setResolution(ifc, val[0], off); err != nil {
				return err
			}
		case optTSOffset:
			if olen != 8 {
				return f.errorf(off, "interface description block: if_tsoffset has length %d, not 8", olen)
			}
			if sawOffset {
				return f.errorf(off, "interface description block: more than one if_tsoffset")
			}
			sawOffset = true
			v := binary.LittleEndian.Uint64(val)
			if f.be {
				v = bits.ReverseBytes64(v)
			}
			ifc.offNs = tsOffset(int64(v))
		}
	}
	return nil
}

// setResolution sets the timestamp conversion for an if_tsresol value: a negative power of
// 10, or of 2 when the top bit is set.
func (f *File) setResolution(ifc *ngIface, r uint8, off int64) error {
	if r&0x80 != 0 {
		k := r & 0x7F
		if k > 63 {
			return f.errorf(off, "interface description block: if_tsresol 2^-%d is too fine", k)
		}
		ifc.ts, ifc.shift = tsBin, k
		return nil
	}
	if r > 19 {
		return f.errorf(off, "interface description block: if_tsresol 10^-%d is too fine", r)
	}
	if r <= 9 {
		ifc.ts, ifc.mul = tsMul, ngPow10(9-int(r))
	} else {
		ifc.ts, ifc.div = tsDiv, ngPow10(int(r)-9)
	}
	return nil
}

func ngPow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}
