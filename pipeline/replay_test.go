package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
)

var t0 = time.Date(2019, 1, 10, 12, 0, 0, 0, time.UTC)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// knownFrames is a capture whose every table entry is counted by hand below.
func knownFrames(t *testing.T) []pcaptest.Frame {
	t.Helper()
	var fs []pcaptest.Frame
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	add := func(p pcaptest.Packet) {
		p.TS = at(len(fs))
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, pcaptest.Frame{TS: p.TS, Data: b})
	}
	// IPv4 TCP: 3 SYN to 23 from 192.0.2.1, 2 SYN-ECE-CWR to 80 from 192.0.2.2,
	// one VLAN-tagged SYN to 23 from 192.0.2.1, a SYN-ACK and a RST.
	for i := 1; i <= 3; i++ {
		add(pcaptest.Packet{Src: addr("192.0.2.1"), Dst: addr("203.0.113." + itoa(i)), SrcPort: 40000, DstPort: 23, Flags: 0x02})
	}
	for i := 1; i <= 2; i++ {
		add(pcaptest.Packet{Src: addr("192.0.2.2"), Dst: addr("203.0.113.10"), SrcPort: 40001, DstPort: 80, Flags: 0x02 | 0x40 | 0x80})
	}
	add(pcaptest.Packet{Src: addr("192.0.2.1"), Dst: addr("203.0.113.4"), SrcPort: 40000, DstPort: 23, Flags: 0x02, VLAN: 7})
	add(pcaptest.Packet{Src: addr("192.0.2.3"), Dst: addr("203.0.113.9"), SrcPort: 80, DstPort: 5555, Flags: 0x12})
	add(pcaptest.Packet{Src: addr("192.0.2.3"), Dst: addr("203.0.113.9"), SrcPort: 80, DstPort: 5556, Flags: 0x04})
	// IPv4 UDP: 2 to 1900 and 1 to 53, from 192.0.2.4; one to a destination outside the dark space.
	add(pcaptest.Packet{Proto: "udp", Src: addr("192.0.2.4"), Dst: addr("203.0.113.20"), SrcPort: 5000, DstPort: 1900, Payload: []byte("M-SEARCH")})
	add(pcaptest.Packet{Proto: "udp", Src: addr("192.0.2.4"), Dst: addr("203.0.113.21"), SrcPort: 5000, DstPort: 1900})
	add(pcaptest.Packet{Proto: "udp", Src: addr("192.0.2.4"), Dst: addr("198.51.100.1"), SrcPort: 5000, DstPort: 53})
	// ICMP echo request.
	add(pcaptest.Packet{Proto: "icmp", Src: addr("192.0.2.5"), Dst: addr("203.0.113.30"), ICMPType: 8})
	// IPv6: TCP SYN to 22, UDP to 443, ICMPv6 echo request.
	add(pcaptest.Packet{Src: addr("2001:db8:ffff::1"), Dst: addr("2001:db8:1::1"), SrcPort: 1234, DstPort: 22, Flags: 0x02})
	add(pcaptest.Packet{Proto: "udp", Src: addr("2001:db8:ffff::1"), Dst: addr("2001:db8:1::2"), SrcPort: 1234, DstPort: 443})
	add(pcaptest.Packet{Proto: "icmp", Src: addr("2001:db8:ffff::2"), Dst: addr("2001:db8:1::3"), ICMPType: 128})

	// A non-first IPv4 fragment of a TCP packet: counts as tcp, never as a flag or port.
	frag := ethIPv4(t, []byte{0x45, 0, 0, 28, 0, 1, 0x00, 0x10, 64, 6, 0, 0, 192, 0, 2, 6, 203, 0, 113, 40}, make([]byte, 8))
	fs = append(fs, pcaptest.Frame{TS: at(len(fs)), Data: frag})
	// A TCP packet cut inside its TCP header: counts as tcp, not as a flag.
	cut := ethIPv4(t, []byte{0x45, 0, 0, 40, 0, 2, 0, 0, 64, 6, 0, 0, 192, 0, 2, 7, 203, 0, 113, 41}, []byte{0x9c, 0x40, 0, 23})
	fs = append(fs, pcaptest.Frame{TS: at(len(fs)), Data: cut, WireLen: 54})
	// Non-IP (ARP), truncated (cut inside the IPv4 header) and malformed (IHL 3).
	arp := append(ethHeader(0x0806), make([]byte, 28)...)
	fs = append(fs, pcaptest.Frame{TS: at(len(fs)), Data: arp})
	trunc := append(ethHeader(0x0800), 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6)
	fs = append(fs, pcaptest.Frame{TS: at(len(fs)), Data: trunc, WireLen: 54})
	bad := ethIPv4(t, []byte{0x43, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 8, 203, 0, 113, 42}, nil)
	fs = append(fs, pcaptest.Frame{TS: at(len(fs)), Data: bad})
	return fs
}

