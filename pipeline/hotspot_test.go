package pipeline

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

// hotT0 is inside one 5-minute window (the default), so each attack is one window.
var hotT0 = time.Date(2024, 3, 1, 12, 1, 0, 0, time.UTC)

// spoofed returns the i-th of many distinct documentation-free source addresses.
func spoofed(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 7})
}

// darkAddr returns the n-th address of 203.0.112.0/22 (hotConfig's dark space).
func darkAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, 112 + byte(n>>8), byte(n)})
}

// hotDark is the dark space of the hotspot tests (darkAddr's, and an IPv6 /48).
const hotDark = "dark_prefixes: [203.0.112.0/22, 2001:db8:1::/48]\n"

func hotConfig(t *testing.T, extra string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse([]byte(hotDark+extra), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// hotShape is one attack aimed at one dark address: its packets, and with spread the same
// packets with the destinations spread so that none reaches min_sources.
type hotShape struct {
	name     string
	packets  func(spread bool) []pcaptest.Packet
	sources  int
	dst      string
	port     uint16
	class    string
	protocol string
	nPackets uint64
}

// synFlood: n SYN probes (flags) from `sources` spoofed sources (the first n-sources send
// two) to one address:port within d. Spread: over 512 addresses (~73 sources each).
func synFlood(n, sources int, flags uint8, dst int, port uint16, d time.Duration) func(bool) []pcaptest.Packet {
	return func(spread bool) []pcaptest.Packet {
		ps := make([]pcaptest.Packet, 0, n)
		for i := range n {
			s := i % sources
			to := darkAddr(dst)
			if spread {
				to = darkAddr(s % 512)
			}
			ps = append(ps, pcaptest.Packet{
				TS: hotT0.Add(d * time.Duration(i) / time.Duration(n)), Src: spoofed(s), Dst: to,
				SrcPort: uint16(1024 + s%60000), DstPort: port, Flags: flags, Seq: uint32(i * 7919), IPID: uint16(i),
			})
		}
		return ps
	}
}

// reflection: SYN-ACKs, RSTs and RST-ACKs from `hosts` reflectors (each at most four
// packets) to one dark address, to the random ports of the spoofed connections, within
// 150 ms. Spread: each reflector replies to one of 128 addresses (~55 hosts each).
func reflection(synack, rst, rstack, hosts, dst int) func(bool) []pcaptest.Packet {
	return func(spread bool) []pcaptest.Packet {
		n := synack + rst + rstack
		ps := make([]pcaptest.Packet, 0, n)
		for i := range n {
			h := i % hosts
			flags := uint8(0x12)
			switch {
			case i >= synack+rst:
				flags = 0x14
			case i >= synack:
				flags = 0x04
			}
			to := darkAddr(dst)
			if spread {
				to = darkAddr(h % 128)
			}
			ps = append(ps, pcaptest.Packet{
				TS:  hotT0.Add(150 * time.Millisecond * time.Duration(i) / time.Duration(n)),
				Src: netip.AddrFrom4([4]byte{100, 64 + byte(h>>16), byte(h >> 8), byte(h)}), Dst: to,
				SrcPort: []uint16{80, 443, 22, 25}[h%4], DstPort: uint16(1024 + (i*7919)%64000), Flags: flags,
			})
		}
		return ps
	}
}

var hotShapes = []hotShape{
	{name: "spoofed SYN flood", packets: synFlood(37_800, 37_600, 0x02, 256+50, 80, 20*time.Second),
		sources: 37_600, dst: "203.0.113.50", port: 80, class: "syn_flood", protocol: "tcp", nPackets: 37_800},
	{name: "TCP reflection", packets: reflection(6_650, 800, 200, 7_000, 256+60),
		sources: 7_000, dst: "203.0.113.60", port: 0, class: "reflection", protocol: "tcp", nPackets: 7_650},
	{name: "SYN-ECE-CWR flood", packets: synFlood(9_600, 9_400, 0x02|0x40|0x80, 256+70, 443, 30*time.Second),
		sources: 9_400, dst: "203.0.113.70", port: 443, class: "syn_flood", protocol: "tcp", nPackets: 9_600},
}

// within reports whether got is within frac of want.
func within(got uint64, want int, frac float64) bool {
	d := float64(got) - float64(want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

func TestHotspotAttackShapes(t *testing.T) {
	for _, sh := range hotShapes {
		t.Run(sh.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "attack.pcap")
			if err := pcaptest.WriteFile(path, sh.packets(false)); err != nil {
				t.Fatal(err)
			}
			spread := filepath.Join(t.TempDir(), "spread.pcap")
			if err := pcaptest.WriteFile(spread, sh.packets(true)); err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 2, 3} {
				r, res := replayReport(t, hotConfig(t, ""), workers, path)
				if len(res.Errors) != 0 || res.Records != sh.nPackets {
					t.Fatalf("workers=%d: %d records, errors %v", workers, res.Records, res.Errors)
				}
				hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
				if len(hot) != 1 {
					t.Fatalf("workers=%d: %d hotspot episodes, want 1: %+v", workers, len(hot), hot)
				}
				h := hot[0]
				t.Logf("workers=%d: %+v", workers, *h)
				if h.Dst != sh.dst || h.Port != sh.port || h.Class != sh.class || h.Protocol != sh.protocol ||
					h.Packets != sh.nPackets {
					t.Errorf("workers=%d: %+v, want dst %s port %d class %s protocol %s packets %d",
						workers, h, sh.dst, sh.port, sh.class, sh.protocol, sh.nPackets)
				}
				// Each worker counts its share of the sources exactly up to the distinct
				// counts' exact limit, then with HyperLogLog (1024 registers, ~3 % standard
				// error): an unlabelled count must be exact, a labelled one close.
				if !h.SourcesEstimated && h.Sources != uint64(sh.sources) {
					t.Errorf("workers=%d: sources %d not labelled estimated, want exactly %d", workers, h.Sources, sh.sources)
				}
				if !within(h.Sources, sh.sources, 0.10) {
					t.Errorf("workers=%d: sources %d, want %d within 10%%", workers, h.Sources, sh.sources)
				}
				if len(h.TopSources) == 0 || len(h.TopSources) > 5 {
					t.Errorf("workers=%d: %d top sources, want 1..5", workers, len(h.TopSources))
				}
				if n := len(r.Detections["backscatter"]); n != 0 {
					t.Errorf("workers=%d: %d backscatter episodes; reflectors sending at most four packets are no DoS victims", workers, n)
				}

				r, _ = replayReport(t, hotConfig(t, ""), workers, spread)
				if hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot"); len(hot) != 0 {
					t.Errorf("workers=%d: spread under min_sources: %d hotspot episodes: %+v", workers, len(hot), hot[0])
				}
			}
		})
	}
}

