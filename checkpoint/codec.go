package checkpoint

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"unsafe"
)

// Encoder appends values to chunks of memory that it keeps between uses (Reset), so a
// periodic checkpoint does not allocate once they have grown. The bytes are never moved
// once written: a state of hundreds of MB is copied once, not again each time a single
// buffer would outgrow its capacity (which, at the runtime's quarter growth for large
// slices, copied it about five times over and held a worker that long). Plain values
// (structs of numbers and arrays, no pointers) are copied as their memory: that is why the
// file carries the layout fingerprint of every type encoded this way.
type Encoder struct {
	buf    []byte   // the chunk being filled
	full   [][]byte // the chunks filled before buf, in order
	spare  [][]byte // chunks emptied by Reset, to be filled again
	chunks [][]byte // scratch of Chunks
}

// Chunk sizes: the first chunk is small (most encoders hold a few values), each new one
// twice the last, up to encMaxChunk.
const (
	encMinChunk = 4 << 10
	encMaxChunk = 4 << 20
)

// Reset empties the encoder, keeping its chunks.
func (e *Encoder) Reset() {
	if cap(e.buf) > 0 {
		e.spare = append(e.spare, e.buf[:0])
	}
	for _, c := range e.full {
		e.spare = append(e.spare, c[:0])
	}
	e.buf, e.full = nil, e.full[:0]
}

// Size returns the bytes encoded.
func (e *Encoder) Size() int {
	n := len(e.buf)
	for _, c := range e.full {
		n += len(c)
	}
	return n
}

// Chunks returns the encoded bytes in order, as pieces (valid until the next Reset or
// write), e.g. for Writer.Section.
func (e *Encoder) Chunks() [][]byte {
	e.chunks = append(append(e.chunks[:0], e.full...), e.buf)
	return e.chunks
}

// Bytes returns the encoded bytes in one slice (valid until the next Reset or write;
// a copy when they span several chunks).
func (e *Encoder) Bytes() []byte {
	if len(e.full) == 0 {
		return e.buf
	}
	b := make([]byte, 0, e.Size())
	for _, c := range e.Chunks() {
		b = append(b, c...)
	}
	return b
}

// next makes room for at least one more byte: a spare chunk or a new one.
func (e *Encoder) next() {
	if cap(e.buf) > 0 {
		e.full = append(e.full, e.buf)
	}
	if n := len(e.spare); n > 0 {
		e.buf, e.spare = e.spare[n-1], e.spare[:n-1]
		return
	}
	e.buf = make([]byte, 0, min(max(2*cap(e.buf), encMinChunk), encMaxChunk))
}

// write appends p, filling the chunk and continuing in the next.
func (e *Encoder) write(p []byte) {
	for len(p) > 0 {
		if len(e.buf) == cap(e.buf) {
			e.next()
		}
		n := copy(e.buf[len(e.buf):cap(e.buf)], p)
		e.buf = e.buf[:len(e.buf)+n]
		p = p[n:]
	}
}

// U64 appends v.
func (e *Encoder) U64(v uint64) {
	if cap(e.buf)-len(e.buf) < 8 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		e.write(b[:])
		return
	}
	e.buf = binary.LittleEndian.AppendUint64(e.buf, v)
}

// I64 appends v.
func (e *Encoder) I64(v int64) { e.U64(uint64(v)) }

// Bool appends v.
func (e *Encoder) Bool(v bool) {
	b := byte(0)
	if v {
		b = 1
	}
	if len(e.buf) == cap(e.buf) {
		e.next()
	}
	e.buf = append(e.buf, b)
}

// F64 appends v.
func (e *Encoder) F64(v float64) { e.U64(math.Float64bits(v)) }

// Len appends a length.
func (e *Encoder) Len(n int) { e.U64(uint64(n)) }

// Raw appends the memory of a pointer-free value.
func Raw[T any](e *Encoder, v *T) {
	e.write(unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v)))
}

// Slice appends the length and the memory of a slice of pointer-free values.
func Slice[T any](e *Encoder, s []T) {
	e.Len(len(s))
	Elems(e, s)
}

// Elems appends the memory of a slice of pointer-free values (no length).
func Elems[T any](e *Encoder, s []T) {
	if len(s) == 0 {
		return
	}
	var zero T
	e.write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero))))
}

// Decoder reads one section. Errors are sticky: after the first, reads return zero values
// and Err reports it. Lengths are checked against the bytes left in the section, so a
// corrupt length cannot make a reader allocate more than the file holds.
type Decoder struct {
	r    *bufio.Reader
	rest int64
	name string
	path string
	err  error
}

// Err returns the first error.
func (d *Decoder) Err() error { return d.err }

