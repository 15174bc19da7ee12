package aggregate

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

const testSeed = 0x5eed

// hashAddr is a.Hash(seed) for an Addr that is not addressable (a call's result).
func hashAddr(a packet.Addr, seed uint64) uint64 { return a.Hash(seed) }

// nthAddr returns the i-th of a sequence of distinct addresses (IPv6 for i >= 2^32).
func nthAddr(i uint64) packet.Addr {
	if i < 1<<32 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i))
		return packet.AddrFrom4(b[:])
	}
	var a packet.Addr
	a[0] = 0x20
	binary.BigEndian.PutUint64(a[8:], i)
	return a
}

func TestHLLAccuracy(t *testing.T) {
	// One sketch grows through every checkpoint; each address is added twice, since
	// duplicates must not count.
	checkpoints := []uint64{0, 1, 2, 3, 10, 50, 100, 1_000, 10_000, 50_000, 100_000, 1_000_000, 10_000_000}
	h := NewHLL(14)
	var added uint64
	for _, n := range checkpoints {
		for ; added < n; added++ {
			x := hashAddr(nthAddr(added), testSeed)
			h.AddHash(x)
			h.AddHash(x)
		}
		got := h.Estimate()
		t.Logf("n=%d: estimate %d", n, got)
		switch {
		case n <= 100:
			if got+1 < n || got > n+1 {
				t.Errorf("n=%d: estimate %d, want within ±1", n, got)
			}
		default:
			if rel := math.Abs(float64(got)-float64(n)) / float64(n); rel > 0.02 {
				t.Errorf("n=%d: estimate %d, relative error %.4f > 0.02", n, got, rel)
			}
		}
	}
}

func TestHLLExactForEveryTinyCount(t *testing.T) {
	h := NewHLL(14)
	for n := uint64(1); n <= 100; n++ {
		h.AddHash(hashAddr(nthAddr(n), testSeed))
		if got := h.Estimate(); got+1 < n || got > n+1 {
			t.Fatalf("n=%d: estimate %d", n, got)
		}
	}
}

// simulatedSketch draws the registers of a p-precision sketch after n distinct hashes under the
// Poisson model (each register sees Poisson(n/m) hashes; P(register <= r) = exp(-n/m 2^-r)),
// which reaches cardinalities far beyond what a test can add one by one.
func simulatedSketch(rng *rand.Rand, p uint8, n float64) *HLL {
	h := NewHLL(p)
	q := 64 - int(p)
	lambda := n / float64(len(h.Reg))
	for i := range h.Reg {
		u := 1 - rng.Float64() // (0, 1]
		e := -math.Log(u)
		r := 0
		if e < lambda {
			r = int(math.Ceil(math.Log2(lambda / e)))
		}
		h.Reg[i] = uint8(min(r, q+1))
	}
	return h
}

func TestHLLUnbiasedOverWholeRange(t *testing.T) {
	// Averaged over many p=10 sketches the estimate must be centred on the truth everywhere:
	// the small range, the hand-over region near 2.5 m, and close to the 64-bit limit. Under the
	// Poisson model the truth itself varies (by sqrt(n)), so the bound is 4 standard errors of
	// the mean; the per-sketch spread must not exceed the HLL's 1.04/sqrt(m) (3.25 %) by much.
	const sketches = 400
	for _, n := range []float64{5, 100, 1000, 2500, 5000, 20_000, 1e6, 1e9, 1e12, 1e15, 1e18, 1e19} {
		rng := rand.New(rand.NewPCG(uint64(n), 9))
		var sum, sumSq float64
		for range sketches {
			e := float64(simulatedSketch(rng, 10, n).Estimate())
			sum += e
			sumSq += e * e
		}
		mean := sum / sketches
		sd := math.Sqrt(max(sumSq/sketches-mean*mean, 0))
		stderr := sd / math.Sqrt(sketches)
		if math.Abs(mean-n) > 4*stderr+0.5 {
			t.Errorf("n=%g: mean estimate %.6g, off by %.2f standard errors", n, mean, (mean-n)/stderr)
		}
		// Variances add: the sketch's (1.04/sqrt(m))^2 and the Poisson truth's 1/n.
		if want := math.Sqrt(1.04*1.04/1024 + 1/n); sd/n > 1.2*want {
			t.Errorf("n=%g: relative spread %.4f, want about %.4f", n, sd/n, want)
		}
	}
}

