package detect

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/packet"
)

// dhtGetPeers builds the Header of testdata/dht-get-peers.ipv4.hex (a real DHT get_peers
// query, 189.127.196.8:40386 -> 211.1.11.177:4776) by hand from its bytes.
func dhtGetPeers(t testing.TB, ts int64) packet.Header {
	t.Helper()
	raw, err := os.ReadFile("../testdata/dht-get-peers.ipv4.hex")
	if err != nil {
		t.Fatalf("read DHT sample: %v", err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("decode DHT sample: %v", err)
	}
	ihl := int(b[0]&0x0F) * 4
	if b[0]>>4 != 4 || b[9] != packet.ProtoUDP || len(b) < ihl+8 {
		t.Fatalf("DHT sample is not IPv4/UDP")
	}
	u := b[ihl:]
	h := packet.Header{
		TS: ts, Result: packet.ResultIP, IPVersion: 4, Proto: packet.ProtoUDP, L4: true, TTL: b[8],
		IPID: binary.BigEndian.Uint16(b[4:6]), IPLen: binary.BigEndian.Uint16(b[2:4]), IPHdrLen: uint16(ihl),
		Src: packet.AddrFrom4(b[12:16]), Dst: packet.AddrFrom4(b[16:20]),
		SrcPort: binary.BigEndian.Uint16(u[0:2]), DstPort: binary.BigEndian.Uint16(u[2:4]),
		PayloadLen: binary.BigEndian.Uint16(u[4:6]) - 8,
	}
	h.PayloadCap = uint8(copy(h.Payload[:], u[8:]))
	h.PayloadClass = packet.ClassifyUDP(u[8:], len(u[8:]))
	if h.Src.String() != "189.127.196.8" || h.Dst.String() != "211.1.11.177" || h.SrcPort != 40386 || h.DstPort != 4776 {
		t.Fatalf("DHT sample header %s:%d -> %s:%d", h.Src, h.SrcPort, h.Dst, h.DstPort)
	}
	return h
}

const (
	btSrc = "192.0.2.77"
	btDst = "203.0.113.9"
)

var utpSYN = append([]byte{0x41, 0x00, 0x12, 0x34}, make([]byte, 16)...) // type ST_SYN, version 1, 20 bytes

func flowEv(p Phase, payload string, udpN, synN uint64, first, last int64) ev {
	return ev{UDPThenSYN, p, payload, UDPThenSYNEntry{Src: IP(addr(btSrc)), Dst: IP(addr(btDst)), Port: 6881, UDPPackets: udpN,
		SYNPackets: synN, Payload: payload, FirstSeen: Time(first), LastSeen: Time(last)}}
}

func btUDP(ts int64, payload []byte) packet.Header { return udp(btSrc, btDst, 6881, ts, payload) }
func btSYN(ts int64) packet.Header                 { return syn(btSrc, btDst, 6881, ts) }

func TestUDPThenSYNRealDHT(t *testing.T) {
	cfg := only(testConfig(t), UDPThenSYN)
	h := newHarness(t, cfg)
	u := dhtGetPeers(t, t0)
	s := syn("189.127.196.8", "211.1.11.177", 4776, t0+3*sec)
	h.feed(u, s)
	h.finish(t0 + 4*sec)
	entry := UDPThenSYNEntry{Src: IP(addr("189.127.196.8")), Dst: IP(addr("211.1.11.177")), Port: 4776, UDPPackets: 1, SYNPackets: 1,
		Payload: "dht", FirstSeen: Time(t0), LastSeen: Time(t0 + 3*sec)}
	checkEvents(t, h.sink.take(), []ev{{UDPThenSYN, Start, "dht", entry}, {UDPThenSYN, End, "dht", entry}})
	if n := h.c.UDPThenSYNSources[payloadDHT].Load(); n != 1 {
		t.Fatalf("UDPThenSYNSources[dht] = %d, want 1", n)
	}
}

func TestUDPThenSYN(t *testing.T) {
	gap := int64(5 * time.Minute) // default max_gap
	other := []byte("hello, opaque payload")
	cases := []struct {
		name  string
		steps []step
	}{
		{"uTP SYN", []step{
			{pkts: []packet.Header{btUDP(t0, utpSYN), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "utp", 1, 1, t0, t0+sec)}},
			{finish: t0 + sec, want: []ev{flowEv(End, "utp", 1, 1, t0, t0+sec)}},
		}},
		{"opaque payload", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{finish: t0 + sec, want: []ev{flowEv(End, "other", 1, 1, t0, t0+sec)}},
		}},
		{"first dht/utp payload wins over other", []step{
			{pkts: []packet.Header{btUDP(t0, other), btUDP(t0+sec, utpSYN), btUDP(t0+2*sec, []byte("d1:rd2:id20:xxxx")), btSYN(t0 + 3*sec)},
				want: []ev{flowEv(Start, "utp", 3, 1, t0, t0+3*sec)}},
			{finish: t0 + 3*sec, want: []ev{flowEv(End, "utp", 3, 1, t0, t0+3*sec)}},
		}},
		{"SYN max_gap after the last UDP pairs", []step{
			{pkts: []packet.Header{btUDP(t0, other), btUDP(t0+sec, other), btSYN(t0 + sec + gap)},
				want: []ev{flowEv(Start, "other", 2, 1, t0, t0+sec+gap)}},
			{finish: t0 + sec + gap, want: []ev{flowEv(End, "other", 2, 1, t0, t0+sec+gap)}},
		}},
		{"SYN max_gap+1ns after the last UDP does not pair", []step{
			{pkts: []packet.Header{btUDP(t0, other), btUDP(t0+sec, other), btSYN(t0 + sec + gap + 1)}, finish: t0 + 2*gap},
		}},
		{"SYN before any UDP never pairs", []step{
			{pkts: []packet.Header{btSYN(t0), btUDP(t0+sec, other)}, finish: t0 + 2*sec},
		}},
		{"SYN to another port of the same dst does not pair", []step{
			{pkts: []packet.Header{btUDP(t0, other), syn(btSrc, btDst, 6882, t0+sec)}, finish: t0 + 2*sec},
		}},
		{"SYN from another source does not pair", []step{
			{pkts: []packet.Header{btUDP(t0, other), syn("192.0.2.78", btDst, 6881, t0+sec)}, finish: t0 + 2*sec},
		}},
		{"later UDP and SYNs update the episode", []step{
			{pkts: []packet.Header{btUDP(t0, other), btUDP(t0+sec, other), btSYN(t0 + 2*sec)},
				want: []ev{flowEv(Start, "other", 2, 1, t0, t0+2*sec)}},
			{pkts: []packet.Header{btUDP(t0+3*sec, other), btSYN(t0 + 4*sec)}},
			{finish: t0 + 5*sec, want: []ev{flowEv(End, "other", 3, 2, t0, t0+4*sec)}},
		}},
		{"quiet gap == window continues", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{pkts: []packet.Header{btUDP(t0+sec+win, other)}},
			{finish: t0 + sec + win, want: []ev{flowEv(End, "other", 2, 1, t0, t0+sec+win)}},
		}},
		{"quiet gap == window+1ns ends, the UDP starts a new flow", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{pkts: []packet.Header{btUDP(t0+sec+win+1, utpSYN)}, want: []ev{flowEv(End, "other", 1, 1, t0, t0+sec)}},
			{pkts: []packet.Header{btSYN(t0 + 2*sec + win)}, want: []ev{flowEv(Start, "utp", 1, 1, t0+sec+win+1, t0+2*sec+win)}},
			{finish: t0 + 3*sec + win, want: []ev{flowEv(End, "utp", 1, 1, t0+sec+win+1, t0+2*sec+win)}},
		}},
		{"an episode ended by a packet is not ended again by Advance", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{pkts: []packet.Header{btUDP(t0+sec+win+1, other)}, want: []ev{flowEv(End, "other", 1, 1, t0, t0+sec)}},
			{advance: t0 + 2*sec + win},
			{finish: t0 + 3*sec + win},
		}},
		// Past the flows' horizon the source's SYN probes skip the lookup: the sweep ends it.
		{"SYN after the episode's window does not continue it", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{pkts: []packet.Header{btSYN(t0 + 2*sec + win)}},
			{advance: t0 + 3*sec + win, want: []ev{flowEv(End, "other", 1, 1, t0, t0+sec)}},
			{finish: t0 + 4*sec + win},
		}},
		{"Advance ends a quiet episode", []step{
			{pkts: []packet.Header{btUDP(t0, other), btSYN(t0 + sec)}, want: []ev{flowEv(Start, "other", 1, 1, t0, t0+sec)}},
			{advance: t0 + sec + win},
			{advance: t0 + 2*sec + win + 1, want: []ev{flowEv(End, "other", 1, 1, t0, t0+sec)}},
			{finish: t0 + 3*sec + win},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run(t, only(testConfig(t), UDPThenSYN), tc.steps)
		})
	}
}