// TestHotspotInAWideDarkSpace: with a /8 configured the workers count every dark address
// by its dense index (up to 2^24), which the hotspot, whose per-address arrays stop at
// 2^20 addresses, does not use: a SYN flood to an address far past that index is found
// with exact counts all the same, with 1, 2 and 3 workers, and the destination's count in
// the report is exact.
func TestHotspotInAWideDarkSpace(t *testing.T) {
	dst := netip.MustParseAddr("203.200.0.9") // dense index 200*65536+9 of 203.0.0.0/8
	var ps []pcaptest.Packet
	for i := range 500 {
		ps = append(ps, pcaptest.Packet{
			TS: hotT0.Add(time.Duration(i) * 10 * time.Millisecond), Src: spoofed(i), Dst: dst,
			SrcPort: uint16(1024 + i), DstPort: 80, Flags: 0x02, Seq: uint32(i * 7919),
		})
	}
	path := writeTraffic(t, filepath.Join(t.TempDir(), "flood.pcap"), ps)
	cfg := parseConfig(t, "dark_prefixes: [203.0.0.0/8]\n")
	for _, workers := range []int{1, 2, 3} {
		r, res := replayReport(t, cfg, workers, path)
		if len(res.Errors) != 0 || res.Records != 500 {
			t.Fatalf("workers=%d: %d records, errors %v", workers, res.Records, res.Errors)
		}
		hot := EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot")
		if len(hot) != 1 || hot[0].Dst != dst.String() || hot[0].Port != 80 || hot[0].Class != "syn_flood" ||
			hot[0].Sources != 500 || hot[0].SourcesEstimated || hot[0].Packets != 500 {
			t.Errorf("workers=%d: hotspot episodes %+v, want one syn_flood at %s:80 with 500 sources and packets", workers, hot, dst)
		}
		if r.Destinations.Unique != 1 || len(r.Destinations.Top) != 1 || r.Destinations.Top[0].Addr != dst.String() || r.Destinations.Top[0].Packets != 500 {
			t.Errorf("workers=%d: destinations %d, top %+v; want %s alone with 500 packets", workers, r.Destinations.Unique, r.Destinations.Top, dst)
		}
	}
}

