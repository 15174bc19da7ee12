package aggregate

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
)

// HLL precision bounds: 16 registers (26 % error) to 256 KiB (0.2 %).
const (
	HLLMinP = 4
	HLLMaxP = 18
)

// HLL is a HyperLogLog distinct counter over 64-bit hashes. Its state is plain (for
// checkpoints): register i holds the largest rank seen among hashes whose top P bits are i.
// Standard error is about 1.04/sqrt(2^P): 0.81 % at P=14 (16 KiB).
type HLL struct {
	P   uint8
	Reg []uint8
}

// NewHLL returns an empty sketch with 2^p registers; p is clamped to [HLLMinP, HLLMaxP].
func NewHLL(p uint8) *HLL {
	p = min(max(p, HLLMinP), HLLMaxP)
	return &HLL{P: p, Reg: make([]uint8, 1<<p)}
}

// hllSplit splits a hash into its register index (top p bits) and rank: one plus the number of
// leading zeros of the remaining 64-p bits, at most 64-p+1.
func hllSplit(x uint64, p uint8) (idx uint64, rank uint8) {
	// The sentinel bit just below the shifted-in zeros caps the count at 64-p.
	w := x<<p | 1<<(p-1)
	return x >> (64 - p), uint8(bits.LeadingZeros64(w)) + 1
}

// AddHash adds x, a well-mixed 64-bit hash (packet.Addr.Hash, packet.Mix64).
func (h *HLL) AddHash(x uint64) {
	idx, r := hllSplit(x, h.P)
	// A sketch not made by NewHLL (or a corrupt checkpoint) has no register here.
	if idx < uint64(len(h.Reg)) && r > h.Reg[idx] {
		h.Reg[idx] = r
	}
}

// Prefetch requests the register AddHash(x) will read, without waiting for it.
func (h *HLL) Prefetch(x uint64) {
	if idx := x >> (64 - h.P); idx < uint64(len(h.Reg)) {
		prefetch.Line(unsafe.Pointer(&h.Reg[idx]))
	}
}

// Merge folds o into h (register-wise max), so h estimates the union of both sets.
func (h *HLL) Merge(o *HLL) error {
	if o == nil {
		return errors.New("merge HLL: nil sketch")
	}
	if o.P != h.P || len(o.Reg) != len(h.Reg) {
		return fmt.Errorf("merge HLL: precision %d (%d registers) into precision %d (%d registers)",
			o.P, len(o.Reg), h.P, len(h.Reg))
	}
	for i, r := range o.Reg {
		h.Reg[i] = max(h.Reg[i], r)
	}
	return nil
}

// Estimate returns the estimated number of distinct hashes added, rounded. It scans all
// registers (about 1 ns per register): call it at report time, not per packet.
func (h *HLL) Estimate() uint64 {
	if h.P < HLLMinP || h.P > HLLMaxP {
		return 0
	}
	q := 64 - int(h.P)
	var c [64 - HLLMinP + 2]uint32
	for _, r := range h.Reg {
		c[min(int(r), q+1)]++
	}
	return ertlEstimate(c[:q+2], len(h.Reg))
}

// Reset empties the sketch, keeping its registers allocated.
func (h *HLL) Reset() { clear(h.Reg) }

// Validate reports whether a sketch (e.g. decoded from a checkpoint) is consistent.
func (h *HLL) Validate() error {
	if h.P < HLLMinP || h.P > HLLMaxP {
		return fmt.Errorf("HLL precision %d out of range [%d, %d]", h.P, HLLMinP, HLLMaxP)
	}
	if len(h.Reg) != 1<<h.P {
		return fmt.Errorf("HLL precision %d needs %d registers, have %d", h.P, 1<<h.P, len(h.Reg))
	}
	for i, r := range h.Reg {
		if int(r) > 64-int(h.P)+1 {
			return fmt.Errorf("HLL register %d holds rank %d, above the maximum %d", i, r, 64-int(h.P)+1)
		}
	}
	return nil
}

// alphaInf is the asymptotic HyperLogLog constant 1/(2 ln 2).
const alphaInf = 0.7213475204444817

// ertlEstimate is the improved raw estimator of Ertl, "New cardinality estimation algorithms
// for HyperLogLog sketches" (arXiv:1702.01284, algorithm 6). c is the register histogram:
// c[k] registers hold rank k, k = 0..q+1, with q = 64-p. The sigma and tau terms correct the
// ranges where registers are still zero or saturated, so no empirical bias table is needed and
// the estimate is unbiased from 0 to far beyond 2^32.
func ertlEstimate(c []uint32, m int) uint64 {
	q := len(c) - 2
	mf := float64(m)
	z := mf * hllTau(1-float64(c[q+1])/mf)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += mf * hllSigma(float64(c[0])/mf)
	est := alphaInf * mf * mf / z // z = +Inf (all registers zero) gives exactly 0
	if !(est < math.MaxUint64) {  // also catches NaN
		return math.MaxUint64
	}
	return uint64(math.Round(est))
}

// hllSigma is x + sum_{k>=1} x^(2^k) 2^(k-1), summed until it stops changing.
func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

// hllTau is (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, summed until it stops changing.
func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}
