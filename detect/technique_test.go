package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// flagsOf parses a flag-combination name (DESIGN.md order) into a flags byte.
func flagsOf(t *testing.T, name string) uint8 {
	t.Helper()
	for f := 0; f < 256; f++ {
		if packet.FlagsName(uint8(f)) == name {
			return uint8(f)
		}
	}
	t.Fatalf("no flag combination %q", name)
	return 0
}

// TestTechniqueFlags classifies every flag combination of the study's table (and the named
// nmap scans) by technique; "" is no technique (backscatter or connection data).
func TestTechniqueFlags(t *testing.T) {
	cases := []struct{ flags, want string }{
		{"SYN", "syn"},
		{"SYN-ACK", ""},        // backscatter
		{"SYN-ECE-CWR", "syn"}, // an ECN-capable SYN
		{"RST", ""},            // backscatter
		{"RST-ACK", ""},        // backscatter
		{"ACK", "ack"},         // -sA / -sW
		{"FIN-ACK", "maimon"},  // -sM
		{"PSH-ACK", ""},        // data of a connection
		{"FIN-PSH-ACK", ""},
		{"FIN", "fin"},          // -sF
		{"none", "null"},        // -sN
		{"FIN-PSH-URG", "xmas"}, // -sX
		{"FIN-PSH-URG-ECE-CWR", "xmas"},
		{"ACK-ECE", "ack"},
		{"FIN-SYN", "odd"},
		{"SYN-RST", "odd"},
		{"FIN-SYN-RST-PSH-ACK-URG", "odd"},
		{"FIN-SYN-RST-PSH-ACK-URG-CWR", "odd"},
		{"FIN-SYN-RST-PSH-ACK-URG-ECE-CWR", "odd"},
		{"FIN-SYN-PSH-URG", "odd"},
		{"PSH", "odd"},
		{"URG", "odd"},
		{"FIN-PSH", "odd"},
		{"SYN-PSH", "syn"},
		{"FIN-RST", ""},     // the backscatter rule counts it as rst
		{"FIN-SYN-ACK", ""}, // the backscatter rule counts it as syn_ack
		{"ECE-CWR", "null"},
	}
	for _, c := range cases {
		h := tcp("192.0.2.9", "203.0.113.1", flagsOf(t, c.flags), t0)
		if got := techName(TechniqueOf(&h)); got != c.want {
			t.Errorf("%s: technique %q, want %q", c.flags, got, c.want)
		}
		// The scanner rule is unchanged: a technique packet without SYN is never a probe,
		// and no technique packet is backscatter.
		if TechniqueOf(&h) >= 0 && backscatterKind(&h) >= 0 {
			t.Errorf("%s: both a technique and backscatter", c.flags)
		}
	}
	// Every one of the 256 combinations: backscatter and technique exclude each other, and
	// every SYN probe has a technique.
	for f := 0; f < 256; f++ {
		h := tcp("192.0.2.9", "203.0.113.1", uint8(f), t0)
		tech := TechniqueOf(&h)
		if tech >= 0 && backscatterKind(&h) >= 0 {
			t.Errorf("%s: technique %s and backscatter %d", packet.FlagsName(uint8(f)), techName(tech), backscatterKind(&h))
		}
		if h.SYNProbe() && tech != TechSYN && tech != TechOdd {
			t.Errorf("%s: SYN probe with technique %q", packet.FlagsName(uint8(f)), techName(tech))
		}
		if h.SYNProbe() && synTechnique(&h) != tech {
			t.Errorf("%s: synTechnique %d, TechniqueOf %d", packet.FlagsName(uint8(f)), synTechnique(&h), tech)
		}
	}
}

