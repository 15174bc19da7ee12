package detect

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/packet"
)

// FuzzEngine gives two engines sharing a Surge and a Hotspots (a pipeline's two workers,
// each source at one of them) packets built from the input, 4 bytes each: a few sources,
// the addresses of a dark /29 (dense indexes) and of an IPv6 prefix (none), every kind of
// packet the detectors read, and times that step on, stand still, jump a window, go back
// (pcap files are not always in order) or jump to the ends of time (damaged files: the
// readers keep times within [0, packet.MaxTS]). Thresholds of 2-3 packets, source tables of
// 3 entries, flow tables of 2 and a few KiB of set memory put every episode, eviction and
// sketch path within a short input. A first byte of 0xff is a checkpoint instead: the
// engines, their source tables, the surge and the hotspots are saved and restored into new
// ones, which go on (a restart). Whatever the packets:
//   - nothing panics;
//   - per detector and episode key, episodes start and end in turn (never two starts
//     without an end between them, never an end without a start), and once everything is
//     finished none is left open;
//   - every entry's distinct counts are at most its packets, and it ends no earlier than
//     it began;
//   - the counters (shared, as a pipeline's workers share them) agree with the events (in
//     inputs without a checkpoint: a restart's counters start again).
//
// go test -run '^$' -fuzz FuzzEngine -fuzzminimizetime 20x ./detect/
func FuzzEngine(f *testing.F) {
	f.Add([]byte{})
	// A scanner, a telnet sweep with Mirai sequence numbers, UDP then SYN, backscatter, and
	// a hotspot's sources, with the clock going back once.
	var seed []byte
	for i := range 12 {
		seed = append(seed, fzSYN, 0, byte(i), 3)
	}
	for i := range 8 {
		seed = append(seed, fzMirai, byte(1+i%3), byte(i), 2)
	}
	seed = append(seed, fzDHT, 2, 1, 1, fzSYN, 2, 1, 1, fzRST, 3, 2, 250)
	for i := range 6 {
		seed = append(seed, fzSYNACK, byte(4+i%2), byte(i), 1, fzUnreach, 5, byte(i), 0)
	}
	f.Add(seed)
	f.Add(append(append(seed[:len(seed)/2:len(seed)/2], 0xff, 0, 0, 0), seed[len(seed)/2:]...))
	// The seed's packets with the clock thrown to each end of time and back.
	var ends []byte
	for i := range 8 {
		ends = append(ends, seed[:24]...)
		ends = append(ends, fzSYN, byte(i<<5), 1, 255)
	}
	f.Add(ends)
	f.Add([]byte{fzZmap, 1, 0, 1, fzZmap, 1, 1, 1, fzMasscan, 2, 3, 1, fzMasscan, 2, 4, 230, fzEcho, 3, 9, 255, fzEcho, 3, 8, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*2000 {
			data = data[:4*2000]
		}
		fe := newFuzzEngines(t, nil)
		for len(data) >= 4 {
			if data[0] == 0xff {
				fe = fe.restart()
			} else {
				fe.packet(data[0], data[1], data[2], data[3])
			}
			data = data[4:]
		}
		fe.finish()
	})
}

// Packet kinds of FuzzEngine's first byte.
const (
	fzSYN = iota
	fzMirai
	fzZmap
	fzMasscan
	fzSYNACK
	fzRST
	fzDHT
	fzUDP
	fzEcho
	fzEchoReply
	fzUnreach
	fzOther
	fzKinds
)

// fuzzEngines is FuzzEngine's pipeline: two engines, each with its own source table.
type fuzzEngines struct {
	t     *testing.T
	sink  *fuzzSink
	c     *Counters
	surge *Surge
	hs    *Hotspots
	px    *aggregate.Prefixes
	eng   [2]*Engine
	srcs  [2]*aggregate.Table[packet.Addr, SourceState]
	srcA  []packet.Addr
	dstA  []packet.Addr
	ts    int64
	now   int64
	n     int
	// restarts: checkpoints restored so far.
	restarts int
}

