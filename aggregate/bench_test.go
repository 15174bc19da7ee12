package aggregate

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// spoofed returns the i-th of an endless sequence of distinct pseudo-random IPv4 sources, as
// a flood of spoofed packets looks. The low 32 bits of i go through a bijective 32-bit mixer,
// the high bits into bytes 4..7, so no two i collide.
func spoofed(i uint64) packet.Addr {
	x := uint32(i)
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	var a packet.Addr
	binary.BigEndian.PutUint32(a[4:8], uint32(i>>32))
	a[10], a[11] = 0xff, 0xff
	binary.BigEndian.PutUint32(a[12:], x)
	return a
}

// zipfStream returns n indexes drawn from a Zipf distribution over [0, imax].
func zipfStream(n int, s float64, imax uint64) []uint64 {
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), s, 1, imax)
	out := make([]uint64, n)
	for i := range out {
		out[i] = z.Uint64()
	}
	return out
}

// benchSource is a per-source state of typical size.
type benchSource struct {
	Packets, Bytes uint64
	First, Last    int64
}

const benchTableCap = 1 << 20

func fullTable(b *testing.B) *Table[packet.Addr, benchSource] {
	b.Helper()
	tb := NewTable[packet.Addr, benchSource](benchTableCap, func(a *packet.Addr) uint64 { return a.Hash(7) })
	for i := range uint64(benchTableCap) {
		tb.Touch(spoofed(i))
	}
	return tb
}

// BenchmarkTableTouchMiss: a flood of new spoofed sources into a full table of 1M entries;
// every Touch evicts.
func BenchmarkTableTouchMiss(b *testing.B) {
	tb := fullTable(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		v, _ := tb.Touch(spoofed(benchTableCap + i))
		v.Packets++
	}
	if tb.Len() != benchTableCap {
		b.Fatal("table not full")
	}
}

// BenchmarkTableTouchHit: hit-heavy traffic on a full table, Zipf-distributed over its 1M
// sources (a few busy scanners, a long tail).
func BenchmarkTableTouchHit(b *testing.B) {
	tb := fullTable(b)
	idx := zipfStream(1<<20, 1.1, benchTableCap-1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		v, _ := tb.Touch(spoofed(idx[i&(len(idx)-1)]))
		v.Packets++
	}
	if tb.Evictions() != 0 {
		b.Fatal("hit benchmark evicted")
	}
}

// BenchmarkTableTouchHitUniform: every Touch hits, spread evenly over 1M entries (cache misses).
func BenchmarkTableTouchHitUniform(b *testing.B) {
	tb := fullTable(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		v, _ := tb.Touch(spoofed(packet.Mix64(i) & (benchTableCap - 1)))
		v.Packets++
	}
}

// BenchmarkMapBaselineHitUniform is the yardstick for the table benchmarks on a given machine:
// a Go map (no recency, no bound) read and written with the same keys as TableTouchHitUniform.
func BenchmarkMapBaselineHitUniform(b *testing.B) {
	m := make(map[packet.Addr]benchSource, benchTableCap)
	for i := range uint64(benchTableCap) {
		m[spoofed(i)] = benchSource{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		k := spoofed(packet.Mix64(i) & (benchTableCap - 1))
		v := m[k]
		v.Packets++
		m[k] = v
	}
}

// BenchmarkTopKAddFlood: distinct keys into a full summary: every Add replaces the minimum.
func BenchmarkTopKAddFlood(b *testing.B) {
	for _, capacity := range []int{100, 10_000, 1 << 16} {
		b.Run(strconv.Itoa(capacity), func(b *testing.B) {
			tk := NewTopK(capacity)
			for i := range uint64(capacity) {
				tk.Add(spoofed(i), 1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range uint64(b.N) {
				tk.Add(spoofed(uint64(capacity)+i), 1)
			}
		})
	}
}

// BenchmarkTopKAddZipf: a Zipf stream over 1M sources into a summary of 1000.
func BenchmarkTopKAddZipf(b *testing.B) {
	idx := zipfStream(1<<20, 1.1, 1<<20)
	keys := make([]packet.Addr, len(idx))
	for i, x := range idx {
		keys[i] = spoofed(x)
	}
	tk := NewTopK(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tk.Add(keys[i&(len(keys)-1)], 1)
	}
}

func BenchmarkHLLAddHash(b *testing.B) {
	for _, p := range []uint8{10, 14, 18} {
		b.Run("p"+strconv.Itoa(int(p)), func(b *testing.B) {
			h := NewHLL(p)
			b.ReportAllocs()
			for i := range uint64(b.N) {
				h.AddHash(packet.Mix64(i))
			}
		})
	}
}

func BenchmarkHLLEstimate(b *testing.B) {
	for _, p := range []uint8{10, 14} {
		b.Run("p"+strconv.Itoa(int(p)), func(b *testing.B) {
			h := NewHLL(p)
			for i := range uint64(100_000) {
				h.AddHash(packet.Mix64(i))
			}
			b.ReportAllocs()
			for range b.N {
				h.Estimate()
			}
		})
	}
}

// BenchmarkDistinctAdd: a source hitting 1, 20 or 300 distinct targets over and over (the
// steady state of each phase: inline, exact set, sketch).
func BenchmarkDistinctAdd(b *testing.B) {
	for _, n := range []int{1, 20, 300} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			vals := make([]uint64, n)
			for i := range vals {
				vals[i] = packet.Mix64(uint64(i) + 1)
			}
			var d Distinct
			b.ReportAllocs()
			for i := range b.N {
				d.Add(ts, vals[i%n])
			}
			if n <= DistinctExactLimit && d.Count(ts) != uint64(min(n, b.N)) {
				b.Fatal("miscounted")
			}
		})
	}
}

// BenchmarkDistinctFill: a fresh Distinct per 300 new values, all its growth steps included.
func BenchmarkDistinctFill(b *testing.B) {
	b.ReportAllocs()
	for i := range uint64(b.N) {
		var d Distinct
		for j := range uint64(300) {
			d.Add(ts, packet.Mix64(i<<20|j))
		}
	}
}

func BenchmarkDistinctCountSketch(b *testing.B) {
	var d Distinct
	for i := range uint64(10_000) {
		d.Add(ts, packet.Mix64(i))
	}
	b.ReportAllocs()
	for range b.N {
		d.Count(ts)
	}
}
