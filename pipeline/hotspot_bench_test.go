package pipeline

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

var (
	benchSYNOnce sync.Once
	benchSYNPath string
	benchSYNErr  error
)

// benchSYN writes, once per test binary, a SYN-dominated capture shaped like
// internal/cmd/mkpcap's (a few heavy hitters, a crowd of scanners, one-packet random
// sources; destinations uniform over 203.0.0.0/16; ~6 900 packets per 5-minute window),
// 400 k packets. TELESCOPE_BENCH_PCAP names another file to use instead (e.g. one written
// by `go run ./internal/cmd/mkpcap -n 2000000`).
func benchSYN(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("TELESCOPE_BENCH_PCAP"); p != "" {
		return p
	}
	benchSYNOnce.Do(func() {
		dir, err := os.MkdirTemp("", "telescope-bench-")
		if err != nil {
			benchSYNErr = err
			return
		}
		benchSYNPath = filepath.Join(dir, "syn.pcap")
		benchSYNErr = writeBenchSYN(benchSYNPath, 400_000)
	})
	if benchSYNErr != nil {
		b.Fatal(benchSYNErr)
	}
	return benchSYNPath
}

func writeBenchSYN(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcaptest.NewWriter(bw, layers.LinkTypeEthernet)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	v4 := func(x uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	heavy := make([]uint32, 8)
	for i := range heavy {
		heavy[i] = 0x2d000000 | rng.Uint32N(1<<24)
	}
	scanners := make([]uint32, 20000)
	for i := range scanners {
		scanners[i] = rng.Uint32()&0x7fffffff | 0x01000000
	}
	ports := []uint16{23, 23, 23, 23, 52869, 8545, 22, 22, 445, 445, 80, 80, 8080, 2323, 3389, 5555, 81, 8443, 7547, 37215}
	start := time.Date(2019, 1, 10, 0, 0, 0, 0, time.UTC)
	step := 24 * time.Hour / 2_000_000 // mkpcap -n 2000000's packet rate
	for i := range n {
		var src uint32
		switch r := rng.IntN(100); {
		case r < 35:
			src = heavy[rng.IntN(len(heavy))]
		case r < 80:
			src = scanners[rng.IntN(len(scanners))]
		default:
			src = rng.Uint32()
		}
		p := pcaptest.Packet{TS: start.Add(time.Duration(i) * step), Src: v4(src), Dst: v4(0xcb000000 | rng.Uint32N(1<<16)),
			SrcPort: 40000, Seq: rng.Uint32(), Window: 1024, IPID: uint16(src), TTL: 240}
		switch kind := rng.IntN(100); {
		case kind < 90:
			p.DstPort, p.Flags = ports[rng.IntN(len(ports))], 0x02
		case kind < 92:
			p.DstPort, p.Flags = uint16(1024+rng.IntN(60000)), 0x12
		case kind < 99:
			p.Proto, p.SrcPort, p.DstPort = "udp", 51413, []uint16{1900, 53, 123, 161, 5060, 6881}[rng.IntN(6)]
			p.Payload = []byte("d1:ad2:id20:abcdef")
		default:
			p.Proto, p.ICMPType = "icmp", 8
		}
		if err := w.Write(&p); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// BenchmarkReplayHotspot replays the SYN-dominated capture with every detector off, with
// the detectors on but hotspot off, and with everything on, and reports packets/s: the
// hotspot detector's cost is the difference of the last two.
//
//	go test -run '^$' -bench ReplayHotspot -benchtime 3x ./pipeline/
func BenchmarkReplayHotspot(b *testing.B) {
	path := benchSYN(b)
	for _, tc := range []struct{ name, yaml string }{
		{"detectors=off", `detect: {scanner: {enabled: false}, telnet: {enabled: false}, udp_then_syn: {enabled: false},
  backscatter: {enabled: false}, fingerprint: {enabled: false}, hotspot: {enabled: false}}`},
		{"hotspot=off", `detect: {hotspot: {enabled: false}}`},
		{"hotspot=on", ``},
		{"hotspot=on,max_destinations=140000", `limits: {max_destinations: 140000}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.0.0/16]\n"+tc.yaml), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			var records uint64
			cpu0 := cpuTime()
			for b.Loop() {
				p, err := New(Options{Config: cfg, Workers: 2})
				if err != nil {
					b.Fatal(err)
				}
				res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
				if len(res.Errors) != 0 {
					b.Fatal(res.Errors)
				}
				records += res.Records
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "packets/s")
			// CPU time per packet (user + system, every thread): steadier than packets/s on a
			// shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(records), "cpu-ns/packet")
		})
	}
}

// cpuTime is the process's user + system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
