package filter

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// diffCase is one expression checked against libpcap. noOpt runs tcpdump with -O:
// libpcap 1.10's optimizer folds unary minus wrongly ("-ip[0] = 5" becomes "accept all").
// Also avoided: a constant left operand of an arithmetic operator with a proto[] right
// operand ("2 ^ ip[8] > 1"), where libpcap 1.10 drops the protocol check of ip[8].
type diffCase struct {
	expr    string
	noOpt   bool
	trivial bool // may accept all or nothing of the sample (no discrimination asserted)
}

var diffCases = []diffCase{
	// protocols
	{expr: "ip"}, {expr: "ip6"}, {expr: "tcp"}, {expr: "udp"}, {expr: "icmp"}, {expr: "icmp6"},
	{expr: "sctp"}, {expr: `ip proto 47`}, {expr: `ip proto \tcp`}, {expr: "ip6 proto 17"},
	{expr: "proto 6"}, {expr: `ip proto \udp or ip6 proto \ipv6-icmp`},
	{expr: "igmp or pim or esp or ah"}, {expr: "vrrp or igrp"}, {expr: "ip6 proto 44"},
	// hosts and networks
	{expr: "host 1.2.3.4"}, {expr: "src host 10.1.2.3"}, {expr: "dst host 192.168.1.1"},
	{expr: "src or dst host 198.51.100.7"}, {expr: "src and dst net 10.0.0.0/8"},
	{expr: "net 192.168.0.0/16"}, {expr: "net 10.1.0.0 mask 255.255.0.0"}, {expr: "net 10"},
	{expr: "dst net 192.168"}, {expr: "host 10.1"}, {expr: "host 80"},
	{expr: "host 2001:db8::1"}, {expr: "src net 2001:db8:1::/48"}, {expr: "dst net fe80::/10"},
	{expr: "ip6 host ::1"}, {expr: "ip host 5.6.7.8 or ip6 host ::ffff:1.2.3.4"},
	{expr: "src 1.2.3.4 or 5.6.7.8"}, {expr: "host (1.2.3.4 or 203.0.113.9)"},
	{expr: "dst host not 192.168.1.1"}, {expr: "net ::/0"}, {expr: "ip multicast or ip6 multicast"},
	// ports
	{expr: "port 80"}, {expr: "tcp port 23"}, {expr: "udp port 53"}, {expr: "src port 22"},
	{expr: "tcp dst port 2323"}, {expr: "port 23 or 2323"}, {expr: "tcp and (port 23 or 2323)"},
	{expr: "sctp port 80"}, {expr: "src and dst port 80"}, {expr: "portrange 20-25"},
	{expr: "tcp dst portrange 1000-2000"}, {expr: "udp portrange 100-200 or portrange 60000-65535"},
	{expr: "portrange 30-20"}, {expr: "port ssh"}, {expr: "port domain"},
	{expr: "udp port domain or tcp port http"}, {expr: "portrange ssh-telnet"}, {expr: "port https"},
	{expr: "tcp port 80 and 443"}, {expr: "not port 80 and tcp"},
	// lengths
	{expr: "less 60"}, {expr: "greater 500"}, {expr: "len > 100 and len <= 200"},
	{expr: "length = 40"},
	// arithmetic
	{expr: "ip[0] & 0xf != 5"}, {expr: "ip[6:2] & 0x1fff != 0"}, {expr: "tcp[13] & 2 != 0"},
	{expr: "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"},
	{expr: "tcp[tcpflags] & tcp-rst != 0 or tcp[tcpflags] == tcp-fin|tcp-ack"},
	{expr: "icmp[icmptype] == icmp-echo"},
	{expr: "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply"},
	{expr: "icmp[icmpcode] = 3"}, {expr: "udp[8:2] = 0x4100 or udp[8] > 200"},
	{expr: "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"}, {expr: "ip6[6] = 58"},
	{expr: "icmp6[icmp6type] = icmp6-echo or icmp6[0] > 130"}, {expr: "ip[2:2] > 100"},
	{expr: "ip[8] * 2 + 1 > ip[9] - 3"}, {expr: "ip[1] ^ 0xff = 0xff"},
	{expr: "(ip[0] & 0xf) * 4 > 20"}, {expr: "tcp[0:2] % 100 = 23"}, {expr: "ip[16:4] >> 24 = 10"},
	{expr: "ip[12] / 10 = 19"}, {expr: "udp[4:2] - 8 = len - 28"},
	{expr: "-ip[8] < -64", noOpt: true}, {expr: "ip[1] - -ip[1] = 0", noOpt: true},
	{expr: "ip[8] * 2 ^ 1 > 100"}, {expr: "ip[8] % 7 % 3 = 0"}, {expr: "ip[1] | ip[8] & 0x0f = 0x0f"},
	{expr: "ip[100] = 0 or tcp"}, {expr: "not ip[60:4] != 0"}, {expr: "tcp[20] = 1"},
	{expr: "ip[ip[0] & 0xf] > 0"}, {expr: "tcp[tcp[12] >> 4] = 0"}, {expr: "udp[0:2] = udp[2:2]"},
	{expr: "ip[8] / ip[1] > 1"}, {expr: "ip6[ip6[6]] > 7"}, {expr: "igmp[0] = 0x11 or pim[0] > 1"},
	// boolean structure and qualifier inheritance
	{expr: "tcp or udp and port 53"}, {expr: "not tcp and not udp"}, {expr: "!(tcp || udp) && ip6"},
	{expr: "not (port 80 or 443) and tcp"}, {expr: "host 1.2.3.4 and not port 22 or icmp"},
	{expr: "port 80 and (tcp) or 53"}, {expr: "icmp or not ip and not icmp6"},
	{expr: "src 10.0.0.1 and dst 10.0.0.2 or dst 10.0.0.1"}, {expr: "not not not ip"},
	{expr: "1 = 1", trivial: true}, {expr: "0 = 1 or tcp"}, {expr: "port (80 or 443) and 22"},
	{expr: "tcp dst port 23 or 2323 or udp src port 53 or 123"},
}

