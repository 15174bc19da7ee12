package aggregate

import (
	"bytes"
	"encoding/gob"
	"math/rand/v2"
	"slices"
	"testing"
)

// lruOrder lists the keys from the head (most recent) to the tail.
func lruOrder(tb *Table[uint32, uint32]) (keys []uint32) {
	tb.Range(func(k *uint32, _ *uint32) bool {
		keys = append(keys, *k)
		return true
	})
	return keys
}

// With a slack, an entry within that many moves of the head keeps its place when touched;
// one farther back moves to the front as under exact LRU.
func TestTableSlackKeepsRecentPlace(t *testing.T) {
	tb := NewTable[uint32, uint32](8, tableHashes[0].fn)
	tb.SetSlack(3)
	for k := uint32(1); k <= 8; k++ {
		tb.Touch(k)
	}
	if got, want := lruOrder(tb), []uint32{8, 7, 6, 5, 4, 3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("after inserts %v, want %v", got, want)
	}
	tb.Touch(6) // two moves behind the head: stays
	if got, want := lruOrder(tb), []uint32{8, 7, 6, 5, 4, 3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("touching a recent entry reordered: %v, want %v", got, want)
	}
	tb.Touch(5) // three moves behind: moves
	if got, want := lruOrder(tb), []uint32{5, 8, 7, 6, 4, 3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("touching an older entry: %v, want %v", got, want)
	}
	tb.Touch(1) // the tail always moves
	tb.Touch(9) // evicts the tail, 2
	if got, want := lruOrder(tb), []uint32{9, 1, 5, 8, 7, 6, 4, 3}; !slices.Equal(got, want) {
		t.Fatalf("after touching the tail and inserting: %v, want %v", got, want)
	}
}

// Random touches on a small key space over a full table: every evicted key went untouched
// for at least capacity-slack touches (moves are at most touches), and the table holds
// exactly the keys a model holds.
func TestTableSlackEvictsOnlyIdle(t *testing.T) {
	const capacity, slack = 64, 16
	rng := rand.New(rand.NewPCG(7, 8))
	tb := NewTable[uint32, uint32](capacity, tableHashes[0].fn)
	tb.SetSlack(slack)
	last := map[uint32]int{} // key -> touch number of its last touch, while present
	now := 0
	tb.SetEvict(func(k *uint32, _ *uint32) {
		idle, ok := last[*k]
		if !ok {
			t.Fatalf("evicted key %d is not present", *k)
		}
		if now-idle < capacity-slack {
			t.Fatalf("key %d evicted %d touches after its last (at least %d)", *k, now-idle, capacity-slack)
		}
		delete(last, *k)
	})
	for now = 1; now <= 20000; now++ {
		var k uint32
		if rng.IntN(2) == 0 {
			k = uint32(rng.IntN(48)) // a hot set that fits: touched again and again
		} else {
			k = 1000 + uint32(rng.IntN(400)) // a cold set that does not
		}
		_, created := tb.Touch(k)
		if _, ok := last[k]; ok == created {
			t.Fatalf("touch %d of key %d: created=%v, model present=%v", now, k, created, ok)
		}
		last[k] = now
		if tb.Len() != len(last) {
			t.Fatalf("table holds %d keys, model %d", tb.Len(), len(last))
		}
	}
	if n := tb.Evictions(); n < 1000 {
		t.Fatalf("only %d evictions: the test did not fill the table", n)
	}
}

// A restored table's entries all move at their first touch: a saved stamp belongs to the
// old table's clock (gob drops them; a checkpoint's are reset by Restore).
func TestTableSlackRestore(t *testing.T) {
	tb := NewTable[uint32, uint32](8, tableHashes[0].fn)
	tb.SetSlack(4)
	for k := uint32(1); k <= 8; k++ {
		tb.Touch(k)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(tb); err != nil {
		t.Fatal(err)
	}
	var got Table[uint32, uint32]
	if err := gob.NewDecoder(&buf).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if err := got.Restore(tableHashes[0].fn); err != nil {
		t.Fatal(err)
	}
	got.SetSlack(4)
	got.Touch(7) // one move behind the head before the save: moves now
	if o, want := lruOrder(&got), []uint32{7, 8, 6, 5, 4, 3, 2, 1}; !slices.Equal(o, want) {
		t.Fatalf("after restore and a touch: %v, want %v", o, want)
	}
	got.Touch(8) // moves too: its first touch since the restore
	got.Touch(7) // one move behind the head now: keeps its place
	if o, want := lruOrder(&got), []uint32{8, 7, 6, 5, 4, 3, 2, 1}; !slices.Equal(o, want) {
		t.Fatalf("after more touches: %v, want %v", o, want)
	}
}