// newFuzzEngines returns FuzzEngine's engines, events to sink (nil: a new one).
func newFuzzEngines(t *testing.T, sink *fuzzSink) *fuzzEngines {
	cfg := testConfig(t)
	cfg.Window = 10 * time.Second
	cfg.Scanner.MinPackets, cfg.Scanner.MinTargets = 3, 2
	cfg.Telnet.MinTargets, cfg.Telnet.SurgeMinSources = 2, 2
	cfg.Backscatter.MinPackets, cfg.Backscatter.MinRatePerMinute = 2, 1
	cfg.Hotspot.MinSources = 2
	cfg.MaxFlows, cfg.MaxDestinations, cfg.MaxSetWords = 2, 2, 512
	if sink == nil {
		sink = &fuzzSink{t: t, open: map[string]bool{}}
	}
	fe := &fuzzEngines{t: t, sink: sink, c: &Counters{}, ts: t0}
	fe.px = darkSpace(t, "192.0.2.0/29", "2001:db8::/64")
	fe.surge = NewSurge(2, fe.sink)
	fe.surge.SetConfig(cfg)
	fe.hs = NewHotspots(2, fe.sink, fe.c)
	fe.hs.SetConfig(cfg)
	for w := range fe.eng {
		e := NewEngine(cfg, w, fe.sink, fe.surge, fe.c)
		e.SetHotspots(fe.hs)
		e.SetDenseDsts(fe.px)
		srcs := newSourceTable(3)
		srcs.SetEvict(func(k *packet.Addr, v *SourceState) { e.Evicted(k, v, fe.now) })
		e.SetSources(srcs)
		fe.eng[w], fe.srcs[w] = e, srcs
	}
	for i := range 7 {
		fe.srcA = append(fe.srcA, addr(fmt.Sprintf("198.51.100.%d", 10+i)))
	}
	fe.srcA = append(fe.srcA, addr("2001:db8:ffff::1"))
	for i := range 8 {
		fe.dstA = append(fe.dstA, addr(fmt.Sprintf("192.0.2.%d", i)))
	}
	fe.dstA = append(fe.dstA, addr("2001:db8::1"), addr("2001:db8::2"))
	return fe
}

var fuzzPorts = [8]uint16{23, 2323, 80, 443, 6881, 0, 53, 40000}

// packet builds one packet from kind, the source (low 3 bits) and advance bit (bit 3), the
// destination (low 4 bits) and port (high 3 bits), and the time step, and gives it to
// the source's engine.
func (fe *fuzzEngines) packet(kind, src, dst, step byte) {
	switch {
	case step == 0:
	case step <= 200:
		fe.ts += int64(step) * 100 * int64(time.Millisecond)
	case step <= 250:
		fe.ts -= int64(step-200) * sec // back
	case step < 255:
		fe.ts += int64(step-250) * 10 * sec // a window or more
	default:
		// A damaged capture's time, as the readers give it (within [0, packet.MaxTS]: a
		// time past the int64 range, unclamped, wrapped due times and hung the engine).
		fe.ts = [8]int64{0, 1, packet.MaxTS, packet.MaxTS - 1, 0xffffffff * sec, -fe.ts, fe.ts + 1<<40, packet.MaxTS - win}[src>>5]
	}
	fe.ts = packet.ClampTS(fe.ts)
	s := fe.srcA[int(src&7)%len(fe.srcA)]
	d := fe.dstA[int(dst&15)%len(fe.dstA)]
	port := fuzzPorts[dst>>5]
	h := packet.Header{TS: fe.ts, Result: packet.ResultIP, Src: s, Dst: d, TTL: 64, IPVersion: 4, L4: true,
		SrcPort: 40000 + uint16(src), DstPort: port, IPID: 0x1111, Window: 29200, Seq: 0x12345678}
	if !s.Is4() || !d.Is4() {
		h.IPVersion = 6
		if s.Is4() != d.Is4() {
			return // no such packet
		}
	}
	switch kind % fzKinds {
	case fzSYN, fzMirai, fzZmap, fzMasscan:
		h.Proto, h.TCPFlags = packet.ProtoTCP, packet.FlagSYN
		switch kind % fzKinds {
		case fzMirai:
			if d.Is4() {
				a := d.Netip().As4()
				h.Seq = uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
			}
		case fzZmap:
			h.IPID, h.Window = 54321, 65535
		case fzMasscan:
			h.Window = 1024
			h.IPID = uint16(h.Seq ^ uint32(h.DstPort) ^ uint32(h.Seq>>16))
		}
	case fzSYNACK:
		h.Proto, h.TCPFlags = packet.ProtoTCP, packet.FlagSYN|packet.FlagACK
	case fzRST:
		h.Proto, h.TCPFlags = packet.ProtoTCP, packet.FlagRST
	case fzDHT, fzUDP:
		payload := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
		if kind%fzKinds == fzUDP {
			payload = []byte{1, 2, 3, 4, 5, 6, 7, 8}
		}
		h.Proto = packet.ProtoUDP
		h.PayloadLen = uint16(len(payload))
		h.PayloadCap = uint8(copy(h.Payload[:], payload))
		h.PayloadClass = packet.ClassifyUDP(payload, len(payload))
	case fzEcho, fzEchoReply, fzUnreach:
		h.Proto, h.ICMPType, h.SrcPort, h.DstPort = packet.ProtoICMP, 8, 0, 0
		if kind%fzKinds == fzEchoReply {
			h.ICMPType = 0
		}
		if kind%fzKinds == fzUnreach {
			h.ICMPType = 3
			h.Inner = packet.Quoted{Valid: true, Proto: packet.ProtoTCP, Src: d, Dst: fe.srcA[int(step)%len(fe.srcA)], SrcPort: 80, DstPort: 1234}
		}
		if h.IPVersion == 6 {
			h.Proto = packet.ProtoICMPv6
			h.ICMPType = map[uint8]uint8{8: 128, 0: 129, 3: 1}[h.ICMPType]
		}
	default:
		h.Proto, h.L4, h.SrcPort, h.DstPort = 47, false, 0, 0 // GRE
	}
	fe.now = max(fe.now, h.TS)
	w := int(src&7) % 2
	e, srcs := fe.eng[w], fe.srcs[w]
	slot, _ := srcs.TouchSlot(h.Src)
	_, st := srcs.At(slot)
	_, ix := fe.px.MatchDst(&h.Dst, true)
	e.PacketIn(&h, st, ix, slot)
	if fe.n++; src&8 != 0 {
		e.Advance(fe.now)
	}
}

