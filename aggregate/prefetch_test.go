package aggregate

import (
	"bytes"
	"encoding/gob"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// The first stage's prefetches (Table.Prefetch, HLL.Prefetch, TopK.Prefetch) change nothing:
// the structures encode to the same bytes before and after, for present and absent keys.
func TestPrefetchesChangeNothing(t *testing.T) {
	tab := NewTable[packet.Addr, uint64](64, addrHash)
	hll := NewHLL(10)
	top := NewTopK(16)
	for i := range 100 {
		a := packet.AddrFrom4([]byte{10, 0, byte(i / 7), byte(i)})
		v, _ := tab.Touch(a)
		*v = uint64(i)
		hll.AddHash(a.Hash(1))
		top.Add(a, uint64(i%5+1))
	}
	enc := func() []byte {
		var buf bytes.Buffer
		g := gob.NewEncoder(&buf)
		for _, v := range []any{tab, hll, top} {
			if err := g.Encode(v); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	before := enc()
	for i := range 300 {
		a := packet.AddrFrom4([]byte{10, 0, byte(i / 7), byte(i)})
		tab.Prefetch(addrHash(&a))
		hll.Prefetch(a.Hash(1))
		top.Prefetch(&a)
	}
	if !bytes.Equal(before, enc()) {
		t.Fatal("a prefetch changed a table, a sketch or a summary")
	}
}
