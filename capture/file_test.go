package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/klauspost/compress/zstd"
	"github.com/telescope-dev/telescope/packet"
)

// frame returns n bytes of recognisable content for record i.
func frame(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	return b
}

// pcapRec is one record for the hand-written pcap builder.
type pcapRec struct {
	sec, frac, caplen, wire uint32
	data                    []byte
}

// rec returns a record whose lengths match its data.
func rec(sec, frac uint32, data []byte) pcapRec {
	return pcapRec{sec, frac, uint32(len(data)), uint32(len(data)), data}
}

// pcapBytes writes a pcap file by hand: any magic, version, byte order and header fields.
// Kuznetsov records get 8 extra header bytes.
func pcapBytes(order binary.AppendByteOrder, magic uint32, major, minor uint16, snaplen, link uint32, recs ...pcapRec) []byte {
	var b []byte
	b = order.AppendUint32(b, magic)
	b = order.AppendUint16(b, major)
	b = order.AppendUint16(b, minor)
	b = order.AppendUint32(b, 0) // thiszone
	b = order.AppendUint32(b, 0) // sigfigs
	b = order.AppendUint32(b, snaplen)
	b = order.AppendUint32(b, link)
	for _, r := range recs {
		b = order.AppendUint32(b, r.sec)
		b = order.AppendUint32(b, r.frac)
		b = order.AppendUint32(b, r.caplen)
		b = order.AppendUint32(b, r.wire)
		if magic == pcapKuznetsov {
			b = append(b, 0, 0, 0, 7, 0x08, 0x00, 4, 0) // ifindex 7, ETH_P_IP, PACKET_OUTGOING, pad
		}
		b = append(b, r.data...)
	}
	return b
}

// ngBuilder writes one pcapng section by hand, in either byte order.
type ngBuilder struct {
	order binary.AppendByteOrder
	b     []byte
}

// block appends a block: body padded to 4 bytes, total length in header and trailer.
func (n *ngBuilder) block(typ uint32, body []byte) *ngBuilder {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	length := uint32(12 + len(body))
	n.b = n.order.AppendUint32(n.b, typ)
	n.b = n.order.AppendUint32(n.b, length)
	n.b = append(n.b, body...)
	n.b = n.order.AppendUint32(n.b, length)
	return n
}

func newSection(order binary.AppendByteOrder) *ngBuilder {
	n := &ngBuilder{order: order}
	var body []byte
	body = order.AppendUint32(body, byteOrderMagic)
	body = order.AppendUint16(body, 1)
	body = order.AppendUint16(body, 0)
	body = order.AppendUint64(body, ^uint64(0)) // section length unknown
	return n.block(blockSHB, body)
}

// opt encodes one option (padded).
func (n *ngBuilder) opt(code uint16, val []byte) []byte {
	var o []byte
	o = n.order.AppendUint16(o, code)
	o = n.order.AppendUint16(o, uint16(len(val)))
	o = append(o, val...)
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	return o
}

func (n *ngBuilder) idb(link uint16, snaplen uint32, opts ...[]byte) *ngBuilder {
	var body []byte
	body = n.order.AppendUint16(body, link)
	body = n.order.AppendUint16(body, 0)
	body = n.order.AppendUint32(body, snaplen)
	for _, o := range opts {
		body = append(body, o...)
	}
	if len(opts) > 0 {
		body = append(body, n.opt(optEndOfOpt, nil)...)
	}
	return n.block(blockIDB, body)
}

func (n *ngBuilder) tsresol(r uint8) []byte { return n.opt(optTSResol, []byte{r}) }

func (n *ngBuilder) tsoffset(sec int64) []byte {
	return n.opt(optTSOffset, n.order.AppendUint64(nil, uint64(sec)))
}

func (n *ngBuilder) epb(iface uint32, ts uint64, wire uint32, data []byte) *ngBuilder {
	var body []byte
	body = n.order.AppendUint32(body, iface)
	body = n.order.AppendUint32(body, uint32(ts>>32))
	body = n.order.AppendUint32(body, uint32(ts))
	body = n.order.AppendUint32(body, uint32(len(data)))
	body = n.order.AppendUint32(body, wire)
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	body = append(body, n.opt(1, []byte("a comment"))...) // an option to skip
	body = append(body, n.opt(optEndOfOpt, nil)...)
	return n.block(blockEPB, body)
}

func (n *ngBuilder) spb(wire uint32, data []byte) *ngBuilder {
	return n.block(blockSPB, append(n.order.AppendUint32(nil, wire), data...))
}

func (n *ngBuilder) pb(iface uint16, ts uint64, data []byte) *ngBuilder {
	var body []byte
	body = n.order.AppendUint16(body, iface)
	body = n.order.AppendUint16(body, 0) // drops
	body = n.order.AppendUint32(body, uint32(ts>>32))
	body = n.order.AppendUint32(body, uint32(ts))
	body = n.order.AppendUint32(body, uint32(len(data)))
	body = n.order.AppendUint32(body, uint32(len(data)))
	return n.block(blockPB, append(body, data...))
}

