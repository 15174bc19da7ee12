package detect

import (
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

func TestIndexesMatchNames(t *testing.T) {
	for i, name := range map[int]string{detScanner: Scanner, detTelnetSweep: TelnetSweep, detTelnetSurge: TelnetSurge,
		detUDPThenSYN: UDPThenSYN, detBackscatter: Backscatter, detFingerprint: Fingerprint} {
		if descriptors[i].Name != name {
			t.Errorf("detector index %d is %q, want %q", i, descriptors[i].Name, name)
		}
	}
	for i, name := range map[int]string{classHorizontal: "horizontal", classVertical: "vertical", classMixed: "mixed"} {
		if descriptors[detScanner].Classes[i] != name {
			t.Errorf("scanner class %d is %q, want %q", i, descriptors[detScanner].Classes[i], name)
		}
	}
	for i, name := range map[int]string{classMirai: "mirai", classOther: "other"} {
		if descriptors[detTelnetSweep].Classes[i] != name {
			t.Errorf("telnet class %d is %q, want %q", i, descriptors[detTelnetSweep].Classes[i], name)
		}
	}
	for i, name := range map[int]string{payloadDHT: "dht", payloadUTP: "utp", payloadOther: "other"} {
		if PayloadKinds[i] != name {
			t.Errorf("payload %d is %q, want %q", i, PayloadKinds[i], name)
		}
	}
	for i, name := range map[int]string{toolMirai: "mirai", toolZMap: "zmap", toolMasscan: "masscan", toolNmap: "nmap"} {
		if Tools[i] != name {
			t.Errorf("tool %d is %q, want %q", i, Tools[i], name)
		}
	}
	if BackscatterKinds[bsUnreach] != "icmp_unreachable" || BackscatterKinds[bs6Param] != "icmp6_param_problem" {
		t.Errorf("backscatter kind indexes out of step with BackscatterKinds")
	}
}

// TestStateSize bounds the memory per tracked key: SourceState is paid for every slot of the
// pipeline's source table, the flow and victim entries for every slot of this engine's.
func TestStateSize(t *testing.T) {
	src := unsafe.Sizeof(SourceState{})
	flowE := unsafe.Sizeof(aggregate.TableEntry[flowKey, flow]{})
	victimE := unsafe.Sizeof(aggregate.TableEntry[packet.Addr, victim]{})
	epE := unsafe.Sizeof(aggregate.TableEntry[packet.Addr, episode]{})
	t.Logf("SourceState %d B, flow table entry %d B, victim table entry %d B, episode table entry %d B, rate window %d B + 8 B per min_rate_per_minute",
		src, flowE, victimE, epE, unsafe.Sizeof(rateWin{}))
	// 328: with the pipeline's 24 bytes and the table's 32, an entry is six cache lines.
	if src > 328 {
		t.Errorf("SourceState is %d bytes, budget 328", src)
	}
	if flowE > 96 || victimE > 168 {
		t.Errorf("table entries grew: flow %d (budget 96), victim %d (budget 168)", flowE, victimE)
	}

	// Worst case heap per source: each of its three Distinct sets at its largest (the last
	// exact table, 8192 slots for up to 4096 values, is 64 KiB; the sketch after it is
	// 1 KiB). Sets above 256 slots come from the slab's budget for large sets
	// (aggregate.DefaultBigLimit, 64 MiB per engine), so a flood of big scanners cannot
	// grow the slab past it.
	var st SourceState
	var slab aggregate.Slab
	worst := 0
	for n := 1; n <= aggregate.DistinctExactLimit+1; n++ {
		st.Scan.Targets.Add(&slab, packet.Mix64(uint64(n)))
		worst = max(worst, st.Scan.Targets.Bytes())
	}
	t.Logf("slab memory per source, worst case: 3 x %d B = %d B (+ %d B inline)", worst, 3*worst, src)
	if worst > 65536 {
		t.Errorf("a Distinct holds up to %d bytes, expected at most 65536", worst)
	}
}

// TestPacketDoesNotAllocate checks the common cases of the packet path allocate nothing:
// a new one-packet source, a big scanner past its exact sets, a UDP datagram creating a flow,
// and a lone backscatter packet.
func TestPacketDoesNotAllocate(t *testing.T) {
	cfg := testConfig(t)
	h := newHarness(t, cfg)
	big := horiz(aggregate.DistinctExactLimit+100, t0)
	h.feed(big...) // past the exact limit: sketches allocated
	h.sink.take()
	// Headers are built beforehand: the test helpers format addresses (and allocate).
	const runs = 2000
	mk := func(f func(i int, ts int64) packet.Header) []packet.Header {
		return seq(runs+1, t0+300*sec, 1, f) // AllocsPerRun runs once more to warm up
	}
	cases := map[string][]packet.Header{
		"scanner packet": mk(func(i int, ts int64) packet.Header {
			return syn(scanSrc, ip4("198.51.0.0", i), uint16(i), ts)
		}),
		"new source": mk(func(i int, ts int64) packet.Header {
			return syn(ip4("100.64.0.0", i), "203.0.113.5", 445, ts)
		}),
		"UDP flow": mk(func(i int, ts int64) packet.Header {
			return udp(ip4("100.65.0.0", i), "203.0.113.6", 6881, ts, utpSYN)
		}),
		"backscatter": mk(func(i int, ts int64) packet.Header {
			return tcp(ip4("100.66.0.0", i), "203.0.113.7", packet.FlagRST, ts)
		}),
	}
	for name, pkts := range cases {
		i := 0
		f := func() {
			p := &pkts[i]
			i++
			st, _ := h.srcs.Touch(p.Src)
			h.e.Packet(p, st)
		}
		if a := testing.AllocsPerRun(runs, f); a != 0 {
			t.Errorf("%s: %.2f allocations per packet", name, a)
		}
	}
}

// BenchmarkPacket measures the packet path on a mix: background one-packet sources, one big
// scanner, UDP flows and backscatter.
func BenchmarkPacket(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxFlows = 1 << 16
	h := newHarness(b, cfg)
	h.srcs = newSourceTable(1 << 16)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs)
	pkts := make([]packet.Header, 4096)
	for i := range pkts {
		ts := t0 + int64(i)*int64(1e6)
		switch i % 4 {
		case 0:
			pkts[i] = syn(ip4("100.64.0.0", i), ip4("203.0.113.0", i), uint16(i), ts)
		case 1:
			pkts[i] = syn(scanSrc, ip4("198.51.0.0", i), 80, ts)
		case 2:
			pkts[i] = udp(ip4("100.65.0.0", i), "203.0.113.6", 6881, ts, utpSYN)
		default:
			pkts[i] = tcp(ip4("100.66.0.0", i%64), ip4("203.0.113.0", i), packet.FlagSYN|packet.FlagACK, ts)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		p := &pkts[n%len(pkts)]
		st, _ := h.srcs.Touch(p.Src)
		h.e.Packet(p, st)
	}
}

// TestTablesGrowWithActiveEpisodes: the tables grow (and move their entries) while
// episodes are active; Advance must still end each with its own final values, and a source
// whose episode ended must start afresh.
func TestTablesGrowWithActiveEpisodes(t *testing.T) {
	cfg := only(testConfig(t), TelnetSweep, Fingerprint)
	cfg.MaxFlows = 1 << 14
	h := newHarness(t, cfg)
	h.srcs = newSourceTable(1 << 14)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs)
	const bots = 1500 // more than the 1024 slots the tables start with
	var pkts []packet.Header
	for i := range 20 {
		for b := range bots {
			p := syn(ip4("100.64.0.0", b), ip4("203.0.113.0", i), 23, t0+int64(i)*sec+int64(b))
			p.Seq = p.Dst.V4()
			pkts = append(pkts, p)
		}
	}
	h.feed(pkts...)
	starts := h.sink.take()
	all := starts
	if got := len(starts); got != 2*bots {
		t.Fatalf("%d start events, want %d (a sweep and a mirai label per bot)", got, 2*bots)
	}
	last := t0 + 19*sec + bots
	// More sources grow the source table again: every entry moves.
	h.feed(seq(5000, last, 1, func(i int, ts int64) packet.Header {
		return syn(ip4("100.80.0.0", i), "198.51.100.9", 80, ts)
	})...)
	h.e.Advance(last + 5000 + win + sec)
	ends := h.sink.take()
	all = append(all, ends...)
	if len(ends) != 2*bots {
		t.Fatalf("%d end events, want %d", len(ends), 2*bots)
	}
	for _, ev := range ends {
		switch x := ev.Entry.(type) {
		case *TelnetSweepEntry:
			if x.Packets != 20 || x.Targets != 20 || !x.Mirai || x.FirstSeen < Time(t0) || x.LastSeen != x.FirstSeen+Time(19*sec) {
				t.Fatalf("sweep ended with %+v", *x)
			}
		case *ToolEntry:
			if x.Packets != 20 || x.Probes != 20 || x.Tool != "mirai" || x.LastSeen != x.FirstSeen+Time(19*sec) {
				t.Fatalf("tool ended with %+v", *x)
			}
		}
	}
	if n := h.e.eps.Len(); n != 0 {
		t.Fatalf("%d episode records left after every episode ended", n)
	}
	// A bot coming back opens a new window: one probe is no sweep, but a new mirai label.
	p := syn(ip4("100.64.0.0", 7), "203.0.113.200", 23, last+5000+2*win)
	p.Seq = p.Dst.V4()
	h.feed(p)
	back := h.sink.take()
	all = append(all, back...)
	checkEvents(t, back, []ev{{Fingerprint, Start, "mirai", ToolEntry{Src: ipOf(ip4("100.64.0.0", 7)), Tool: "mirai",
		Packets: 1, Probes: 1, FirstSeen: Time(p.TS), LastSeen: Time(p.TS)}}})
	st := h.srcs.Get(p.Src)
	if st.Tel.Packets != 1 || st.Moved != 0 || st.FP.Labels != 1<<toolMirai {
		t.Fatalf("returning bot's state: telnet packets %d, moved %03b, tool labels %04b (the episode stays in place)",
			st.Tel.Packets, st.Moved, st.FP.Labels)
	}
	h.finish(p.TS)
	all = append(all, h.sink.take()...)
	checkCounters(t, h.c, all)
	if a := h.c.Active[detFingerprint].Load() + h.c.Active[detTelnetSweep].Load(); a != 0 {
		t.Fatalf("%d episodes still active after Finish", a)
	}
}