// TestHotspotP2PReceivers finds the BitTorrent-like receivers of a generated day (its three
// dark ip:port targets) as p2p hotspots whose sources are their distinct senders, counted
// here from the capture. The window covers the whole day: the generator spreads the
// senders over it, fewer than min_sources in any five minutes.
func TestHotspotP2PReceivers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "day.pcap")
	if _, err := daygen.WriteFile(path, daygen.Options{Seed: 11, Scale: 0.5}); err != nil {
		t.Fatal(err)
	}
	targets := map[hotKeyT]map[netip.Addr]bool{
		{"203.0.113.201", 6881}: {}, {"198.51.100.42", 51413}: {}, {"2001:db8:1::b7", 6881}: {},
	}
	in, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var h packet.Header
		packet.Decode(rec.Link, rec.Data, &h)
		if h.Result != packet.ResultIP || !(h.Proto == packet.ProtoTCP || h.Proto == packet.ProtoUDP) {
			continue
		}
		if set := targets[hotKeyT{h.Dst.String(), h.DstPort}]; set != nil {
			set[h.Src.Netip()] = true
		}
	}
	in.Close()
	cfg, err := configs.Parse([]byte("window: 24h\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3} {
		r, res := replayReport(t, cfg, workers, path)
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		found := map[hotKeyT]*detect.HotspotEntry{}
		for _, h := range EntriesOf[*detect.HotspotEntry](r.Detections, "hotspot") {
			found[hotKeyT{h.Dst, h.Port}] = h
		}
		for k, senders := range targets {
			h := found[k]
			if h != nil {
				t.Logf("workers=%d: %v: %d senders; %s sources %d packets %d class %s", workers, k, len(senders), h.Protocol, h.Sources, h.Packets, h.Class)
			}
			switch {
			case h == nil:
				t.Errorf("workers=%d: receiver %v not found (%d senders)", workers, k, len(senders))
			case h.Class != "p2p" || !within(h.Sources, len(senders), 0.08):
				t.Errorf("workers=%d: receiver %v: class %s, sources %d (estimated %v), want p2p, %d senders",
					workers, k, h.Class, h.Sources, h.SourcesEstimated, len(senders))
			}
		}
	}
}

type hotKeyT struct {
	dst  string
	port uint16
}

// TestReceiverDistribution compares the receiver histogram with a count made by hand: per
// 1-minute window, the packets of each dark destination address (whichever source sent
// them, whichever worker counted them); packets outside the dark prefixes are not counted.
func TestReceiverDistribution(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	add := func(win, dst, n int) {
		for i := range n {
			src, to := spoofed(i*7+dst), darkAddr(256+dst)
			if dst > 255 { // 2001:db8:1::/48
				src = netip.MustParseAddr("2001:db8:ffff::" + strconv.Itoa(i+1))
				b := netip.MustParseAddr("2001:db8:1::").As16()
				b[14], b[15] = byte(dst>>8), byte(dst)
				to = netip.AddrFrom16(b)
			}
			ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(win)*time.Minute + time.Duration(i)*time.Millisecond),
				Src: src, Dst: to, SrcPort: 4000, DstPort: uint16(22 + i%3), Flags: 0x02})
		}
	}
	// Window 0: .1 gets 1 packet, .2 gets 3, .3 gets 5, 2001:db8:1::105 gets 2.
	add(0, 1, 1)
	add(0, 2, 3)
	add(0, 3, 5)
	add(0, 261, 2)
	// Window 1: .1 gets 2, .4 gets 100; and 10 packets to a non-dark address.
	add(1, 1, 2)
	add(1, 4, 100)
	for i := range 10 {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Minute + time.Duration(i)*time.Millisecond),
			Src: spoofed(i), Dst: netip.MustParseAddr("198.51.100.9"), DstPort: 80, Flags: 0x02})
	}
	// By hand: le=1: 1 (.1 w0); le=2: 2 (::105 w0, .1 w1); le=4: 1 (.2); le=8: 1 (.3);
	// le=128: 1 (.4). Six (destination, window) pairs, 113 packets.
	want := ReceiverDistribution{Window: "1m", Destinations: 6, Packets: 113, Buckets: []HistBucket{
		{"1", 1}, {"2", 2}, {"4", 1}, {"8", 1}, {"16", 0}, {"32", 0}, {"64", 0}, {"128", 1},
	}}
	path := filepath.Join(t.TempDir(), "receivers.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	cfg := hotConfig(t, "window: 1m\n")
	for _, workers := range []int{1, 2, 3} {
		p, r := replayPipeline(t, cfg, workers, path)
		got := r.Receivers
		if !equalDist(got, want) {
			t.Errorf("workers=%d: receiver distribution %+v, want %+v", workers, got, want)
		}
		s := p.Snapshot().DestinationsPerWindow
		if s.Count != 6 || s.Sum != 113 || s.Counts[0] != 1 || s.Counts[1] != 2 || s.Counts[7] != 1 {
			t.Errorf("workers=%d: snapshot histogram %+v disagrees with the hand count", workers, s)
		}
	}
}

