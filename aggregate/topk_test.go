package aggregate

import (
	"bytes"
	"encoding/gob"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

type weighted struct {
	key packet.Addr
	w   uint64
}

// checkSpaceSaving asserts the Space-Saving guarantees against the true counts: every key with
// a true count above Total/capacity is held, every held key's true count is in
// [Count-Err, Count], and the structure's own invariants hold.
func checkSpaceSaving(t *testing.T, tk *TopK, truth map[packet.Addr]uint64, total uint64) {
	t.Helper()
	if err := tk.check(); err != nil {
		t.Fatalf("invariant: %v", err)
	}
	if tk.Total() != total || tk.Len() > tk.Capacity {
		t.Fatalf("Total %d (want %d), Len %d, capacity %d", tk.Total(), total, tk.Len(), tk.Capacity)
	}
	top := tk.Top(tk.Capacity)
	held := make(map[packet.Addr]bool, len(top))
	for _, c := range top {
		held[c.Key] = true
		if tr := truth[c.Key]; c.Err > c.Count || tr < c.Count-c.Err || tr > c.Count {
			t.Fatalf("key %v: true count %d outside [%d-%d, %d]", c.Key, tr, c.Count, c.Err, c.Count)
		}
	}
	threshold := total / uint64(tk.Capacity)
	for k, tr := range truth {
		if tr > threshold && !held[k] {
			t.Fatalf("key %v with true count %d > Total/capacity %d is missing", k, tr, threshold)
		}
	}
}

func TestTopKExactBelowCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tk := NewTopK(50)
	truth := map[packet.Addr]uint64{}
	var total uint64
	for range 20_000 {
		k := nthAddr(rng.Uint64N(50)) // exactly the capacity: never full
		w := 1 + rng.Uint64N(3)
		tk.Add(k, w)
		truth[k] += w
		total += w
	}
	got := tk.Top(100)
	if len(got) != len(truth) || tk.Len() != len(truth) {
		t.Fatalf("Top holds %d keys, Len %d, want %d", len(got), tk.Len(), len(truth))
	}
	for i, c := range got {
		if c.Err != 0 || c.Count != truth[c.Key] {
			t.Errorf("key %v: count %d err %d, want exactly %d", c.Key, c.Count, c.Err, truth[c.Key])
		}
		if i > 0 && (got[i-1].Count < c.Count || got[i-1].Count == c.Count && bytes.Compare(got[i-1].Key[:], c.Key[:]) > 0) {
			t.Errorf("Top out of order at %d: %+v before %+v", i, got[i-1], c)
		}
	}
	checkSpaceSaving(t, tk, truth, total)
}