func TestUDPThenSYNFlowEviction(t *testing.T) {
	cfg := only(testConfig(t), UDPThenSYN)
	cfg.MaxFlows = 2
	h := newHarness(t, cfg)
	h.feed(btUDP(t0, utpSYN), btSYN(t0+sec))
	checkEvents(t, h.sink.take(), []ev{flowEv(Start, "utp", 1, 1, t0, t0+sec)})
	// Two more flows: the table holds two, so the least recently used (the active one) goes.
	h.feed(udp(btSrc, btDst, 1, t0+2*sec, nil), udp(btSrc, btDst, 2, t0+3*sec, nil))
	checkEvents(t, h.sink.take(), []ev{flowEv(End, "utp", 1, 1, t0, t0+sec)})
	if n := h.c.Evictions.Load(); n != 1 {
		t.Fatalf("evictions = %d, want 1", n)
	}
	h.e.Advance(t0 + 4*sec)
	if n := h.c.Tracked.Load(); n != 2 {
		t.Fatalf("tracked = %d, want 2", n)
	}
	// Stale flows leave the table once they can neither pair nor continue.
	h.e.Advance(t0 + 3*sec + win + 1)
	if n := h.c.Tracked.Load(); n != 0 {
		t.Fatalf("tracked after expiry = %d, want 0", n)
	}
	h.finish(t0 + 10*win)
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("finish: %v", evs(ev))
	}
}

