package pipeline

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestReplayOfWildTimes replays pcapng files of a damaged kind: their timestamps step on,
// go back, jump hours, and one in ten records holds any 64-bit value (or the interface
// an absurd if_tsoffset), over every kind of packet the detectors read and tables a few
// entries large. Each file must replay to its end with every record counted and every
// episode that started ended, with 1 and 2 workers. Before packet times were kept within
// [0, packet.MaxTS], a time near the int64 limit wrapped a fingerprint episode's due time
// and the replay never ended (10 of 10 such files generated at random hung the release
// binary).
func TestReplayOfWildTimes(t *testing.T) {
	cfg := parseConfig(t, `dark_prefixes: [192.0.2.0/28]
window: 10s
detect:
  scanner: {min_packets: 3, min_targets: 2}
  telnet: {min_targets: 2, surge_min_sources: 2}
  backscatter: {min_packets: 2, min_rate_per_minute: 1}
  hotspot: {min_sources: 2}
limits: {max_sources: 6, max_destinations: 2, max_sets_mb: 1}
`)
	dir := t.TempDir()
	for seed := range uint64(6) {
		path := filepath.Join(dir, "wild.pcapng")
		n := writeWildPcapng(t, path, seed)
		for _, workers := range []int{1, 2} {
			rec := &recorder{next: NewEpisodes()}
			p, err := New(Options{Config: cfg, Workers: workers, Sink: rec})
			if err != nil {
				t.Fatal(err)
			}
			res := replayWhile(t, p, []string{path}, nil)
			if len(res.Errors) != 0 || res.Records != uint64(n) {
				t.Fatalf("seed %d, %d workers: %d of %d records, errors %v", seed, workers, res.Records, n, res.Errors)
			}
			if r := p.Report(rec.next); r.Frames != uint64(n) {
				t.Errorf("seed %d, %d workers: the report counts %d frames of %d", seed, workers, r.Frames, n)
			}
			phases := map[string][2]int{} // by detector: episodes started, ended
			for _, ev := range rec.events {
				c := phases[ev.Detector]
				c[ev.Phase]++
				phases[ev.Detector] = c
			}
			started := 0
			for d, c := range phases {
				started += c[detect.Start]
				if c[detect.Start] != c[detect.End] {
					t.Errorf("seed %d, %d workers: %s: %d episodes started, %d ended", seed, workers, d, c[detect.Start], c[detect.End])
				}
			}
			if started == 0 {
				t.Errorf("seed %d, %d workers: no episode at all", seed, workers)
			}
		}
	}
}

// writeWildPcapng writes a pcapng file of up to 3 000 random records (see
// TestReplayOfWildTimes) from seed and returns how many.
func writeWildPcapng(t *testing.T, path string, seed uint64) int {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	le := binary.LittleEndian
	var out []byte
	block := func(typ uint32, body []byte) {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		n := uint32(12 + len(body))
		out = le.AppendUint32(le.AppendUint32(out, typ), n)
		out = le.AppendUint32(append(out, body...), n)
	}
	block(0x0A0D0D0A, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, 0x1A2B3C4D), 1), math.MaxUint64))
	res := []byte{6, 9, 3, 0x80 | 10}[r.IntN(4)]
	unit := map[byte]uint64{6: 1e6, 9: 1e9, 3: 1e3, 0x80 | 10: 1024}[res]
	idb := le.AppendUint32(le.AppendUint32(nil, 1), 0)        // Ethernet, snaplen 0
	idb = append(le.AppendUint32(idb, 9|1<<16), res, 0, 0, 0) // if_tsresol
	if r.IntN(3) == 0 {
		off := []int64{-100, 1e9, -1 << 62, math.MaxInt64, math.MinInt64}[r.IntN(5)]
		idb = le.AppendUint64(le.AppendUint32(idb, 14|8<<16), uint64(off)) // if_tsoffset
	}
	block(1, le.AppendUint32(idb, 0))
	ts := 1700000000 * unit
	n := 1 + r.IntN(3000)
	for range n {
		switch x := r.IntN(100); {
		case x < 70:
			ts += r.Uint64N(unit/10 + 1)
		case x < 80:
			ts -= r.Uint64N(50 * unit)
		case x < 85:
			ts += unit * (60 + r.Uint64N(4000))
		case x < 95:
			ts = []uint64{0, math.MaxUint64, 1 << 63, 1<<63 - 20*unit, r.Uint64()}[r.IntN(5)]
		}
		p := wildPacket(r)
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		epb := le.AppendUint32(nil, 0)
		epb = le.AppendUint32(le.AppendUint32(epb, uint32(ts>>32)), uint32(ts))
		epb = le.AppendUint32(le.AppendUint32(epb, uint32(len(b))), uint32(len(b)))
		block(6, append(epb, b...))
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// wildPacket is a random packet of the kinds the detectors read, from a few sources to a
// dark /28.
func wildPacket(r *rand.Rand) pcaptest.Packet {
	src := netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(8))})
	if r.IntN(5) == 0 {
		src = netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	}
	dst := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(16))})
	p := pcaptest.Packet{Src: src, Dst: dst, SrcPort: []uint16{40000, 6881, 80}[r.IntN(3)],
		DstPort: []uint16{23, 2323, 80, 443, 6881, 53}[r.IntN(6)], Window: 29200, IPID: 1, Seq: r.Uint32()}
	switch k := r.IntN(7); k {
	case 0, 1, 2, 3:
		p.Flags = []uint8{0x02, 0x12, 0x04, 0x14}[k]
		if r.IntN(3) == 0 {
			a := dst.As4()
			p.Seq = binary.BigEndian.Uint32(a[:]) // Mirai
		}
		if r.IntN(4) == 0 {
			p.IPID, p.Window = 54321, 65535 // zmap
		}
	case 4:
		p.Proto = "udp"
		p.Payload = []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
		if r.IntN(2) == 0 {
			p.Payload = p.Payload[:r.IntN(len(p.Payload))]
		}
	default:
		p.Proto, p.ICMPType = "icmp", []uint8{8, 0, 3, 11}[r.IntN(4)]
		if p.ICMPType == 3 || p.ICMPType == 11 {
			p.Quote = &pcaptest.Packet{Src: dst, Dst: src, SrcPort: 80, DstPort: 1234, Flags: 0x02}
		}
	}
	return p
}