// gopacketPcap writes records with gopacket's pcap writer (µs or ns).
func gopacketPcap(t *testing.T, nanos bool, snaplen uint32, link layers.LinkType, times []time.Time, data [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if nanos {
		w = pcapgo.NewWriterNanos(&buf)
	}
	if err := w.WriteFileHeader(snaplen, link); err != nil {
		t.Fatal(err)
	}
	for i, d := range data {
		ci := gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(d), Length: len(d) + 10}
		if err := w.WritePacket(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// gopacketPcapng writes one section with one interface with gopacket's pcapng writer.
func gopacketPcapng(t *testing.T, link layers.LinkType, times []time.Time, data [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, link)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range data {
		ci := gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(d), Length: len(d) + 10}
		if err := w.WritePacket(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdded is b as one zstd frame (the zstd command's default level).
func zstdded(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// zstdWindow is b (at most 128 KiB) as a zstd frame of one raw block whose header asks
// for a window of 2^log bytes (an encoder shrinks the window to the data).
func zstdWindow(b []byte, log int) []byte {
	out := append(bytes.Clone(zstdMagic), 0, byte(log-10)<<3) // no content size, checksum, dictionary
	h := uint32(len(b))<<3 | 1                                // last block, raw
	return append(append(out, byte(h), byte(h>>8), byte(h>>16)), b...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readFile opens path and reads it to the end or the first error, copying the records.
func readFile(t *testing.T, path string) (*File, []Record, error) {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { f.Close() })
	var recs []Record
	for {
		r, err := f.Next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return f, recs, err
		}
		r.Data = bytes.Clone(r.Data)
		recs = append(recs, r)
	}
}

// readFileReusing reads path with Read into one reused record, as the replay loop does.
func readFileReusing(t *testing.T, path string) ([]Record, error) {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []Record
	var r Record
	for {
		if err := f.Read(&r); err != nil {
			if err == io.EOF {
				err = nil
			}
			return recs, err
		}
		c := r
		c.Data = bytes.Clone(r.Data)
		recs = append(recs, c)
	}
}

func checkRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.TS != w.TS || g.WireLen != w.WireLen || g.Link != w.Link || g.Iface != w.Iface || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("record %d:\n got  TS %d wire %d link %v iface %d data % x\n want TS %d wire %d link %v iface %d data % x",
				i, g.TS, g.WireLen, g.Link, g.Iface, g.Data, w.TS, w.WireLen, w.Link, w.Iface, w.Data)
		}
	}
}

// errorsAsFileError unwraps a *FileError.
func errorsAsFileError(err error) (*FileError, bool) {
	var fe *FileError
	ok := errors.As(err, &fe)
	return fe, ok
}

// Times used by the tests: ns precision, and the µs a µs writer keeps of it.
var (
	t0 = time.Unix(1700000000, 123456789)
	t1 = time.Unix(1700000001, 999999999)
	t2 = time.Unix(1700000002, 5)
)

func us(t time.Time) int64 { return t.Unix()*1e9 + int64(t.Nanosecond()/1000*1000) }

func TestReadGoodFiles(t *testing.T) {
	d := [][]byte{frame(0, 74), frame(1, 60), frame(2, 1514)}
	times := []time.Time{t0, t1, t2}
	eth, raw := packet.LinkEthernet, packet.LinkRaw

	// A pcapng file with an Ethernet interface (µs, explicit) and a raw IP one (ns), then a
	// big-endian section whose one interface counts 2^-24 s from an offset of -10 s.
	le := newSection(binary.LittleEndian)
	le.idb(1, 65535, le.tsresol(6)).idb(101, 0, le.tsresol(9))
	le.epb(0, 1700000000123456, 84, d[0]).epb(1, 1700000001999999999, 60, d[1])
	be := newSection(binary.BigEndian)
	be.idb(101, 2000, be.tsresol(0x80|24), be.tsoffset(-10)).idb(101, 2000, be.tsresol(0x80|40))
	be.epb(0, 1700000010<<24|1<<23, 1514, d[2])
	be.epb(1, 1000<<40|1<<39|1<<30, 60, d[1]) // 1000.5009765625 s: frac * 1e9 overflows 64 bits
	twoIfaces := append(le.b, be.b...)

	// SPB (interface 0, no time, cut to the snapshot length) and the obsolete PB.
	old := newSection(binary.LittleEndian)
	old.idb(1, 64).idb(228, 0)
	old.spb(74, d[0][:64]).pb(1, 1700000000123456, d[1])
	old.block(0x0BAD, []byte("an unknown block is skipped"))
	// A simple packet block after a timed record: a reused Record must not keep that time.
	old.spb(60, d[1][:60])

	twoSections := append(gopacketPcapng(t, layers.LinkTypeEthernet, times[:2], d[:2]),
		gopacketPcapng(t, layers.LinkTypeRaw, times[2:], d[2:])...)

	pcapUs := gopacketPcap(t, false, 65535, layers.LinkTypeEthernet, times, d)
	beRecs := []pcapRec{rec(1700000000, 123456789, d[0]), rec(1700000001, 999999999, d[1])}

	cases := []struct {
		name string
		file []byte
		want []Record
		warn []string // substrings, one per expected warning
	}{
		{"pcap µs (gopacket)", pcapUs, []Record{
			{d[0], us(t0), 84, eth, 0}, {d[1], us(t1), 70, eth, 0}, {d[2], us(t2), 1524, eth, 0}}, []string{"records cut to 74 of their 84 bytes"}},
		{"pcap ns (gopacket)", gopacketPcap(t, true, 65535, layers.LinkTypeRaw, times, d), []Record{
			{d[0], t0.UnixNano(), 84, raw, 0}, {d[1], t1.UnixNano(), 70, raw, 0}, {d[2], t2.UnixNano(), 1524, raw, 0}}, []string{"records cut to 74 of their 84 bytes"}},
		{"pcap ns big-endian", pcapBytes(binary.BigEndian, pcapNano, 2, 4, 65535, 1, beRecs...), []Record{
			{d[0], 1700000000123456789, 74, eth, 0}, {d[1], 1700000001999999999, 60, eth, 0}}, nil},
		{"pcap µs big-endian", pcapBytes(binary.BigEndian, pcapMicro, 2, 4, 65535, 101, rec(1700000000, 123456, d[0])),
			[]Record{{d[0], 1700000000123456000, 74, raw, 0}}, nil},
		{"pcap Kuznetsov", pcapBytes(binary.LittleEndian, pcapKuznetsov, 2, 4, 60, 1, rec(1700000000, 123456, d[0])),
			// snaplen 60 + 14 for the fake Ethernet header: a 74-byte record is no warning
			// (the short snapshot length is)
			[]Record{{d[0], 1700000000123456000, 74, eth, 0}}, []string{"byte offset 0: snapshot length 74: packets were cut to 74 bytes, and a UDP payload cut short is never classed dht or utp (udp_then_syn's payload, the hotspot's p2p class); the counts and the other detectors are unaffected"}},
		{"pcap Kuznetsov big-endian", pcapBytes(binary.BigEndian, pcapKuznetsov, 2, 4, 0, 101, rec(1, 2, d[1])),
			[]Record{{d[1], 1000002000, 60, raw, 0}}, nil},
		{"pcap version 2.2: lengths swapped", pcapBytes(binary.LittleEndian, pcapMicro, 2, 2, 0, 1,
			pcapRec{1, 0, 100, 74, d[0]}), []Record{{d[0], 1e9, 100, eth, 0}}, []string{"records cut to 74 of their 100 bytes"}},
		{"pcap version 2.3: lengths swapped only when caplen > len", pcapBytes(binary.LittleEndian, pcapMicro, 2, 3, 0, 1,
			pcapRec{1, 0, 100, 74, d[0]}, pcapRec{2, 0, 74, 100, d[0]}),
			[]Record{{d[0], 1e9, 100, eth, 0}, {d[0], 2e9, 100, eth, 0}}, []string{"records cut to 74 of their 100 bytes"}},
		{"pcap version 543.0 (DG/UX)", pcapBytes(binary.LittleEndian, pcapMicro, 543, 0, 0, 1,
			pcapRec{1, 0, 100, 74, d[0]}), []Record{{d[0], 1e9, 100, eth, 0}}, []string{"records cut to 74 of their 100 bytes"}},
		{"pcap link type FCS bits masked", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1|0x14000000, rec(1, 0, d[0])),
			[]Record{{d[0], 1e9, 74, eth, 0}}, nil},
		{"pcap snaplen 0 means the maximum", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, rec(1, 0, frame(0, 262144))),
			[]Record{{frame(0, 262144), 1e9, 262144, eth, 0}}, nil},
		{"pcap D-Bus record of 2 MiB", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 231, rec(1, 0, frame(3, 2<<20))),
			[]Record{{frame(3, 2<<20), 1e9, 2 << 20, 231, 0}}, nil},
		{"pcap record longer than the snaplen: kept, one warning", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 64, 1,
			rec(1, 0, d[0]), rec(2, 0, d[0]), rec(3, 0, d[1])),
			[]Record{{d[0], 1e9, 74, eth, 0}, {d[0], 2e9, 74, eth, 0}, {d[1], 3e9, 60, eth, 0}},
			[]string{"byte offset 0: snapshot length 64: packets were cut to 64 bytes, and a UDP payload cut short is never classed dht or utp (udp_then_syn's payload, the hotspot's p2p class); the counts and the other detectors are unaffected",
				"byte offset 24: record of 74 bytes exceeds the snapshot length 64; kept whole (libpcap cuts it to 64 bytes)"}},
		{"pcap caplen above the original length: kept, warning", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1,
			pcapRec{1, 0, 74, 70, d[0]}), []Record{{d[0], 1e9, 70, eth, 0}},
			[]string{"byte offset 24: record captured length 74 exceeds its original length 70; kept as is"}},
		{"pcap without records", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1), nil, nil},
		{"pcapng two interfaces, link types and resolutions; big-endian section with offset", twoIfaces, []Record{
			{d[0], 1700000000123456000, 84, eth, 0}, {d[1], 1700000001999999999, 60, raw, 1},
			{d[2], 1700000000500000000, 1514, raw, 2}, {d[1], 1000500976562, 60, raw, 3}},
			[]string{"interfaces of different link types, LINKTYPE_ETHERNET (1) and LINKTYPE_RAW (101) (libpcap refuses the file)",
				"interfaces with different snapshot lengths, 65535 and 262144 (libpcap refuses the file)",
				"records cut to 74 of their 84 bytes", "sections of different byte orders (libpcap refuses the file)"}},
		{"pcapng two sections (gopacket)", twoSections, []Record{
			{d[0], t0.UnixNano(), 84, eth, 0}, {d[1], t1.UnixNano(), 70, eth, 0}, {d[2], t2.UnixNano(), 1524, raw, 1}},
			[]string{"records cut to 74 of their 84 bytes", "different link types"}},
		{"pcapng simple and obsolete packet blocks", old.b, []Record{
			{d[0][:64], 0, 74, eth, 0}, {d[1], 1700000000123456000, 60, 228, 1}, {d[1][:60], 0, 60, eth, 0}},
			[]string{"snapshot length 64: packets were cut", "different link types", "different snapshot lengths",
				"simple packet blocks carry no timestamp; their records have time 0 (as in libpcap)"}},
		{"gzip pcap", gzipped(t, pcapUs), []Record{
			{d[0], us(t0), 84, eth, 0}, {d[1], us(t1), 70, eth, 0}, {d[2], us(t2), 1524, eth, 0}}, []string{"records cut to 74 of their 84 bytes"}},
		{"gzip pcapng, two gzip members", append(gzipped(t, le.b[:len(le.b)-4*len(d[1])]), gzipped(t, le.b[len(le.b)-4*len(d[1]):])...),
			[]Record{{d[0], 1700000000123456000, 84, eth, 0}, {d[1], 1700000001999999999, 60, raw, 1}},
			[]string{"different link types", "different snapshot lengths", "records cut to 74 of their 84 bytes"}},
		{"zstd pcap", zstdded(t, pcapUs), []Record{
			{d[0], us(t0), 84, eth, 0}, {d[1], us(t1), 70, eth, 0}, {d[2], us(t2), 1524, eth, 0}}, []string{"records cut to 74 of their 84 bytes"}},
		{"zstd with a window of 128 MiB (zstd --long)", zstdWindow(pcapUs, 27), []Record{
			{d[0], us(t0), 84, eth, 0}, {d[1], us(t1), 70, eth, 0}, {d[2], us(t2), 1524, eth, 0}}, []string{"records cut to 74 of their 84 bytes"}},
		{"zstd pcapng, two zstd frames", append(zstdded(t, le.b[:len(le.b)-4*len(d[1])]), zstdded(t, le.b[len(le.b)-4*len(d[1]):])...),
			[]Record{{d[0], 1700000000123456000, 84, eth, 0}, {d[1], 1700000001999999999, 60, raw, 1}},
			[]string{"different link types", "different snapshot lengths", "records cut to 74 of their 84 bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "capture.bin", c.file)
			f, got, err := readFile(t, path)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			checkRecords(t, got, c.want)
			reused, err := readFileReusing(t, path)
			if err != nil {
				t.Fatalf("Read: unexpected error: %v", err)
			}
			checkRecords(t, reused, c.want)
			warns := f.Warnings()
			if len(warns) != len(c.warn) {
				t.Fatalf("warnings %q, want %d", warns, len(c.warn))
			}
			for i, w := range c.warn {
				exact := strings.HasPrefix(w, "byte offset ") // else a part of the text
				if exact && warns[i] != path+": "+w ||
					!strings.HasPrefix(warns[i], path+": byte offset ") || !strings.Contains(warns[i], w) {
					t.Errorf("warning %q does not name the file or lacks %q", warns[i], w)
				}
			}
		})
	}
}

