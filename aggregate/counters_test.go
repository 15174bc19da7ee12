package aggregate

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestLocalCountsExactly counts random frames through Local, flushing every few hundred
// like the workers do, and compares every shard counter with a plain count of the same
// frames. The ports are drawn so the port cache sees repeats, collisions and more distinct
// ports than it has slots.
func TestLocalCountsExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		l     Local
		c     Counters
		want  Totals
		slots = [...]int{0, 1, 2, 7}
	)
	hot := []uint16{23, 22, 80, 443, 0, 65535}
	for i := 0; i < 200000; i++ {
		h := packet.Header{TS: int64(1 + rng.IntN(1000)), WireLen: uint32(40 + rng.IntN(1500))}
		h.Result = packet.Result(rng.IntN(int(packet.NumResults)))
		if rng.IntN(4) != 0 {
			h.Result = packet.ResultIP
		}
		h.IPVersion = 4
		if rng.IntN(5) == 0 {
			h.IPVersion = 6
		}
		h.Proto = []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, 47}[rng.IntN(4)]
		h.L4 = rng.IntN(10) != 0
		h.TCPFlags = uint8(rng.IntN(256))
		if rng.IntN(2) == 0 {
			h.TCPFlags = packet.FlagSYN
		}
		h.DstPort = hot[rng.IntN(len(hot))]
		if rng.IntN(3) == 0 {
			h.DstPort = uint16(rng.IntN(65536))
		}
		slot := slots[rng.IntN(len(slots))]
		l.Count(&h, slot, &c)
		if rng.IntN(300) == 0 {
			l.Flush(&c)
		}

		want.Frames[h.Result]++
		if h.Result != packet.ResultIP {
			continue
		}
		v := 0
		if h.IPVersion == 6 {
			v = 1
		}
		want.Packets[v][ProtoIndex(&h)]++
		want.Bytes[v][ProtoIndex(&h)] += uint64(h.WireLen)
		want.Prefix[slot]++
		if !h.L4 {
			continue
		}
		switch h.Proto {
		case packet.ProtoTCP:
			want.Flags[h.TCPFlags]++
			if h.TCPFlags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN {
				want.Ports[PortsTCPSYN][h.DstPort]++
			}
		case packet.ProtoUDP:
			want.Ports[PortsUDP][h.DstPort]++
		}
	}
	l.Flush(&c)
	var got Totals
	got.Add(&c)
	if got.Frames != want.Frames || got.Packets != want.Packets || got.Bytes != want.Bytes ||
		got.Flags != want.Flags || got.Prefix != want.Prefix {
		t.Fatalf("small counters differ:\ngot  %v %v %v\nwant %v %v %v", got.Frames, got.Packets, got.Bytes, want.Frames, want.Packets, want.Bytes)
	}
	for k := range want.Ports {
		for p := range want.Ports[k] {
			if got.Ports[k][p] != want.Ports[k][p] {
				t.Fatalf("%s port %d: %d packets, want %d", PortKindNames[k], p, got.Ports[k][p], want.Ports[k][p])
			}
		}
	}
	if want.Ports[PortsTCPSYN][23] == 0 || want.Ports[PortsUDP][65535] == 0 {
		t.Fatal("the test drew no repeated ports")
	}
	// Flush leaves nothing behind: a second one adds nothing.
	l.Flush(&c)
	var again Totals
	again.Add(&c)
	if again.Ports != got.Ports || again.Frames != got.Frames {
		t.Fatal("a second Flush changed the shard")
	}
}

// TestTopPortsMatchesSort compares TopPorts' one-pass selection with sorting every port,
// on counters with many ties, rising and falling runs (each new port the best or the
// worst so far) and list lengths around the number of ports with packets.
func TestTopPortsMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := map[string]func(p int) uint64{
		"ties":    func(int) uint64 { return uint64(rng.IntN(4)) },
		"sparse":  func(int) uint64 { return uint64(max(0, rng.IntN(400)-390)) },
		"rising":  func(p int) uint64 { return uint64(p % 5000) },
		"falling": func(p int) uint64 { return uint64(70000 - p) },
		"empty":   func(int) uint64 { return 0 },
	}
	for name, f := range shapes {
		var counts [65536]uint64
		for p := range counts {
			counts[p] = f(p)
		}
		var all []PortCount
		for p, c := range counts {
			if c != 0 {
				all = append(all, PortCount{Port: uint16(p), Packets: c})
			}
		}
		slices.SortFunc(all, func(a, b PortCount) int {
			if a.Packets != b.Packets {
				return cmp.Compare(b.Packets, a.Packets)
			}
			return cmp.Compare(a.Port, b.Port)
		})
		for _, n := range []int{0, 1, 7, 100, len(all) - 1, len(all), len(all) + 1, 70000} {
			if n < 0 {
				continue
			}
			got := TopPorts(&counts, n)
			want := all[:min(n, len(all))]
			if got == nil || !slices.Equal(got, want) {
				t.Fatalf("%s, n=%d: got %d ports %v..., want %d %v...", name, n, len(got), got[:min(len(got), 5)], len(want), want[:min(len(want), 5)])
			}
		}
	}
}

// BenchmarkTopPorts takes the 100 busiest of 65536 port counters, as every scrape and
// report does: after a random-port flood (every port counted) and with a few busy ports.
func BenchmarkTopPorts(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	var flood, few [65536]uint64
	for p := range flood {
		flood[p] = uint64(1 + rng.IntN(1000))
	}
	for _, p := range []int{22, 23, 80, 443, 2323, 5555, 8080, 37215, 52869} {
		few[p] = uint64(1 + rng.IntN(100000))
	}
	for name, counts := range map[string]*[65536]uint64{"flood": &flood, "few": &few} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if len(TopPorts(counts, 100)) == 0 {
					b.Fatal("no ports")
				}
			}
		})
	}
}
