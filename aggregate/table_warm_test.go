package aggregate

import (
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// Warm only reads: after warming present and absent keys, every lookup, the LRU order and the
// values are as before.
func TestTableWarmChangesNothing(t *testing.T) {
	hash := func(k *uint64) uint64 { return packet.Mix64(*k) }
	tab := NewTable[uint64, [7]uint64](100, hash)
	for k := uint64(1); k <= 150; k++ { // past the capacity: the oldest 50 are evicted
		v, _ := tab.Touch(k)
		v[0], v[6] = k, ^k
	}
	order := func() (keys []uint64) {
		tab.Range(func(k *uint64, v *[7]uint64) bool {
			if v[0] != *k || v[6] != ^*k {
				t.Fatalf("key %d holds %v", *k, *v)
			}
			keys = append(keys, *k)
			return true
		})
		return keys
	}
	before := order()
	var x uint32
	for k := uint64(1); k <= 300; k++ {
		kk := k
		tab.Prefetch(hash(&kk))
		tab.Warm(hash(&kk))
		x ^= tab.WarmEvict(3)
	}
	_ = x
	if after := order(); !slices.Equal(before, after) {
		t.Fatalf("LRU order changed by Warm:\nbefore %v\nafter  %v", before, after)
	}
	for k := uint64(1); k <= 150; k++ {
		if got := tab.Get(k) != nil; got != (k > 50) {
			t.Fatalf("key %d present=%v after Warm", k, got)
		}
	}
	if tab.Len() != 100 || tab.Evictions() != 50 {
		t.Fatalf("len %d evictions %d, want 100 and 50", tab.Len(), tab.Evictions())
	}
}

// Before the table is full, WarmEvict requests the never-used slots the coming inserts take,
// each once, up to the capacity, and none while a deleted slot comes first; a warmed slot
// is still zero when an insert takes it. Both a heap table and one in a reserved region.
func TestTableWarmFreshSlots(t *testing.T) {
	hash := func(k *uint64) uint64 { return packet.Mix64(*k) }
	for _, capacity := range []int{100, 100_000} {
		tab := NewTable[uint64, [7]uint64](capacity, hash)
		if capacity > 4096 && tab.region == nil {
			t.Logf("no reserved region on this platform: a table of %d slots grows in chunks", capacity)
		}
		step := func(n int, want int32) {
			t.Helper()
			tab.WarmEvict(n)
			if tab.freshWarm != want {
				t.Fatalf("capacity %d: after WarmEvict(%d) with %d fresh: warmed up to %d, want %d",
					capacity, n, tab.fresh, tab.freshWarm, want)
			}
		}
		step(3, 3)
		step(3, 3) // the same slots: nothing again
		for k := uint64(1); k <= 2; k++ {
			tab.Touch(k)
		}
		step(5, 7)
		wantAll := int32(capacity) // never past the capacity, nor the chunks without a region
		if tab.region == nil {
			wantAll = int32(tab.Slots())
		}
		step(1_000_000, wantAll)
		for k := uint64(3); k <= 60; k++ {
			if v, _ := tab.Touch(k); *v != ([7]uint64{}) {
				t.Fatalf("capacity %d: key %d took a slot holding %v", capacity, k, *v)
			}
		}
		tab.Delete(10)
		tab.freshWarm = tab.fresh
		step(4, tab.fresh) // the deleted slot comes first
	}
}
