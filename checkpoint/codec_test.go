package checkpoint

import (
	"bytes"
	"testing"
)

// encodeMixed writes values of every kind that straddle chunk boundaries: single bytes
// and words between slices larger than the largest chunk.
func encodeMixed(e *Encoder, big []uint32, rounds int) {
	for r := range rounds {
		e.Bool(r%2 == 0)
		e.U64(uint64(r) * 0x0101010101)
		Slice(e, big[:len(big)-r])
		Raw(e, &rec{A: int64(-r), B: [3]uint16{uint16(r), 2, 3}, C: true})
	}
}

func TestEncoderChunks(t *testing.T) {
	big := make([]uint32, encMaxChunk/4+12345) // more than one chunk each
	for i := range big {
		big[i] = uint32(i) * 2654435761
	}
	const rounds = 5
	var e Encoder
	for pass := range 3 {
		e.Reset()
		encodeMixed(&e, big, rounds)
		chunks := e.Chunks()
		if len(chunks) < rounds {
			t.Fatalf("pass %d: %d chunks for %d bytes", pass, len(chunks), e.Size())
		}
		joined := bytes.Join(chunks, nil)
		if len(joined) != e.Size() || !bytes.Equal(joined, e.Bytes()) {
			t.Fatalf("pass %d: chunks %d bytes, Size %d, Bytes %d", pass, len(joined), e.Size(), len(e.Bytes()))
		}
		d := NewDecoder(joined)
		for r := range rounds {
			if b, v := d.Bool(), d.U64(); b != (r%2 == 0) || v != uint64(r)*0x0101010101 {
				t.Fatalf("pass %d round %d: %v %x", pass, r, b, v)
			}
			got := ReadSlice[uint32](d, len(big))
			if len(got) != len(big)-r || got[len(got)-1] != big[len(got)-1] || got[0] != big[0] {
				t.Fatalf("pass %d round %d: slice of %d", pass, r, len(got))
			}
			var x rec
			RawInto(d, &x)
			if x.A != int64(-r) || x.B[0] != uint16(r) || !x.C {
				t.Fatalf("pass %d round %d: %+v", pass, r, x)
			}
		}
		if err := d.Done(); err != nil {
			t.Fatal(err)
		}
	}
	// Once grown, the same state encodes again into the chunks kept by Reset.
	if a := testing.AllocsPerRun(3, func() { e.Reset(); encodeMixed(&e, big, rounds); e.Chunks() }); a != 0 {
		t.Fatalf("%v allocations to encode again after Reset", a)
	}
	// A written byte never moves: a chunk is full before the next one starts.
	for i, c := range e.Chunks()[:len(e.Chunks())-1] {
		if len(c) != cap(c) {
			t.Fatalf("chunk %d: %d of %d bytes", i, len(c), cap(c))
		}
	}
}
