package detect

import (
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

const toolSrc = "192.0.2.66"

// probe is a SYN probe from toolSrc to dark IP i, shaped by the named fingerprints
// ("mirai", "zmap", "masscan", "nmap"; none = a plain SYN matching nothing).
func probe(i int, ts int64, tools ...string) packet.Header {
	h := syn(toolSrc, ip4("203.0.113.0", i), 8080, ts)
	for _, tool := range tools {
		switch tool {
		case "mirai":
			h.Seq = h.Dst.V4()
		case "zmap":
			h.IPID = zmapIPID
		case "masscan":
			h.IPID = uint16(h.Dst.V4() ^ uint32(h.DstPort) ^ h.Seq)
		case "nmap":
			h.Window, h.TTL = 1024, 45
			h.Opts = packet.TCPOptions{Kinds: 1 << 2, Len: 4, Count: 1, MSS: 1460}
		}
	}
	return h
}

func toolEv(p Phase, tool string, packets, probes uint64, first, last int64) ev {
	return ev{Fingerprint, p, tool, ToolEntry{Src: ipOf(toolSrc), Tool: tool, Packets: packets, Probes: probes,
		FirstSeen: Time(first), LastSeen: Time(last)}}
}

func TestToolMatches(t *testing.T) {
	v6 := func(h packet.Header) packet.Header {
		h.IPVersion, h.Src, h.Dst = 6, addr("2001:db8::66"), addr("2001:db8:1::1")
		return h
	}
	with := func(h packet.Header, f func(*packet.Header)) packet.Header { f(&h); return h }
	cases := []struct {
		name string
		h    packet.Header
		want uint8
	}{
		{"plain", probe(1, t0), 0},
		{"mirai", probe(1, t0, "mirai"), 1 << toolMirai},
		{"zmap", probe(1, t0, "zmap"), 1 << toolZMap},
		{"masscan", probe(1, t0, "masscan"), 1 << toolMasscan},
		{"nmap TTL 59", with(probe(1, t0, "nmap"), func(h *packet.Header) { h.TTL = 59 }), 1 << toolNmap},
		{"nmap TTL 60", with(probe(1, t0, "nmap"), func(h *packet.Header) { h.TTL = 60 }), 0},
		{"nmap window 1025", with(probe(1, t0, "nmap"), func(h *packet.Header) { h.Window = 1025 }), 0},
		{"nmap MSS 1440", with(probe(1, t0, "nmap"), func(h *packet.Header) { h.Opts.MSS = 1440 }), 0},
		{"nmap MSS and window scale", with(probe(1, t0, "nmap"), func(h *packet.Header) {
			h.Opts.Kinds |= 1 << 3
			h.Opts.Count, h.Opts.Len = 2, 8
		}), 0},
		{"nmap MSS padded with NOPs", with(probe(1, t0, "nmap"), func(h *packet.Header) { h.Opts.Len = 8 }), 0},
		{"mirai and zmap", probe(1, t0, "mirai", "zmap"), 1<<toolMirai | 1<<toolZMap},
		{"IPv6 zmap ID is not zmap", v6(probe(1, t0, "zmap")), 0},
		{"IPv6 nmap", v6(probe(1, t0, "nmap")), 1 << toolNmap},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := toolMatches(&tc.h); got != tc.want {
				t.Fatalf("toolMatches = %04b, want %04b", got, tc.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	S := func(i int) int64 { return t0 + int64(i)*sec }
	cases := []struct {
		name  string
		steps []step
	}{
		{"one Mirai probe labels the source", []step{
			{pkts: []packet.Header{probe(0, S(0), "mirai")}, want: []ev{toolEv(Start, "mirai", 1, 1, S(0), S(0))}},
			{finish: S(1), want: []ev{toolEv(End, "mirai", 1, 1, S(0), S(0))}},
		}},
		{"one ZMap probe is not enough", []step{
			{pkts: []packet.Header{probe(0, S(0), "zmap")}, finish: S(1)},
		}},
		{"two ZMap probes label", []step{
			{pkts: []packet.Header{probe(0, S(0), "zmap"), probe(1, S(1), "zmap")}, want: []ev{toolEv(Start, "zmap", 2, 2, S(0), S(1))}},
			{finish: S(2), want: []ev{toolEv(End, "zmap", 2, 2, S(0), S(1))}},
		}},
		{"the label stays for the episode", []step{
			{pkts: []packet.Header{probe(0, S(0), "zmap"), probe(1, S(1), "zmap"), probe(2, S(2)), probe(3, S(3))},
				want: []ev{toolEv(Start, "zmap", 2, 2, S(0), S(1))}},
			{finish: S(4), want: []ev{toolEv(End, "zmap", 2, 4, S(0), S(3))}},
		}},
		{"half is not most", []step{
			{pkts: []packet.Header{probe(0, S(0)), probe(1, S(1)), probe(2, S(2), "zmap"), probe(3, S(3), "zmap")}, finish: S(4)},
		}},
		{"more than half", []step{
			{pkts: []packet.Header{probe(0, S(0)), probe(1, S(1), "masscan"), probe(2, S(2), "masscan")},
				want: []ev{toolEv(Start, "masscan", 2, 3, S(0), S(2))}},
			{finish: S(4), want: []ev{toolEv(End, "masscan", 2, 3, S(0), S(2))}},
		}},
		{"nmap", []step{
			{pkts: []packet.Header{probe(0, S(0), "nmap")}, want: []ev{toolEv(Start, "nmap", 1, 1, S(0), S(0))}},
			{finish: S(1), want: []ev{toolEv(End, "nmap", 1, 1, S(0), S(0))}},
		}},
		{"two tools at once", []step{
			{pkts: []packet.Header{probe(0, S(0), "mirai", "zmap"), probe(1, S(1), "mirai", "zmap")},
				want: []ev{toolEv(Start, "mirai", 1, 1, S(0), S(0)), toolEv(Start, "zmap", 2, 2, S(0), S(1))}},
			{finish: S(2), want: []ev{toolEv(End, "mirai", 2, 2, S(0), S(1)), toolEv(End, "zmap", 2, 2, S(0), S(1))}},
		}},
		{"gap == window keeps the episode", []step{
			{pkts: []packet.Header{probe(0, S(0), "mirai")}, want: []ev{toolEv(Start, "mirai", 1, 1, S(0), S(0))}},
			{pkts: []packet.Header{probe(1, S(0)+win)}},
			{finish: S(0) + win, want: []ev{toolEv(End, "mirai", 1, 2, S(0), S(0)+win)}},
		}},
		{"gap == window+1ns starts a new episode", []step{
			{pkts: []packet.Header{probe(0, S(0), "mirai")}, want: []ev{toolEv(Start, "mirai", 1, 1, S(0), S(0))}},
			{pkts: []packet.Header{probe(1, S(0)+win+1, "mirai")}, want: []ev{
				toolEv(End, "mirai", 1, 1, S(0), S(0)),
				toolEv(Start, "mirai", 1, 1, S(0)+win+1, S(0)+win+1)}},
			{finish: S(1) + win, want: []ev{toolEv(End, "mirai", 1, 1, S(0)+win+1, S(0)+win+1)}},
		}},
		{"gap == window keeps an unlabelled episode", []step{
			{pkts: []packet.Header{probe(0, S(0)), probe(1, S(0)+win, "zmap"), probe(2, S(1)+win, "zmap")},
				want: []ev{toolEv(Start, "zmap", 2, 3, S(0), S(1)+win)}},
			{finish: S(2) + win, want: []ev{toolEv(End, "zmap", 2, 3, S(0), S(1)+win)}},
		}},
		{"gap == window+1ns starts a new unlabelled episode", []step{
			{pkts: []packet.Header{probe(0, S(0)), probe(1, S(0)+win+1, "zmap"), probe(2, S(1)+win, "zmap")},
				want: []ev{toolEv(Start, "zmap", 2, 2, S(0)+win+1, S(1)+win)}},
			{finish: S(2) + win, want: []ev{toolEv(End, "zmap", 2, 2, S(0)+win+1, S(1)+win)}},
		}},
		{"Advance ends a quiet episode", []step{
			{pkts: []packet.Header{probe(0, S(0), "nmap")}, want: []ev{toolEv(Start, "nmap", 1, 1, S(0), S(0))}},
			{advance: S(0) + win + 1, want: []ev{toolEv(End, "nmap", 1, 1, S(0), S(0))}},
			{finish: S(0) + win + 2},
		}},
		{"non-SYN packets are not probes", []step{
			{pkts: []packet.Header{func() packet.Header {
				h := probe(0, S(0), "mirai")
				h.TCPFlags |= packet.FlagACK
				return h
			}()}, finish: S(1)},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, only(testConfig(t), Fingerprint), tc.steps)
		})
	}
}

func TestFingerprintPacketCounters(t *testing.T) {
	h := newHarness(t, only(testConfig(t), Fingerprint))
	h.feed(probe(0, t0, "mirai"), probe(1, t0+1, "mirai", "zmap"), probe(2, t0+2, "masscan"), probe(3, t0+3, "nmap"), probe(4, t0+4))
	want := [4]uint64{toolMirai: 2, toolZMap: 1, toolMasscan: 1, toolNmap: 1}
	h.e.Advance(t0 + 5) // the pipeline's end of a batch publishes the tallies
	for i := range want {
		if got := h.c.FingerprintPackets[i].Load(); got != want[i] {
			t.Errorf("FingerprintPackets[%s] = %d, want %d", Tools[i], got, want[i])
		}
	}
}

// TestRecordSlotHint: a source's packets find its episode record through the slot its
// state remembers (ToolWindow.Rec), and never take another source's record for theirs when
// that slot was freed and reused.
func TestRecordSlotHint(t *testing.T) {
	cfg := only(testConfig(t), Fingerprint)
	h := newHarness(t, cfg)
	h.legacyTools() // records: the hint is theirs
	mirai := func(src string, i int, ts int64) packet.Header {
		p := syn(src, ip4("203.0.113.0", i), 23, ts)
		p.Seq = p.Dst.V4()
		return p
	}
	a, b := "192.0.2.1", "192.0.2.2"
	h.feed(mirai(a, 0, t0))
	stA := h.srcs.Get(addr(a))
	if stA.FP.Rec == 0 || stA.Moved&epFP == 0 {
		t.Fatalf("a's episode record is not remembered: Rec %d, Moved %b", stA.FP.Rec, stA.Moved)
	}
	slot := stA.FP.Rec
	// a's episode ends (its record leaves the table; a's state still names the slot), then
	// b's episode takes the freed slot.
	h.e.Advance(t0 + 2*win)
	h.feed(mirai(b, 1, t0+2*win+sec))
	if stB := h.srcs.Get(addr(b)); stB.FP.Rec != slot {
		t.Fatalf("b's record took slot %d, not a's freed slot %d: the test needs the reuse", stB.FP.Rec, slot)
	}
	// a probes again: a new episode of its own, b's record untouched.
	h.feed(mirai(a, 2, t0+2*win+2*sec), mirai(b, 3, t0+2*win+3*sec))
	h.finish(t0 + 2*win + 4*sec)
	got := map[string][]uint64{}
	for _, e := range h.sink.take() {
		te := e.Entry.(*ToolEntry)
		got[te.Src.String()+" "+e.Phase.String()] = append(got[te.Src.String()+" "+e.Phase.String()], te.Probes)
	}
	want := map[string][]uint64{
		a + " start": {1, 1}, a + " end": {1, 1},
		b + " start": {1}, b + " end": {2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("probes by source and phase = %v, want %v", got, want)
	}
}