// TestFilterMatchesTcpdump checks that every expression accepts exactly the packets
// libpcap (through tcpdump, compiling the same text for LINKTYPE_RAW) accepts.
func TestFilterMatchesTcpdump(t *testing.T) {
	tcpdump := requireTcpdump(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	pkts := writeSample(t, in, 3000, 1, false)
	for _, c := range diffCases {
		t.Run(c.expr, func(t *testing.T) {
			want, err := tcpdumpAccepts(t, tcpdump, in, filepath.Join(dir, "out.pcap"), c)
			if err != nil {
				t.Fatal(err)
			}
			accepted := compareWithLibpcap(t, c.expr, pkts, want)
			if !c.trivial && (accepted == 0 || accepted == len(pkts)) {
				t.Errorf("sample does not discriminate: %d of %d accepted", accepted, len(pkts))
			}
		})
	}
}

// TestRandomExpressionsMatchTcpdump compares random combinations of the supported
// constructs, to catch interactions the hand-written cases miss. Against libpcap's
// optimized code it uses well-formed packets only: the optimizer deletes loads whose
// value is unused, which changes the verdict only when such a load would fail. Against
// unoptimized code (-O) every packet must agree, truncated ones included.
func TestRandomExpressionsMatchTcpdump(t *testing.T) {
	tcpdump := requireTcpdump(t)
	for _, mode := range []struct {
		name       string
		wellFormed bool
		noOpt      bool
	}{{"optimized", true, false}, {"unoptimized", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.pcap")
			pkts := writeSample(t, in, 1500, 2, mode.wellFormed)
			n, seed := 150, int64(3)
			if v, err := strconv.Atoi(os.Getenv("FILTER_RANDOM_EXPRS")); err == nil { // longer soak runs
				n, seed = v, time.Now().UnixNano()
				t.Logf("seed %d", seed)
			}
			g := &exprGen{r: rand.New(rand.NewSource(seed)), fullWords: mode.noOpt}
			for i := 0; i < n; i++ {
				c := diffCase{expr: g.expr(3), noOpt: mode.noOpt}
				want, err := tcpdumpAccepts(t, tcpdump, in, filepath.Join(dir, "out.pcap"), c)
				if err != nil {
					if !strings.Contains(err.Error(), "expression rejects all packets") {
						t.Errorf("libpcap refused %q: %v", c.expr, err)
						continue
					}
					want = map[string]bool{} // libpcap proved it false; ours must accept nothing
				}
				if !mode.noOpt && countMismatches(t, c.expr, pkts, want) > 0 {
					// On these packets no load can fail, so libpcap's optimized and
					// unoptimized code must agree; when they do not, the optimizer is wrong
					// (libpcap 1.10.3 has such bugs) and the unoptimized code is the reference.
					c.noOpt = true
					if unopt, err := tcpdumpAccepts(t, tcpdump, in, filepath.Join(dir, "out.pcap"), c); err == nil &&
						countMismatches(t, c.expr, pkts, unopt) == 0 {
						t.Logf("libpcap optimizer bug on %q: ours matches libpcap -O", c.expr)
						continue
					}
				}
				compareWithLibpcap(t, c.expr, pkts, want)
			}
		})
	}
}

