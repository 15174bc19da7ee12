package aggregate

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestTableAheadChangesNothing runs the same random touches (hits and inserts past the
// capacity), deletes and restores on two tables, one of them walking ahead (Ahead) zero to
// three times between operations: the evictions, in order, and the LRU order after every
// operation (every 16th) are the same. Deletes and touches of entries near the tail make the walk go
// stale, which must only cost it its hints.
func TestTableAheadChangesNothing(t *testing.T) {
	for _, slack := range []int{0, 40} {
		hash := func(k *uint64) uint64 { return packet.Mix64(*k) }
		a := NewTable[uint64, [5]uint64](300, hash)
		b := NewTable[uint64, [5]uint64](300, hash)
		a.SetSlack(slack)
		b.SetSlack(slack)
		var evA, evB []uint64
		a.SetEvict(func(k *uint64, v *[5]uint64) { evA = append(evA, *k, v[0]) })
		b.SetEvict(func(k *uint64, v *[5]uint64) { evB = append(evB, *k, v[0]) })
		rng := rand.New(rand.NewPCG(3, uint64(slack)))
		for op := range 60_000 {
			for range rng.IntN(4) {
				b.Ahead()
			}
			k := uint64(rng.IntN(1200))
			switch r := rng.IntN(100); {
			case r < 3:
				if a.Delete(k) != b.Delete(k) {
					t.Fatalf("slack %d, op %d: Delete(%d) differs", slack, op, k)
				}
			case r < 4 && op%1000 == 0:
				if err := b.Restore(hash); err != nil {
					t.Fatal(err)
				}
				if err := a.Restore(hash); err != nil {
					t.Fatal(err)
				}
			default:
				va, _ := a.Touch(k)
				vb, _ := b.Touch(k)
				va[0]++
				vb[0]++
			}
			// Each eviction appends its key and value: compare the latest.
			n := len(evA)
			if n != len(evB) || n > 0 && !slices.Equal(evA[n-2:], evB[n-2:]) ||
				op%16 == 0 && !slices.Equal(lruKeys(a), lruKeys(b)) {
				t.Fatalf("slack %d, op %d: the tables differ", slack, op)
			}
		}
		if len(evA) == 0 || !slices.Equal(evA, evB) {
			t.Fatalf("slack %d: %d evictions, or they differ", slack, len(evA)/2)
		}
	}
}

// TestTableAheadFollowsTheTail floods a full table with new keys, walking ahead once per
// key: after the walk got ahead, each eviction finds its victim first in the walk (the
// hint is right) and its key was handed to the victim hint before, and a touch of the next
// victim makes the walk start again.
func TestTableAheadFollowsTheTail(t *testing.T) {
	hash := func(k *uint64) uint64 { return packet.Mix64(*k) }
	tab := NewTable[uint64, [5]uint64](1000, hash)
	tab.SetSlack(125)
	for k := range uint64(1000) {
		tab.Touch(k)
	}
	hinted := map[uint64]bool{}
	tab.SetVictimHint(func(k *uint64) { hinted[*k] = true })
	unhinted := 0
	tab.SetEvict(func(k *uint64, _ *[5]uint64) {
		if !hinted[*k] {
			unhinted++
		}
	})
	for range aheadMax {
		tab.Ahead() // as a group's first stage does
	}
	if tab.aheadN != aheadMax || tab.ahead[tab.aheadAt] != tab.Tail {
		t.Fatalf("walked %d ahead, first %d, tail %d", tab.aheadN, tab.ahead[tab.aheadAt], tab.Tail)
	}
	for k := uint64(1000); k < 5000; k++ {
		tab.Ahead()
		if tab.ahead[tab.aheadAt] != tab.Tail {
			t.Fatalf("key %d: the walk's first victim is slot %d, the tail %d", k, tab.ahead[tab.aheadAt], tab.Tail)
		}
		tab.Touch(k)
		if tab.aheadN != aheadMax-1 {
			t.Fatalf("key %d: %d victims ahead after an eviction, want %d", k, tab.aheadN, aheadMax-1)
		}
	}
	if unhinted > 0 {
		t.Fatalf("%d of 4 000 victims evicted without a hint first", unhinted)
	}
	tab.Touch(*tabKey(tab, tab.Tail)) // the next victim comes back: it moves to the front
	tab.Touch(5000)                   // evicts another: the walk is stale
	if tab.aheadN != 0 {
		t.Fatalf("%d victims ahead after the walk went stale", tab.aheadN)
	}
}

func tabKey(t *Table[uint64, [5]uint64], i int32) *uint64 { k, _ := t.At(i); return k }

func lruKeys(t *Table[uint64, [5]uint64]) (keys []uint64) {
	t.Range(func(k *uint64, _ *[5]uint64) bool {
		keys = append(keys, *k)
		return true
	})
	return keys
}