func TestPayloadKind(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
		length  int // PayloadLen when not len(payload)
		want    int
	}{
		// Only whole, strictly valid KRPC (packet.ClassifyUDP, tested in capture).
		{"ping query", []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"), 0, payloadDHT},
		{"error", []byte("d1:eli201e5:Errore1:t2:aa1:y1:ee"), 0, payloadDHT},
		{"the 32 bytes a Header keeps", []byte("d1:ad2:id20:abcdefghij0123456789"), 0, payloadOther},
		{"dict start cut by the capture", []byte("d1:t2:aa1:y1:qe"), 100, payloadOther},
		{"unknown key only", []byte("d1:x1:ye"), 0, payloadOther},
		{"not a dictionary", []byte("l1:a1:be"), 0, payloadOther},
		{"uTP SYN", utpSYN, 0, payloadUTP},
		{"uTP SYN with data", append(append([]byte{}, utpSYN...), make([]byte, 458)...), 0, payloadOther},
		{"uTP DATA with extension bits", append(append(append([]byte{0x01, 0x02}, make([]byte, 18)...), 0, 8), make([]byte, 12)...), 0, payloadUTP},
		{"uTP type 5 is not uTP", append([]byte{0x51, 0x00}, make([]byte, 18)...), 0, payloadOther},
		{"uTP version 2 is not uTP", append([]byte{0x42, 0x00}, make([]byte, 18)...), 0, payloadOther},
		{"uTP extension 3 is not uTP", append([]byte{0x41, 0x03}, make([]byte, 18)...), 0, payloadOther},
		{"19 bytes is not uTP", append([]byte{0x41, 0x00}, make([]byte, 17)...), 0, payloadOther},
		{"uTP SYN header of a longer payload", []byte{0x41, 0x00, 1, 2}, 1400, payloadOther},
		{"empty", nil, 0, payloadOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := udp(btSrc, btDst, 6881, t0, tc.payload)
			if tc.length != 0 {
				h.PayloadLen = uint16(tc.length)
				h.PayloadClass = packet.ClassifyUDP(tc.payload, tc.length)
			}
			if got := payloadKind(&h); got != tc.want {
				t.Fatalf("payloadKind = %s, want %s", PayloadKinds[got], PayloadKinds[tc.want])
			}
		})
	}
}

