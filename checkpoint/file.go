// Package checkpoint is the file format of the detector-state checkpoints: a magic, a
// format version, a header (the layout fingerprint of the encoded types, the config the
// state was counted under, when it was written) and named sections, each with its length
// and a CRC-32C checksum, closed by an end marker. Files are written atomically (temporary
// file, fsync, rename, fsync of the directory), so a reader sees the previous checkpoint or
// the new one, never a mix.
//
// Layout (integers little-endian):
//
//	magic    "TLSCSTAT" (8 bytes)
//	version  uint32
//	header   uint32 length, bytes, uint32 CRC-32C of the bytes
//	section* uint8 name length, name, uint64 payload length, payload, uint32 CRC-32C of name and payload
//	end      uint8 0 (a section with an empty name), then end of file
//
// Open checks the whole file (magic, version, every checksum, the end marker) before any
// of it is decoded, so a damaged file is refused with one line saying how it is damaged.
package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Magic starts every checkpoint file.
const Magic = "TLSCSTAT"

// Version is the format version this binary writes and reads. It changes when the framing
// or the meaning of a section changes; a change of the encoded structs' layout is caught by
// the layout fingerprint in the header without a version change. 1: the first format;
// 2: the hotspot detector's state (a "hotspot" section, and its table in each worker's);
// 3: the surge's peak probes and each top-k summary's dropped keys (with, for the evicted
// sources, those evicted after one packet); 4: the hotspot's sets in a slab of their own
// (saved with each worker's hotspot state); 5: the hotspot's spilled cells (free slots,
// tags in the memos, the filter of spilled destinations); 6: slabs with a size class of
// 8 192 words (the last exact table of a Distinct, at most half full), and each engine's
// hotspot sets of its open window's sources (hotWinSets) with their slab; 7: the worker of
// each heavy summary of a pending hotspot window (kept by worker, compacted), the window's
// dark addresses' cells summed by address, and each engine's light dark addresses handed
// over in its open window; 8: the ports each engine's busy dark addresses remember in its
// open window (a window in parts counts their one-packet parts); 9: a wide dark space's
// packets per address in each engine's open window and in each pending window (the
// receiver distribution's exact counts past the hotspot's dense index). A reader ignores
// the sections it does not know, so a section that only adds to what a file says keeps the
// version: version 9's "inputs" (the files the state counted, pipeline) came later than
// the version, and a file without it restores as before.
const Version uint32 = 9

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Kind says why a checkpoint cannot be used.
type Kind int

// Kinds of unusable checkpoint.
const (
	Missing   Kind = iota // no file: start fresh (not an error worth a warning)
	Foreign               // not a checkpoint (bad magic)
	Truncated             // ends before its end marker
	Corrupt               // a checksum or a length does not match, or the state is inconsistent
	Future                // written by a newer format version
	Old                   // written by an older format version
	Layout                // written by a binary whose state structs differ
	Config                // counted under an incompatible config (workers, table sizes, prefixes)
	IO                    // could not be read
)

var kindNames = [...]string{"missing", "foreign", "truncated", "corrupt", "future version", "old version", "layout", "config", "unreadable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an unusable checkpoint: Kind says why, the message says it in one line.
type Error struct {
	Kind Kind
	Path string
	Msg  string
}

func (e *Error) Error() string { return "state file " + e.Path + ": " + e.Msg }

// Errorf returns an *Error of kind k.
func Errorf(k Kind, path, format string, args ...any) *Error {
	return &Error{Kind: k, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, Corrupt for errors that are not *Error.
func KindOf(err error) Kind {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return Corrupt
}

// Header is what a checkpoint says about itself.
type Header struct {
	Version uint32
	// Layout fingerprints the encoded types (sizes, field names, offsets, kinds): see
	// LayoutOf. A binary whose fingerprint differs refuses the file.
	Layout [32]byte
	// Config describes the settings the state's shape depends on (worker count, table
	// capacities, dark prefixes); a running config must describe itself identically.
	Config string
	// Written is the wall-clock time of the checkpoint, Clock the latest packet time of
	// the state (Unix ns).
	Written, Clock int64
}

func (h *Header) marshal() []byte {
	b := make([]byte, 0, 64+len(h.Config))
	b = append(b, h.Layout[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Written))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Clock))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.Config)))
	return append(b, h.Config...)
}

