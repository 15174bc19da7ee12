// Command mkpcap writes a large, SYN-dominated telescope capture for benchmarks: a few heavy
// hitters, a crowd of scanners, random one-packet sources (spoofed-flood style), some UDP,
// backscatter and ICMP, in time order. Frames are written directly (no per-packet
// serialisation library) so millions take seconds.
//
//	go run ./internal/cmd/mkpcap -n 5000000 -o bench/syn.pcap
//
// The packets span a day of packet time; -span changes it (bench-work.sh's sample of 300 000
// spans 86 minutes: the 5 M file's rate, so its heavy hitters send as many probes a window
// and become scanner episodes as they do there).
//
// With -flood it writes instead -n SYN probes from fresh random sources (internal/floodgen),
// the worst case for the per-source table:
//
//	go run ./internal/cmd/mkpcap -flood -n 3000000 -o bench/flood-3000000.pcap
//
// and with -flood -mirai the same flood to TCP/23 with Mirai's fingerprint (seq ==
// destination), each packet a one-packet fingerprint episode.
//
// With -day SCALE it writes instead the generated telescope day (internal/daygen,
// ProfileTelescope: 2 h of packet time, ~168 k packets per unit of scale; scale 20 is the
// day of issue 10) and prints its planted detections:
//
//	go run ./internal/cmd/mkpcap -day 20 -seed 1 -o bench/day-20.pcap
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/internal/floodgen"
)

func main() {
	n := flag.Int("n", 5_000_000, "packets")
	out := flag.String("o", "syn.pcap", "output file")
	seed := flag.Uint64("seed", 1, "random seed")
	day := flag.Float64("day", 0, "write the generated telescope day at this scale (1 to 50) instead")
	flood := flag.Bool("flood", false, "write instead -n SYN probes to 203.0.113.0/24 over -span, each from a fresh random (spoofed) source")
	span := flag.Duration("span", 0, "with -n or -flood: the packet time the packets span (default: a day; with -flood an hour; 3s is trafgen's rate on a veth)")
	mirai := flag.Bool("mirai", false, "with -flood: TCP/23 SYNs with Mirai's fingerprint (seq == destination), each a one-packet fingerprint episode")
	swarm := flag.Int("swarm", 0, "write instead -n SYN probes over -span (default a minute) from this many bots taking turns, to random addresses of -dark, every other one to TCP/23")
	dark := flag.String("dark", "203.0.0.0/16", "with -swarm: the dark IPv4 prefix scanned")
	flag.Parse()
	if *span < 0 {
		fmt.Fprintln(os.Stderr, "mkpcap: -span must be positive")
		os.Exit(2)
	}
	if *n <= 0 && *day == 0 {
		fmt.Fprintln(os.Stderr, "mkpcap: -n must be positive")
		os.Exit(2)
	}
	if *swarm < 0 {
		fmt.Fprintln(os.Stderr, "mkpcap: -swarm must be positive")
		os.Exit(2)
	}
	if *swarm > 0 {
		if *span == 0 {
			*span = time.Minute
		}
		px, err := netip.ParsePrefix(*dark)
		if err != nil || !px.Addr().Is4() {
			fmt.Fprintf(os.Stderr, "mkpcap: -dark %q: want an IPv4 prefix such as 203.0.0.0/16\n", *dark)
			os.Exit(2)
		}
		if err := writeSwarm(*out, floodgen.Swarm{Start: floodgen.Start, N: *n, Bots: *swarm, Span: *span, Seed: *seed, Dark: px}); err != nil {
			fmt.Fprintln(os.Stderr, "mkpcap:", err)
			os.Exit(1)
		}
		return
	}
	if *flood {
		if *span == 0 {
			*span = time.Hour
		}
		if err := writeFlood(*out, *n, *seed, *mirai, *span); err != nil {
			fmt.Fprintln(os.Stderr, "mkpcap:", err)
			os.Exit(1)
		}
		return
	}
	if *day != 0 {
		if err := writeDay(*out, *day, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "mkpcap:", err)
			os.Exit(1)
		}
		return
	}
	if *span == 0 {
		*span = 24 * time.Hour
	}
	if err := write(*out, *n, *seed, *span); err != nil {
		fmt.Fprintln(os.Stderr, "mkpcap:", err)
		os.Exit(1)
	}
}

// synPorts are weighted like a real telescope's top SYN destination ports.
var synPorts = []uint16{23, 23, 23, 23, 52869, 8545, 22, 22, 445, 445, 80, 80, 8080, 2323, 3389, 5555, 81, 8443, 7547, 37215}