// TestFlowPortCounts: the per-port flow counts that let SYN probes skip the flow lookup stay
// equal to the flows in the table through creation, pairing, expiry and eviction.
// TestUDPThenSYNSourceEvicted: a SYN probe looks up flows only for a source whose entry
// had a flow within the horizon, or that was evicted with one: a source evicted from the
// pipeline's table between its datagram and its SYN still pairs, in a table of two; the
// marks of evicted sources last a horizon and are then dropped; a source whose entry has
// only flows past the horizon does not pair.
func TestUDPThenSYNSourceEvicted(t *testing.T) {
	cfg := only(testConfig(t), UDPThenSYN)
	h := newHarness(t, cfg)
	h.srcs = newSourceTable(2)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs)
	h.feed(btUDP(t0, utpSYN))
	h.feed(syn(ip4("192.0.0.0", 1), btDst, 80, t0+sec), syn(ip4("192.0.0.0", 2), btDst, 80, t0+2*sec))
	if st := h.srcs.Get(addr(btSrc)); st != nil {
		t.Fatal("the datagram's source is still in the table of two")
	}
	if h.e.flowEvN[0] != 1 {
		t.Fatalf("%d sources marked as evicted with flows, want 1", h.e.flowEvN[0])
	}
	h.feed(btSYN(t0 + 3*sec))
	checkEvents(t, h.sink.take(), []ev{flowEv(Start, "utp", 1, 1, t0, t0+3*sec)})
	// The sources never had a flow: no mark when they go.
	h.feed(syn(ip4("192.0.0.0", 3), btDst, 80, t0+4*sec), syn(ip4("192.0.0.0", 4), btDst, 80, t0+5*sec))
	if n := h.e.flowEvN[0] + h.e.flowEvN[1]; n != 1 || !h.e.mayHaveFlows(&packet.Header{Src: addr(btSrc)}, &SourceState{}) {
		t.Fatalf("%d marks, want btSrc's (evicted again, with its episode)", n)
	}
	// Two horizons later every mark is gone.
	horizon := max(int64(cfg.Window), int64(cfg.UDPThenSYN.MaxGap))
	for at := t0 + 5*sec; at <= t0+5*sec+3*horizon; at += sec {
		h.e.Advance(at)
	}
	if n := h.e.flowEvN[0] + h.e.flowEvN[1]; n != 0 {
		t.Fatalf("%d marks two horizons on, want 0", n)
	}
	checkEvents(t, h.sink.take(), []ev{flowEv(End, "utp", 1, 1, t0, t0+3*sec)})
	// A source that stays in the table: its datagram pairs within max_gap, not past it.
	h = newHarness(t, cfg)
	h.feed(btUDP(t0, nil), btSYN(t0+int64(cfg.UDPThenSYN.MaxGap)+1))
	if ev := h.sink.take(); len(ev) != 0 {
		t.Fatalf("a SYN past max_gap paired: %v", evs(ev))
	}
	if st := h.srcs.Get(addr(btSrc)); st == nil || st.FlowSec != flowSec(t0) || int64(st.FlowSec)*sec < t0 || int64(st.FlowSec-1)*sec >= t0 {
		t.Fatalf("source state %+v, want FlowSec %d (t0 %d rounded up to seconds)", st, flowSec(t0), t0)
	}
	// Its probes to another port skip the lookup, those to the flow's port within the
	// horizon do not.
	st := h.srcs.Get(addr(btSrc))
	other, same := syn(btSrc, btDst, 80, t0+sec), btSYN(t0+sec)
	if h.e.mayHaveFlows(&other, st) || !h.e.mayHaveFlows(&same, st) {
		t.Fatalf("a probe to port 80 may pair: %v, to 6881: %v; want false, true",
			h.e.mayHaveFlows(&other, st), h.e.mayHaveFlows(&same, st))
	}
}
