package aggregate

import (
	"bytes"
	"encoding/gob"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// refLRU is the reference model: a map for contents and a slice for recency (most recent first).
type refLRU struct {
	cap   int
	vals  map[uint32]int
	order []uint32
}

func (r *refLRU) remove(k uint32) {
	i := slices.Index(r.order, k)
	r.order = slices.Delete(r.order, i, i+1)
}

// touch mirrors Table.Touch; it returns the key that must be evicted, if any.
func (r *refLRU) touch(k uint32) (created bool, victim uint32, evicted bool) {
	if _, ok := r.vals[k]; ok {
		r.remove(k)
		r.order = slices.Insert(r.order, 0, k)
		return false, 0, false
	}
	if len(r.order) == r.cap {
		victim, evicted = r.order[len(r.order)-1], true
		r.order = r.order[:len(r.order)-1]
		delete(r.vals, victim)
	}
	r.vals[k] = 0
	r.order = slices.Insert(r.order, 0, k)
	return true, victim, evicted
}

var tableHashes = []struct {
	name string
	fn   func(*uint32) uint64
}{
	{"mixed", func(k *uint32) uint64 { return packet.Mix64(uint64(*k)) }},
	{"constant", func(*uint32) uint64 { return 7 }}, // one long probe run: deletions mid-run
	{"mod3", func(k *uint32) uint64 { return uint64(*k % 3) }},
	// Five homes at the end of the index: probes and backward shifts wrap around to its start.
	{"wrap", func(k *uint32) uint64 { return ^uint64(*k % 5) }},
}

// checkTable compares the table with the model: contents, values, recency order, Len <= Cap.
func checkTable(t *testing.T, step int, tb *Table[uint32, int], ref *refLRU) {
	t.Helper()
	if tb.Len() != len(ref.order) || tb.Len() > tb.Cap() {
		t.Fatalf("step %d: Len %d, model %d, Cap %d", step, tb.Len(), len(ref.order), tb.Cap())
	}
	var order []uint32
	for i := tb.Head; i != nilIdx; i = tb.ent(i).Next {
		order = append(order, tb.ent(i).Key)
	}
	if !slices.Equal(order, ref.order) {
		t.Fatalf("step %d: recency order %v, model %v", step, order, ref.order)
	}
	seen := 0
	tb.Range(func(k *uint32, v *int) bool {
		seen++
		if want, ok := ref.vals[*k]; !ok || *v != want {
			t.Fatalf("step %d: key %d value %d, model %d (present %v)", step, *k, *v, want, ok)
		}
		return true
	})
	if seen != len(ref.vals) {
		t.Fatalf("step %d: Range saw %d entries, model has %d", step, seen, len(ref.vals))
	}
	k, v, ok := tb.Oldest()
	if ok != (len(ref.order) > 0) || ok && (*k != ref.order[len(ref.order)-1] || *v != ref.vals[*k]) {
		t.Fatalf("step %d: Oldest %v ok=%v, model order %v", step, k, ok, ref.order)
	}
}

func TestTableRandomOpsAgainstModel(t *testing.T) {
	// 2500 crosses the chunk size of small tests, so the table grows under the model.
	for _, capacity := range []int{0, 1, 2, 3, 17, 64, 2500} {
		ops := 100_000
		if capacity > chunkSlots/2 {
			ops = 12_000
		}
		for _, h := range tableHashes {
			t.Run(h.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(capacity), 1))
				tb := NewTable[uint32, int](capacity, h.fn)
				ref := &refLRU{cap: max(capacity, 1), vals: map[uint32]int{}}
				var evicted []uint32
				tb.SetEvict(func(k *uint32, v *int) {
					// The model is updated after the table, so it still holds the victim.
					if want, ok := ref.vals[*k]; !ok || *v != want {
						t.Fatalf("evict sees key %d value %d, model %d present %v", *k, *v, want, ok)
					}
					evicted = append(evicted, *k)
				})
				var wantEvictions uint64
				keySpace := uint32(3*max(capacity, 1) + 2) // enough misses to force evictions
				for step := range ops {
					k := rng.Uint32N(keySpace)
					switch op := rng.IntN(100); {
					case op < 70:
						evicted = evicted[:0]
						var v *int
						var created bool
						if step%2 == 0 {
							v, created = tb.Touch(k)
						} else { // the caller's hash: the same table operation
							kk := k
							var slot int32
							slot, created = tb.TouchSlotHashed(k, h.fn(&kk))
							_, v = tb.At(slot)
						}
						wantCreated, victim, ev := ref.touch(k)
						if created != wantCreated {
							t.Fatalf("step %d: Touch(%d) created=%v, model %v", step, k, created, wantCreated)
						}
						if created && *v != 0 {
							t.Fatalf("step %d: new entry has value %d", step, *v)
						}
						if ev {
							wantEvictions++
							if len(evicted) != 1 || evicted[0] != victim {
								t.Fatalf("step %d: evicted %v, model evicts %d", step, evicted, victim)
							}
						} else if len(evicted) != 0 {
							t.Fatalf("step %d: evicted %v, model evicts nothing", step, evicted)
						}
						*v = step + 1 // the pointer must write into the entry
						ref.vals[k] = step + 1
					case op < 85:
						v := tb.Get(k)
						want, ok := ref.vals[k]
						if (v != nil) != ok || ok && *v != want {
							t.Fatalf("step %d: Get(%d) = %v, model %d present %v", step, k, v, want, ok)
						}
					default:
						_, ok := ref.vals[k]
						var got bool
						if step%2 == 0 {
							got = tb.Delete(k)
						} else { // by slot: Find, then DeleteAt
							i := tb.Find(k)
							if got = i >= 0; got {
								if kk, _ := tb.At(i); *kk != k {
									t.Fatalf("step %d: Find(%d) = slot %d holding %d", step, k, i, *kk)
								}
								tb.DeleteAt(i)
							}
						}
						if got != ok {
							t.Fatalf("step %d: Delete(%d) = %v, model %v", step, k, got, ok)
						}
						if ok {
							delete(ref.vals, k)
							ref.remove(k)
						}
					}
					checkTable(t, step, tb, ref)
				}
				if tb.Evictions() != wantEvictions || wantEvictions == 0 {
					t.Fatalf("Evictions() = %d, model %d (must be > 0)", tb.Evictions(), wantEvictions)
				}
			})
		}
	}
}