func writeFlood(path string, n int, seed uint64, mirai bool, span time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = floodgen.Write(f, floodgen.Flood{Start: floodgen.Start, N: n, Span: span, Seed: seed, Mirai: mirai})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeSwarm(path string, sw floodgen.Swarm) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = floodgen.WriteSwarm(f, sw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeDay(path string, scale float64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	truth, err := daygen.Generate(w, daygen.Options{Seed: int64(seed), Scale: scale, Profile: daygen.ProfileTelescope})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d packets; planted: %d scanner sources, %d telnet sweepers, %d surges, %d udp_then_syn pairs, %d backscatter victims, %d tool sources, %d background sources\n",
		path, truth.Packets, len(truth.Scanners), len(truth.TelnetSweeps), len(truth.Surges), len(truth.UDPThenSYN),
		len(truth.Backscatter), len(truth.Tools), truth.Background)
	return nil
}

func write(path string, n int, seed uint64, span time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := floodgen.WriteHeader(w); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	heavy := make([]uint32, 8)
	for i := range heavy {
		heavy[i] = 0x2d000000 | rng.Uint32N(1<<24) // 45.x.x.x
	}
	scanners := make([]uint32, 20000)
	for i := range scanners {
		scanners[i] = rng.Uint32()&0x7fffffff | 0x01000000
	}
	start := time.Date(2019, 1, 10, 0, 0, 0, 0, time.UTC).UnixNano()
	step := int64(span) / int64(n)
	frame := make([]byte, 16+60)
	for i := 0; i < n; i++ {
		var src uint32
		switch r := rng.IntN(100); {
		case r < 35:
			src = heavy[rng.IntN(len(heavy))]
		case r < 80:
			src = scanners[rng.IntN(len(scanners))]
		default:
			src = rng.Uint32() // one-packet random sources
		}
		dst := 0xcb000000 | rng.Uint32N(1<<16) // 203.0.0.0/16, the dark space
		ts := start + int64(i)*step
		kind := rng.IntN(100)
		var l int
		switch {
		case kind < 90:
			l = synFrame(frame[16:], src, dst, synPorts[rng.IntN(len(synPorts))], rng.Uint32(), 0x02)
		case kind < 92:
			l = synFrame(frame[16:], src, dst, uint16(1024+rng.IntN(60000)), rng.Uint32(), 0x12) // backscatter
		case kind < 99:
			l = udpFrame(frame[16:], src, dst, []uint16{1900, 53, 123, 161, 5060, 6881}[rng.IntN(6)])
		default:
			l = icmpFrame(frame[16:], src, dst)
		}
		binary.LittleEndian.PutUint32(frame[0:], uint32(ts/1e9))
		binary.LittleEndian.PutUint32(frame[4:], uint32(ts%1e9))
		binary.LittleEndian.PutUint32(frame[8:], uint32(l))
		binary.LittleEndian.PutUint32(frame[12:], uint32(l))
		if _, err := w.Write(frame[:16+l]); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func ipv4(b []byte, src, dst uint32, proto byte, payload int) {
	copy(b, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := b[14:]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+payload))
	binary.BigEndian.PutUint16(ip[4:], uint16(src^dst)) // not a tool fingerprint
	ip[6], ip[7], ip[8], ip[9] = 0, 0, 240, proto
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint32(ip[12:], src)
	binary.BigEndian.PutUint32(ip[16:], dst)
}

func synFrame(b []byte, src, dst uint32, port uint16, seq uint32, flags byte) int {
	ipv4(b, src, dst, 6, 24)
	t := b[34:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], port)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 0)
	t[12], t[13] = 6<<4, flags
	binary.BigEndian.PutUint16(t[14:], 1024)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	t[20], t[21], t[22], t[23] = 2, 4, 0x05, 0xb4 // MSS 1460
	return 60
}

func udpFrame(b []byte, src, dst uint32, port uint16) int {
	ipv4(b, src, dst, 17, 8+18)
	u := b[34:]
	binary.BigEndian.PutUint16(u[0:], 51413)
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], 8+18)
	u[6], u[7] = 0, 0
	copy(u[8:26], "d1:ad2:id20:abcdef")
	return 60
}

func icmpFrame(b []byte, src, dst uint32) int {
	ipv4(b, src, dst, 1, 8)
	ic := b[34:]
	for i := range ic[:26] {
		ic[i] = 0
	}
	ic[0] = 8
	return 60
}
