package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/pipeline"
)

// mixedCapture writes a seeded mix of TCP (every flag combination a telescope sees, and
// random ones), UDP, ICMP and IPv6 traffic, VLAN-tagged or not.
func mixedCapture(t *testing.T, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	common := []uint8{0x02, 0x02, 0x02, 0x02, 0x12, 0x04, 0x14, 0xc2, 0x10, 0x11, 0x18, 0x01, 0x00, 0x29, 0x3f, 0xff}
	ports := []uint16{23, 2323, 22, 80, 443, 445, 8080, 52869, 8545, 1900, 53, 123, 5060, 37215}
	var ps []pcaptest.Packet
	for i := 0; i < n; i++ {
		p := pcaptest.Packet{
			TS:      t0.Add(time.Duration(i) * time.Millisecond),
			Src:     netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(50))}),
			Dst:     netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(256))}),
			SrcPort: uint16(1024 + rng.IntN(60000)),
			DstPort: ports[rng.IntN(len(ports))],
		}
		if rng.IntN(4) == 0 {
			p.DstPort = uint16(1 + rng.IntN(65535))
		}
		if rng.IntN(10) == 0 {
			p.Src = netip.MustParseAddr("2001:db8:ffff::" + strconv.Itoa(1+rng.IntN(20)))
			p.Dst = netip.MustParseAddr("2001:db8:1::" + strconv.Itoa(1+rng.IntN(200)))
		}
		if rng.IntN(8) == 0 {
			p.VLAN = uint16(1 + rng.IntN(100))
		}
		switch r := rng.IntN(10); {
		case r < 6:
			p.Flags = common[rng.IntN(len(common))]
			if rng.IntN(5) == 0 {
				p.Flags = uint8(rng.IntN(256))
			}
		case r < 9:
			p.Proto = "udp"
			p.Payload = []byte("payload")
		default:
			p.Proto = "icmp"
			p.ICMPType = 8
			if p.Src.Is6() {
				p.ICMPType = 128
			}
		}
		ps = append(ps, p)
	}
	path := filepath.Join(t.TempDir(), "mixed.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	return path
}

// tsharkFields runs tshark with a display filter and returns the first occurrence of each
// field per packet.
func tsharkFields(t *testing.T, tshark, file, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", file, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-T", "fields", "-E", "occurrence=f", "-E", "separator=,"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tshark, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), ","))
	}
	return rows
}

// TestTablesMatchTshark cross-checks the report's protocol, flag and port tables against
// tshark's dissection of the same file.
func TestTablesMatchTshark(t *testing.T) {
	if testing.Short() {
		t.Skip("tshark cross-check skipped in -short mode")
	}
	tshark := requireTool(t, "tshark", "tshark")
	file := mixedCapture(t, 20000)
	code, stdout, stderr := telescope(t, "replay", "--report", "-", file)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	var r pipeline.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}

	// Packets per IP version and protocol. ICMP errors carry quoted headers that tshark
	// dissects as a second ip/tcp/udp layer: occurrence=f takes the outer one.
	proto := map[string]uint64{}
	for _, row := range tsharkFields(t, tshark, file, "ip || ipv6", "ip.proto", "ipv6.nxt") {
		switch {
		case row[0] == "6":
			proto["4/tcp"]++
		case row[0] == "17":
			proto["4/udp"]++
		case row[0] == "1":
			proto["4/icmp"]++
		case row[0] != "":
			proto["4/other"]++
		case row[1] == "6":
			proto["6/tcp"]++
		case row[1] == "17":
			proto["6/udp"]++
		case row[1] == "58":
			proto["6/icmpv6"]++
		default:
			proto["6/other"]++
		}
	}
	ours := map[string]uint64{
		"4/tcp": r.Packets.IPv4.TCP, "4/udp": r.Packets.IPv4.UDP, "4/icmp": r.Packets.IPv4.ICMP, "4/other": r.Packets.IPv4.Other,
		"6/tcp": r.Packets.IPv6.TCP, "6/udp": r.Packets.IPv6.UDP, "6/icmpv6": r.Packets.IPv6.ICMPv6, "6/other": r.Packets.IPv6.Other,
	}
	for k, v := range ours {
		if v == 0 {
			delete(ours, k)
		}
	}
	if !reflect.DeepEqual(proto, ours) {
		t.Errorf("protocols: tshark %v, telescope %v", proto, ours)
	}

	// TCP flag combinations (the low 8 bits of tcp.flags; NS and reserved bits are not ours).
	flags := map[string]uint64{}
	for _, row := range tsharkFields(t, tshark, file, "tcp && !icmp && !icmpv6", "tcp.flags") {
		v, err := strconv.ParseUint(strings.TrimPrefix(row[0], "0x"), 16, 16)
		if err != nil {
			t.Fatalf("tcp.flags %q: %v", row[0], err)
		}
		flags[packet.FlagsName(uint8(v))]++
	}
	if !reflect.DeepEqual(flags, r.TCPFlags) {
		t.Errorf("tcp flags:\ntshark    %v\ntelescope %v", flags, r.TCPFlags)
	}

	// Destination ports of SYN probes and of UDP datagrams, top 100 by packets, ties by port.
	portTable := func(filter, field string) []pipeline.PortCount {
		var counts [65536]uint64
		for _, row := range tsharkFields(t, tshark, file, filter, field) {
			p, err := strconv.Atoi(row[0])
			if err != nil {
				t.Fatalf("%s %q: %v", field, row[0], err)
			}
			counts[p]++
		}
		return aggregate.TopPorts(&counts, 100)
	}
	if got := portTable("tcp.flags.syn == 1 && tcp.flags.ack == 0 && !icmp && !icmpv6", "tcp.dstport"); !reflect.DeepEqual(got, r.DstPorts.TCPSYN) {
		t.Errorf("SYN ports:\ntshark    %v\ntelescope %v", got, r.DstPorts.TCPSYN)
	}
	if got := portTable("udp && !icmp && !icmpv6", "udp.dstport"); !reflect.DeepEqual(got, r.DstPorts.UDP) {
		t.Errorf("UDP ports:\ntshark    %v\ntelescope %v", got, r.DstPorts.UDP)
	}
	if len(r.TCPFlags) < 10 || len(r.DstPorts.UDP) < 14 {
		t.Errorf("the generated capture is too uniform to test anything: %d flag combinations, %d UDP ports", len(r.TCPFlags), len(r.DstPorts.UDP))
	}
}
