package detect

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/packet"
)

// t0 is a minute-aligned packet time all test sequences start from.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

const (
	sec = int64(time.Second)
	mn  = int64(time.Minute)
	win = 5 * mn // the default window
)

// recSink records events in order.
type recSink struct {
	mu     sync.Mutex
	events []*Event
}

func (s *recSink) Detection(ev *Event) {
	s.mu.Lock()
	c := *ev // ev is reused after the call
	s.events = append(s.events, &c)
	s.mu.Unlock()
}

func (s *recSink) take() []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}

// darkSpace returns the dark space of the prefixes, with their dense index.
func darkSpace(t testing.TB, prefixes ...string) *aggregate.Prefixes {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	px, err := aggregate.NewPrefixes(ps, aggregate.NewPrefixSlots())
	if err != nil {
		t.Fatal(err)
	}
	return px
}

// hotStarts returns the entries of the hotspot episodes that events start.
func hotStarts(events []*Event) []*HotspotEntry {
	var hot []*HotspotEntry
	for _, ev := range events {
		if ev.Detector == Hotspot && ev.Phase == Start {
			hot = append(hot, ev.Entry.(*HotspotEntry))
		}
	}
	return hot
}

// testConfig returns the default detector config with small tables.
func testConfig(t testing.TB) *Config {
	t.Helper()
	c, err := configs.Parse(nil, "test")
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg := NewConfig(c, 1)
	cfg.MaxFlows = 1024
	return cfg
}

// harness is one engine with its own source table, as a pipeline worker has.
type harness struct {
	t     testing.TB
	cfg   *Config
	sink  *recSink
	c     *Counters
	e     *Engine
	srcs  *aggregate.Table[packet.Addr, SourceState]
	surge *Surge
	now   int64
}

func newHarness(t testing.TB, cfg *Config) *harness {
	h := &harness{t: t, cfg: cfg, sink: &recSink{}, c: &Counters{}}
	h.surge = NewSurge(1, h.sink)
	h.surge.SetConfig(cfg)
	h.e = NewEngine(cfg, 0, h.sink, h.surge, h.c)
	h.srcs = newSourceTable(1024)
	h.srcs.SetEvict(func(k *packet.Addr, v *SourceState) { h.e.Evicted(k, v, h.now) })
	h.e.SetSources(h.srcs) // tool episodes stay in place, as in the pipeline
	return h
}

// legacyTools makes the harness's engine move tool episodes into its episode table, as an
// engine without the source table does (and as records restored from older checkpoints go on).
func (h *harness) legacyTools() { h.e.SetSources(nil) }

func (h *harness) feed(pkts ...packet.Header) {
	for i := range pkts {
		p := &pkts[i]
		h.now = max(h.now, p.TS)
		slot, _ := h.srcs.TouchSlot(p.Src)
		_, st := h.srcs.At(slot)
		h.e.PacketIn(p, st, -1, slot)
	}
}

// finish ends everything and checks that the counters agree with the events.
func (h *harness) finish(now int64) {
	h.e.Finish(now)
	h.surge.Finish(now)
}

func addr(s string) packet.Addr { return packet.AddrFromNetip(netip.MustParseAddr(s)) }

// ipOf is s as a report entry's address.
func ipOf(s string) IP { return IP(addr(s)) }

// ip4 returns the i-th address of a /16 starting at base (a.b.0.0), as a string.
func ip4(base string, i int) string {
	a := netip.MustParseAddr(base).As4()
	a[2], a[3] = byte(i>>8), byte(i)
	return netip.AddrFrom4(a).String()
}

func ipHeader(src, dst string, ts int64) packet.Header {
	h := packet.Header{TS: ts, Result: packet.ResultIP, Src: addr(src), Dst: addr(dst), TTL: 64}
	h.IPVersion = 6
	if h.Src.Is4() {
		h.IPVersion = 4
	}
	return h
}

// syn is a SYN probe.
func syn(src, dst string, port uint16, ts int64) packet.Header {
	h := ipHeader(src, dst, ts)
	h.Proto, h.L4, h.DstPort, h.SrcPort = packet.ProtoTCP, true, port, 40000
	h.TCPFlags, h.Window, h.Seq, h.IPID = packet.FlagSYN, 29200, 0x12345678, 0x1111
	return h
}

// tcp is a TCP segment with the given flags.
func tcp(src, dst string, flags uint8, ts int64) packet.Header {
	h := syn(src, dst, 443, ts)
	h.TCPFlags = flags
	return h
}

func udp(src, dst string, port uint16, ts int64, payload []byte) packet.Header {
	h := ipHeader(src, dst, ts)
	h.Proto, h.L4, h.DstPort, h.SrcPort = packet.ProtoUDP, true, port, 6881
	h.PayloadLen = uint16(len(payload))
	h.PayloadCap = uint8(copy(h.Payload[:], payload))
	h.PayloadClass = packet.ClassifyUDP(payload, len(payload))
	return h
}

func echo(src, dst string, ts int64) packet.Header {
	h := ipHeader(src, dst, ts)
	h.Proto, h.L4, h.ICMPType = packet.ProtoICMP, true, 8
	if h.IPVersion == 6 {
		h.Proto, h.ICMPType = packet.ProtoICMPv6, 128
	}
	return h
}

// icmpErr is an ICMP error of type typ from router about a packet quotedSrc -> quotedDst.
func icmpErr(router, dst string, typ uint8, quotedSrc, quotedDst string, ts int64) packet.Header {
	h := ipHeader(router, dst, ts)
	h.Proto, h.L4, h.ICMPType = packet.ProtoICMP, true, typ
	h.Inner = packet.Quoted{Valid: true, Proto: packet.ProtoTCP, Src: addr(quotedSrc), Dst: addr(quotedDst), SrcPort: 80, DstPort: 1234}
	return h
}

