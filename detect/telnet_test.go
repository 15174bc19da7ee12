package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

const botSrc = "192.0.2.23"

// tsyn is a SYN to port from botSrc; a Mirai probe carries seq == dst.
func tsyn(dst string, port uint16, ts int64, mirai bool) packet.Header {
	h := syn(botSrc, dst, port, ts)
	if mirai {
		h.Seq = h.Dst.V4()
	}
	return h
}

// sweep sends n SYNs to port 23 of n distinct IPs, the first `mirai` of them Mirai probes.
func sweep(n, mirai int, from int64) []packet.Header {
	return seq(n, from, sec, func(i int, ts int64) packet.Header {
		return tsyn(ip4("203.0.113.0", i), 23, ts, i < mirai)
	})
}

func telEv(p Phase, targets, packets uint64, mirai bool, first, last int64) ev {
	class := "other"
	if mirai {
		class = "mirai"
	}
	return ev{TelnetSweep, p, class, TelnetSweepEntry{Src: botSrc, Targets: targets, Packets: packets,
		Mirai: mirai, FirstSeen: Time(first), LastSeen: Time(last)}}
}

func TestTelnetSweep(t *testing.T) {
	L := t0 + 19*sec // last of 20 SYNs one second apart
	cases := []struct {
		name  string
		steps []step
	}{
		{"min_targets-1", []step{{pkts: sweep(19, 19, t0), finish: L}}},
		{"min_targets, all Mirai", []step{
			{pkts: sweep(20, 20, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{finish: L, want: []ev{telEv(End, 20, 20, true, t0, L)}},
		}},
		{"half Mirai is not Mirai", []step{
			{pkts: sweep(20, 10, t0), want: []ev{telEv(Start, 20, 20, false, t0, L)}},
			{finish: L, want: []ev{telEv(End, 20, 20, false, t0, L)}},
		}},
		{"one more than half is Mirai", []step{
			{pkts: sweep(20, 11, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{finish: L, want: []ev{telEv(End, 20, 20, true, t0, L)}},
		}},
		{"other ports do not count", []step{
			{pkts: cat(sweep(19, 0, t0), []packet.Header{tsyn("198.51.100.1", 22, L, false)}), finish: L},
		}},
		{"2323 counts with 23", []step{
			{pkts: cat(sweep(19, 0, t0), []packet.Header{tsyn("198.51.100.1", 2323, L, false)}),
				want: []ev{telEv(Start, 20, 20, false, t0, L)}},
			{finish: L, want: []ev{telEv(End, 20, 20, false, t0, L)}},
		}},
		{"repeated targets count once", []step{
			{pkts: seq(60, t0, sec, func(i int, ts int64) packet.Header { return tsyn(ip4("203.0.113.0", i%19), 23, ts, false) }),
				finish: t0 + 60*sec},
		}},
		{"SYN-ACK to 23 is not a probe", []step{
			{pkts: cat(sweep(19, 0, t0), []packet.Header{func() packet.Header {
				h := tsyn("198.51.100.1", 23, L, false)
				h.TCPFlags |= packet.FlagACK
				return h
			}()}), finish: L},
		}},
		{"probe at window start + window opens a new window", []step{
			{pkts: cat(sweep(19, 0, t0), []packet.Header{tsyn("198.51.100.1", 23, t0+win, false)}), finish: t0 + win},
		}},
		{"probe 1ns before the window end counts", []step{
			{pkts: cat(sweep(19, 0, t0), []packet.Header{tsyn("198.51.100.1", 23, t0+win-1, false)}),
				want: []ev{telEv(Start, 20, 20, false, t0, t0+win-1)}},
			{finish: t0 + win, want: []ev{telEv(End, 20, 20, false, t0, t0+win-1)}},
		}},
		{"gap == window continues", []step{
			{pkts: sweep(20, 20, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{pkts: []packet.Header{tsyn("198.51.100.1", 23, L+win, true)}},
			{finish: L + win, want: []ev{telEv(End, 21, 21, true, t0, L+win)}},
		}},
		{"gap == window+1ns ends", []step{
			{pkts: sweep(20, 20, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{pkts: []packet.Header{tsyn("198.51.100.1", 23, L+win+1, true)}, want: []ev{telEv(End, 20, 20, true, t0, L)}},
			{advance: L + 2*win + 2, finish: L + 2*win + 2},
		}},
		{"Advance past the window ends", []step{
			{pkts: sweep(20, 20, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{advance: L + win},
			{advance: L + win + sec + 1, want: []ev{telEv(End, 20, 20, true, t0, L)}},
		}},
		{"mirai recomputed at the end", []step{
			{pkts: sweep(20, 20, t0), want: []ev{telEv(Start, 20, 20, true, t0, L)}},
			{pkts: seq(30, L+sec, sec, func(i int, ts int64) packet.Header { return tsyn(ip4("198.51.100.0", i), 2323, ts, false) })},
			{finish: L + 30*sec, want: []ev{{TelnetSweep, End, "other", TelnetSweepEntry{Src: botSrc, Targets: 50, Packets: 50,
				Mirai: false, FirstSeen: Time(t0), LastSeen: Time(L + 30*sec)}}}},
		}},
		{"IPv6 sweep is never Mirai", []step{
			{pkts: seq(20, t0, sec, func(i int, ts int64) packet.Header { return syn("2001:db8::23", ip6("2001:db8:1::", i+1), 23, ts) }),
				want: []ev{{TelnetSweep, Start, "other", TelnetSweepEntry{Src: "2001:db8::23", Targets: 20, Packets: 20,
					FirstSeen: Time(t0), LastSeen: Time(L)}}}},
			{finish: L, want: []ev{{TelnetSweep, End, "other", TelnetSweepEntry{Src: "2001:db8::23", Targets: 20, Packets: 20,
				FirstSeen: Time(t0), LastSeen: Time(L)}}}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, only(testConfig(t), TelnetSweep), tc.steps)
		})
	}
}