func TestTopKGuarantees(t *testing.T) {
	zipf := func(seed uint64, s float64, n int) []weighted {
		rng := rand.New(rand.NewPCG(seed, 7))
		z := rand.NewZipf(rng, s, 1, 200_000)
		out := make([]weighted, n)
		for i := range out {
			out[i] = weighted{nthAddr(z.Uint64()), 1}
		}
		return out
	}
	// floodWithHeavies: heavy keys hidden in a flood of once-seen spoofed sources, the
	// telescope's normal diet; each heavy key is seen just often enough to hover near eviction.
	floodWithHeavies := func(heavy int, every int, n int) []weighted {
		out := make([]weighted, 0, n)
		next := uint64(1 << 40)
		for i := range n {
			if i%every == 0 {
				out = append(out, weighted{nthAddr(uint64(i / every % heavy)), 1})
				continue
			}
			out = append(out, weighted{nthAddr(next), 1})
			next++
		}
		return out
	}
	// cyclic: k+1 keys in round robin, every arrival evicts the key that comes next.
	cyclic := func(keys, n int) []weighted {
		out := make([]weighted, n)
		for i := range out {
			out[i] = weighted{nthAddr(uint64(i % keys)), 1}
		}
		return out
	}
	// increasing: key k arrives k² times, all in a row (old keys lose to the younger, larger ones).
	increasing := func(keys int) []weighted {
		var out []weighted
		for k := 1; k <= keys; k++ {
			for range k * k {
				out = append(out, weighted{nthAddr(uint64(k)), 1})
			}
		}
		return out
	}
	weightedRandom := func(seed uint64, n int) []weighted {
		rng := rand.New(rand.NewPCG(seed, 3))
		z := rand.NewZipf(rng, 1.2, 1, 1000)
		out := make([]weighted, n)
		for i := range out {
			out[i] = weighted{nthAddr(z.Uint64()), 1 + rng.Uint64N(20)}
		}
		return out
	}
	tests := []struct {
		name     string
		capacity int
		stream   []weighted
	}{
		{"zipf 1.1", 100, zipf(1, 1.1, 200_000)},
		{"zipf 1.5 small", 10, zipf(2, 1.5, 100_000)},
		{"flood with heavies", 100, floodWithHeavies(20, 4, 200_000)},
		{"flood with sparse heavies", 50, floodWithHeavies(2, 20, 200_000)},
		{"cyclic k+1", 64, cyclic(65, 50_000)},
		{"increasing runs", 30, increasing(60)},
		{"weighted", 40, weightedRandom(4, 100_000)},
		{"capacity one", 1, zipf(5, 2, 10_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := NewTopK(tt.capacity)
			truth := map[packet.Addr]uint64{}
			var total uint64
			for i, a := range tt.stream {
				tk.Add(a.key, a.w)
				truth[a.key] += a.w
				total += a.w
				if i%9973 == 0 {
					checkSpaceSaving(t, tk, truth, total)
				}
			}
			checkSpaceSaving(t, tk, truth, total)
		})
	}
}

func TestTopKWeightedReplacement(t *testing.T) {
	a, b, c, d := nthAddr(1), nthAddr(2), nthAddr(3), nthAddr(4)
	tk := NewTopK(2)
	tk.Add(a, 3)
	tk.Add(b, 5)
	tk.Add(c, 2) // replaces a (the minimum, 3): count 3+2, error 3
	want := []Counted{{b, 5, 0}, {c, 5, 3}}
	if got := tk.Top(10); !slices.Equal(got, want) {
		t.Fatalf("after replacement: %+v, want %+v", got, want)
	}
	tk.Add(d, 1) // both hold 5: either is replaced, the newcomer gets 6 with error 5
	got := tk.Top(10)
	if len(got) != 2 || got[0] != (Counted{d, 6, 5}) || got[1].Count != 5 {
		t.Fatalf("after second replacement: %+v", got)
	}
	tk.Add(got[1].Key, 100) // a large weight walks past the other group
	if top := tk.Top(1); top[0].Key != got[1].Key || top[0].Count != 105 {
		t.Fatalf("after weighted add: %+v", tk.Top(10))
	}
	if tk.Total() != 3+5+2+1+100 {
		t.Fatalf("Total %d", tk.Total())
	}
	if err := tk.check(); err != nil {
		t.Fatal(err)
	}
}

