package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// Record is one packet record of a capture file. Data is valid only until the next call to Next.
type Record struct {
	Data    []byte
	TS      int64           // ns since the Unix epoch
	WireLen uint32          // original length
	Link    packet.LinkType // link type of the interface the record belongs to
	Iface   int             // interface index within the file (0 for pcap; pcapng: numbered across sections)
}

// FileError is a fatal problem of a capture file: a one-line message naming the file and the
// byte offset (in the decompressed stream for gzip and zstd input) of the header or record at fault.
type FileError struct {
	Path   string
	Offset int64
	Msg    string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s: byte offset %d: %s", e.Path, e.Offset, e.Msg)
}

// bufSize is the read buffer. Records are returned as sub-slices of it, so a large buffer
// means few refills (each copies only the partial record at its end).
const bufSize = 1 << 20

// pageAhead is how far ahead of the record being read a mapped file's reader (Read) and a
// ring's walk (walkBlock) request a line: a page. The records are read in order, but the
// pages are scattered, and the hardware's prefetchers stop at a page's end. The reader
// stalled on the first word of a record and of its packet (most of nextPcap's samples and
// the largest share of Decode's on the 20x day); a line a page ahead took 14 % off the
// reader's samples there (2 KiB: 12 %, 8 KiB: 10 %, two lines no more than one).
const pageAhead = 4096

// mapMin is the smallest file Open maps instead of reading: a mapped file is decoded where
// the page cache holds it, without the copy into a buffer that reading makes (3-5 % of a
// replay's CPU time). A variable for the tests.
var mapMin int64 = 1 << 20

type fileFormat uint8

const (
	fmtPcap fileFormat = iota + 1
	fmtPcapng
)

// File reads the records of a pcap or pcapng file, optionally gzip- or zstd-compressed.
// It is not safe for concurrent use.
type File struct {
	name    string
	closer  io.Closer   // the file opened by Open; nil for NewReader
	stream  *os.File    // the file opened by Open when it is read, not mapped (Interrupt)
	unwatch func() bool // OpenContext: stops watching its context
	raw     *countingReader
	in      io.Reader // the decompressed stream: raw itself, or dec (or inf)
	// dec decompresses raw (nil: not compressed), comp names it ("gzip", "zstd"),
	// decClose releases it.
	dec      io.Reader
	comp     string
	decClose func() error
	inf      *inflater // runs dec ahead of the reader (a compressed file Open opened)
	ahead    bool      // a compressed file gets an inflater (open's ahead)
	size     int64

	// buf[r:w] holds bytes read from in but not yet consumed; base is the stream offset
	// of buf[0]. rerr is the sticky error of in (io.EOF at its end).
	buf  []byte
	r, w int
	base int64
	rerr error

	format fileFormat
	be     bool  // the file (or current pcapng section) is big-endian
	recOff int64 // stream offset of the last record returned (or the damaged one)
	err    error // sticky result once the file has ended or failed

	pcap pcapState
	ng   ngState

	// mapped is the whole file when it is mapped (buf is then mapped itself: nothing is
	// copied, read or written); dropped is how much of it was released (dropPages).
	mapped    []byte
	dropped   int
	populated int // how much of it has page table entries requested (populatePages)

	warned   uint32 // warn* kinds already reported
	warnings []string
}

// Open opens a pcap (µs or ns timestamps, either byte order) or pcapng file, transparently
// decompressing it when it starts with the gzip or zstd magic (detected by magic bytes,
// never by name); path "-" (Stdin) is standard input.
// Errors name the file and say what is wrong in one line: a missing or unreadable file is
// the *os.PathError of os.Open; a file that is empty, not a capture file (its first bytes are
// shown in hex), or has a truncated or invalid file header is a *FileError.
func Open(path string) (*File, error) { return open(path, nil, true) }

// open is Open, calling opened (when set) with the file as soon as it is open, before
// anything is read from it; ahead: a compressed file is decompressed ahead of the reader
// (inflater), not for a reader of a record or two (FirstTime).
func open(path string, opened func(*os.File), ahead bool) (*File, error) {
	fh, err := os.Open(osPath(path))
	if err != nil {
		return nil, err
	}
	if opened != nil {
		opened(fh)
	}
	if data := mapFile(fh); data != nil {
		if Compression(data) == "" { // a compressed stream is read: it is decompressed into a buffer anyway
			// The whole file is buf, read to its end: fill never reads nor compacts it.
			f := &File{name: path, closer: fh, buf: data, w: len(data), rerr: io.EOF, size: int64(len(data)), mapped: data}
			if err := f.start(); err != nil {
				unmapFile(data)
				fh.Close()
				return nil, err
			}
			return f, nil
		}
		unmapFile(data)
	}
	f, err := newFile(fh, path, fh, ahead)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.stream = fh
	return f, nil
}