func TestTableEvictionOrder(t *testing.T) {
	tests := []struct {
		name    string
		cap     int
		touches []uint32
		evicted []uint32
	}{
		{"fifo without hits", 3, []uint32{1, 2, 3, 4, 5, 6}, []uint32{1, 2, 3}},
		{"hit refreshes", 3, []uint32{1, 2, 3, 1, 4, 5, 6}, []uint32{2, 3, 1}},
		{"capacity one", 1, []uint32{1, 1, 2, 3, 3}, []uint32{1, 2}},
		{"capacity zero acts as one", 0, []uint32{1, 2}, []uint32{1}},
		{"no eviction below capacity", 4, []uint32{1, 2, 3, 4, 1, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := NewTable[uint32, uint32](tt.cap, tableHashes[0].fn)
			var got []uint32
			tb.SetEvict(func(k *uint32, v *uint32) {
				if *v != *k*10 {
					t.Errorf("evict sees key %d with value %d, want %d", *k, *v, *k*10)
				}
				got = append(got, *k)
			})
			for _, k := range tt.touches {
				v, _ := tb.Touch(k)
				*v = k * 10
				if tb.Len() > tb.Cap() {
					t.Fatalf("Len %d > Cap %d", tb.Len(), tb.Cap())
				}
			}
			if !slices.Equal(got, tt.evicted) {
				t.Errorf("evicted %v, want %v", got, tt.evicted)
			}
			if tb.Evictions() != uint64(len(tt.evicted)) {
				t.Errorf("Evictions() = %d, want %d", tb.Evictions(), len(tt.evicted))
			}
		})
	}
}

func TestTableGetDoesNotRefresh(t *testing.T) {
	tb := NewTable[uint32, int](2, tableHashes[0].fn)
	tb.Touch(1)
	tb.Touch(2)
	if tb.Get(1) == nil {
		t.Fatal("Get(1) = nil")
	}
	tb.Touch(3) // must evict 1: Get did not refresh it
	if tb.Get(1) != nil || tb.Get(2) == nil || tb.Get(3) == nil {
		t.Fatal("Get refreshed recency")
	}
	if k, _, _ := tb.Oldest(); *k != 2 {
		t.Fatalf("Oldest = %d, want 2", *k)
	}
}