func equalDist(a, b ReceiverDistribution) bool {
	if a.Window != b.Window || a.Destinations != b.Destinations || a.Packets != b.Packets || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	for i := range a.Buckets {
		if a.Buckets[i] != b.Buckets[i] {
			return false
		}
	}
	return true
}

// hotPeers is how many peers peersInFlood's receiver has.
const hotPeers = 300

// peersInFlood returns, in time order, hotPeers peers retrying one receiver every 10 s
// beside a 400 000-SYN spoofed flood over darkAddr(0..511), all in one window from hotT0,
// the peers' packets and the receiver.
func peersInFlood() (ps []pcaptest.Packet, nPeer int, receiver netip.Addr) {
	const every, span = 10 * time.Second, 230 * time.Second // hotT0 + span: one window
	receiver = darkAddr(512 + 77)
	for i := range hotPeers {
		src := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		for at := time.Duration(i) * every / hotPeers; at < span; at += every {
			ps = append(ps, pcaptest.Packet{TS: hotT0.Add(at), Src: src, Dst: receiver, Proto: "udp",
				SrcPort: 6881, DstPort: 6881, Payload: make([]byte, 20)})
		}
	}
	nPeer = len(ps)
	ps = append(ps, synFlood(400_000, 400_000, 0x02, 0, 80, span)(true)...)
	slices.SortStableFunc(ps, func(a, b pcaptest.Packet) int { return a.TS.Compare(b.TS) })
	return ps, nPeer, receiver
}

// peersEpisodes lists the receiver's hotspot episodes in dets and reports whether they are
// the one peersInFlood's receiver should have: hotPeers sources (within 7 %, estimated) and
// all nPeer packets.
func peersEpisodes(dets Detections, receiver netip.Addr, nPeer int) (got []string, ok bool) {
	for _, h := range EntriesOf[*detect.HotspotEntry](dets, "hotspot") {
		if h.Dst == receiver.String() {
			got = append(got, fmt.Sprintf("port %d: %d sources (estimated %v), %d packets", h.Port, h.Sources, h.SourcesEstimated, h.Packets))
			ok = len(got) == 1 && within(h.Sources, hotPeers, 0.07) && h.SourcesEstimated && h.Packets == uint64(nPeer)
		}
	}
	return got, ok
}

// TestHotspotPeersAcrossRestore: the same window replayed in two halves, the state written
// after the first (replay --state-out) and restored before the second (--state-in), counts
// the peers as one replay does: the workers' sets of the window's sources are in the state.
// Without them the second half counted the peers again (600 where one replay says 300).
func TestHotspotPeersAcrossRestore(t *testing.T) {
	ps, nPeer, receiver := peersInFlood()
	col := NewEpisodes()
	p := replayCut(t, hotConfig(t, "limits: {max_destinations: 2048}\n"), 2, ps, len(ps)/2, col)
	if got, ok := peersEpisodes(p.Report(col).Detections, receiver, nPeer); !ok {
		t.Errorf("the receiver's episodes %q, want one of %d sources (within 7 %%, estimated), %d packets", got, hotPeers, nPeer)
	}
}

// TestHotspotPeersAcrossParts: at a telescope's rate a worker hands each window over in
// parts (its hotspot records fill up), and a receiver's senders that come back within the
// window (BitTorrent peers retrying every 10 s) count once, not once per part: 300 peers
// beside a 400 000-SYN spoofed flood over 512 other addresses, in one window, with 1, 2
// and 3 workers whose records hold 65 536 packets (limits.max_destinations: 2048), are 300
// sources (within 7 %; exact where a worker has at most 192 of them). The sum of the parts
// said 833 to 2 032.
func TestHotspotPeersAcrossParts(t *testing.T) {
	ps, nPeer, receiver := peersInFlood()
	path := filepath.Join(t.TempDir(), "peers.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3} {
		r, res := replayReport(t, hotConfig(t, "limits: {max_destinations: 2048}\n"), workers, path)
		if len(res.Errors) != 0 || res.Records != uint64(len(ps)) {
			t.Fatalf("workers=%d: %d records of %d, errors %v", workers, res.Records, len(ps), res.Errors)
		}
		got, ok := peersEpisodes(r.Detections, receiver, nPeer)
		t.Logf("workers=%d: %q", workers, got)
		if !ok {
			t.Errorf("workers=%d: the receiver's episodes %q, want one of %d sources (within 7 %%, estimated), %d packets",
				workers, got, hotPeers, nPeer)
		}
	}
}