// TestOpenErrors checks the one-line errors for files that are not readable captures.
func TestOpenErrors(t *testing.T) {
	good := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, rec(1, 0, frame(0, 74)))
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 0)
	type tc struct {
		name string
		file []byte
		want string // after "<path>: byte offset "
	}
	cases := []tc{
		{"empty", nil, "0: empty file"},
		{"text", []byte("hello, world\n"), "0: not a pcap or pcapng file (starts with 68 65 6c 6c)"},
		{"short text", []byte("hi"), "0: not a pcap or pcapng file (starts with 68 69)"},
		{"zstd of nothing", zstdded(t, nil), "0: empty file (the zstd stream decompresses to nothing) (offset in the decompressed data)"},
		{"zstd of text", zstdded(t, []byte("hello")), "0: not a pcap or pcapng file (starts with 68 65 6c 6c) (offset in the decompressed data)"},
		{"zstd header cut", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0, 0}, "0: truncated zstd stream (offset in the decompressed data)"},
		// A frame whose window (2^28 bytes, descriptor 18<<3) is past zstdMaxWindow.
		// The decoder gives a block's data once the frame's checksum after it is checked
		// (this frame is one block): none before.
		{"zstd frame cut in its checksum", zstdded(t, good)[:len(zstdded(t, good))-2], "0: truncated zstd stream (offset in the decompressed data)"},
		{"zstd frame checksum wrong", func() []byte { b := zstdded(t, good); b[len(b)-1] ^= 1; return b }(), "0: corrupt zstd stream: CRC check failed (offset in the decompressed data)"},
		{"zstd window of 256 MiB", zstdWindow(good, 28),
			"0: zstd frame with a window over 128 MiB (zstd --long=28 or more; the zstd command refuses it too without --memory): zstd -dc --memory=2048MB FILE | telescope replay - (offset in the decompressed data)"},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}, "0: not a pcap or pcapng file (starts with fd 37 7a 58): xz-compressed (gzip and zstd are read as they are; for xz: xz -dc FILE | telescope replay -)"},
		{"bzip2", []byte("BZh91AY&SY"), "0: not a pcap or pcapng file (starts with 42 5a 68 39): bzip2-compressed (gzip and zstd are read as they are; for bzip2: bzip2 -dc FILE | telescope replay -)"},
		{"lz4", []byte{0x04, 0x22, 0x4d, 0x18, 0x64}, "0: not a pcap or pcapng file (starts with 04 22 4d 18): lz4-compressed (gzip and zstd are read as they are; for lz4: lz4 -dc FILE | telescope replay -)"},
		{"Navtel magic", pcapBytes(binary.LittleEndian, 0xa12b3c4d, 2, 4, 0, 1), "0: not a pcap or pcapng file (starts with 4d 3c 2b a1)"},
		{"archaic version", pcapBytes(binary.LittleEndian, pcapMicro, 1, 0, 0, 1), "0: archaic pcap file format version 1.0"},
		{"unsupported version", pcapBytes(binary.BigEndian, pcapNano, 2, 5, 0, 1), "0: unsupported pcap file format version 2.5"},
		{"gzip of nothing", gzipped(t, nil), "0: empty file (the gzip stream decompresses to nothing) (offset in the decompressed data)"},
		{"gzip of text", gzipped(t, []byte("hello")), "0: not a pcap or pcapng file (starts with 68 65 6c 6c) (offset in the decompressed data)"},
		{"gzip header cut", gzipped(t, good)[:5], "0: truncated gzip stream (gzip header incomplete)"},
		{"pcapng bad byte-order magic", append(bytes.Clone(ng.b[:8]), 1, 2, 3, 4),
			"0: not a pcap or pcapng file (starts like a pcapng section header, but the byte-order magic is 01 02 03 04)"},
		{"pcapng section header too long", func() []byte {
			b := bytes.Clone(ng.b)
			binary.LittleEndian.PutUint32(b[4:], 2<<20)
			return b
		}(), "0: pcapng section header block length 2097152 is outside 28..1048576"},
		{"pcapng version 1.1", func() []byte {
			b := bytes.Clone(ng.b)
			b[14] = 1
			return b
		}(), "0: unsupported pcapng version 1.1"},
		{"pcapng header cut", ng.b[:20], "0: truncated pcapng file header: 28 bytes needed, 20 present"},
		{"pcapng magic cut", ng.b[:3], "0: truncated pcapng file header: 28 bytes needed, 3 present"},
	}
	for n := 1; n < pcapFileHeaderLen; n++ {
		cases = append(cases, tc{fmt.Sprintf("pcap header cut at %d", n), good[:n],
			fmt.Sprintf("0: truncated pcap file header: 24 bytes needed, %d present", n)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.pcap", c.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			if _, ok := errorsAsFileError(err); !ok {
				t.Errorf("error %T is not a *FileError", err)
			}
			if want := path + ": byte offset " + c.want; err.Error() != want {
				t.Errorf("error\n got  %q\n want %q", err, want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.pcap")
		_, err := Open(path)
		if !errors.Is(err, fs.ErrNotExist) || err.Error() != "open "+path+": no such file or directory" {
			t.Errorf("error %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Open(dir)
		if err == nil || err.Error() != dir+": byte offset 0: is a directory, not a capture file" {
			t.Errorf("error %v", err)
		}
	})
}

// TestReadErrors checks damage found while reading: the records before it are returned, then
// a *FileError naming the offset of the damaged record, again on every later call.
func TestReadErrors(t *testing.T) {
	d0, d1 := frame(0, 74), frame(1, 60)
	good := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, rec(1, 0, d0), rec(2, 0, d1), rec(3, 0, d0))
	third := int64(24 + 16 + 74 + 16 + 60) // offset of the third record
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 0).epb(0, 1e6, 74, d0)
	ngLen := len(ng.b)
	ng.epb(0, 2e6, 60, d1)
	epbLen := len(ng.b) - ngLen // of the second EPB
	setU32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	noIDB := newSection(binary.LittleEndian)
	noIDB.block(0x0BAD, nil)
	spbFirst := newSection(binary.LittleEndian)
	spbFirst.spb(4, []byte{1, 2, 3, 4})
	badResol := newSection(binary.LittleEndian)
	badResol.idb(1, 0, badResol.tsresol(20))
	twoResol := newSection(binary.LittleEndian)
	twoResol.idb(1, 0, twoResol.tsresol(6), twoResol.tsresol(9))
	gz := gzipped(t, good)

	cases := []struct {
		name  string
		file  []byte
		nrecs int    // records returned before the error
		want  string // after "<path>: byte offset "
	}{
		{"pcap record cut mid-way", good[:len(good)-10], 2, fmt.Sprintf("%d: truncated record: header says 90 bytes, 80 present", third)},
		{"pcap record header cut", good[:third+5], 2, fmt.Sprintf("%d: truncated record header: 16 bytes needed, 5 present", third)},
		{"pcap caplen beyond the sane maximum", setU32(good, int(third)+8, 262145), 2,
			fmt.Sprintf("%d: record captured length 262145 exceeds the maximum of 262144 for LINKTYPE_ETHERNET (1)", third)},
		{"pcap files joined with cat", append(bytes.Clone(good), good...), 3,
			fmt.Sprintf("%d: another pcap file header: files joined with cat are not one pcap file (mergecap -a -w joined.pcap FILES... joins them; or give replay each file)", len(good))},
		{"pcap files joined with cat, big-endian and ns second", append(bytes.Clone(good), pcapBytes(binary.BigEndian, pcapNano, 2, 4, 65535, 1, rec(4, 0, d0))...), 3,
			fmt.Sprintf("%d: another pcap file header: files joined with cat are not one pcap file (mergecap -a -w joined.pcap FILES... joins them; or give replay each file)", len(good))},
		{"pcapng block length not a multiple of 4", setU32(ng.b, ngLen+4, 97), 1, fmt.Sprintf("%d: block length 97 is not a multiple of 4", ngLen)},
		{"pcapng block length below the minimum", setU32(ng.b, ngLen+4, 8), 1, fmt.Sprintf("%d: block length 8 is less than the minimum of 12", ngLen)},
		{"pcapng block length above the maximum", setU32(ng.b, ngLen+4, 32<<20), 1,
			fmt.Sprintf("%d: block length 33554432 exceeds the maximum of 16777216", ngLen)},
		{"pcapng trailer differs", setU32(ng.b, len(ng.b)-4, 4), 1, fmt.Sprintf("%d: block length %d in header and 4 in trailer differ", ngLen, epbLen)},
		{"pcapng block cut", ng.b[:len(ng.b)-8], 1, fmt.Sprintf("%d: truncated record: header says %d bytes, %d present", ngLen, epbLen, epbLen-8)},
		{"pcapng block header cut", ng.b[:ngLen+6], 1, fmt.Sprintf("%d: truncated record header: 8 bytes needed, 6 present", ngLen)},
		{"pcapng block cut after its header", ng.b[:ngLen+10], 1, fmt.Sprintf("%d: truncated record: header says %d bytes, 10 present", ngLen, epbLen)},
		{"pcapng unknown interface", setU32(ng.b, ngLen+8, 1), 1, fmt.Sprintf("%d: enhanced packet block on interface 1, but the section has 1 interfaces", ngLen)},
		{"pcapng captured length beyond the block", setU32(ng.b, ngLen+20, 100), 1,
			fmt.Sprintf("%d: enhanced packet block too short for its captured length 100", ngLen)},
		{"pcapng without interfaces", noIDB.b, 0, fmt.Sprintf("%d: pcapng file has no Interface Description Block", len(noIDB.b))},
		{"pcapng packet before any interface", spbFirst.b, 0, "28: simple packet block, but the section has no interfaces"},
		{"pcapng if_tsresol too fine", badResol.b, 0, "28: interface description block: if_tsresol 10^-20 is too fine"},
		{"pcapng two if_tsresol", twoResol.b, 0, "28: interface description block: more than one if_tsresol"},
		{"gzip stream cut in its trailer", gz[:len(gz)-4], 3,
			fmt.Sprintf("%d: truncated gzip stream (offset in the decompressed data)", len(good))},
		{"gzip stream corrupt", func() []byte { b := bytes.Clone(gz); b[len(b)-5] ^= 1; return b }(), 3,
			fmt.Sprintf("%d: corrupt gzip stream: gzip: invalid checksum (offset in the decompressed data)", len(good))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.pcap", c.file)
			f, recs, err := readFile(t, path)
			if err == nil {
				t.Fatalf("read %d records without error", len(recs))
			}
			if want := path + ": byte offset " + c.want; err.Error() != want {
				t.Errorf("error\n got  %q\n want %q", err, want)
			}
			fe, ok := errorsAsFileError(err)
			if !ok {
				t.Fatalf("error %T is not a *FileError", err)
			}
			if len(recs) != c.nrecs {
				t.Errorf("%d records before the error, want %d", len(recs), c.nrecs)
			}
			if f.RecordOffset() != fe.Offset {
				t.Errorf("RecordOffset %d, error offset %d", f.RecordOffset(), fe.Offset)
			}
			if _, again := f.Next(); again != err {
				t.Errorf("second call: %v", again)
			}
		})
	}

	for _, comp := range []struct {
		name     string
		compress func(testing.TB, []byte) []byte
	}{{"gzip", gzipped}, {"zstd", zstdded}} {
		t.Run(comp.name+" stream cut mid-way", func(t *testing.T) {
			// Many records, cut in the middle: whatever decompresses is returned, intact, then
			// the error names the offset of the first incomplete record. (The zstd decoder
			// holds back the last block or two it decoded: of 2 000 records, two blocks, it
			// gave none.)
			var recs []pcapRec
			for i := range 20000 {
				recs = append(recs, rec(uint32(i), 0, frame(i, 74)))
			}
			z := comp.compress(t, pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, recs...))
			path := writeTemp(t, "cut.pcap."+comp.name, z[:len(z)/2])
			f, got, err := readFile(t, path)
			if len(got) == 0 || len(got) == len(recs) {
				t.Fatalf("%d records before the cut", len(got))
			}
			for i, r := range got {
				if !bytes.Equal(r.Data, recs[i].data) || r.TS != int64(i)*1e9 {
					t.Fatalf("record %d differs", i)
				}
			}
			off := 24 + len(got)*(16+74)
			if want := fmt.Sprintf("%s: byte offset %d: truncated %s stream (offset in the decompressed data)", path, off, comp.name); err == nil || err.Error() != want {
				t.Errorf("error\n got  %v\n want %s", err, want)
			}
			if f.RecordOffset() != int64(off) {
				t.Errorf("RecordOffset %d, want %d", f.RecordOffset(), off)
			}
		})
	}
}