func TestHLLMerge(t *testing.T) {
	a, b := NewHLL(14), NewHLL(14)
	for i := range uint64(60_000) {
		a.AddHash(hashAddr(nthAddr(i), testSeed))
	}
	for i := uint64(40_000); i < 100_000; i++ {
		b.AddHash(hashAddr(nthAddr(i), testSeed))
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if got := a.Estimate(); math.Abs(float64(got)-100_000)/100_000 > 0.02 {
		t.Errorf("union estimate %d, want 100000 ±2%%", got)
	}
	before := a.Estimate()
	if err := a.Merge(b); err != nil || a.Estimate() != before {
		t.Errorf("merging again changed the estimate: %d -> %d (err %v)", before, a.Estimate(), err)
	}

	tests := []struct {
		name string
		o    *HLL
	}{
		{"nil", nil},
		{"other precision", NewHLL(12)},
		{"short registers", &HLL{P: 14, Reg: make([]uint8, 10)}},
	}
	for _, tt := range tests {
		if err := a.Merge(tt.o); err == nil {
			t.Errorf("%s: Merge accepted", tt.name)
		}
	}
	if a.Estimate() != before {
		t.Error("a rejected Merge changed the sketch")
	}
}

func TestHLLNewClampsAndReset(t *testing.T) {
	for _, tt := range []struct{ in, want uint8 }{{0, 4}, {4, 4}, {10, 10}, {18, 18}, {30, 18}} {
		h := NewHLL(tt.in)
		if h.P != tt.want || len(h.Reg) != 1<<tt.want {
			t.Errorf("NewHLL(%d): P=%d, %d registers", tt.in, h.P, len(h.Reg))
		}
	}
	h := NewHLL(8)
	for i := range uint64(1000) {
		h.AddHash(packet.Mix64(i))
	}
	h.Reset()
	if h.Estimate() != 0 || len(h.Reg) != 256 {
		t.Errorf("after Reset: estimate %d, %d registers", h.Estimate(), len(h.Reg))
	}
}

func TestHLLValidate(t *testing.T) {
	tests := []struct {
		name string
		h    HLL
		ok   bool
	}{
		{"fresh", *NewHLL(12), true},
		{"zero value", HLL{}, false},
		{"precision too high", HLL{P: 19, Reg: make([]uint8, 1<<19)}, false},
		{"wrong register count", HLL{P: 12, Reg: make([]uint8, 100)}, false},
		{"rank too large", HLL{P: 4, Reg: []uint8{15: 62}}, false},
		{"largest rank", HLL{P: 4, Reg: []uint8{15: 61}}, true},
	}
	for _, tt := range tests {
		if err := tt.h.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		// Whatever the state, using it must not panic.
		tt.h.AddHash(math.MaxUint64)
		tt.h.Estimate()
	}
}

func TestHLLSplit(t *testing.T) {
	tests := []struct {
		x    uint64
		p    uint8
		idx  uint64
		rank uint8
	}{
		{0, 14, 0, 51},                     // all zero: the rank saturates at 64-p+1
		{math.MaxUint64, 14, 1<<14 - 1, 1}, // first bit after the index is one
		{1 << 49, 14, 0, 1},                // bit 49 is the first after a 14-bit index
		{1 << 48, 14, 0, 2},                // one leading zero
		{1, 14, 0, 50},                     // 49 leading zeros
		{1<<63 | 1<<40, 4, 1 << 3, 20},     // index 8, then 19 zeros
		{0xF << 60, 4, 15, 61},             // index 15, rest zero
	}
	for _, tt := range tests {
		idx, rank := hllSplit(tt.x, tt.p)
		if idx != tt.idx || rank != tt.rank {
			t.Errorf("hllSplit(%#x, %d) = %d, %d; want %d, %d", tt.x, tt.p, idx, rank, tt.idx, tt.rank)
		}
	}
}