// Stdin is the name that opens standard input (as tcpdump -r - and tshark -r - do).
const Stdin = "-"

// osPath is the file path opens: standard input is opened anew through /dev/stdin, so
// that a pipe or FIFO is read through the poller (Interrupt) and a redirected regular file
// is mapped like any other.
func osPath(path string) string {
	if path == Stdin {
		return "/dev/stdin"
	}
	return path
}

// Compression names the compressed format b starts with, "gzip" or "zstd" (the formats
// Open reads), "" for none of them.
func Compression(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, zstdMagic):
		return "zstd"
	}
	return ""
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// zstdMaxWindow is the largest zstd window read (a frame asking for more is refused): the
// zstd command's own default limit, which --long's windows (up to 2^27) stay within.
const zstdMaxWindow = 128 << 20

// NewReader is Open for an already-open stream (name is used in errors). Close does not
// close r.
func NewReader(r io.Reader, name string) (*File, error) {
	return newFile(r, name, nil, false)
}

func newFile(r io.Reader, name string, closer io.Closer, ahead bool) (*File, error) {
	f := &File{name: name, closer: closer, raw: &countingReader{r: r}, buf: make([]byte, bufSize), ahead: ahead}
	f.in = f.raw
	if st, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil {
			if fi.IsDir() {
				return nil, &FileError{Path: name, Msg: "is a directory, not a capture file"}
			}
			if fi.Mode().IsRegular() {
				f.size = fi.Size()
			}
		}
	}
	if err := f.start(); err != nil {
		return nil, err
	}
	return f, nil
}

// start reads the file header.
func (f *File) start() error {
	name := f.name
	n, err := f.fill(4)
	if err != nil {
		return f.readError(0, err)
	}
	if n == 0 {
		return &FileError{Path: name, Msg: "empty file"}
	}
	if kind := Compression(f.buf[:n]); kind != "" {
		if err := f.startCompressed(kind); err != nil {
			return err
		}
		if n, err = f.fill(4); err != nil {
			return f.readError(0, err)
		}
		if n == 0 {
			return f.errorf(0, "empty file (the %s stream decompresses to nothing)", kind)
		}
	}
	magic := binary.LittleEndian.Uint32(f.buf[:4]) // garbage beyond n is never matched below
	switch {
	case n >= 4 && pcapMagic(magic):
		err = f.openPcap(magic)
	case n >= 4 && magic == blockSHB:
		err = f.openPcapng()
	case n < 4 && magicPrefix(f.buf[:n]) == fmtPcap:
		err = f.errorf(0, "truncated pcap file header: %d bytes needed, %d present", pcapFileHeaderLen, n)
	case n < 4 && magicPrefix(f.buf[:n]) == fmtPcapng:
		err = f.errorf(0, "truncated pcapng file header: %d bytes needed, %d present", shbMinLen, n)
	default:
		err = f.errorf(0, "not a pcap or pcapng file (starts with % x)%s", f.buf[:min(n, 4)], compressedHint(f.buf[:n]))
	}
	if err != nil {
		return err
	}
	return nil
}

// compressedHint names the compressor of a file that starts with its magic (gzip and zstd
// are read: the others are decompressed into replay's standard input), "" for any other.
func compressedHint(b []byte) string {
	for _, c := range []struct {
		magic []byte
		name  string
		cmd   string
	}{
		{[]byte{0xfd, '7', 'z', 'X'}, "xz", "xz -dc"},
		{[]byte("BZh"), "bzip2", "bzip2 -dc"},
		{[]byte{0x04, 0x22, 0x4d, 0x18}, "lz4", "lz4 -dc"},
	} {
		if bytes.HasPrefix(b, c.magic) {
			return fmt.Sprintf(": %s-compressed (gzip and zstd are read as they are; for %s: %s FILE | telescope replay -)", c.name, c.name, c.cmd)
		}
	}
	return ""
}