// ev is a compact, comparable form of an event: detector, phase, class and the entry.
type ev struct {
	det   string
	phase Phase
	class string
	entry any
}

func (e ev) String() string {
	return fmt.Sprintf("%s %s %s %+v", e.det, e.phase, e.class, e.entry)
}

func evs(events []*Event) []ev {
	out := make([]ev, len(events))
	for i, e := range events {
		var entry any
		switch x := e.Entry.(type) {
		case *ScannerEntry:
			// The rule's fields; technique, summary and profile have tests of their own
			// (technique_test.go, profile_test.go).
			y := *x
			y.Technique, y.Summary, y.Profile = "", "", nil
			entry = y
		case *TelnetSweepEntry:
			entry = *x
		case *TelnetSurgeEntry:
			y := *x
			y.Baseline = math.Round(y.Baseline*1e9) / 1e9 // EWMA arithmetic: compare to 1e-9
			entry = y
		case *UDPThenSYNEntry:
			entry = *x
		case *BackscatterEntry:
			entry = *x
		case *ToolEntry:
			entry = *x
		default:
			entry = fmt.Sprintf("unexpected entry %T", e.Entry)
		}
		out[i] = ev{det: e.Detector, phase: e.Phase, class: e.Class, entry: entry}
	}
	return out
}

// checkEvents compares events exactly (order included).
func checkEvents(t testing.TB, got []*Event, want []ev) {
	t.Helper()
	g := evs(got)
	same := len(g) == len(want)
	for i := 0; same && i < len(g); i++ {
		same = g[i].String() == want[i].String()
	}
	if !same {
		var b strings.Builder
		b.WriteString("events differ\ngot:\n")
		for _, e := range g {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		b.WriteString("want:\n")
		for _, e := range want {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		t.Fatal(b.String())
	}
}

// checkCounters verifies that Detections and Active agree with a complete event log.
func checkCounters(t testing.TB, c *Counters, all []*Event) {
	t.Helper()
	var starts [numDetectors][maxClasses]uint64
	var active [numDetectors]int64
	for _, e := range all {
		d := DetectorIndex(e.Detector)
		k := -1
		if d >= 0 {
			k = descriptors[d].ClassIndex(e.Class)
		}
		if d < 0 || k < 0 {
			t.Fatalf("event with unknown detector/class %q/%q", e.Detector, e.Class)
		}
		if d == detTelnetSurge {
			continue // counted by the Surge itself
		}
		if e.Phase == Start {
			starts[d][k]++
			active[d]++
		} else {
			active[d]--
		}
	}
	for d, desc := range descriptors {
		for k, class := range desc.Classes {
			if got := c.Detections[d][k].Load(); got != starts[d][k] {
				t.Errorf("Detections[%s][%s] = %d, events say %d", desc.Name, class, got, starts[d][k])
			}
		}
		if d == detTelnetSurge {
			continue
		}
		if got := c.Active[d].Load(); got != active[d] {
			t.Errorf("Active[%s] = %d, events say %d", desc.Name, got, active[d])
		}
	}
}

// step is one stage of a scenario: feed packets, then optionally advance the clock or
// finish, then expect exactly these new events.
type step struct {
	pkts    []packet.Header
	advance int64 // Advance(advance) when non-zero
	finish  int64 // Finish(finish) (engine, then surge) when non-zero
	want    []ev
}

// run plays steps on a fresh harness and checks each step's events and, at the end, that
// the counters agree with the whole event log.
func run(t *testing.T, cfg *Config, steps []step) *harness {
	t.Helper()
	h := newHarness(t, cfg)
	var all []*Event
	for i, s := range steps {
		h.feed(s.pkts...)
		if s.advance != 0 {
			h.e.Advance(s.advance)
		}
		if s.finish != 0 {
			h.finish(s.finish)
		}
		got := h.sink.take()
		all = append(all, got...)
		t.Run(fmt.Sprintf("step%d", i), func(t *testing.T) { checkEvents(t, got, s.want) })
	}
	checkCounters(t, h.c, all)
	return h
}

// only returns cfg with every detector but the named ones turned off.
func only(cfg *Config, dets ...string) *Config {
	on := map[string]bool{}
	for _, d := range dets {
		on[d] = true
	}
	cfg.Scanner.Enabled = on[Scanner]
	cfg.Telnet.Enabled = on[TelnetSweep] || on[TelnetSurge]
	cfg.UDPThenSYN.Enabled = on[UDPThenSYN]
	cfg.Backscatter.Enabled = on[Backscatter]
	cfg.Fingerprint.Enabled = on[Fingerprint]
	return cfg
}

// seq builds n packets, one every `every` from `from`, with mk(i, ts).
func seq(n int, from, every int64, mk func(i int, ts int64) packet.Header) []packet.Header {
	out := make([]packet.Header, n)
	for i := range out {
		out[i] = mk(i, from+int64(i)*every)
	}
	return out
}

func cat(parts ...[]packet.Header) []packet.Header {
	var out []packet.Header
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func newSourceTable(n int) *aggregate.Table[packet.Addr, SourceState] {
	return aggregate.NewTable[packet.Addr, SourceState](n, func(a *packet.Addr) uint64 { return a.Hash(1) })
}

// ip6 returns prefix (ending in "::") followed by i in hex.
func ip6(prefix string, i int) string { return fmt.Sprintf("%s%x", prefix, i) }