func TestTopKTieOrderAndTopN(t *testing.T) {
	v6 := packet.AddrFromNetip(netip.MustParseAddr("2001:db8::1"))
	keys := []packet.Addr{nthAddr(9), v6, nthAddr(3), nthAddr(1 << 20), nthAddr(7)}
	tk := NewTopK(10)
	for _, k := range keys {
		tk.Add(k, 4)
	}
	tk.Add(nthAddr(5), 9)
	// Byte order: IPv4-mapped ::ffff:a.b.c.d starts with zero bytes, so before 2001:db8::.
	want := []packet.Addr{nthAddr(3), nthAddr(7), nthAddr(9), nthAddr(1 << 20), v6}
	got := tk.Top(100)
	if got[0].Key != nthAddr(5) || got[0].Count != 9 {
		t.Fatalf("first is %+v, want count 9", got[0])
	}
	for i, w := range want {
		if got[i+1].Key != w || got[i+1].Count != 4 {
			t.Errorf("rank %d: %v (count %d), want %v", i+1, got[i+1].Key, got[i+1].Count, w)
		}
	}
	for _, tt := range []struct{ n, want int }{{-1, 0}, {0, 0}, {1, 1}, {6, 6}, {7, 6}} {
		if got := len(tk.Top(tt.n)); got != tt.want {
			t.Errorf("len(Top(%d)) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestTopKResetZeroWeightAndSaturation(t *testing.T) {
	tk := NewTopK(3)
	tk.Add(nthAddr(1), 0)
	if tk.Len() != 0 || tk.Total() != 0 {
		t.Fatalf("weight 0 counted: Len %d Total %d", tk.Len(), tk.Total())
	}
	for i := range uint64(10) {
		tk.Add(nthAddr(i), i+1)
	}
	tk.Reset()
	if tk.Len() != 0 || tk.Total() != 0 || tk.Top(5) != nil {
		t.Fatalf("after Reset: Len %d Total %d Top %v", tk.Len(), tk.Total(), tk.Top(5))
	}
	checkSpaceSaving(t, tk, nil, 0)
	tk.Add(nthAddr(1), math.MaxUint64)
	tk.Add(nthAddr(1), 5)
	tk.Add(nthAddr(2), math.MaxUint64)
	if got := tk.Top(2); got[0].Count != math.MaxUint64 || got[1].Count != math.MaxUint64 {
		t.Fatalf("saturation: %+v", got)
	}
	if err := tk.check(); err != nil {
		t.Fatal(err)
	}
}

func TestTopKNoAllocs(t *testing.T) {
	tk := NewTopK(100)
	var i uint64
	allocs := testing.AllocsPerRun(10_000, func() {
		i++
		tk.Add(nthAddr(i), 1)       // flood: replacement path
		tk.Add(nthAddr(i%7), i%3+1) // returning keys
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Add pair, want 0", allocs)
	}
}

func TestTopKRestore(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	build := func() *TopK {
		tk := NewTopK(20)
		for range 3000 {
			tk.Add(nthAddr(rng.Uint64N(60)), 1+rng.Uint64N(2))
		}
		return tk
	}
	orig := build()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(orig); err != nil {
		t.Fatal(err)
	}
	var got TopK
	if err := gob.NewDecoder(&buf).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if err := got.Restore(); err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		k, w := nthAddr(rng.Uint64N(60)), 1+rng.Uint64N(2)
		orig.Add(k, w)
		got.Add(k, w)
	}
	if !slices.Equal(orig.Top(20), got.Top(20)) || got.Total() != orig.Total() {
		t.Fatal("restored summary diverged from the original")
	}
	if allocs := testing.AllocsPerRun(100, func() { got.Add(nthAddr(1000), 1) }); allocs != 0 {
		t.Fatalf("restored summary allocates %v per Add", allocs)
	}

	corruptions := []struct {
		name string
		fn   func(tk *TopK)
	}{
		{"capacity", func(tk *TopK) { tk.Capacity = 0 }},
		{"groups missing", func(tk *TopK) { tk.Groups = tk.Groups[:5] }},
		{"min group out of range", func(tk *TopK) { tk.MinGroup = 99 }},
		{"group order", func(tk *TopK) { tk.Groups[tk.MinGroup].Count = math.MaxUint64 }},
		{"entry in wrong group", func(tk *TopK) { tk.Entries[0].Group = (tk.Entries[0].Group + 1) % 20 }},
		{"error above count", func(tk *TopK) { tk.Entries[3].Err = math.MaxUint64 }},
		{"sum", func(tk *TopK) { tk.Sum++ }},
		{"free list cycle", func(tk *TopK) { tk.FreeGroup = tk.MinGroup }},
		{"duplicate key", func(tk *TopK) { tk.Entries[1].Key = tk.Entries[2].Key }},
		{"sibling cycle", func(tk *TopK) {
			g := tk.Groups[tk.MinGroup]
			tk.Entries[g.First].Next = g.First
		}},
	}
	for _, c := range corruptions {
		tk := build()
		if err := tk.Restore(); err != nil {
			t.Fatalf("%s: intact state rejected: %v", c.name, err)
		}
		c.fn(tk)
		if err := tk.Restore(); err == nil {
			t.Errorf("%s: corrupt state accepted", c.name)
		}
	}
}

// TestTopKFreshGroups checks the never-used groups: a new summary links none, check
// rejects a fresh mark below the groups in use or past the capacity, and Restore of a state
// saved without the mark (as Save writes it) frees every unlinked group.
func TestTopKFreshGroups(t *testing.T) {
	tk := NewTopK(50)
	if tk.FreshGroup != 0 || tk.FreeGroup != nilIdx {
		t.Fatalf("new summary: FreshGroup %d FreeGroup %d", tk.FreshGroup, tk.FreeGroup)
	}
	for i := range uint64(30) {
		tk.Add(nthAddr(i%10), i%4+1)
	}
	if err := tk.check(); err != nil {
		t.Fatal(err)
	}
	if tk.FreshGroup == 0 || int(tk.FreshGroup) > 10 {
		t.Fatalf("10 keys used %d groups", tk.FreshGroup)
	}
	want := tk.Top(10)
	for _, bad := range []int32{0, tk.FreshGroup - 1, 51, -1} {
		c := *tk
		c.FreshGroup = bad
		if c.check() == nil {
			t.Errorf("FreshGroup %d accepted with %d groups used", bad, tk.FreshGroup)
		}
	}
	tk.FreshGroup = 0 // as after a Load: Save does not write the mark
	if err := tk.Restore(); err != nil {
		t.Fatal(err)
	}
	if tk.FreshGroup != 50 || tk.check() != nil || !slices.Equal(tk.Top(10), want) {
		t.Fatalf("after Restore: FreshGroup %d, check %v, top %v, want %v", tk.FreshGroup, tk.check(), tk.Top(10), want)
	}
	for i := range uint64(200) { // the freed groups serve new counts
		tk.Add(nthAddr(100+i), i+1)
	}
	if err := tk.check(); err != nil {
		t.Fatal(err)
	}
}

// TestTopKAllMatchesTop checks that All yields exactly Top's keys, counts and errors, each
// once, over a full summary that has replaced keys, and that it stops when asked to.
func TestTopKAllMatchesTop(t *testing.T) {
	tk := NewTopK(64)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		tk.Add(nthAddr(uint64(rng.IntN(300))), uint64(1+rng.IntN(3)))
	}
	want := map[packet.Addr]Counted{}
	errs := 0
	for _, c := range tk.Top(tk.Len()) {
		want[c.Key] = c
		if c.Err > 0 {
			errs++
		}
	}
	got := map[packet.Addr]Counted{}
	for c := range tk.All() {
		if _, dup := got[c.Key]; dup {
			t.Fatalf("All yields %v twice", c.Key)
		}
		got[c.Key] = c
	}
	if len(want) != 64 || errs == 0 || !maps.Equal(got, want) {
		t.Fatalf("All: %d keys, Top: %d keys (%d with an error), or their counts differ", len(got), len(want), errs)
	}
	n := 0
	for range tk.All() {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("All went on after break: %d", n)
	}
}

// TestTopKDropped checks the count of keys that lost their entry, by the log2 of what the
// summary guaranteed them: unique keys of one weight each, a heavy key that is never
// dropped among them, and Reset.
func TestTopKDropped(t *testing.T) {
	for _, w := range []uint64{1, 5, 300} {
		tk := NewTopK(64)
		for i := range 1000 {
			tk.Add(nthAddr(uint64(1000+i)), w)
			tk.Add(nthAddr(1), 1000) // heavy: always held
		}
		var want [64]uint64
		want[bits.Len64(w)-1] = 1000 - 63 // 63 entries for the unique keys, one for the heavy one
		if tk.Dropped != want {
			t.Errorf("weight %d: dropped %v, want %d in bucket %d", w, tk.Dropped, want[bits.Len64(w)-1], bits.Len64(w)-1)
		}
		tk.Drop(w) // a key kept out: binned like one let go
		tk.Drop(0) // nothing
		want[bits.Len64(w)-1]++
		if tk.Dropped != want || tk.Len() != 64 {
			t.Errorf("weight %d: after Drop, dropped %v (%d held)", w, tk.Dropped, tk.Len())
		}
		tk.Reset()
		if tk.Dropped != [64]uint64{} {
			t.Errorf("weight %d: Reset left %v", w, tk.Dropped)
		}
	}
}
