package aggregate

import (
	"bytes"
	"encoding/gob"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/packet"
)

// ts is the slab the Distinct values under test keep their blocks in.
var ts = &Slab{}

// distinctValueSets are the value families the exact phase must count exactly: well-mixed
// hashes, small integers (poorly mixed), and values sharing their low bits, so they all probe
// from the same slot and the set fills up with one long cluster. The last two include 0 and,
// not being hashes, give the sketch meaningless estimates.
var distinctValueSets = []struct {
	name  string
	val   func(i uint64) uint64
	mixed bool
}{
	{"mixed", func(i uint64) uint64 { return packet.Mix64(i + 1) }, true},
	{"small integers", func(i uint64) uint64 { return i }, false},
	{"same home slot", func(i uint64) uint64 { return i << 51 }, false}, // distinct for i < 8192
}

func TestDistinctExactUpToLimit(t *testing.T) {
	for _, vs := range distinctValueSets {
		t.Run(vs.name, func(t *testing.T) {
			for n := 0; n <= DistinctExactLimit; n++ {
				if n > 300 && n%97 != 0 && n < DistinctExactLimit-1 {
					continue // every size up to 300, then a sample and the last two
				}
				rng := rand.New(rand.NewPCG(uint64(n), 5))
				var d Distinct
				seen := map[uint64]bool{}
				// Each value arrives 1 to 3 times, duplicates interleaved with new values.
				var stream []uint64
				for i := range uint64(n) {
					for range 1 + rng.IntN(3) {
						stream = append(stream, vs.val(i))
					}
				}
				rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
				for _, x := range stream {
					if got := d.Add(ts, x); got != !seen[x] {
						t.Fatalf("n=%d: Add(%#x) = %v, seen before: %v", n, x, got, seen[x])
					}
					seen[x] = true
					if d.Count(ts) != uint64(len(seen)) {
						t.Fatalf("n=%d: Count %d after %d distinct", n, d.Count(ts), len(seen))
					}
				}
				if d.Count(ts) != uint64(n) || !d.Exact() {
					t.Fatalf("n=%d: Count %d, Exact %v", n, d.Count(ts), d.Exact())
				}
				if err := d.Validate(ts); err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				d.Reset(ts)
			}
		})
	}
}

func TestDistinctThresholds(t *testing.T) {
	// Detectors decide ">= 20 distinct targets": the counts around it must be exact.
	for _, tt := range []struct {
		distinct, repeats int
		reaches20         bool
	}{{19, 50, false}, {20, 1, true}, {20, 50, true}, {21, 3, true}} {
		var d Distinct
		for range tt.repeats {
			for i := range tt.distinct {
				a := packet.AddrFrom4([]byte{192, 0, 2, byte(i)})
				d.Add(ts, a.Hash(1))
			}
		}
		if d.Count(ts) != uint64(tt.distinct) || d.Count(ts) >= 20 != tt.reaches20 {
			t.Errorf("%d distinct × %d: Count %d", tt.distinct, tt.repeats, d.Count(ts))
		}
	}
}

func TestDistinctSwitchToSketch(t *testing.T) {
	for _, vs := range distinctValueSets {
		t.Run(vs.name, func(t *testing.T) {
			var d Distinct
			for i := range uint64(DistinctExactLimit) {
				d.Add(ts, vs.val(i))
			}
			if d.Add(ts, vs.val(3)) || !d.Exact() || d.Count(ts) != DistinctExactLimit {
				t.Fatalf("at the limit: Exact %v, Count %d", d.Exact(), d.Count(ts))
			}
			if !d.Add(ts, vs.val(DistinctExactLimit)) {
				t.Fatal("the first value past the limit was not reported as added")
			}
			if d.Exact() || d.Bytes() != 1024 {
				t.Fatalf("after the switch: Exact %v, Bytes %d", d.Exact(), d.Bytes())
			}
			if c := d.Count(ts); c < DistinctExactLimit+1 || vs.mixed && c > DistinctExactLimit*11/10 {
				t.Fatalf("after the switch: Count %d, want %d .. %d", c, DistinctExactLimit+1, DistinctExactLimit*11/10)
			}
			for i := range uint64(DistinctExactLimit + 1) {
				if d.Add(ts, vs.val(i)) {
					t.Fatalf("re-adding value %d grew a register", i)
				}
			}
			if err := d.Validate(ts); err != nil {
				t.Fatal(err)
			}
			d.Reset(ts)
		})
	}
}

