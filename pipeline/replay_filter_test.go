package pipeline

import (
	"context"
	"encoding/json"
	"math/rand"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// TestReplayFilter: with capture.filter's program, a replay counts what the filter keeps
// and nothing else: its report is that of the capture without the packets the filter
// rejects, which it counts (Filtered, and the report's filter). Packets over IPv4 and IPv6, some behind an 802.1Q
// tag (the program runs from the IP header on, as in the kernel).
func TestReplayFilter(t *testing.T) {
	const expr = "not port 22 and not (udp and src net 198.51.100.0/24) and not ip6 dst host 2001:db8::7"
	rejects := func(p pcaptest.Packet) bool {
		return p.Proto != "icmp" && (p.SrcPort == 22 || p.DstPort == 22) ||
			p.Proto == "udp" && netip.MustParsePrefix("198.51.100.0/24").Contains(p.Src) ||
			p.Dst == netip.MustParseAddr("2001:db8::7")
	}
	r := rand.New(rand.NewSource(3))
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	srcs := []string{"192.0.2.1", "198.51.100.9", "198.51.100.10", "2001:db8:ff::1", "2001:db8:ff::2"}
	var all, kept []pcaptest.Packet
	for i := range 3000 {
		src := netip.MustParseAddr(srcs[r.Intn(len(srcs))])
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(r.Intn(256))})
		if src.Is6() {
			dst = netip.MustParseAddr([]string{"2001:db8::7", "2001:db8::8"}[r.Intn(2)])
		}
		p := pcaptest.Packet{TS: t0.Add(time.Duration(i) * 100 * time.Millisecond), Src: src, Dst: dst,
			Proto: []string{"tcp", "udp", "icmp"}[r.Intn(3)], SrcPort: uint16(1024 + r.Intn(10)),
			DstPort: []uint16{22, 23, 53, 6881}[r.Intn(4)], Flags: 0x02, ICMPType: 8}
		if r.Intn(4) == 0 {
			p.VLAN = 100
		}
		if r.Intn(10) == 0 {
			p.SrcPort = 22
		}
		all = append(all, p)
		if !rejects(p) {
			kept = append(kept, p)
		}
	}
	dir := t.TempDir()
	allPath, keptPath := filepath.Join(dir, "all.pcap"), filepath.Join(dir, "kept.pcap")
	if err := pcaptest.WriteFile(allPath, all); err != nil {
		t.Fatal(err)
	}
	if err := pcaptest.WriteFile(keptPath, kept); err != nil {
		t.Fatal(err)
	}
	raw, err := filter.Compile(expr, 256)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := filter.NewProgram(raw)
	if err != nil {
		t.Fatal(err)
	}
	prog.Expr = expr
	var filt *ReportFilter // the last report's
	report := func(path string, prog *filter.Program) (string, ReplayResult) {
		t.Helper()
		p, err := New(Options{Config: configs.Default(), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}, Filter: prog})
		if len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
		rep := p.Report(NewEpisodes())
		rep.Inputs = nil
		filt, rep.Filter = rep.Filter, nil
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), res
	}
	want, _ := report(keptPath, nil)
	got, res := report(allPath, prog)
	if got != want {
		t.Error("the filtered replay's report differs from the report of the packets the filter keeps")
	}
	if n := uint64(len(all) - len(kept)); res.Filtered != n || res.Records != uint64(len(all)) ||
		filt == nil || *filt != (ReportFilter{Expression: expr, FilteredOut: n}) {
		t.Errorf("%d of %d records filtered out, the report's filter %+v; want %d of %d", res.Filtered, res.Records, filt, n, len(all))
	}
	if len(kept) < 1000 || len(all)-len(kept) < 1000 {
		t.Fatalf("%d packets kept of %d: the sample is too one-sided", len(kept), len(all))
	}
	if unfiltered, _ := report(allPath, nil); unfiltered == want || filt != nil {
		t.Errorf("the report without the filter equals the filtered one, or has a filter (%+v)", filt)
	}
}

// TestReplayFilterNonIP: frames of another network protocol (ARP, also behind an 802.1Q
// tag) go through the filter from their network header, as the kernel hands it to the
// program live: "tcp" rejects them (filtered out, no non-IP frame counted), "not port 22"
// keeps them (counted as non-IP frames), as it keeps the SYNs to port 23.
func TestReplayFilterNonIP(t *testing.T) {
	arp := append(ethHeader(0x0806), 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet, IPv4, request
	arp = append(arp, make([]byte, 20)...)                   // addresses
	tagged := append(append(ethHeader(0x8100)[:14:14], 0, 7, 8, 6), arp[14:]...)
	var fs []pcaptest.Frame
	at := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		at = at.Add(time.Millisecond)
		switch i % 3 {
		case 0:
			fs = append(fs, pcaptest.Frame{TS: at, Data: [][]byte{arp, tagged}[i/3%2]})
		default:
			p := pcaptest.Packet{TS: at, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 4000, DstPort: []uint16{22, 23}[i%3-1], Flags: 0x02}
			b, err := p.EthernetBytes()
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, pcaptest.Frame{TS: at, Data: b})
		}
	}
	path := writePcap(t, fs)
	for _, c := range []struct {
		expr            string
		filtered, nonIP uint64
	}{{"tcp", 10, 0}, {"not port 22", 10, 10}} {
		raw, err := filter.Compile(c.expr, 256)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := filter.NewProgram(raw)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(Options{Config: configs.Default(), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}, Filter: prog})
		r := p.Report(NewEpisodes())
		if len(res.Errors) > 0 || res.Filtered != c.filtered || r.NonIPFrames != c.nonIP || r.Frames != 30-c.filtered {
			t.Errorf("%q: %d filtered out, %d non-IP frames of %d counted (errors %v); want %d filtered out, %d non-IP",
				c.expr, res.Filtered, r.NonIPFrames, r.Frames, res.Errors, c.filtered, c.nonIP)
		}
	}
}