// TestStreams reads through readers that return little at a time or fail, and checks the
// bookkeeping (sizes, offsets, Close).
func TestStreams(t *testing.T) {
	var recs []pcapRec
	var want []Record
	for i := range 10000 { // several buffers' worth, so the buffer is refilled
		n := 40 + i%1400
		recs = append(recs, rec(uint32(i), uint32(i), frame(i, n)))
		want = append(want, Record{frame(i, n), int64(i)*1e9 + int64(i)*1000, uint32(n), packet.LinkEthernet, 0})
	}
	file := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, recs...)
	ng := newSection(binary.BigEndian)
	ng.idb(1, 0)
	for i, r := range recs[:3000] {
		ng.epb(0, uint64(i)*1e6+uint64(i), r.wire, r.data)
	}

	readAllFrom := func(t *testing.T, f *File) []Record {
		var got []Record
		last := int64(-1)
		for {
			r, err := f.Next()
			if err == io.EOF {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.RecordOffset() <= last {
				t.Fatalf("RecordOffset %d after %d", f.RecordOffset(), last)
			}
			last = f.RecordOffset()
			r.Data = bytes.Clone(r.Data)
			got = append(got, r)
		}
	}
	t.Run("one byte at a time", func(t *testing.T) {
		f, err := NewReader(iotest.OneByteReader(bytes.NewReader(ng.b)), "stream")
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAllFrom(t, f), want[:3000])
		if f.Size() != 0 || f.InputBytes() != int64(len(ng.b)) || f.Name() != "stream" {
			t.Errorf("Size %d, InputBytes %d of %d, Name %q", f.Size(), f.InputBytes(), len(ng.b), f.Name())
		}
	})
	t.Run("half reads, large file", func(t *testing.T) {
		f, err := NewReader(iotest.HalfReader(bytes.NewReader(file)), "stream")
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAllFrom(t, f), want)
	})
	t.Run("gzip file progress", func(t *testing.T) {
		z := gzipped(t, file)
		path := writeTemp(t, "big.pcap.gz", z)
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Size() != int64(len(z)) {
			t.Errorf("Size %d, want %d", f.Size(), len(z))
		}
		checkRecords(t, readAllFrom(t, f), want)
		if f.InputBytes() != int64(len(z)) {
			t.Errorf("InputBytes %d at the end, want %d", f.InputBytes(), len(z))
		}
	})
	t.Run("plain file progress", func(t *testing.T) {
		path := writeTemp(t, "big.pcap", file)
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(file)) || f.InputBytes() != 24 {
			t.Errorf("Size %d, InputBytes %d after the header", f.Size(), f.InputBytes())
		}
		f.Next()
		if f.InputBytes() != 24+16+40 {
			t.Errorf("InputBytes %d after one record", f.InputBytes())
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Next(); err == nil || !strings.HasSuffix(err.Error(), "read after Close") {
			t.Errorf("Next after Close: %v", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader(file[:24+16+40+10]), iotest.ErrReader(errors.New("disk on fire")))
		f, err := NewReader(r, "stream")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Next(); err == nil || err.Error() != "stream: byte offset 80: read error: disk on fire" {
			t.Errorf("error %v", err)
		}
	})
}