// restart saves the state as a checkpoint does and returns new engines restored from it,
// their clocks where these were.
func (fe *fuzzEngines) restart() *fuzzEngines {
	var enc checkpoint.Encoder
	for w, e := range fe.eng {
		fe.srcs[w].Save(&enc)
		e.SaveState(&enc)
		e.SaveHotState(&enc)
	}
	fe.surge.SaveState(&enc)
	fe.hs.SaveState(&enc, nil)
	next := newFuzzEngines(fe.t, fe.sink)
	next.ts, next.now, next.n, next.restarts = fe.ts, fe.now, fe.n, fe.restarts+1
	d := checkpoint.NewDecoder(enc.Bytes())
	for w, e := range next.eng {
		next.srcs[w].Load(d)
		e.LoadState(d)
		e.LoadHotState(d)
		if err := d.Err(); err != nil {
			fe.t.Fatalf("restore of worker %d: %v", w, err)
		}
	}
	next.surge.LoadState(d)
	next.hs.LoadState(d)
	if err := d.Done(); err != nil {
		fe.t.Fatalf("restore: %v", err)
	}
	return next
}

// finish ends everything, as a replay's end does, and checks that nothing is left open.
func (fe *fuzzEngines) finish() {
	for _, e := range fe.eng {
		e.Finish(fe.now)
	}
	fe.surge.Finish(fe.now)
	fe.hs.Finish()
	for _, e := range fe.eng {
		e.Publish()
	}
	if fe.restarts == 0 {
		checkCounters(fe.t, fe.c, fe.sink.events)
	}
	for k, open := range fe.sink.open {
		if open {
			fe.t.Errorf("episode %s still open after Finish (%d packets)", k, fe.n)
		}
	}
}

// fuzzSink checks each event as it comes: its entry's numbers, and that its episode's
// phases alternate.
type fuzzSink struct {
	t      *testing.T
	open   map[string]bool // by detector and key: the episode is open
	events []*Event
}

func (s *fuzzSink) Detection(ev *Event) {
	key, err := fuzzCheck(ev.Entry)
	if err != nil {
		s.t.Errorf("%s %s: %v: %+v", ev.Detector, ev.Phase, err, ev.Entry)
	}
	key = ev.Detector + " " + key
	switch open := s.open[key]; {
	case ev.Phase == Start && open:
		s.t.Errorf("%s started again before it ended: %+v", key, ev.Entry)
	case ev.Phase == End && !open:
		s.t.Errorf("%s ended without a start: %+v", key, ev.Entry)
	}
	s.open[key] = ev.Phase == Start
	c := *ev // ev is reused after the call
	s.events = append(s.events, &c)
}

// fuzzCheck returns the key of an entry's episode and an error if its numbers disagree.
func fuzzCheck(e Entry) (string, error) {
	order := func(first, last Time) error {
		if last < first {
			return fmt.Errorf("last seen %v before first seen %v", last, first)
		}
		return nil
	}
	most := func(what string, n, packets uint64) error {
		if n > packets {
			return fmt.Errorf("%d %s, more than its %d packets", n, what, packets)
		}
		return nil
	}
	switch x := e.(type) {
	case *ScannerEntry:
		return x.Src, errors.Join(most("targets", x.Targets, x.Packets), most("ports", x.Ports, x.Packets),
			order(x.FirstSeen, x.LastSeen))
	case *TelnetSweepEntry:
		return x.Src, errors.Join(most("targets", x.Targets, x.Packets), order(x.FirstSeen, x.LastSeen))
	case *TelnetSurgeEntry:
		return "", nil
	case *UDPThenSYNEntry:
		return fmt.Sprintf("%v>%v:%d", x.Src, x.Dst, x.Port), order(x.FirstSeen, x.LastSeen)
	case *BackscatterEntry:
		return x.Victim, errors.Join(most("targets", x.Targets, x.Packets), order(x.FirstSeen, x.LastSeen))
	case *ToolEntry:
		return fmt.Sprintf("%v %s", x.Src, x.Tool), order(x.FirstSeen, x.LastSeen)
	case *HotspotEntry:
		return fmt.Sprintf("%s:%d", x.Dst, x.Port), errors.Join(most("sources", x.Sources, x.Packets), order(x.FirstSeen, x.LastSeen))
	}
	return "", fmt.Errorf("unknown entry %T", e)
}