// startCompressed replaces the input by a decompressor of kind (Compression's) over the
// raw bytes read so far and the rest.
func (f *File) startCompressed(kind string) error {
	head := bytes.Clone(f.buf[:f.w])
	src := io.MultiReader(bytes.NewReader(head), f.raw)
	switch kind {
	case "gzip":
		gz, err := gzip.NewReader(src)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &FileError{Path: f.name, Msg: "truncated gzip stream (gzip header incomplete)"}
			}
			return &FileError{Path: f.name, Msg: fmt.Sprintf("corrupt gzip stream: %v", err)}
		}
		f.dec, f.decClose = gz, gz.Close
	default: // zstd
		// One goroutine (the inflater's, or the reader's), windows up to zstdMaxWindow.
		zd, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return &FileError{Path: f.name, Msg: fmt.Sprintf("corrupt zstd stream: %v", err)}
		}
		f.dec, f.decClose = zd, func() error { zd.Close(); return nil }
	}
	f.comp, f.in = kind, f.dec
	if f.ahead { // opened by Open, which can stop the inflater (Close)
		f.inf = newInflater(f.dec)
		f.in = f.inf
	}
	f.r, f.w, f.base, f.rerr = 0, 0, 0, nil
	return nil
}

// Next returns the next record, io.EOF at a clean end, or a *FileError. After an error
// every further call returns the same error.
func (f *File) Next() (rec Record, err error) {
	err = f.Read(&rec)
	return rec, err
}

// Read is Next filling the caller's record in place: a loop over millions of records
// copies no 48-byte record back up through the return values. On an error rec holds
// nothing useful.
func (f *File) Read(rec *Record) error {
	if f.err != nil {
		return f.err
	}
	*rec = Record{} // the readers set only what a record has (a simple packet block has no time)
	var err error
	if f.format == fmtPcap {
		err = f.nextPcap(rec)
	} else {
		err = f.nextPcapng(rec)
	}
	if err != nil {
		f.err = err
	}
	if f.mapped != nil {
		if ahead := int(f.recOff) + pageAhead; ahead < len(f.mapped) {
			prefetch.Line(unsafe.Pointer(&f.mapped[ahead]))
			if ahead >= f.populated {
				f.populateAhead(ahead)
			}
		}
		if int(f.recOff)-f.dropped >= dropEvery {
			// The records before this one are decoded: their pages leave the process, whose
			// resident size then does not grow with the file.
			n := (int(f.recOff) - f.dropped) &^ (dropEvery - 1)
			dropPages(f.mapped[f.dropped : f.dropped+n])
			f.dropped += n
		}
	}
	return err
}

// FaultError returns the error for v, the value recovered from a panic while reading a
// mapped file (under debug.SetPanicOnFault), when it is a fault inside the file's mapping:
// the file shrank while it was being read, and the pages past its new end fault. Otherwise
// nil (v is another panic). Callers that read or decode records of a file that may shrink
// set SetPanicOnFault and recover; without it such a fault ends the process.
func (f *File) FaultError(v any) error {
	fault, ok := v.(interface{ Addr() uintptr })
	if !ok || f.mapped == nil {
		return nil
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapped)))
	addr := fault.Addr()
	if addr < start || addr-start >= uintptr(len(f.mapped)) {
		return nil
	}
	f.err = f.errorf(int64(addr-start), "the file shrank while it was being read (%d bytes when opened)", len(f.mapped))
	return f.err
}

// dropEvery is how many bytes of a mapped file are released at a time (a multiple of every
// page size).
const dropEvery = 8 << 20

// RecordOffset is the byte offset (in the uncompressed stream) where the last record
// returned (or the damaged one) starts.
func (f *File) RecordOffset() int64 { return f.recOff }

// InputBytes is how many bytes of the underlying file have been consumed: the records
// read so far for a plain file, the compressed bytes read for a compressed one (which run a
// little ahead of the records returned). With Size it gives a "% of input" progress line.
func (f *File) InputBytes() int64 {
	if f.dec != nil {
		return f.raw.n.Load()
	}
	return f.base + int64(f.r)
}

// Size is the size of the underlying file in bytes (compressed for gzip), 0 when unknown
// (a pipe, or a NewReader stream without a Stat method).
func (f *File) Size() int64 { return f.size }

// Name is the file name given to Open or NewReader.
func (f *File) Name() string { return f.name }

// Interrupt makes a Read that waits for data from a pipe or FIFO (os.Open makes those
// pollable) return an error at once, and every later Read that needs more data: a replay of
// a quiet stream, such as tcpdump -w into a FIFO, then stops at the first SIGINT instead
// of at its next packets. A regular file never waits, and a stream given to NewReader is
// not touched. Safe to call from another goroutine while Read runs, and after Close.
func (f *File) Interrupt() {
	if f.stream != nil {
		interrupt(f.stream)
	}
}

// interrupt makes fh's waiting and later reads return (a past deadline). A regular file
// has no deadlines (os.ErrNoDeadline): nothing to do.
func interrupt(fh *os.File) { _ = fh.SetReadDeadline(time.Unix(1, 0)) }