// TestDistinctBigLimit: past the slab's budget for large sets a Distinct estimates early,
// never below what it counted exactly, and the budget comes back as sets are reset.
func TestDistinctBigLimit(t *testing.T) {
	s := &Slab{BigLimit: 3 * 1024} // one set of 1024 slots and one of 2048, or three of 1024
	ds := make([]Distinct, 4)
	for i := range ds {
		for j := range uint64(600) {
			ds[i].Add(s, packet.Mix64(uint64(i)<<32|j+1))
		}
	}
	// 600 values need 1024 slots: three fit the budget, the fourth switched at 193.
	for i, d := range ds {
		if want := i < 3; d.Exact() != want {
			t.Errorf("set %d: Exact %v, want %v (slab big words %d)", i, d.Exact(), want, s.Big)
		}
		if c := d.Count(s); c < 193 || (d.Exact() && c != 600) {
			t.Errorf("set %d: Count %d", i, c)
		}
	}
	ds[0].Reset(s)
	var d Distinct
	for j := range uint64(600) {
		d.Add(s, packet.Mix64(j+1))
	}
	if !d.Exact() || d.Count(s) != 600 {
		t.Errorf("after a reset freed budget: Exact %v, Count %d", d.Exact(), d.Count(s))
	}
	for i := range ds {
		ds[i].Reset(s)
	}
	d.Reset(s)
	if s.Big != 0 || s.Blocks() != 0 {
		t.Errorf("after every reset: %d big words, %d blocks", s.Big, s.Blocks())
	}
}

func TestDistinctSketchAccuracy(t *testing.T) {
	for _, n := range []uint64{5_000, 10_000, 100_000} {
		var d Distinct
		h := NewHLL(distinctP)
		for i := range n {
			x := hashAddr(nthAddr(i), testSeed)
			d.Add(ts, x)
			d.Add(ts, x)
			h.AddHash(x)
		}
		got := d.Count(ts)
		if rel := math.Abs(float64(got)-float64(n)) / float64(n); rel > 0.10 {
			t.Errorf("n=%d: Count %d, relative error %.3f > 0.10", n, got, rel)
		}
		// The packed registers must be exactly those of a p=10 HLL fed the same hashes.
		if want := h.Estimate(); got != want {
			t.Errorf("n=%d: Count %d, HLL(p=10) estimates %d", n, got, want)
		}
		t.Logf("n=%d: estimate %d (%.2f %%)", n, got, 100*(float64(got)-float64(n))/float64(n))
	}
}

func TestDistinctBytesAndReset(t *testing.T) {
	var d Distinct
	if unsafe.Sizeof(d) > 40 {
		t.Errorf("Distinct is %d bytes, want at most 40", unsafe.Sizeof(d))
	}
	tests := []struct{ distinct, bytes int }{
		{0, 0}, {4, 0}, {5, 64}, {6, 64}, {7, 128}, {96, 1024}, {97, 2048}, {192, 2048}, {193, 4096},
		{1536, 16384}, {1537, 32768}, {3072, 32768}, {3073, 65536}, {4096, 65536}, {4097, 1024},
	}
	for _, tt := range tests {
		d.Reset(ts)
		for i := range uint64(tt.distinct) {
			d.Add(ts, packet.Mix64(i+1)) // Mix64(0) is 0, which takes no slot
		}
		if d.Bytes() != tt.bytes {
			t.Errorf("%d distinct: Bytes %d, want %d", tt.distinct, d.Bytes(), tt.bytes)
		}
	}
	d.Reset(ts)
	if d.Ref != 0 || d.Bytes() != 0 || d.Count(ts) != 0 || !d.Exact() || d.N != 0 || d.Flags != 0 || d.Small != [distinctInline]uint64{} {
		t.Fatalf("Reset left %+v", d)
	}
}

func TestDistinctNoAllocs(t *testing.T) {
	tests := []struct {
		name     string
		distinct int
	}{{"inline", 4}, {"set", 200}, {"sketch", 3000}}
	for _, tt := range tests {
		var d Distinct
		vals := make([]uint64, tt.distinct)
		for i := range vals {
			vals[i] = packet.Mix64(uint64(i))
			d.Add(ts, vals[i])
		}
		i := 0
		if allocs := testing.AllocsPerRun(1000, func() { d.Add(ts, vals[i%len(vals)]); i++ }); allocs != 0 {
			t.Errorf("%s: %v allocations per Add", tt.name, allocs)
		}
	}
}

func TestDistinctCheckpoint(t *testing.T) {
	for _, n := range []uint64{0, 3, 100, 5000} {
		var d Distinct
		for i := range n {
			d.Add(ts, packet.Mix64(i))
		}
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		if err := enc.Encode(&d); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(ts); err != nil {
			t.Fatal(err)
		}
		var got Distinct
		var gs Slab
		dec := gob.NewDecoder(&buf)
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(&gs); err != nil {
			t.Fatal(err)
		}
		if err := got.Validate(&gs); err != nil || got.Count(&gs) != d.Count(ts) || n > 0 && got.Add(&gs, packet.Mix64(0)) {
			t.Fatalf("n=%d: restored Count %d, want %d (err %v)", n, got.Count(&gs), d.Count(ts), err)
		}
	}
}

