package capture

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/telescope-dev/telescope/packet"
)

// Classic pcap files, accepted and rejected by the rules of libpcap's sf-pcap.c so that
// record counts equal tcpdump's.

// Magic numbers, as read little-endian from the first 4 bytes of a little-endian file.
const (
	pcapMicro     = 0xa1b2c3d4 // µs timestamps
	pcapNano      = 0xa1b23c4d // ns timestamps
	pcapKuznetsov = 0xa1b2cd34 // Alexey Kuznetsov's patched libpcap: records carry 8 more header bytes
)

const (
	pcapFileHeaderLen = 24
	pcapRecordLen     = 16
	kuznetsovExtraLen = 8 // ifindex, protocol, pkt_type, padding

	// maxSnaplen is libpcap's MAXIMUM_SNAPLEN: the default for a zero or absurd snapshot
	// length and the largest record it considers sane for most link types.
	maxSnaplen = 262144

	// linkTypeMask keeps the link type of the file header's link type field; the upper 6
	// bits carry extra information (the FCS length).
	linkTypeMask = 0x03FFFFFF
)

// lengthOrder tells whether the record header has caplen and len in the modern order.
type lengthOrder uint8

const (
	lengthsNormal       lengthOrder = iota
	lengthsSwapped                  // versions before 2.3, and 543.0 (DG/UX), wrote len first
	lengthsMaybeSwapped             // some 2.3 writers did too: swap when caplen > len
)

type pcapState struct {
	hdrLen  int   // record header length: 16, or 24 for the Kuznetsov format
	tsMul   int64 // ns per unit of the timestamp fraction field (1000 or 1)
	lengths lengthOrder
	link    packet.LinkType
	snaplen uint32 // the snapshot length as libpcap adjusts it
	maxCap  uint32 // the largest captured length libpcap accepts for the link type
	limit   uint32 // min(snaplen, maxCap): longer records need a closer look
}

// pcapMagic reports whether the first 4 bytes (read little-endian) are a pcap magic number
// libpcap reads, in either byte order.
func pcapMagic(m uint32) bool {
	switch m {
	case pcapMicro, pcapNano, pcapKuznetsov,
		bits.ReverseBytes32(pcapMicro), bits.ReverseBytes32(pcapNano), bits.ReverseBytes32(pcapKuznetsov):
		return true
	}
	return false
}

// maxSnaplenFor is libpcap's max_snaplen_for_dlt.
func maxSnaplenFor(l packet.LinkType) uint32 {
	switch l {
	case 231: // D-Bus messages may be 128 MiB
		return 128 << 20
	case 279: // EBHSCR
		return 8 << 20
	case 249: // USBPcap
		return 1 << 20
	}
	return maxSnaplen
}

// openPcap reads the pcap file header.
func (f *File) openPcap(magic uint32) error {
	f.format = fmtPcap
	if magic != pcapMicro && magic != pcapNano && magic != pcapKuznetsov {
		f.be = true
		magic = bits.ReverseBytes32(magic)
	}
	n, err := f.fill(pcapFileHeaderLen)
	if err != nil {
		return f.readError(0, err)
	}
	if n < pcapFileHeaderLen {
		return f.errorf(0, "truncated pcap file header: %d bytes needed, %d present", pcapFileHeaderLen, n)
	}
	h := f.buf[f.r : f.r+pcapFileHeaderLen]
	major, minor := f.u16(h[4:]), f.u16(h[6:])
	if major < 2 {
		return f.errorf(0, "archaic pcap file format version %d.%d", major, minor)
	}
	if !(major == 2 && minor <= 4 || major == 543 && minor == 0) {
		return f.errorf(0, "unsupported pcap file format version %d.%d", major, minor)
	}
	p := &f.pcap
	p.link = packet.LinkType(f.u32(h[20:]) & linkTypeMask)
	p.maxCap = maxSnaplenFor(p.link)
	snaplen := f.u32(h[16:])
	if snaplen == 0 || snaplen > math.MaxInt32 {
		snaplen = p.maxCap
	}
	p.hdrLen = pcapRecordLen
	if magic == pcapKuznetsov {
		p.hdrLen += kuznetsovExtraLen
		// libpcap assumes such captures were cooked, with a fake Ethernet header added
		// after the snapshot was taken.
		if p.link == packet.LinkEthernet {
			snaplen = min(snaplen+14, math.MaxInt32)
		}
	}
	p.snaplen = snaplen
	p.limit = min(snaplen, p.maxCap)
	f.warnSnaplen(snaplen, 0)
	p.tsMul = 1000
	if magic == pcapNano {
		p.tsMul = 1
	}
	switch {
	case major == 543 || minor < 3:
		p.lengths = lengthsSwapped
	case minor == 3:
		p.lengths = lengthsMaybeSwapped
	default:
		p.lengths = lengthsNormal
	}
	f.r += pcapFileHeaderLen
	return nil
}

