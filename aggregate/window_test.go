package aggregate

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestAddrLessMatchesBytesCompare checks addrLess against bytes.Compare on address pairs
// that differ in each byte, share every prefix length, or are equal.
func TestAddrLessMatchesBytesCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100_000 {
		var a, b packet.Addr
		for i := range a {
			a[i] = byte(rng.IntN(3)) // few values: long shared prefixes and equal pairs
		}
		b = a
		if k := rng.IntN(17); k < 16 {
			b[k] = byte(rng.IntN(256))
		}
		if got, want := addrLess(&a, &b), bytes.Compare(a[:], b[:]) < 0; got != want {
			t.Fatalf("addrLess(%x, %x) = %v, want %v", a, b, got, want)
		}
	}
}