// countMismatches is compareWithLibpcap without reporting.
func countMismatches(t *testing.T, expr string, pkts [][]byte, want map[string]bool) int {
	t.Helper()
	prog, err := CompileInstructions(expr, 65535)
	if err != nil {
		return len(pkts)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return len(pkts)
	}
	n := 0
	for _, p := range pkts {
		v, err := vm.Run(p)
		if err != nil || (v > 0) != want[string(p)] {
			n++
		}
	}
	return n
}

func requireTcpdump(t *testing.T) string {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump is required in CI: apt-get install tcpdump")
		}
		t.Skip("!!! SKIPPING: tcpdump not found; the libpcap differential test did not run !!!")
	}
	return tcpdump
}

// compareWithLibpcap runs our program on every packet and reports differences from the
// set libpcap accepted. It returns how many packets we accepted.
func compareWithLibpcap(t *testing.T, expr string, pkts [][]byte, want map[string]bool) int {
	t.Helper()
	prog, err := CompileInstructions(expr, 65535)
	if err != nil {
		t.Errorf("compile %q: %v", expr, err)
		return 0
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Errorf("%q: NewVM: %v", expr, err)
		return 0
	}
	var accepted, mismatches int
	for i, p := range pkts {
		n, err := vm.Run(p)
		if err != nil {
			t.Errorf("%q: packet %d: VM: %v", expr, i, err)
			return accepted
		}
		got := n > 0
		if got {
			accepted++
		}
		if got != want[string(p)] {
			mismatches++
			if mismatches <= 3 {
				t.Errorf("%q: packet %d (%d bytes): ours=%v libpcap=%v\n%s", expr, i, len(p), got, !got, hex.Dump(p[:min(len(p), 64)]))
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%q: %d/%d packets differ; program:\n%s", expr, mismatches, len(pkts), listing(prog))
	}
	return accepted
}

// writeSample writes n generated packets as LINKTYPE_RAW and returns them.
func writeSample(t *testing.T, path string, n int, seed int64, wellFormed bool) [][]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(262144, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	g := &packetGen{r: rand.New(rand.NewSource(seed)), wellFormed: wellFormed}
	pkts := make([][]byte, 0, n)
	ts := time.Unix(1700000000, 0)
	for i := 0; i < n; i++ {
		p := g.next()
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(p), Length: len(p)}
		if err := w.WritePacket(ci, p); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	if g.err != nil {
		t.Fatalf("building packets: %v", g.err)
	}
	return pkts
}

// tcpdumpAccepts runs libpcap's compiler and interpreter on the sample and returns the
// accepted packets (by content: equal bytes always get the same verdict).
func tcpdumpAccepts(t *testing.T, tcpdump, in, out string, c diffCase) (map[string]bool, error) {
	t.Helper()
	args := []string{"-r", in, "-w", out}
	if c.noOpt {
		args = append(args, "-O")
	}
	cmd := exec.Command(tcpdump, append(args, "--", c.expr)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return nil, fmt.Errorf("tcpdump %q: %v: %s", c.expr, err, msg[strings.LastIndexByte(msg, '\n')+1:])
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	acc := map[string]bool{}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return acc, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		acc[string(data)] = true
	}
}

func listing(prog []bpf.Instruction) string {
	var b strings.Builder
	for i, in := range prog {
		fmt.Fprintf(&b, "(%03d) %v\n", i, in)
	}
	return b.String()
}