// nextPcap reads the next record of a pcap file into rec. This is the replay hot path:
// rare cases are in other functions, and fields are read after the last possible refill
// so that nothing is kept across a call.
func (f *File) nextPcap(rec *Record) error {
	p := &f.pcap
	hl := p.hdrLen
	if f.w-f.r < hl {
		if n, err := f.fill(hl); n < hl {
			return f.short(n, hl, hl, err)
		}
	}
	// The header's four words at once: one bounds check, one test of the byte order.
	b := f.buf[f.r : f.r+pcapRecordLen : f.r+pcapRecordLen]
	sec, frac := binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint32(b[4:8])
	caplen, wire := binary.LittleEndian.Uint32(b[8:12]), binary.LittleEndian.Uint32(b[12:16])
	if f.be {
		sec, frac = bits.ReverseBytes32(sec), bits.ReverseBytes32(frac)
		caplen, wire = bits.ReverseBytes32(caplen), bits.ReverseBytes32(wire)
	}
	if p.lengths != lengthsNormal && (p.lengths == lengthsSwapped || caplen > wire) {
		caplen, wire = wire, caplen
	}
	if caplen > p.limit || caplen > wire || wire == 0 || caplen < wire && f.cutShort(caplen) {
		if wire == 0 && pcapMagic(binary.LittleEndian.Uint32(b[0:4])) {
			// A file header's magic, version, zone and accuracy (0, 0) read as a record:
			// pcap files joined with cat. Counted as a record of no bytes, the next
			// record header would be the header's snaplen and link type and the first
			// record's time, a length error that names none of this.
			off := f.base + int64(f.r)
			f.recOff = off
			return f.errorf(off, "another pcap file header: files joined with cat are not one pcap file (mergecap -a -w joined.pcap FILES... joins them; or give replay each file)")
		}
		if caplen < wire && f.cutShort(caplen) {
			f.warnCut(caplen, wire, f.base+int64(f.r))
		}
		if err := f.oddLengths(caplen, wire); err != nil {
			return err
		}
	}
	need := hl + int(caplen)
	if f.w-f.r < need {
		if n, err := f.fill(need); n < need {
			return f.short(n, hl, need, err)
		}
	}
	start := f.r
	f.recOff = f.base + int64(start)
	f.r += need
	rec.Data = f.buf[start+hl : start+need : start+need]
	rec.TS = int64(sec)*1e9 + int64(frac)*p.tsMul
	rec.WireLen = wire
	rec.Link = p.link
	return nil
}

// oddLengths handles a record longer than the snapshot length (fatal beyond the sane
// maximum for the link type, as in libpcap; otherwise kept whole with a warning) or
// than its original length (kept as is, with a warning).
func (f *File) oddLengths(caplen, wire uint32) error {
	p := &f.pcap
	off := f.base + int64(f.r)
	if caplen > p.maxCap {
		f.recOff = off
		return f.errorf(off, "record captured length %d exceeds the maximum of %d for %v",
			caplen, p.maxCap, p.link)
	}
	if caplen > p.snaplen {
		f.warn(warnOverSnaplen, off,
			"record of %d bytes exceeds the snapshot length %d; kept whole (libpcap cuts it to %d bytes)",
			caplen, p.snaplen, p.snaplen)
	}
	if caplen > wire {
		f.warn(warnCapOverWire, off, "record captured length %d exceeds its original length %d; kept as is", caplen, wire)
	}
	return nil
}