// Close releases the file. It does not close the stream given to NewReader.
func (f *File) Close() error {
	if f.unwatch != nil {
		f.unwatch()
		f.unwatch = nil
	}
	var err error
	if f.inf != nil {
		// The inflater's read may wait on a pipe: the file is closed under it first.
		f.inf.stopping()
		if f.closer != nil {
			err = f.closer.Close()
			f.closer = nil
		}
		f.inf.wait()
		f.inf = nil
	}
	if f.decClose != nil {
		if derr := f.decClose(); err == nil {
			err = derr
		}
		f.decClose = nil
	}
	if f.closer != nil {
		if cerr := f.closer.Close(); err == nil {
			err = cerr
		}
		f.closer = nil
	}
	if f.err == nil {
		f.err = &FileError{Path: f.name, Offset: f.base + int64(f.r), Msg: "read after Close"}
	}
	if f.mapped != nil {
		unmapFile(f.mapped)
		f.mapped, f.buf, f.base, f.r, f.w = nil, nil, f.base+int64(f.r), 0, 0
	}
	return err
}

// fill makes at least need unread bytes available in buf[r:] when the stream has them and
// returns how many are available: fewer than need only at the end of the stream (then the
// error is nil) or on a read error other than io.EOF (returned). The buffer is compacted
// and, for a record larger than it, grown step by step as data actually arrives, so a
// corrupt length field cannot make it allocate more than about twice the data present.
func (f *File) fill(need int) (int, error) {
	if need > len(f.buf)-f.r && f.r > 0 && f.mapped == nil {
		copy(f.buf, f.buf[f.r:f.w])
		f.base += int64(f.r)
		f.w -= f.r
		f.r = 0
	}
	stalls := 0
	for f.w-f.r < need && f.rerr == nil {
		if f.w == len(f.buf) {
			nb := make([]byte, min(2*len(f.buf), f.r+need))
			copy(nb, f.buf[:f.w])
			f.buf = nb
		}
		m, err := f.in.Read(f.buf[f.w:])
		f.w += m
		if err != nil {
			f.rerr = err
		} else if m == 0 {
			if stalls++; stalls > 100 {
				f.rerr = io.ErrNoProgress
			}
		}
	}
	avail := f.w - f.r
	if avail >= need || f.rerr == io.EOF {
		return avail, nil
	}
	return avail, f.rerr
}

// short builds the result for a header or record of want bytes (hdr of which are its fixed
// header) starting at the current offset when only have bytes are left: io.EOF for a clean
// end between records, otherwise a *FileError.
func (f *File) short(have, hdr, want int, err error) error {
	off := f.base + int64(f.r)
	f.recOff = off
	switch {
	case err != nil:
		return f.readError(off, err)
	case have == 0:
		return io.EOF
	case have < hdr:
		return f.errorf(off, "truncated record header: %d bytes needed, %d present", hdr, have)
	default:
		return f.errorf(off, "truncated record: header says %d bytes, %d present", want, have)
	}
}

// readError describes an error of the underlying stream at offset off.
func (f *File) readError(off int64, err error) error {
	if f.dec != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return f.errorf(off, "truncated %s stream", f.comp)
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return f.errorf(off, "zstd frame with a window over %d MiB (zstd --long=28 or more; the zstd command refuses it too without --memory): zstd -dc --memory=2048MB FILE | telescope replay -", zstdMaxWindow>>20)
		}
		return f.errorf(off, "corrupt %s stream: %v", f.comp, err)
	}
	return f.errorf(off, "read error: %v", err)
}

// errorf returns a *FileError at offset off.
func (f *File) errorf(off int64, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if f.dec != nil {
		msg += " (offset in the decompressed data)"
	}
	return &FileError{Path: f.name, Offset: off, Msg: msg}
}

// Warning kinds: each is reported at most once per file.
const (
	warnOverSnaplen    uint32 = 1 << iota // caplen > snapshot length (record kept whole)
	warnCapOverWire                       // caplen > original length (kept as is)
	warnMixedLinkTypes                    // pcapng interfaces of different link types
	warnMixedSnaplens                     // pcapng interfaces with different snapshot lengths
	warnMixedByteOrder                    // pcapng sections of different byte orders
	warnNoTimestamp                       // pcapng Simple Packet Blocks (TS 0)
	warnShortSnaplen                      // a snapshot length that cuts most payloads
)