// TestNextDoesNotAllocate asserts the hot path: no allocation per record.
func TestNextDoesNotAllocate(t *testing.T) {
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 0, ng.tsresol(9))
	var recs []pcapRec
	for i := range 200 {
		recs = append(recs, rec(1, 2, frame(i, 74)))
		ng.epb(0, 1, 74, frame(i, 74))
	}
	for name, b := range map[string][]byte{
		"pcap":   pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 0, 1, recs...),
		"pcapng": ng.b,
	} {
		f, err := NewReader(bytes.NewReader(b), name)
		if err != nil {
			t.Fatal(err)
		}
		if allocs := testing.AllocsPerRun(100, func() {
			if _, err := f.Next(); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("%s: %v allocations per record", name, allocs)
		}
	}
}

func TestLinkTypeString(t *testing.T) {
	for l, want := range map[packet.LinkType]string{
		packet.LinkEthernet:  "LINKTYPE_ETHERNET (1)",
		0:                    "LINKTYPE_NULL (0)",
		147:                  "LINKTYPE_USER0 (147)",
		162:                  "LINKTYPE_USER15 (162)",
		packet.LinkRaw:       "LINKTYPE_RAW (101)",
		packet.LinkLinuxSLL:  "LINKTYPE_LINUX_SLL (113)",
		127:                  "LINKTYPE_IEEE802_11_RADIOTAP (127)",
		packet.LinkIPv4:      "LINKTYPE_IPV4 (228)",
		packet.LinkLinuxSLL2: "LINKTYPE_LINUX_SLL2 (276)",
		packet.LinkRawBSD1:   "DLT_RAW (12)",
		11:                   "LINKTYPE 11",
		4242:                 "LINKTYPE 4242",
		packet.LinkNetwork:   "network layer (internal)",
	} {
		if got := l.String(); got != want {
			t.Errorf("packet.LinkType(%d).String() = %q, want %q", uint32(l), got, want)
		}
	}
}