// Fail records an error about the section's content (kind Corrupt).
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = Errorf(Corrupt, d.path, "corrupt: section %q: %s", d.name, fmt.Sprintf(format, args...))
	}
}

// Done checks that the whole section was read.
func (d *Decoder) Done() error {
	if d.err == nil && d.rest != 0 {
		d.Fail("%d bytes left unread", d.rest)
	}
	return d.err
}

func (d *Decoder) read(b []byte) {
	if d.err != nil {
		clear(b)
		return
	}
	if int64(len(b)) > d.rest {
		d.Fail("needs %d more bytes, %d left", len(b), d.rest)
		clear(b)
		return
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.err = Errorf(IO, d.path, "read section %q: %v", d.name, err)
		clear(b)
		return
	}
	d.rest -= int64(len(b))
}

// U64 reads a uint64.
func (d *Decoder) U64() uint64 {
	var b [8]byte
	d.read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// I64 reads an int64.
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// Bool reads a bool.
func (d *Decoder) Bool() bool {
	var b [1]byte
	d.read(b[:])
	if b[0] > 1 {
		d.Fail("boolean %d", b[0])
	}
	return b[0] == 1
}

// F64 reads a float64.
func (d *Decoder) F64() float64 { return math.Float64frombits(d.U64()) }

// Len reads a length of elements of elem bytes each, at most max, and fitting in the rest
// of the section.
func (d *Decoder) Len(elem, max int) int {
	n := d.U64()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) || elem > 0 && n*uint64(elem) > uint64(d.rest) {
		d.Fail("length %d out of range (at most %d, %d bytes left)", n, max, d.rest)
		return 0
	}
	return int(n)
}

// RawInto reads the memory of a pointer-free value.
func RawInto[T any](d *Decoder, v *T) {
	d.read(unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v)))
}

// SliceInto reads a slice written by Slice into dst, which must have the written length.
func SliceInto[T any](d *Decoder, dst []T) {
	var zero T
	n := d.Len(int(unsafe.Sizeof(zero)), len(dst))
	if d.err == nil && n != len(dst) {
		d.Fail("%d elements, want %d", n, len(dst))
	}
	ElemsInto(d, dst)
}

// ElemsInto reads the memory of len(dst) pointer-free values (no length prefix).
func ElemsInto[T any](d *Decoder, dst []T) {
	if len(dst) == 0 {
		return
	}
	var zero T
	d.read(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)*int(unsafe.Sizeof(zero))))
}

// ReadSlice reads a slice written by Slice, at most max elements, into a new slice.
func ReadSlice[T any](d *Decoder, max int) []T {
	var zero T
	n := d.Len(int(unsafe.Sizeof(zero)), max)
	if n == 0 {
		return nil
	}
	s := make([]T, n)
	ElemsInto(d, s)
	return s
}

// LayoutOf fingerprints the memory layout of types: for each, its name, size and
// alignment, and recursively every field's name, offset and type, array lengths and
// element types, plus the byte order and word size of the machine. Two binaries whose
// encoded structs differ in any way that changes their memory get different
// fingerprints. Types holding pointers are refused (they cannot be copied as memory).
func LayoutOf(types ...reflect.Type) ([32]byte, error) {
	var b strings.Builder
	var one uint16 = 1
	fmt.Fprintf(&b, "le=%v word=%d\n", *(*byte)(unsafe.Pointer(&one)) == 1, unsafe.Sizeof(uintptr(0)))
	for _, t := range types {
		if err := describe(&b, t, 0); err != nil {
			return [32]byte{}, err
		}
	}
	return sha256.Sum256([]byte(b.String())), nil
}

// Describe returns the text LayoutOf hashes (for messages and tests).
func Describe(t reflect.Type) string {
	var b strings.Builder
	if err := describe(&b, t, 0); err != nil {
		return err.Error()
	}
	return b.String()
}

func describe(b *strings.Builder, t reflect.Type, depth int) error {
	fmt.Fprintf(b, "%s size=%d align=%d kind=%s", t.String(), t.Size(), t.Align(), t.Kind())
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		b.WriteByte('\n')
		return nil
	case reflect.Array:
		fmt.Fprintf(b, " len=%d of ", t.Len())
		return describe(b, t.Elem(), depth+1)
	case reflect.Struct:
		fmt.Fprintf(b, " fields=%d\n", t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			fmt.Fprintf(b, "%s.%s@%d: ", strings.Repeat(" ", depth+1), f.Name, f.Offset)
			if err := describe(b, f.Type, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("checkpoint layout: %s holds pointers (%s) and cannot be copied as memory", t, t.Kind())
}