func (h *Header) unmarshal(b []byte) error {
	if len(b) < 32+8+8+4 {
		return errors.New("short header")
	}
	copy(h.Layout[:], b)
	h.Written = int64(binary.LittleEndian.Uint64(b[32:]))
	h.Clock = int64(binary.LittleEndian.Uint64(b[40:]))
	n := binary.LittleEndian.Uint32(b[48:])
	if uint64(n) != uint64(len(b)-52) {
		return errors.New("header length mismatch")
	}
	h.Config = string(b[52:])
	return nil
}

// maxHeader bounds the header a reader accepts.
const maxHeader = 1 << 20

// Writer writes one checkpoint to a temporary file next to its destination; Commit moves
// it into place.
type Writer struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	crc  hash.Hash32
	err  error
	n    int64
}

// Create starts a checkpoint for path with header h (h.Version is set to Version).
func Create(path string, h Header) (*Writer, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create checkpoint: %w", err)
	}
	w := &Writer{path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20), crc: crc32.New(castagnoli)}
	h.Version = Version
	hb := h.marshal()
	w.write([]byte(Magic))
	w.u32(Version)
	w.u32(uint32(len(hb)))
	w.write(hb)
	w.u32(crc32.Checksum(hb, castagnoli))
	return w, w.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(b)
	w.n += int64(n)
	w.err = err
}

func (w *Writer) u32(v uint32) { w.write(binary.LittleEndian.AppendUint32(nil, v)) }

// Section writes a named section whose payload is the concatenation of parts.
func (w *Writer) Section(name string, parts ...[]byte) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("checkpoint section name %q: 1 to 255 bytes", name)
	}
	var n uint64
	for _, p := range parts {
		n += uint64(len(p))
	}
	w.crc.Reset()
	w.crc.Write([]byte(name))
	w.write([]byte{byte(len(name))})
	w.write([]byte(name))
	w.write(binary.LittleEndian.AppendUint64(nil, n))
	for _, p := range parts {
		w.crc.Write(p)
		w.write(p)
	}
	w.u32(w.crc.Sum32())
	return w.err
}

// Commit ends the file, syncs it and renames it over the destination (then syncs the
// directory). It returns the bytes written. After an error the destination is unchanged.
func (w *Writer) Commit() (int64, error) {
	w.write([]byte{0})
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	if w.err == nil {
		w.err = os.Rename(w.f.Name(), w.path)
	}
	if w.err != nil {
		_ = os.Remove(w.f.Name())
		return 0, fmt.Errorf("write checkpoint %s: %w", w.path, w.err)
	}
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return w.n, nil
}

// Abort removes the temporary file.
func (w *Writer) Abort() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// File is a checked checkpoint, open for reading its sections.
type File struct {
	Header Header
	Size   int64
	path   string
	f      *os.File
	secs   map[string]section
}

type section struct{ off, n int64 }