// FuzzReader feeds arbitrary bytes to the reader: it must never panic or hang, and every
// record must lie within the input.
func FuzzReader(f *testing.F) {
	ng := newSection(binary.BigEndian)
	ng.idb(1, 0, ng.tsresol(0x80|20), ng.tsoffset(5)).epb(0, 1<<40, 80, frame(0, 74)).spb(60, frame(1, 60))
	f.Add(ng.b)
	f.Add(pcapBytes(binary.LittleEndian, pcapKuznetsov, 2, 3, 64, 1, rec(1, 2, frame(0, 74)), pcapRec{3, 4, 90, 20, frame(1, 20)}))
	f.Add(gzipped(f, pcapBytes(binary.BigEndian, pcapNano, 2, 4, 0, 231, rec(1, 2, frame(0, 74)))))
	f.Add(zstdded(f, pcapBytes(binary.BigEndian, pcapNano, 2, 4, 0, 231, rec(1, 2, frame(0, 74)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), "fuzz")
		if err != nil {
			if _, ok := errorsAsFileError(err); !ok {
				t.Fatalf("Open error %T: %v", err, err)
			}
			return
		}
		for n := 0; n < 1<<16; n++ {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if _, ok := errorsAsFileError(err); !ok {
					t.Fatalf("error %T: %v", err, err)
				}
				return
			}
			if r.dec == nil && r.RecordOffset()+int64(len(rec.Data)) > int64(len(b)) {
				t.Fatalf("record at %d of %d bytes beyond the %d-byte input", r.RecordOffset(), len(rec.Data), len(b))
			}
		}
	})
}

