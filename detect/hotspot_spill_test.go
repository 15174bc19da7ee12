package detect

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// TestSpilledBeforeDenseExact marks every other address of a dark /16 as spilled, as a
// scan's spills do: a destination with a dense index is found spilled exactly when it was
// (its bit is its index), where a hashed bit would make some of the others look spilled
// too (about 3 % of them with 32 768 marks in the 1 Mbit filter). Destinations without a
// dense index keep the hashed bit: each marked one is found.
func TestSpilledBeforeDenseExact(t *testing.T) {
	hw := hotWorker{ndense: 1 << 16}
	addr := func(ix int32) packet.Addr { return packet.AddrFrom4([]byte{198, 18, byte(ix >> 8), byte(ix)}) }
	for ix := int32(0); ix < 1<<16; ix += 2 {
		a := addr(ix)
		markBit(&hw.back, spillBitOf(&a, ix))
	}
	wrong := 0
	for ix := int32(0); ix < 1<<16; ix++ {
		if hw.spilled(ix) != (ix%2 == 0) {
			wrong++
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of 65 536 dense destinations found spilled wrongly", wrong)
	}
	for i := range 1000 {
		a := addr(int32(i))
		a[12] = 10 // another /8, no dense index
		markBit(&hw.back, spillBitOf(&a, -1))
		hw.dsts = append(hw.dsts, a)
	}
	for i := range hw.dsts {
		if !hw.spilled(hw.ndense + int32(i)) {
			t.Fatalf("destination %d without a dense index not found spilled", i)
		}
	}
}

// TestHotCounterExact counts random destinations' records (a few sources sending many
// packets among many sending one, random ports, every kind) and checks every summary
// against a count made with maps: packets, kinds, first and last, distinct sources, the
// two busiest ports and the top sources (most packets, then the first seen; listed in
// topCmp's order).
func TestHotCounterExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	var hc hotCounter
	dst := packet.AddrFrom4([]byte{203, 0, 113, 7})
	for round := range 200 {
		n := 3 + rng.IntN(3000)
		if round%10 == 0 {
			n = 3 + rng.IntN(8)
		}
		heavy := rng.IntN(6)
		g := make([]hotRec, n)
		for i := range g {
			r := &g[i]
			r.TS = int64(rng.IntN(1 << 30))
			k := rng.IntN(1 << 20)
			if rng.IntN(3) == 0 {
				k = rng.IntN(heavy + 1) // a busy sender
			}
			r.Src = packet.AddrFrom4([]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
			r.Port = uint16(rng.IntN(6)) // 0: no port level
			if rng.IntN(4) == 0 {
				r.Port = uint16(rng.IntN(65536))
			}
			r.Bits = uint8(rng.IntN(1 << 5))
			r.Proto = uint8(1 << rng.IntN(5))
		}
		out := hc.summarize(nil, g, &dst, round%7 == 0)
		// The ports by packets, then first seen.
		type pc struct {
			port  uint16
			n     int
			first int
		}
		var ports []pc
		at := map[uint16]int{}
		for i, r := range g {
			if r.Port == 0 {
				continue
			}
			if j, ok := at[r.Port]; ok {
				ports[j].n++
				continue
			}
			at[r.Port] = len(ports)
			ports = append(ports, pc{r.Port, 1, i})
		}
		slices.SortFunc(ports, func(a, b pc) int {
			if a.n != b.n {
				return b.n - a.n
			}
			return a.first - b.first
		})
		want := []uint16{0}
		for _, p := range ports[:min(len(ports), hotPorts)] {
			want = append(want, p.port)
		}
		if len(out) != len(want) {
			t.Fatalf("round %d: %d summaries, want %d", round, len(out), len(want))
		}
		for k, port := range want {
			s := out[k]
			var w HotSummary
			w.Dst, w.Port, w.Estimated, w.First, w.Last = dst, port, round%7 == 0, 1<<62, -1
			count := map[packet.Addr]uint64{}
			first := map[packet.Addr]int{}
			for i, r := range g {
				if port != 0 && r.Port != port {
					continue
				}
				w.Packets++
				w.First, w.Last = min(w.First, r.TS), max(w.Last, r.TS)
				w.Protos |= r.Proto
				w.SYN += uint64(r.Bits & hotBitSYN)
				if r.Bits&hotBitUDP != 0 {
					w.UDP++
					if r.Bits&hotBitP2P != 0 {
						w.P2P++
					}
				}
				if r.Bits&hotBitReply != 0 {
					w.Replies++
				}
				if r.Bits&hotBitPair != 0 {
					w.Pairs++
				}
				if count[r.Src]++; count[r.Src] == 1 {
					first[r.Src] = i
				}
			}
			w.Sources = uint64(len(count))
			var top []hotSrc
			for src, c := range count {
				top = append(top, hotSrc{Src: src, Packets: c})
			}
			slices.SortFunc(top, func(a, b hotSrc) int {
				if a.Packets != b.Packets {
					return int(b.Packets) - int(a.Packets)
				}
				return first[a.Src] - first[b.Src]
			})
			w.NTop = uint8(copy(w.Top[:], top))
			slices.SortFunc(w.Top[:w.NTop], topCmp)
			if s != w {
				t.Fatalf("round %d, port %d:\n got %+v\nwant %+v", round, port, s, w)
			}
		}
	}
}

// TestDenseSpaceWithinFilter: a dense index is its own bit of the filter of spilled
// destinations (spillBit), which holds only while no dark space with dense indexes is larger
// than the filter.
func TestDenseSpaceWithinFilter(t *testing.T) {
	if aggregate.MaxExactDst > 1<<filterShift {
		t.Fatalf("dense spaces of up to %d addresses, a filter of %d bits: dense indexes would share bits", aggregate.MaxExactDst, 1<<filterShift)
	}
	px, err := aggregate.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("10.32.0.0/12")}, aggregate.NewPrefixSlots())
	if err != nil {
		t.Fatal(err)
	}
	hw := hotWorker{px: px, ndense: int32(px.ExactSize())}
	if hw.ndense != aggregate.MaxExactDst {
		t.Fatalf("a /12 has %d dense indexes, want %d", hw.ndense, aggregate.MaxExactDst)
	}
	for _, id := range []int32{0, 5, hw.ndense - 1} {
		if hw.spilled(id) {
			t.Fatalf("dense index %d spilled before any mark", id)
		}
		markBit(&hw.back, hw.spillBit(id))
		if !hw.spilled(id) || hw.spillBit(id) != uint32(id) {
			t.Fatalf("dense index %d: bit %d, spilled %v after its mark", id, hw.spillBit(id), hw.spilled(id))
		}
	}
}