func itoa(i int) string { return strconv.Itoa(i) }

func ethHeader(etype uint16) []byte {
	return []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, byte(etype >> 8), byte(etype)}
}

func ethIPv4(t *testing.T, ip, rest []byte) []byte {
	t.Helper()
	return append(append(ethHeader(0x0800), ip...), rest...)
}

func writePcap(t *testing.T, fs []pcaptest.Frame) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcaptest.NewWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range fs {
		if err := w.WriteFrame(fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func testConfig(t *testing.T) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24, 2001:db8:1::/48]\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func replayReport(t *testing.T, cfg *configs.Config, workers int, files ...string) (*Report, ReplayResult) {
	t.Helper()
	col := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: workers, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Replay(context.Background(), ReplayOptions{Files: files})
	return p.Report(col), res
}

// replayPipeline replays files with cfg on `workers` workers, failing on any replay error,
// and returns the pipeline (for its state) and its report.
func replayPipeline(t *testing.T, cfg *configs.Config, workers int, files ...string) (*Pipeline, *Report) {
	t.Helper()
	col := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: workers, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Replay(context.Background(), ReplayOptions{Files: files}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	return p, p.Report(col)
}

func TestReplayCountsEveryTableExactly(t *testing.T) {
	fs := knownFrames(t)
	path := writePcap(t, fs)
	for _, workers := range []int{1, 2, 3} {
		r, res := replayReport(t, testConfig(t), workers, path)
		if len(res.Errors) != 0 {
			t.Fatalf("errors: %v", res.Errors)
		}
		if res.Records != uint64(len(fs)) {
			t.Errorf("workers=%d: records %d, want %d", workers, res.Records, len(fs))
		}
		check := func(name string, got, want any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("workers=%d: %s = %v, want %v", workers, name, got, want)
			}
		}
		check("frames", r.Frames, uint64(20))
		check("non_ip_frames", r.NonIPFrames, uint64(1))
		check("truncated", r.DecodeErrors.Truncated, uint64(1))
		check("malformed", r.DecodeErrors.Malformed, uint64(1))
		check("ipv4.tcp", r.Packets.IPv4.TCP, uint64(3+2+1+1+1+1+1))
		check("ipv4.udp", r.Packets.IPv4.UDP, uint64(3))
		check("ipv4.icmp", r.Packets.IPv4.ICMP, uint64(1))
		check("ipv4.other", r.Packets.IPv4.Other, uint64(0))
		check("ipv6.tcp", r.Packets.IPv6.TCP, uint64(1))
		check("ipv6.udp", r.Packets.IPv6.UDP, uint64(1))
		check("ipv6.icmpv6", r.Packets.IPv6.ICMPv6, uint64(1))
		check("tcp_flags", r.TCPFlags, map[string]uint64{"SYN": 5, "SYN-ECE-CWR": 2, "SYN-ACK": 1, "RST": 1})
		check("dst_ports.tcp_syn", r.DstPorts.TCPSYN, []PortCount{{Port: 23, Packets: 4}, {Port: 80, Packets: 2}, {Port: 22, Packets: 1}})
		check("dst_ports.udp", r.DstPorts.UDP, []PortCount{{Port: 1900, Packets: 2}, {Port: 53, Packets: 1}, {Port: 443, Packets: 1}})
		check("first_packet", r.FirstPacket.String(), "2019-01-10T12:00:00Z")
		check("last_packet", r.LastPacket.String(), "2019-01-10T12:00:00.019Z")
		// 192.0.2.1: 4, .2: 2, .3: 2, .4: 3, .5: 1, .6: 1, .7: 1, v6 ::1: 2, ::2: 1 (the
		// malformed packet's source is never decoded).
		check("sources.unique", r.Sources.Unique, uint64(9))
		check("sources.top", addrPackets(r.Sources.Top[:4]), []AddrCount{
			{Addr: "192.0.2.1", Packets: 4}, {Addr: "192.0.2.4", Packets: 3}, {Addr: "192.0.2.2", Packets: 2}, {Addr: "192.0.2.3", Packets: 2}})
		check("sources.top len", len(r.Sources.Top), 9)
		check("destinations.unique", r.Destinations.Unique, uint64(15))
		// Ties rank by address: 203.0.113.9 before 203.0.113.10.
		check("destinations.top[0]", r.Destinations.Top[0], AddrCount{Addr: "203.0.113.9", Packets: 2})
		check("destinations.top[1]", r.Destinations.Top[1], AddrCount{Addr: "203.0.113.10", Packets: 2})
	}
}

func TestReplayReportIsTheSameForAnyWorkerCount(t *testing.T) {
	path := writePcap(t, knownFrames(t))
	var first []byte
	for _, workers := range []int{1, 2, 4, 7} {
		r, _ := replayReport(t, testConfig(t), workers, path)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if string(b) != string(first) {
			t.Errorf("workers=%d: report differs:\n%s\nwant\n%s", workers, b, first)
		}
	}
}

func TestReplayKeepsPacketsBeforeDamageAndReadsTheNextFile(t *testing.T) {
	fs := knownFrames(t)
	good := writePcap(t, fs)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the last record in half: 19 records survive.
	damaged := filepath.Join(t.TempDir(), "damaged.pcap")
	if err := os.WriteFile(damaged, data[:len(data)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	r, res := replayReport(t, testConfig(t), 2, damaged, good)
	if len(res.Errors) != 1 {
		t.Fatalf("errors %v, want exactly one", res.Errors)
	}
	if r.Frames != uint64(2*len(fs)-1) {
		t.Errorf("frames %d, want %d", r.Frames, 2*len(fs)-1)
	}
}

// TestSourceTableHoldsNoPointers: the per-source table can hold millions of entries; they
// must stay invisible to the garbage collector (and eligible for the reserved mapping).
func TestSourceTableHoldsNoPointers(t *testing.T) {
	if typ := reflect.TypeOf(aggregate.TableEntry[packet.Addr, sourceEntry]{}); aggregate.HasPointers(typ) {
		t.Errorf("%v holds pointers", typ)
	}
}

// TestDarkDestinationsCountedExactly: more distinct dark destinations than a Space-Saving
// summary holds, with a heavy one first seen late: the dense counters keep every count and
// the unique count exact; destinations outside the dark space still count. The same with
// the two /16s configured as part of a /8, the largest dark space counted per address (past
// 2^20 addresses it was counted through the summary: 131 073 destinations gave an estimate).
func TestDarkDestinationsCountedExactly(t *testing.T) {
	var fs []pcaptest.Frame
	add := func(dst netip.Addr) {
		p := pcaptest.Packet{Src: addr("192.0.2.1"), Dst: dst, SrcPort: 1, DstPort: 80, Flags: 0x02}
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, pcaptest.Frame{TS: t0.Add(time.Duration(len(fs)) * time.Microsecond), Data: b})
	}
	for i := 0; i < 2*65536+1000; i++ { // every address of both /16s once, some twice
		add(netip.AddrFrom4([4]byte{10, byte(7 + i>>16&1), byte(i >> 8), byte(i)}))
	}
	for i := 0; i < 40; i++ {
		add(addr("10.8.200.1"))
		add(addr("198.51.100.1")) // not dark: counted through the summary
	}
	pcap := writePcap(t, fs)
	for _, dark := range []string{"[10.7.0.0/16, 10.8.0.0/16]", "[10.0.0.0/8]"} {
		t.Run(dark, func(t *testing.T) {
			r, _ := replayReport(t, parseConfig(t, "dark_prefixes: "+dark+"\n"), 2, pcap)
			want := []AddrCount{{Addr: "10.8.200.1", Packets: 41}, {Addr: "198.51.100.1", Packets: 40}, {Addr: "10.7.0.0", Packets: 2}}
			if !reflect.DeepEqual(addrPackets(r.Destinations.Top[:3]), want) {
				t.Errorf("top destinations %v, want %v", r.Destinations.Top[:3], want)
			}
			if r.Destinations.Unique != 2*65536+1 {
				t.Errorf("unique destinations %d, want %d", r.Destinations.Unique, 2*65536+1)
			}
		})
	}
}

// addrPackets keeps the address and packets of top-list entries (the labels have tests of
// their own, who_test.go).
func addrPackets(l []AddrCount) []AddrCount {
	out := make([]AddrCount, len(l))
	for i, a := range l {
		out[i] = AddrCount{Addr: a.Addr, Packets: a.Packets}
	}
	return out
}

// TestReplayReportsAFileThatShrinks: a file cut short while replay has it mapped is a
// damaged file like the others: one error naming it, the records before the cut counted,
// the next file read. Without the recovery of the fault (SIGBUS) the test process dies.
func TestReplayReportsAFileThatShrinks(t *testing.T) {
	// Records of 8 KiB on 8 KiB boundaries (the first absorbs the 24-byte file header), so
	// that a cut at 64 KiB falls between two records.
	var fs []pcaptest.Frame
	for i := range 256 { // 2 MiB: mapped
		size := 8192 - 16
		if i == 0 {
			size -= 24
		}
		p := pcaptest.Packet{Proto: "udp", Src: addr("192.0.2.9"), Dst: addr("203.0.113.7"), SrcPort: 5000, DstPort: 9, Payload: make([]byte, size-42)}
		p.TS = t0.Add(time.Duration(i) * time.Millisecond)
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Fatalf("frame of %d bytes, want %d", len(b), size)
		}
		fs = append(fs, pcaptest.Frame{TS: p.TS, Data: b})
	}
	big := writePcap(t, fs)
	if st, err := os.Stat(big); err != nil || st.Size() != 256*8192 {
		t.Fatalf("file: %v, %v", st, err)
	}
	good := writePcap(t, knownFrames(t))
	const cut = 16 * 8192 // 128 KiB: 16 records survive
	replayOpened = func(name string) {
		if name == big {
			if err := os.Truncate(big, cut); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { replayOpened = nil })
	r, res := replayReport(t, testConfig(t), 2, big, good)
	var fe *capture.FileError
	if len(res.Errors) != 1 || !errors.As(res.Errors[0], &fe) || fe.Path != big ||
		!strings.HasPrefix(fe.Msg, "the file shrank while it was being read") || fe.Offset < cut || fe.Offset >= cut+4096 {
		t.Fatalf("errors %v, want the shrink of %s in the page at offset %d", res.Errors, big, cut)
	}
	if want := uint64(16 + len(knownFrames(t))); r.Frames != want {
		t.Errorf("frames %d, want %d", r.Frames, want)
	}
}

// TestReplayReusesBatchHeaders: a pipeline's replays share one region of batch headers (the
// garbage collector, which does not count memory outside the heap, would be the only one to
// unmap a region per call), and a replay after another counts the same as the first.
func TestReplayReusesBatchHeaders(t *testing.T) {
	path := writePcap(t, knownFrames(t))
	col := NewEpisodes()
	p, err := New(Options{Config: testConfig(t), Workers: 2, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	var mems []*batchHeaders
	for i := range 3 {
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 || res.Records != uint64(len(knownFrames(t))) {
			t.Fatalf("replay %d: %d records, errors %v", i, res.Records, res.Errors)
		}
		mems = append(mems, p.batchMem.Load())
	}
	if mems[0] == nil || mems[1] != mems[0] || mems[2] != mems[0] {
		t.Errorf("batch headers after each replay: %p %p %p, want one region", mems[0], mems[1], mems[2])
	}
	if f := p.Report(col).Frames; f != uint64(3*len(knownFrames(t))) {
		t.Errorf("frames %d after three replays, want %d", f, 3*len(knownFrames(t)))
	}
}