// loopReader serves head once and then body over and over: an endless capture, so that a
// benchmark measures Next alone, not reopening files.
type loopReader struct {
	head, body []byte
	off        int
	inBody     bool
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		src := l.head
		if l.inBody {
			src = l.body
		}
		c := copy(p[n:], src[l.off:])
		n += c
		if l.off += c; l.off == len(src) {
			l.off, l.inBody = 0, true
		}
	}
	return n, nil
}

// benchRecords is how many 74-byte records one loop of a benchmark stream holds.
const benchRecords = 1000

func benchNext(b *testing.B, r io.Reader) {
	f, err := NewReader(r, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(74)
	for b.Loop() {
		if _, err := f.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPcapNext: ns and allocations per 74-byte record of a pcap file.
func BenchmarkPcapNext(b *testing.B) {
	var recs []pcapRec
	for i := range benchRecords {
		recs = append(recs, rec(uint32(i), 0, frame(i, 74)))
	}
	file := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, recs...)
	benchNext(b, &loopReader{head: file[:pcapFileHeaderLen], body: file[pcapFileHeaderLen:]})
}

// BenchmarkPcapngNext: the same records as Enhanced Packet Blocks (no options).
func BenchmarkPcapngNext(b *testing.B) {
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 65535, ng.tsresol(9))
	head := len(ng.b)
	for i := range benchRecords {
		var body []byte
		body = binary.LittleEndian.AppendUint32(body, 0)
		body = binary.LittleEndian.AppendUint32(body, uint32(i>>32))
		body = binary.LittleEndian.AppendUint32(body, uint32(i))
		body = binary.LittleEndian.AppendUint32(body, 74)
		body = binary.LittleEndian.AppendUint32(body, 74)
		ng.block(blockEPB, append(body, frame(i, 74)...))
	}
	benchNext(b, &loopReader{head: ng.b[:head], body: ng.b[head:]})
}

// BenchmarkGzipPcapNext: the pcap records, gzip-compressed (a gzip member per loop).
func BenchmarkGzipPcapNext(b *testing.B) {
	var recs []pcapRec
	for i := range benchRecords {
		recs = append(recs, rec(uint32(i), 0, frame(i, 74)))
	}
	file := pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, recs...)
	benchNext(b, &loopReader{head: gzipped(b, file), body: gzipped(b, file[pcapFileHeaderLen:])})
}