// shortSnaplen is the snapshot length below which a file is warned about: a UDP payload
// cut by the capture is never classed dht or utp (packet.IsKRPC needs all of it), and the
// KRPC queries a telescope gets take 60 to 200 bytes past the 42 of Ethernet, IPv4 and UDP.
// Captures cut to 64, 68, 96 or 128 bytes are common in telescope archives.
const shortSnaplen = 256

// cutPayloads is what a short snapshot length costs, the tail of its warnings.
const cutPayloads = "a UDP payload cut short is never classed dht or utp (udp_then_syn's payload, the hotspot's p2p class); the counts and the other detectors are unaffected"

// cutShort reports whether a record cut to caplen bytes is one to warn about: under
// shortSnaplen, and no such warning yet (the header's snapshot length may have given it).
func (f *File) cutShort(caplen uint32) bool {
	return caplen < shortSnaplen && f.warned&warnShortSnaplen == 0
}

// warnCut warns about a record cut to caplen of its wire bytes (at off) under a larger
// snapshot length (editcap -s leaves a pcapng interface's as it was).
func (f *File) warnCut(caplen, wire uint32, off int64) {
	f.warn(warnShortSnaplen, off, "records cut to %d of their %d bytes (the first here), and "+cutPayloads, caplen, wire)
}

// warnSnaplen warns about a snapshot length below shortSnaplen (off: its header's offset).
func (f *File) warnSnaplen(snaplen uint32, off int64) {
	if snaplen < shortSnaplen {
		f.warn(warnShortSnaplen, off, "snapshot length %d: packets were cut to %d bytes, and "+cutPayloads, snaplen, snaplen)
	}
}

// warn records a warning of one kind at offset off unless that kind was reported before.
func (f *File) warn(kind uint32, off int64, format string, args ...any) {
	if f.warned&kind != 0 {
		return
	}
	f.warned |= kind
	f.warnings = append(f.warnings, (&FileError{Path: f.name, Offset: off, Msg: fmt.Sprintf(format, args...)}).Error())
}

// Warnings returns the non-fatal problems met so far, one line each ("<path>: byte offset
// <N>: <what>"), at most one per kind per file, the offset being that of the first record
// concerned. Call it after reading (they are produced while records are read):
//   - a record longer than the snapshot length (kept whole; libpcap would cut it);
//   - a record whose captured length exceeds its original length (kept as is, like libpcap);
//   - pcapng interfaces of different link types or snapshot lengths, or sections of
//     different byte orders (all read; libpcap and tcpdump refuse such files);
//   - pcapng Simple Packet Blocks, which carry no timestamp (TS is 0, as in libpcap);
//   - a snapshot length under shortSnaplen, or records cut below it (UDP payloads cut, so
//     never classed).
func (f *File) Warnings() []string {
	return append([]string(nil), f.warnings...)
}

// u16 and u32 decode fields in the byte order of the file.
func (f *File) u16(b []byte) uint16 {
	v := binary.LittleEndian.Uint16(b)
	if f.be {
		v = bits.ReverseBytes16(v)
	}
	return v
}

func (f *File) u32(b []byte) uint32 {
	v := binary.LittleEndian.Uint32(b)
	if f.be {
		v = bits.ReverseBytes32(v)
	}
	return v
}

// magicPrefix tells which format's magic number b (shorter than 4 bytes) is the start of,
// so that a 1..3-byte file is called truncated rather than foreign; 0 for none.
func magicPrefix(b []byte) fileFormat {
	for _, m := range []uint32{pcapMicro, pcapNano, pcapKuznetsov, blockSHB} {
		var le, be [4]byte
		binary.LittleEndian.PutUint32(le[:], m)
		binary.BigEndian.PutUint32(be[:], m)
		if bytes.HasPrefix(le[:], b) || bytes.HasPrefix(be[:], b) {
			if m == blockSHB {
				return fmtPcapng
			}
			return fmtPcap
		}
	}
	return 0
}

// countingReader counts the bytes read from the underlying file.
type countingReader struct {
	r io.Reader
	n atomic.Int64 // an inflater's goroutine reads, the reader's progress loads
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// populateEvery is how many bytes of a mapped file are mapped into the process at a time,
// ahead of the reader (populatePages).
const populateEvery = 2 << 20

// populateAhead maps the next populateEvery bytes of the file from at (page aligned) in one
// call: read in order, a mapped file otherwise faults a page cache folio (or the kernel's
// 16-page fault-around) at a time, and on a virtual machine each fault is a trap to the host.
func (f *File) populateAhead(at int) {
	from := at &^ (4096 - 1)
	to := min(from+populateEvery, len(f.mapped))
	populatePages(f.mapped[from:to])
	f.populated = to
}