// Open opens and checks a checkpoint: magic, version, header and section checksums, end
// marker. Every failure is an *Error whose Kind says what is wrong (Missing when there is
// no file).
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Errorf(Missing, path, "does not exist")
	}
	if err != nil {
		return nil, Errorf(IO, path, "%v", err)
	}
	cf := &File{path: path, f: f, secs: map[string]section{}}
	if err := cf.check(); err != nil {
		f.Close()
		return nil, err
	}
	return cf, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (f *File) check() error {
	c := &counter{r: f.f}
	r := bufio.NewReaderSize(c, 1<<20)
	off := func() int64 { return c.n - int64(r.Buffered()) }
	trunc := func(what string) error {
		return Errorf(Truncated, f.path, "truncated: ends inside %s at byte %d", what, off())
	}
	var fixed [16]byte
	n, err := io.ReadFull(r, fixed[:])
	switch {
	case n == 0:
		return Errorf(Truncated, f.path, "truncated: empty file")
	case n < len(Magic) && string(fixed[:n]) == Magic[:n]:
		return trunc("the magic")
	case n < len(Magic) || string(fixed[:len(Magic)]) != Magic:
		return Errorf(Foreign, f.path, "not a telescope state checkpoint (no %q magic)", Magic)
	}
	if err != nil {
		return trunc("the version")
	}
	v := binary.LittleEndian.Uint32(fixed[8:])
	switch {
	case v > Version:
		return Errorf(Future, f.path, "written by a newer state format version %d (this binary reads version %d)", v, Version)
	case v < Version:
		return Errorf(Old, f.path, "written by an older state format version %d (this binary reads version %d)", v, Version)
	}
	f.Header.Version = v
	hl := binary.LittleEndian.Uint32(fixed[12:])
	if hl > maxHeader {
		return Errorf(Corrupt, f.path, "corrupt: header of %d bytes", hl)
	}
	hb := make([]byte, hl+4)
	if _, err := io.ReadFull(r, hb); err != nil {
		return trunc("the header")
	}
	if crc32.Checksum(hb[:hl], castagnoli) != binary.LittleEndian.Uint32(hb[hl:]) {
		return Errorf(Corrupt, f.path, "corrupt: header checksum mismatch")
	}
	if err := f.Header.unmarshal(hb[:hl]); err != nil {
		return Errorf(Corrupt, f.path, "corrupt: %v", err)
	}
	crc := crc32.New(castagnoli)
	buf := make([]byte, 1<<16)
	for {
		nl, err := r.ReadByte()
		if err != nil {
			return trunc("the section list (no end marker)")
		}
		if nl == 0 {
			break
		}
		hdr := make([]byte, int(nl)+8)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return trunc("a section header")
		}
		name := string(hdr[:nl])
		plen := binary.LittleEndian.Uint64(hdr[nl:])
		start := off()
		if st, err := f.f.Stat(); err == nil && plen > uint64(st.Size()) {
			return Errorf(Truncated, f.path, "truncated: section %q of %d bytes in a file of %d", name, plen, st.Size())
		}
		crc.Reset()
		crc.Write(hdr[:nl])
		for rest := plen; rest > 0; {
			k := min(rest, uint64(len(buf)))
			if _, err := io.ReadFull(r, buf[:k]); err != nil {
				return trunc(fmt.Sprintf("section %q", name))
			}
			crc.Write(buf[:k])
			rest -= k
		}
		var sum [4]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return trunc(fmt.Sprintf("the checksum of section %q", name))
		}
		if crc.Sum32() != binary.LittleEndian.Uint32(sum[:]) {
			return Errorf(Corrupt, f.path, "corrupt: checksum mismatch in section %q", name)
		}
		if _, dup := f.secs[name]; dup {
			return Errorf(Corrupt, f.path, "corrupt: section %q appears twice", name)
		}
		f.secs[name] = section{off: start, n: int64(plen)}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return Errorf(Corrupt, f.path, "corrupt: data after the end marker at byte %d", off())
	}
	f.Size = c.n
	return nil
}

// Has reports whether the file holds a section.
func (f *File) Has(name string) bool { _, ok := f.secs[name]; return ok }

// Section returns a decoder over a section's payload.
func (f *File) Section(name string) (*Decoder, error) {
	s, ok := f.secs[name]
	if !ok {
		return nil, Errorf(Corrupt, f.path, "corrupt: section %q missing", name)
	}
	return &Decoder{r: bufio.NewReaderSize(io.NewSectionReader(f.f, s.off, s.n), 1<<20), rest: s.n, name: name, path: f.path}, nil
}

// NewDecoder returns a decoder over a section's payload held in memory (an Encoder's
// Bytes): a state's round trip without a file.
func NewDecoder(b []byte) *Decoder {
	return &Decoder{r: bufio.NewReader(bytes.NewReader(b)), rest: int64(len(b)), name: "memory", path: "memory"}
}