// TestPcapngTimesWithinRange checks that pcapng times a damaged file can hold (any 64-bit
// value, any offset) come out within [0, packet.MaxTS], where converting them wrapped to
// any int64: the detectors' due times past the int64 range wrapped to the distant past,
// and an episode's end was retried forever (detect.FuzzEngine).
func TestPcapngTimesWithinRange(t *testing.T) {
	const most = packet.MaxTS / 1_000_000_000 // whole seconds within range
	d := frame(0, 74)
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 0, ng.tsresol(3))                                    // 0: ms
	ng.idb(1, 0, ng.tsresol(0x80|10))                              // 1: 2^-10 s
	ng.idb(1, 0, ng.tsresol(12))                                   // 2: ps
	ng.idb(1, 0, ng.tsresol(9), ng.tsoffset(-100))                 // 3: ns, 100 s back
	ng.idb(1, 0, ng.tsresol(9), ng.tsoffset(math.MaxInt64))        // 4: ns, an offset past the range
	ng.idb(1, 0, ng.tsresol(9), ng.tsoffset(math.MinInt64))        // 5: ns, one before it
	ng.idb(1, 0, ng.tsresol(6), ng.tsoffset(-(1700000000 - most))) // 6: µs, 1700000000 s is most s
	recs := []struct {
		iface uint32
		ts    uint64
		want  int64
	}{
		{0, 1 << 63, packet.MaxTS},                                // 2^63 ms: wrapped to 0 ns
		{0, 1700000000123, 1700000000123000000},                   // in range: exact
		{1, (most + 1) << 10, packet.MaxTS},                       // a second past the range
		{1, (most-1)<<10 | 1<<9, (most-1)*1e9 + 5e8},              // in range: exact
		{2, math.MaxUint64, int64(uint64(math.MaxUint64) / 1000)}, // ps: 1.8e7 s
		{3, 5, 0}, // before 1970
		{3, 1700000000000000000, 1699999900000000000}, // in range: exact
		{4, 1, most*1e9 + 1},                          // the offset is cut to the range
		{5, 1 << 40, 0},                               // before 1970
		{6, 1700000000500000, packet.MaxTS},           // most s + 0.5 s: past MaxTS
		{6, 1699999999000000, (most - 1) * 1e9},       // in range: exact
	}
	for _, r := range recs {
		ng.epb(r.iface, r.ts, 60, d)
	}
	_, got, err := readFile(t, writeTemp(t, "times.pcapng", ng.b))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		if r.TS != recs[i].want {
			t.Errorf("record %d: time %d ns, want %d", i, r.TS, recs[i].want)
		}
	}
}

// TestCutRecordsWarning: records cut under shortSnaplen bytes by a capture whose header
// says more (editcap -s, or a pcapng interface's length left as it was) give one warning
// at the first; records cut above it, or whole, give none.
func TestCutRecordsWarning(t *testing.T) {
	cut := func(i, caplen, wire int) pcapRec {
		return pcapRec{uint32(i), 0, uint32(caplen), uint32(wire), frame(i, caplen)}
	}
	ng := newSection(binary.LittleEndian)
	ng.idb(1, 0)
	ng.epb(0, 1e6, 300, frame(1, 300)).epb(0, 2e6, 300, frame(2, 96)).epb(0, 3e6, 300, frame(3, 96))
	ngFirstCut := len(newSection(binary.LittleEndian).idb(1, 0).epb(0, 1e6, 300, frame(1, 300)).b) // the second EPB's offset
	for _, tc := range []struct {
		name string
		file []byte
		want string // "" none
	}{
		{"pcap cut to 96", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, cut(1, 300, 300), cut(2, 96, 300), cut(3, 96, 300)),
			fmt.Sprintf("byte offset %d: records cut to 96 of their 300 bytes (the first here)", 24+16+300)},
		{"pcap cut to 300", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, cut(1, 300, 1500), cut(2, 300, 1500)), ""},
		{"pcap whole", pcapBytes(binary.LittleEndian, pcapMicro, 2, 4, 65535, 1, cut(1, 60, 60), cut(2, 96, 96)), ""},
		{"pcapng cut to 96", ng.b, fmt.Sprintf("byte offset %d: records cut to 96 of their 300 bytes (the first here)", ngFirstCut)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, err := readFile(t, writeTemp(t, "cut.pcap", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			w := f.Warnings()
			switch {
			case tc.want == "" && len(w) != 0:
				t.Errorf("warnings %q, want none", w)
			case tc.want != "" && (len(w) != 1 || !strings.Contains(w[0], tc.want)):
				t.Errorf("warnings %q, want one with %q", w, tc.want)
			}
		})
	}
}