func TestTableNoAllocs(t *testing.T) {
	tb := NewTable[packet.Addr, [4]uint64](1000, func(a *packet.Addr) uint64 { return a.Hash(1) })
	var i uint64
	allocs := testing.AllocsPerRun(10_000, func() {
		i++
		var a packet.Addr
		a[0], a[1], a[2] = byte(i), byte(i>>8), byte(i>>16)
		v, _ := tb.Touch(a)
		v[0]++
		tb.Get(a)
		if i%7 == 0 {
			tb.Delete(a)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per operation, want 0", allocs)
	}
}

type tableState struct {
	Packets uint64
	Targets Distinct
}

func addrHash(a *packet.Addr) uint64 { return a.Hash(42) }

func TestTableRestoreRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	orig := NewTable[packet.Addr, tableState](50, addrHash)
	key := func() packet.Addr { return packet.AddrFrom4([]byte{10, 0, 0, byte(rng.IntN(120))}) }
	for range 1000 {
		k := key()
		if rng.IntN(10) == 0 {
			orig.Delete(k)
			continue
		}
		v, _ := orig.Touch(k)
		v.Packets++
		v.Targets.Add(ts, rng.Uint64N(8))
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(orig); err != nil {
		t.Fatal(err)
	}
	var got Table[packet.Addr, tableState]
	if err := gob.NewDecoder(&buf).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if err := got.Restore(addrHash); err != nil {
		t.Fatal(err)
	}
	// Both tables must now behave identically, evictions included.
	var evOrig, evGot []packet.Addr
	orig.SetEvict(func(k *packet.Addr, _ *tableState) { evOrig = append(evOrig, *k) })
	got.SetEvict(func(k *packet.Addr, _ *tableState) { evGot = append(evGot, *k) })
	for range 2000 {
		k := key()
		if rng.IntN(10) == 0 {
			if orig.Delete(k) != got.Delete(k) {
				t.Fatal("Delete differs after restore")
			}
			continue
		}
		v1, c1 := orig.Touch(k)
		v2, c2 := got.Touch(k)
		if c1 != c2 || v1.Packets != v2.Packets || v1.Targets.Count(ts) != v2.Targets.Count(ts) {
			t.Fatalf("Touch differs after restore: %v %+v vs %v %+v", c1, *v1, c2, *v2)
		}
		v1.Packets++
		v2.Packets++
	}
	if !slices.Equal(evOrig, evGot) || len(evOrig) == 0 {
		t.Fatalf("evictions differ after restore (%d vs %d)", len(evOrig), len(evGot))
	}
}

func TestTableRestoreRejectsCorruptState(t *testing.T) {
	build := func() *Table[uint32, int] {
		tb := NewTable[uint32, int](4, tableHashes[0].fn)
		for k := range uint32(3) {
			tb.Touch(k)
		}
		return tb // list: 2 -> 1 -> 0
	}
	tests := []struct {
		name    string
		corrupt func(tb *Table[uint32, int])
	}{
		{"no slots", func(tb *Table[uint32, int]) { tb.Chunks = nil }},
		{"short chunk", func(tb *Table[uint32, int]) {
			tb.Chunks = append([][]TableEntry[uint32, int]{tb.Chunks[0][:1]}, tb.Chunks...)
		}},
		{"negative count", func(tb *Table[uint32, int]) { tb.Count = -1 }},
		{"count above capacity", func(tb *Table[uint32, int]) { tb.Count = 5 }},
		{"count too small", func(tb *Table[uint32, int]) { tb.Count = 2 }},
		{"count too large", func(tb *Table[uint32, int]) { tb.Count = 4 }},
		{"head out of range", func(tb *Table[uint32, int]) { tb.Head = 9 }},
		{"cycle", func(tb *Table[uint32, int]) { tb.ent(tb.Tail).Next = tb.Head }},
		{"bad back link", func(tb *Table[uint32, int]) { tb.ent(tb.Tail).Prev = tb.Tail }},
		{"wrong tail", func(tb *Table[uint32, int]) { tb.Tail = tb.Head }},
		{"duplicate key", func(tb *Table[uint32, int]) { tb.ent(tb.Head).Key = tb.ent(tb.Tail).Key }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := build()
			if err := tb.Restore(tableHashes[0].fn); err != nil {
				t.Fatalf("intact state rejected: %v", err)
			}
			tt.corrupt(tb)
			if err := tb.Restore(tableHashes[0].fn); err == nil {
				t.Fatal("corrupt state accepted")
			}
		})
	}
	if err := build().Restore(nil); err == nil {
		t.Fatal("nil hash accepted")
	}
}

// TestTableGrowthKeepsEveryKey grows a table through several chunks and bucket-index
// rebuilds (from stored hashes), restores a checkpoint copy mid-way and grows that too,
// then fills both past capacity: every key must stay findable with its value, and the
// evictions must follow the model's LRU order.
func TestTableGrowthKeepsEveryKey(t *testing.T) {
	const capacity = 5*chunkSlots + 123
	hash := tableHashes[0].fn
	tb := NewTable[uint32, int](capacity, hash)
	ref := &refLRU{cap: capacity, vals: map[uint32]int{}}
	var evicted []uint32
	tb.SetEvict(func(k *uint32, _ *int) { evicted = append(evicted, *k) })
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(tb *Table[uint32, int], step int) {
		t.Helper()
		for k, want := range ref.vals {
			if v := tb.Get(k); v == nil || *v != want {
				t.Fatalf("step %d: Get(%d) = %v, want %d", step, k, v, want)
			}
		}
		if tb.Len() != len(ref.vals) {
			t.Fatalf("step %d: Len %d, model %d", step, tb.Len(), len(ref.vals))
		}
	}
	touch := func(tb *Table[uint32, int], k uint32, step int) {
		t.Helper()
		evicted = evicted[:0]
		v, created := tb.Touch(k)
		wantCreated, victim, ev := ref.touch(k)
		if created != wantCreated || ev != (len(evicted) == 1) || ev && evicted[0] != victim {
			t.Fatalf("step %d: Touch(%d) created=%v evicted %v, model %v %d %v", step, k, created, evicted, wantCreated, victim, ev)
		}
		*v = step + 1
		ref.vals[k] = step + 1
	}
	step := 0
	for ; step < 3*chunkSlots; step++ { // about 2.5 chunks of distinct keys
		touch(tb, rng.Uint32(), step)
		if step%5 == 0 { // refresh an older key: chains and LRU links change under growth
			touch(tb, ref.order[rng.IntN(len(ref.order))], step)
		}
	}
	check(tb, step)
	if tb.Slots() <= 2*chunkSlots {
		t.Fatalf("the table did not grow: %d slots", tb.Slots())
	}

	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(tb); err != nil {
		t.Fatal(err)
	}
	var got Table[uint32, int]
	if err := gob.NewDecoder(&buf).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if err := got.Restore(hash); err != nil {
		t.Fatal(err)
	}
	got.SetEvict(func(k *uint32, _ *int) { evicted = append(evicted, *k) })
	check(&got, step)
	for ; step < 3*capacity; step++ { // grow the restored table to capacity, then evict
		touch(&got, rng.Uint32(), step)
		if step%1000 == 0 {
			check(&got, step)
		}
	}
	check(&got, step)
	if got.Slots() != capacity || got.Evictions() == 0 {
		t.Fatalf("restored table: %d slots (capacity %d), %d evictions", got.Slots(), capacity, got.Evictions())
	}
}

// A table large enough for a huge-page index (Linux) keeps it in one reserved range whose
// prefix each rebuild reuses: growing through every index size, evicting, deleting and
// rebuilding in place (Restore) must leave exactly the live keys findable. An index
// prefix reused without clearing keeps stale words and lookups go wrong.
func TestTableLargeIndexRegion(t *testing.T) {
	const capacity = 1 << 18 // an index of 4 MiB: above the 2 MiB of a huge page
	hash := tableHashes[0].fn
	tb := NewTable[uint32, uint32](capacity, hash)
	if runtime.GOOS == "linux" && tb.indexRegion == nil {
		t.Fatal("no index region for a table of 256 k slots on Linux")
	}
	const total = capacity + capacity/2
	for k := uint32(1); k <= total; k++ {
		v, _ := tb.Touch(k)
		*v = k
	}
	for k := uint32(total); k > total-1000; k-- {
		tb.Delete(k)
	}
	check := func(stage string) {
		t.Helper()
		for k := uint32(1); k <= total; k++ {
			live := k > total-capacity && k <= total-1000
			if v := tb.Get(k); (v != nil) != live || live && *v != k {
				t.Fatalf("%s: key %d found %v (want %v)", stage, k, v != nil, live)
			}
		}
		if tb.Len() != capacity-1000 {
			t.Fatalf("%s: %d entries, want %d", stage, tb.Len(), capacity-1000)
		}
	}
	check("after growing and evicting")
	if err := tb.Restore(hash); err != nil {
		t.Fatal(err)
	}
	check("after rebuilding the index in place")
}
