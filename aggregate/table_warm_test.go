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
