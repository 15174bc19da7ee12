package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

const victimAddr = "192.0.2.50"

// synAcks makes n SYN-ACKs from the victim, the i-th at ts(i), cycling over `targets` dark IPs.
func synAcks(n, targets int, ts func(i int) int64) []packet.Header {
	out := make([]packet.Header, n)
	for i := range out {
		out[i] = tcp(victimAddr, ip4("203.0.113.0", i%targets), packet.FlagSYN|packet.FlagACK, ts(i))
	}
	return out
}

func every(d int64) func(i int) int64 { return func(i int) int64 { return t0 + int64(i)*d } }

func bsEv(p Phase, kind string, packets, targets, peak uint64, first, last int64) ev {
	return ev{Backscatter, p, kind, BackscatterEntry{Victim: victimAddr, Kind: kind, Packets: packets, Targets: targets,
		PeakRate: peak, FirstSeen: Time(first), LastSeen: Time(last)}}
}

func TestBackscatterKind(t *testing.T) {
	v4, v6 := "192.0.2.1", "2001:db8::1"
	icmp := func(src string, typ uint8) packet.Header {
		h := echo(src, src, t0)
		h.ICMPType = typ
		return h
	}
	cases := []struct {
		name string
		h    packet.Header
		want string // "" = not backscatter
	}{
		{"SYN-ACK", tcp(v4, v4, packet.FlagSYN|packet.FlagACK, t0), "syn_ack"},
		{"SYN-ACK-ECE", tcp(v4, v4, packet.FlagSYN|packet.FlagACK|packet.FlagECE, t0), "syn_ack"},
		{"SYN-RST-ACK", tcp(v4, v4, packet.FlagSYN|packet.FlagRST|packet.FlagACK, t0), ""},
		{"RST", tcp(v4, v4, packet.FlagRST, t0), "rst"},
		{"RST-ACK", tcp(v4, v4, packet.FlagRST|packet.FlagACK, t0), "rst_ack"},
		{"SYN-RST", tcp(v4, v4, packet.FlagSYN|packet.FlagRST, t0), ""},
		{"ACK", tcp(v4, v4, packet.FlagACK, t0), ""},
		{"SYN", tcp(v4, v4, packet.FlagSYN, t0), ""},
		{"IPv6 RST-ACK", tcp(v6, v6, packet.FlagRST|packet.FlagACK, t0), "rst_ack"},
		{"echo reply", icmp(v4, 0), "icmp_echo_reply"},
		{"unreachable", icmp(v4, 3), "icmp_unreachable"},
		{"source quench", icmp(v4, 4), "icmp_source_quench"},
		{"redirect", icmp(v4, 5), "icmp_redirect"},
		{"time exceeded", icmp(v4, 11), "icmp_time_exceeded"},
		{"parameter problem", icmp(v4, 12), "icmp_param_problem"},
		{"timestamp reply", icmp(v4, 14), "icmp_timestamp_reply"},
		{"info reply", icmp(v4, 16), "icmp_info_reply"},
		{"mask reply", icmp(v4, 18), "icmp_mask_reply"},
		{"echo request", icmp(v4, 8), ""},
		{"timestamp request", icmp(v4, 13), ""},
		{"v6 echo reply", icmp(v6, 129), "icmp6_echo_reply"},
		{"v6 unreachable", icmp(v6, 1), "icmp6_unreachable"},
		{"v6 too big", icmp(v6, 2), "icmp6_packet_too_big"},
		{"v6 time exceeded", icmp(v6, 3), "icmp6_time_exceeded"},
		{"v6 parameter problem", icmp(v6, 4), "icmp6_param_problem"},
		{"v6 echo request", icmp(v6, 128), ""},
		{"v6 neighbour solicitation", icmp(v6, 135), ""},
		{"v4 type 0 in ICMPv6 is not an echo reply", icmp(v6, 0), ""},
		{"UDP", udp(v4, v4, 53, t0, nil), ""},
		{"truncated TCP", func() packet.Header {
			h := tcp(v4, v4, packet.FlagRST, t0)
			h.L4 = false
			return h
		}(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if k := backscatterKind(&tc.h); k >= 0 {
				got = BackscatterKinds[k]
			}
			if got != tc.want {
				t.Fatalf("kind %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBackscatter(t *testing.T) {
	const (
		slow = int64(2068965518) // 60s/29 rounded up: 30 packets span 60s+22ns, at most 29 in a minute
		fast = int64(2068965517) // 30 packets span 60s-7ns: 30 in (t-60s, t]
	)
	rst := func(n, off int, ts func(i int) int64) []packet.Header {
		out := make([]packet.Header, n)
		for i := range out {
			out[i] = tcp(victimAddr, ip4("198.51.100.0", i), packet.FlagRST, ts(i+off))
		}
		return out
	}
	cases := []struct {
		name  string
		cfg   func(*Config)
		steps []step
	}{
		{name: "30 per minute lasting 60s", steps: []step{
			// Rate met at the 30th packet (t0+58s), duration at the 31st (t0+60s).
			{pkts: synAcks(31, 10, every(2*sec)), want: []ev{bsEv(Start, "syn_ack", 31, 10, 30, t0, t0+60*sec)}},
			{advance: t0 + 60*sec + win + 1, want: []ev{bsEv(End, "syn_ack", 31, 10, 30, t0, t0+60*sec)}},
		}},
		{name: "29 in any minute never attacks", steps: []step{
			{pkts: synAcks(100, 10, every(slow)), advance: t0 + 100*slow + win + 1, finish: t0 + 100*slow + win + 1},
		}},
		{name: "30 in 60s-7ns attacks", steps: []step{
			{pkts: synAcks(31, 10, every(fast)), want: []ev{bsEv(Start, "syn_ack", 31, 10, 30, t0, t0+30*fast)}},
			{finish: t0 + 31*fast, want: []ev{bsEv(End, "syn_ack", 31, 10, 30, t0, t0+30*fast)}},
		}},
		{name: "30 packets spanning exactly 60s do not make the rate", steps: []step{
			{pkts: cat(synAcks(29, 10, every(sec)), synAcks(1, 10, func(int) int64 { return t0 + 60*sec })),
				finish: t0 + 61*sec},
		}},
		{name: "duration 1ns short", steps: []step{
			{pkts: cat(synAcks(30, 10, every(sec)), synAcks(1, 10, func(int) int64 { return t0 + 60*sec - 1 }))},
			// The 32nd packet reaches 60s: 31 packets fell in one sliding minute.
			{pkts: synAcks(1, 10, func(int) int64 { return t0 + 60*sec }), want: []ev{bsEv(Start, "syn_ack", 32, 10, 31, t0, t0+60*sec)}},
			{finish: t0 + 61*sec, want: []ev{bsEv(End, "syn_ack", 32, 10, 31, t0, t0+60*sec)}},
		}},
		{name: "min_packets-1", cfg: func(c *Config) { c.Backscatter.MinRatePerMinute = 1 }, steps: []step{
			{pkts: synAcks(24, 24, every(5*sec)), finish: t0 + 3*mn},
		}},
		{name: "min_packets", cfg: func(c *Config) { c.Backscatter.MinRatePerMinute = 1 }, steps: []step{
			// One packet per 5 s: 12 in the last 60 one-second slots at most.
			{pkts: synAcks(25, 25, every(5*sec)), want: []ev{bsEv(Start, "syn_ack", 25, 25, 12, t0, t0+120*sec)}},
			{finish: t0 + 3*mn, want: []ev{bsEv(End, "syn_ack", 25, 25, 12, t0, t0+120*sec)}},
		}},
		{name: "peak at 1-second granularity", steps: []step{
			{pkts: cat(synAcks(100, 7, every(100*int64(1e6))), synAcks(1, 7, func(int) int64 { return t0 + 60*sec })),
				want: []ev{bsEv(Start, "syn_ack", 101, 7, 100, t0, t0+60*sec)}},
			{finish: t0 + 61*sec, want: []ev{bsEv(End, "syn_ack", 101, 7, 100, t0, t0+60*sec)}},
		}},
		{name: "kind: the most frequent, final at the end", steps: []step{
			// 16 SYN-ACKs then 15 RSTs, one every 2 s: syn_ack leads at the start.
			{pkts: cat(synAcks(16, 10, every(2*sec)), rst(15, 16, every(2*sec))),
				want: []ev{bsEv(Start, "syn_ack", 31, 25, 30, t0, t0+60*sec)}},
			// Two more RSTs (to dark IPs already hit): rst leads at the end.
			{pkts: rst(2, 31, every(2*sec))},
			{finish: t0 + 70*sec, want: []ev{bsEv(End, "rst", 33, 25, 30, t0, t0+64*sec)}},
		}},
		{name: "kind ties go to the earlier kind", steps: []step{
			// 16 RSTs then 16 SYN-ACKs: rst leads 16:15 at the start, 16:16 at the end goes
			// to syn_ack, first in BackscatterKinds.
			{pkts: cat(rst(16, 0, every(2*sec)), synAcks(16, 10, func(i int) int64 { return t0 + int64(16+i)*2*sec })),
				want: []ev{bsEv(Start, "rst", 31, 26, 30, t0, t0+60*sec)}},
			{finish: t0 + 70*sec, want: []ev{bsEv(End, "syn_ack", 32, 26, 30, t0, t0+62*sec)}},
		}},
		{name: "gap == window continues the attack", steps: []step{
			{pkts: synAcks(31, 10, every(2*sec)), want: []ev{bsEv(Start, "syn_ack", 31, 10, 30, t0, t0+60*sec)}},
			{pkts: synAcks(1, 10, func(int) int64 { return t0 + 60*sec + win })},
			{finish: t0 + 60*sec + win, want: []ev{bsEv(End, "syn_ack", 32, 10, 30, t0, t0+60*sec+win)}},
		}},
		{name: "gap == window+1ns ends the attack", steps: []step{
			{pkts: synAcks(31, 10, every(2*sec)), want: []ev{bsEv(Start, "syn_ack", 31, 10, 30, t0, t0+60*sec)}},
			{pkts: synAcks(1, 10, func(int) int64 { return t0 + 60*sec + win + 1 }),
				want: []ev{bsEv(End, "syn_ack", 31, 10, 30, t0, t0+60*sec)}},
			{finish: t0 + 60*sec + win + 1},
		}},
		{name: "small victims expire silently", steps: []step{
			{pkts: synAcks(20, 10, every(sec)), advance: t0 + 19*sec + win + 1, finish: t0 + 19*sec + win + 1},
		}},
		{name: "detector off", cfg: func(c *Config) { c.Backscatter.Enabled = false }, steps: []step{
			{pkts: synAcks(100, 10, every(sec)), finish: t0 + 100*sec},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := only(testConfig(t), Backscatter)
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			run(t, cfg, tc.steps)
		})
	}
}

func TestBackscatterICMPQuotingVictim(t *testing.T) {
	cfg := only(testConfig(t), Backscatter)
	h := newHarness(t, cfg)
	// The victim is flooded with packets spoofed from dark IPs; a router in front of it
	// answers each with an ICMP unreachable to the spoofed (dark) source, quoting the flood
	// packet (dark IP -> victim). The victim is the quote's destination, not the router.
	var pkts []packet.Header
	for i := range 31 {
		dark := ip4("203.0.113.0", i%5)
		pkts = append(pkts, icmpErr("198.18.0.1", dark, 3, dark, victimAddr, t0+int64(i)*2*sec))
	}
	h.feed(pkts...)
	h.finish(t0 + 61*sec)
	checkEvents(t, h.sink.take(), []ev{
		bsEv(Start, "icmp_unreachable", 31, 5, 30, t0, t0+60*sec),
		bsEv(End, "icmp_unreachable", 31, 5, 30, t0, t0+60*sec),
	})
	if n := h.c.BackscatterPackets[bsUnreach].Load(); n != 31 {
		t.Fatalf("BackscatterPackets[icmp_unreachable] = %d, want 31", n)
	}
	victim := addr(victimAddr)
	if got := packet.WorkerIndex(pkts[0].AffinityKey(), 4); got != packet.WorkerIndex(victim.V4(), 4) {
		t.Fatalf("ICMP error not routed to the victim's worker")
	}
}

func TestBackscatterVictimExpiry(t *testing.T) {
	cfg := only(testConfig(t), Backscatter)
	h := newHarness(t, cfg)
	h.feed(synAcks(10, 10, every(sec))...)
	h.e.Advance(t0 + 9*sec)
	if n := h.c.Tracked.Load(); n != 1 {
		t.Fatalf("tracked = %d, want 1", n)
	}
	h.e.Advance(t0 + 9*sec + win + 1)
	if n := h.c.Tracked.Load(); n != 0 {
		t.Fatalf("tracked after a quiet window = %d, want 0", n)
	}
	if len(h.e.rates) != 1 || len(h.e.rateFree) != 1 || h.e.SlabBlocks() != 0 {
		t.Fatalf("rate window or slab block not returned (%d windows, %d free, %d slab blocks)", len(h.e.rates), len(h.e.rateFree), h.e.SlabBlocks())
	}
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("small victim made events: %v", evs(ev))
	}
}

func TestBackscatterVictimEviction(t *testing.T) {
	cfg := only(testConfig(t), Backscatter)
	cfg.MaxFlows = 1
	h := newHarness(t, cfg)
	h.feed(synAcks(31, 10, every(2*sec))...)
	checkEvents(t, h.sink.take(), []ev{bsEv(Start, "syn_ack", 31, 10, 30, t0, t0+60*sec)})
	h.feed(tcp("192.0.2.51", "203.0.113.1", packet.FlagRST, t0+61*sec))
	checkEvents(t, h.sink.take(), []ev{bsEv(End, "syn_ack", 31, 10, 30, t0, t0+60*sec)})
	if n := h.c.Evictions.Load(); n != 1 {
		t.Fatalf("evictions = %d, want 1", n)
	}
}