func TestDistinctValidateRejects(t *testing.T) {
	set := func() Distinct {
		var d Distinct
		for i := range uint64(20) {
			d.Add(ts, packet.Mix64(i))
		}
		return d
	}
	tests := []struct {
		name string
		d    func() Distinct
	}{
		{"inline count", func() Distinct { return Distinct{N: 5} }},
		{"inline duplicate", func() Distinct { return Distinct{N: 2, Small: [4]uint64{7, 7}} }},
		{"inline zero flag", func() Distinct { return Distinct{N: 1, Flags: distinctZero} }},
		{"set count", func() Distinct { d := set(); d.N++; return d }},
		{"set size", func() Distinct { d := set(); d.Shift = 2; return d }},
		{"set shift", func() Distinct { d := set(); d.Shift = 40; return d }},
		{"unknown flag", func() Distinct { d := set(); d.Flags |= 0x80; return d }},
		{"set outside the slab", func() Distinct { d := set(); d.Ref = ts.Next + 64; return d }},
		{"set duplicate", func() Distinct {
			d := set()
			vals := d.vals(ts)
			for i, v := range vals {
				if v == 0 {
					vals[i] = vals[(i+1)%len(vals)]
					d.N++
					break
				}
			}
			return d
		}},
		{"sketch size", func() Distinct { return Distinct{Flags: distinctSketch, Ref: ts.Alloc(8), Shift: 3} }},
		{"sketch register", func() Distinct {
			d := Distinct{Flags: distinctSketch, Ref: ts.Alloc(distinctWords), Shift: 7}
			d.vals(ts)[distinctWords-1] = 99 << 8
			return d
		}},
	}
	for _, tt := range tests {
		d := tt.d()
		if err := d.Validate(ts); err == nil {
			t.Errorf("%s: corrupt state accepted", tt.name)
		}
	}
}

func TestDistinctValues(t *testing.T) {
	var s Slab
	for _, n := range []int{0, 3, 4, 5, 100, DistinctExactLimit} {
		var d Distinct
		want := map[uint64]bool{}
		for i := 0; i < n; i++ {
			x := uint64(i) * 0x9E3779B97F4A7C15 // includes 0
			d.Add(&s, x)
			want[x] = true
		}
		got := map[uint64]bool{}
		if !d.Values(&s, func(x uint64) { got[x] = true }) {
			t.Fatalf("n=%d: not exact", n)
		}
		if len(got) != len(want) {
			t.Errorf("n=%d: %d values, want %d", n, len(got), len(want))
		}
		for x := range want {
			if !got[x] {
				t.Errorf("n=%d: value %#x missing", n, x)
			}
		}
		d.Add(&s, 0xdeadbeef)
		d.Add(&s, 0xfeedface)
		if n == DistinctExactLimit && d.Values(&s, func(uint64) {}) {
			t.Errorf("sketch reports exact values")
		}
		d.Reset(&s)
	}
}

// TestDistinctAddAll: adding values in batches (AddAll) ends in the same state as adding
// them one by one (Add): counts, phase and, in the sketch phase, every register; values
// repeated within and across batches, a batch that crosses the switch to the sketch, and
// a slab whose budget for large sets is spent (a switch past 192 values).
func TestDistinctAddAll(t *testing.T) {
	for _, big := range []uint64{0, 1} {
		for _, n := range []int{0, 3, 150, 1000, 4096, 4097, 9000} {
			one, all := &Slab{BigLimit: big}, &Slab{BigLimit: big}
			var a, b Distinct
			xs := make([]uint64, n)
			for i := range xs {
				xs[i] = packet.Mix64(uint64(i % max(n*2/3, 1))) // a third repeated
			}
			for _, x := range xs {
				a.Add(one, x)
			}
			for lo := 0; lo < n; lo += 700 {
				b.AddAll(all, xs[lo:min(lo+700, n)])
			}
			b.AddAll(all, xs[:min(n, 50)]) // all seen
			if a.Exact() != b.Exact() || a.Count(one) != b.Count(all) || a.Floor() != b.Floor() {
				t.Fatalf("budget %d, n=%d: AddAll exact %v count %d, Add exact %v count %d",
					big, n, b.Exact(), b.Count(all), a.Exact(), a.Count(one))
			}
			if !a.Exact() && !slices.Equal(a.vals(one), b.vals(all)) {
				t.Fatalf("budget %d, n=%d: the sketches' registers differ", big, n)
			}
		}
	}
}