func TestTechniqueProtocols(t *testing.T) {
	connect := syn("192.0.2.9", "203.0.113.1", 80, t0)
	connect.Opts = packet.TCPOptions{Kinds: 1<<2 | 1<<3 | 1<<4 | 1<<8, Count: 4, MSS: 1460, WScale: 7} // Linux
	windows := syn("192.0.2.9", "203.0.113.1", 80, t0)
	windows.Opts = packet.TCPOptions{Kinds: 1<<2 | 1<<3 | 1<<4, Count: 3, MSS: 1460, WScale: 8}
	nmap := syn("192.0.2.9", "203.0.113.1", 80, t0)
	nmap.Opts = packet.TCPOptions{Kinds: 1 << 2, Count: 1, MSS: 1460}
	noL4 := syn("192.0.2.9", "203.0.113.1", 80, t0)
	noL4.L4 = false
	unreach := icmpErr("198.51.100.1", "203.0.113.1", 3, "203.0.113.1", "192.0.2.1", t0)
	cases := []struct {
		name string
		h    packet.Header
		want string
	}{
		{"raw SYN without options", syn("192.0.2.9", "203.0.113.1", 80, t0), "syn"},
		{"SYN with MSS only (nmap -sS)", nmap, "syn"},
		{"SYN with Linux's options", connect, "connect"},
		{"SYN with Windows's options", windows, "connect"},
		{"UDP", udp("192.0.2.9", "203.0.113.1", 53, t0, nil), "udp"},
		{"ICMP echo", echo("192.0.2.9", "203.0.113.1", t0), "icmp_echo"},
		{"ICMPv6 echo", echo("2001:db8::9", "2001:db8:1::1", t0), "icmp_echo"},
		{"ICMP unreachable", unreach, ""},
		{"TCP header incomplete", noL4, ""},
	}
	for _, c := range cases {
		if got := techName(TechniqueOf(&c.h)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestTechCountsDecay(t *testing.T) {
	var c TechCounts
	if c.Dominant() != -1 {
		t.Fatal("empty counts have a dominant technique")
	}
	for i := 0; i < 1000; i++ {
		c.add(TechSYN)
		if i%4 == 0 {
			c.add(TechUDP)
		}
	}
	if c.Dominant() != TechSYN {
		t.Fatalf("dominant %d, want syn", c.Dominant())
	}
	// Proportions survive the halving: about 4 SYN for 1 UDP.
	if r := float64(c[TechSYN]) / float64(c[TechUDP]); r < 3 || r > 5 {
		t.Errorf("syn/udp %d/%d, ratio %.2f, want about 4", c[TechSYN], c[TechUDP], r)
	}
	for i := 0; i < 3000; i++ {
		c.add(TechFIN)
	}
	if c.Dominant() != TechFIN {
		t.Errorf("after 3000 FIN the dominant technique is %d", c.Dominant())
	}
}

// TestTechniqueEngine: the scanner episode carries the source's technique, stealth
// packets count without changing the scanner rule, and the counters see every packet.
func TestTechniqueEngine(t *testing.T) {
	h := newHarness(t, testConfig(t))
	// 150 FIN packets: no probe, no scanner episode, but counted as fin.
	h.feed(seq(150, t0, sec/10, func(i int, ts int64) packet.Header {
		return tcp("192.0.2.7", ip4("203.0.113.0", i), packet.FlagFIN, ts)
	})...)
	if evs := h.sink.take(); len(evs) != 0 {
		t.Fatalf("FIN packets made %d events", len(evs))
	}
	st := h.srcs.Get(addr("192.0.2.7"))
	if SourceTechnique(st) != "fin" {
		t.Errorf("FIN source technique %q", SourceTechnique(st))
	}
	// A connect() scanner with a few ACKs in its episode.
	conn := func(i int, ts int64) packet.Header {
		p := syn(scanSrc, ip4("203.0.113.0", i), 80, ts)
		p.Opts = packet.TCPOptions{Kinds: 1<<2 | 1<<3 | 1<<4 | 1<<8, Count: 4, MSS: 1460}
		return p
	}
	h.feed(seq(120, t0, sec/10, conn)...)
	h.feed(seq(10, t0+20*sec, sec/10, func(i int, ts int64) packet.Header {
		return tcp(scanSrc, ip4("203.0.113.0", i), packet.FlagACK, ts)
	})...)
	h.finish(t0 + 40*sec)
	var end *ScannerEntry
	for _, e := range h.sink.take() {
		if x, ok := e.Entry.(*ScannerEntry); ok && e.Phase == End {
			end = x
		}
	}
	if end == nil || end.Technique != "connect" || end.Packets != 120 {
		t.Fatalf("scanner end %+v, want technique connect and 120 probes", end)
	}
	want := map[string]uint64{"fin": 150, "connect": 120, "ack": 10}
	for i, name := range Techniques {
		if got := h.c.TechniquePackets[i].Load(); got != want[name] {
			t.Errorf("technique %s: %d packets, want %d", name, got, want[name])
		}
	}
}
