package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/packet"
)

// --- unit tests (no privilege needed) ---

func TestPlanRingsRejectsBadConfig(t *testing.T) {
	good := RingConfig{Interface: "eth0", Workers: 2}
	cases := []struct {
		name string
		edit func(*RingConfig)
		msg  string
	}{
		{"no interface", func(c *RingConfig) { c.Interface = "" }, "no interface"},
		{"no workers", func(c *RingConfig) { c.Workers = 0 }, "0 workers"},
		{"too many workers", func(c *RingConfig) { c.Workers = MaxWorkers + 1 }, "workers"},
		{"snaplen below the fanout program's reach", func(c *RingConfig) { c.SnapLen = MinSnapLen - 1 }, "snaplen"},
		{"huge snaplen", func(c *RingConfig) { c.SnapLen = 1 << 20 }, "snaplen"},
		{"sub-millisecond block timeout", func(c *RingConfig) { c.BlockTimeout = time.Microsecond }, "block timeout"},
		{"ring too small", func(c *RingConfig) { c.RingBytes = 4096 }, "too small"},
		{"filter too long", func(c *RingConfig) { c.Filter = make([]bpf.RawInstruction, 5000) }, "instructions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			_, _, err := planRings(cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want a config error", err)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "capture: ") {
				t.Errorf("message %q lacks %q", err, c.msg)
			}
		})
	}
}

func TestPlanRingsGeometry(t *testing.T) {
	page := os.Getpagesize()
	for _, c := range []struct {
		ringBytes, workers, snap int
		wantBlock                int
	}{
		{64 << 20, 4, 256, 1 << 20},
		{64 << 20, 64, 256, 1 << 17},
		{1 << 20, 2, 256, 1 << 16},
		{1 << 20, 1, 65535, 1 << 17},
	} {
		cfg, geo, err := planRings(RingConfig{Interface: "any", Workers: c.workers, SnapLen: c.snap, RingBytes: c.ringBytes})
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		perRing := c.ringBytes / c.workers
		switch {
		case geo.blockSize != c.wantBlock:
			t.Errorf("%+v: block size %d, want %d", c, geo.blockSize, c.wantBlock)
		case geo.blockSize%page != 0 || geo.blockSize&(geo.blockSize-1) != 0:
			t.Errorf("%+v: block size %d is not a power-of-two number of pages", c, geo.blockSize)
		case geo.blocks*geo.blockSize > perRing || geo.blocks < 2:
			t.Errorf("%+v: %d blocks of %d do not fit %d", c, geo.blocks, geo.blockSize, perRing)
		case geo.frameSize > geo.blockSize || geo.frameSize < cfg.SnapLen+unix.SizeofTpacket3Hdr+unix.SizeofSockaddrLinklayer:
			t.Errorf("%+v: frame size %d", c, geo.frameSize)
		case geo.tovMillis != 50:
			t.Errorf("%+v: default block timeout %dms", c, geo.tovMillis)
		}
	}
}

func TestCapFilter(t *testing.T) {
	user := []bpf.RawInstruction{
		{Op: 0x28, K: 12},        // ldh [12]
		{Op: 0x15, Jt: 0, Jf: 1}, // jeq
		{Op: 0x06, K: 0xFFFF},    // ret #65535
		{Op: 0x06, K: 0},         // ret #0
		{Op: 0x06, K: 100},       // ret #100
		{Op: 0x16},               // ret a
	}
	got := capFilter(user, 256)
	want := []uint32{12, 0, 256, 0, 100, 0}
	for i := range got {
		if got[i].K != want[i] || got[i].Op != user[i].Op {
			t.Errorf("instruction %d: %+v, want K=%d", i, got[i], want[i])
		}
	}
	if user[2].K != 0xFFFF {
		t.Error("capFilter modified the caller's filter")
	}
	if all := capFilter(nil, 300); len(all) != 1 || all[0] != (bpf.RawInstruction{Op: 0x06, K: 300 + maxLinkHeader}) {
		t.Errorf("no filter: %+v, want ret #%d", all, 300+maxLinkHeader)
	}
}

func TestSysErrorKinds(t *testing.T) {
	for _, c := range []struct {
		errno unix.Errno
		kind  ErrorKind
		msg   string
	}{
		{unix.EPERM, ErrPermission, "capture: opening an AF_PACKET socket needs CAP_NET_RAW: run as root, or grant it once with: sudo setcap cap_net_raw,cap_net_admin+ep $(command -v telescope)"},
		{unix.EACCES, ErrPermission, "CAP_NET_RAW"},
		{unix.ENODEV, ErrInterfaceNotFound, `capture: interface "eth9" not found (ip link shows the available ones)`},
		{unix.ENETDOWN, ErrInterfaceGone, "ip link set eth9 up"},
		{unix.EIO, ErrSystem, "bind on interface"},
	} {
		err := sysError("eth9", "bind", c.errno)
		if !errors.Is(err, c.kind) || !errors.Is(err, c.errno) {
			t.Errorf("%v: kind %v, want %v (and the errno kept)", c.errno, err.Kind, c.kind)
		}
		if !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: message %q lacks %q", c.errno, err, c.msg)
		}
		for _, other := range []ErrorKind{ErrConfig, ErrFanoutBusy, ErrClosed} {
			if errors.Is(err, other) {
				t.Errorf("%v matches kind %v", c.errno, other)
			}
		}
	}
}

// --- live tests in network namespaces ---

// liveFrame is a frame to send and what the ring must report for it.
type liveFrame struct {
	eth       []byte
	proto     uint16
	data      []byte
	vlan      uint16
	vlanValid bool
}

func (f *liveFrame) key() string { return frameKey(f.proto, f.vlanValid, f.vlan, f.data) }

// kernelView predicts what AF_PACKET SOCK_DGRAM reports for an Ethernet frame received on a
// veth: eth_type_trans and skb_vlan_untag pop the Ethernet header and one outer
// 802.1Q/802.1ad tag; a length field becomes 802.3 (raw, FF FF) or 802.2.
func kernelView(eth []byte) liveFrame {
	f := liveFrame{eth: eth}
	typ := binary.BigEndian.Uint16(eth[12:])
	body := eth[14:]
	if (typ == packet.EtherDot1Q || typ == packet.EtherDot1AD) && len(body) >= 6 {
		f.vlan, f.vlanValid = binary.BigEndian.Uint16(body)&0x0FFF, true
		typ, body = binary.BigEndian.Uint16(body[2:]), body[4:]
	}
	if typ < packet.EtherMinType {
		typ = packet.SLLProto8022
		if len(body) >= 2 && body[0] == 0xFF && body[1] == 0xFF {
			typ = 0x0001
		}
	}
	f.proto, f.data = typ, body
	return f
}

// liveTraffic returns count frames from the given number of sources: TCP SYNs, UDP, ICMP
// and ICMPv6 errors about a few victims (some with damaged quotes), echo requests, ARP,
// LLC/SNAP and random packets, some behind an outer tag (stripped by the kernel) or two.
func liveTraffic(rng *rand.Rand, count, sources int) []liveFrame {
	src4 := func(s int) [4]byte { return mkIP4(100, 64, byte(s>>8), byte(s)) }
	src6 := func(s int) [16]byte {
		a := netip.MustParseAddr("2001:db8:5::").As16()
		binary.BigEndian.PutUint16(a[14:], uint16(s))
		return a
	}
	dark4 := func() [4]byte { return mkIP4(203, 0, 113, byte(rng.IntN(256))) }
	dark6 := func() [16]byte {
		a := netip.MustParseAddr("2001:db8:dd::").As16()
		a[15] = byte(rng.IntN(256))
		return a
	}
	victim4 := func() [4]byte { return mkIP4(198, 51, 100, byte(rng.IntN(40))) }
	victim6 := func() [16]byte {
		a := netip.MustParseAddr("2001:db8:bad::").As16()
		a[15] = byte(rng.IntN(20))
		return a
	}

	out := make([]liveFrame, 0, count)
	for len(out) < count {
		s := rng.IntN(sources)
		v6 := s >= sources*7/10
		var et uint16 = packet.EtherIPv4
		if v6 {
			et = packet.EtherIPv6
		}
		ip := func(proto uint8, l4 []byte) []byte {
			if v6 {
				return mkIPv6(src6(s), dark6(), proto, l4)
			}
			return mkIPv4(src4(s), dark4(), proto, l4)
		}
		var pkt []byte
		switch r := rng.IntN(100); {
		case r < 40:
			pkt = ip(packet.ProtoTCP, mkSYN(uint16(rng.IntN(65536)), 23, rng.Uint32()))
		case r < 55:
			pkt = ip(packet.ProtoUDP, mkUDP(uint16(rng.IntN(65536)), 6881, mkRandom(rng, rng.IntN(32))))
		case r < 72: // backscatter: an error about a packet the victim received from a dark address
			var typ uint8
			var quote []byte
			if v6 {
				typ = uint8(1 + rng.IntN(4))
				quote = mkIPv6(dark6(), victim6(), packet.ProtoTCP, mkSYN(80, 1234, 0)[:8])
			} else {
				typ = []uint8{3, 4, 5, 11, 12}[rng.IntN(5)]
				quote = mkIPv4(dark4(), victim4(), packet.ProtoTCP, mkSYN(80, 1234, 0)[:8])
			}
			if r >= 67 { // damaged: cut short or the wrong version
				if rng.IntN(2) == 0 {
					quote = quote[:rng.IntN(len(quote))]
				} else {
					quote[0] ^= 0x20
				}
			}
			icmp := append([]byte{typ, 1, 0, 0, 0, 0, 0, 0}, quote...)
			if v6 {
				pkt = mkIPv6(src6(s), dark6(), packet.ProtoICMPv6, icmp)
			} else {
				pkt = mkIPv4(src4(s), dark4(), packet.ProtoICMP, icmp)
			}
		case r < 75:
			pkt = ip(packet.ProtoICMP, []byte{8, 0, 0, 0, 0, 1, 0, byte(s)})
		case r < 77:
			et, pkt = 0x0806, mkRandom(rng, 28)
		case r < 79:
			et, pkt = 0, mkSNAP(packet.EtherIPv4, mkIPv4(src4(s), dark4(), packet.ProtoUDP, mkUDP(1, 2, nil)))
		default:
			et, pkt = genNetPacket(rng)
		}
		if et < packet.EtherMinType { // an 802.3 frame carries its length in the type field
			et = uint16(len(pkt))
		}
		var body []byte
		switch w := rng.IntN(100); {
		case w < 15:
			body = append([]byte{byte(rng.IntN(16)), byte(rng.IntN(256)), byte(et >> 8), byte(et)}, pkt...)
			et = packet.EtherDot1Q
		case w < 18:
			body = append([]byte{0, byte(1 + rng.IntN(255)), byte(et >> 8), byte(et)}, pkt...)
			et = packet.EtherDot1AD
		case w < 22: // QinQ: the kernel pops the outer tag, the inner one stays in the data
			body = append([]byte{0, 7, 0x81, 0x00, 0, byte(rng.IntN(256)), byte(et >> 8), byte(et)}, pkt...)
			et = packet.EtherDot1AD
		default:
			body = pkt
		}
		f := kernelView(ethFrame(et, body))
		// Skip what the kernel drops before the taps (a tag without room for its EtherType)
		// and what would not fit the snap length whole.
		if len(f.data) == 0 || len(f.data) > 200 || ((et == packet.EtherDot1Q || et == packet.EtherDot1AD) && len(body) < 6) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func ethFrames(fs []liveFrame) [][]byte {
	out := make([][]byte, len(fs))
	for i := range fs {
		out[i] = fs[i].eth
	}
	return out
}

// checkDelivery asserts that the rings received every frame exactly once, each on the ring
// the decoder's affinity key selects, with the metadata the kernel had. With variety, the
// traffic must also have exercised victim keys and stripped tags.
func checkDelivery(t *testing.T, sent []liveFrame, got [][]rxFrame, ifindex int, start, end time.Time, variety bool) {
	t.Helper()
	want := map[string]int{}
	for i := range sent {
		want[sent[i].key()]++
	}
	errs, victims, tagged := 0, 0, 0
	report := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for ring, frames := range got {
		for i := range frames {
			f := &frames[i]
			k := f.key()
			if want[k] == 0 {
				report("ring %d: frame not sent, or received twice: %.120s", ring, k)
				continue
			}
			want[k]--
			idx, h := wantIndex(f.Protocol, f.Data, len(got))
			if idx != ring {
				report("ring %d got a frame of worker %d (key %#x): %.120s", ring, idx, h.AffinityKey(), k)
			}
			if ifindex != 0 && f.IfIndex != ifindex {
				report("ifindex %d, want %d", f.IfIndex, ifindex)
			}
			if int(f.WireLen) != len(f.Data) {
				report("wire length %d, captured %d bytes of a short frame", f.WireLen, len(f.Data))
			}
			if ts := time.Unix(0, f.TS); ts.Before(start.Add(-time.Minute)) || ts.After(end.Add(time.Minute)) {
				report("timestamp %v outside the test (%v .. %v)", ts, start, end)
			}
			if h.Inner.Valid && h.AffinityKey() != packet.FoldAddr(&h.Src, h.IPVersion == 4) {
				victims++
			}
			if f.VLANValid {
				tagged++
			}
		}
	}
	missing := 0
	for k, n := range want {
		if n > 0 {
			missing += n
			report("never received: %.120s", k)
		}
	}
	if missing > 0 || errs > 0 {
		t.Errorf("%d frames missing, %d errors", missing, errs)
	}
	for ring, frames := range got {
		if len(frames) == 0 {
			t.Errorf("ring %d received nothing", ring)
		}
	}
	if variety && (victims == 0 || tagged == 0) {
		t.Errorf("traffic lacks ICMP errors keyed by victim (%d) or stripped tags (%d)", victims, tagged)
	}
}

// checkStats asserts the kernel counted exactly the frames each ring delivered.
func checkStats(t *testing.T, rings []*Ring, got [][]rxFrame) {
	t.Helper()
	for i, r := range rings {
		s, err := r.Stats()
		if err != nil {
			t.Fatalf("ring %d stats: %v", i, err)
		}
		if s.Packets != uint64(len(got[i])) || s.Drops != 0 {
			t.Errorf("ring %d: kernel counted %+v, ring delivered %d", i, s, len(got[i]))
		}
	}
}

// captureWhileSending sends frames from namespace ns through ifname while the rings are
// polled, and returns what each ring received.
func captureWhileSending(t *testing.T, rings []*Ring, want int, ns, ifname string, frames [][]byte) ([][]rxFrame, time.Time, time.Time) {
	t.Helper()
	type result struct {
		got [][]rxFrame
		err error
	}
	res := make(chan result, 1)
	go func() {
		got, err := collect(rings, want, 30*time.Second, 200*time.Millisecond)
		res <- result{got, err}
	}()
	start := time.Now()
	sendFrames(t, ns, ifname, frames)
	r := <-res
	if r.err != nil {
		t.Fatalf("poll: %v", r.err)
	}
	return r.got, start, time.Now()
}

var liveCfg = RingConfig{SnapLen: 256, RingBytes: 32 << 20, BlockTimeout: 10 * time.Millisecond}

func TestRingsFanoutOnVeth(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers = v.IfA, 2
	sent := liveTraffic(rand.New(rand.NewPCG(7, 11)), 20000, 500)
	// On a loaded machine the polling goroutine can be descheduled long enough for every
	// block to be retired by its timeout and the kernel to drop a frame: that is the
	// scheduler, not the fanout under test, so such a run (drops counted by the kernel) is
	// repeated, at most twice, with fresh rings.
	var rings []*Ring
	var got [][]rxFrame
	var start, end time.Time
	for attempt := 1; ; attempt++ {
		rings = openRingsIn(t, v.NsA, cfg)
		for i, r := range rings {
			if r.Index() != i || r.Group() != rings[0].Group() {
				t.Fatalf("ring %d: index %d group %d", i, r.Index(), r.Group())
			}
		}
		got, start, end = captureWhileSending(t, rings, len(sent), v.NsB, v.IfB, ethFrames(sent))
		drops := uint64(0)
		for _, r := range rings {
			if s, err := r.Stats(); err == nil {
				drops += s.Drops
			}
		}
		if drops == 0 || attempt == 3 {
			break
		}
		t.Logf("RETRYING: attempt %d: the kernel dropped %d frames (poller descheduled)", attempt, drops)
		for _, r := range rings {
			r.Close()
		}
	}
	checkDelivery(t, sent, got, v.IndexA, start, end, true)
	checkStats(t, rings, got)
	t.Logf("ring sizes %d / %d", len(got[0]), len(got[1]))
}

func TestRingsAnyInterface(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers = "any", 3
	rings := openRingsIn(t, v.NsA, cfg)
	sent := liveTraffic(rand.New(rand.NewPCG(8, 12)), 3000, 200)
	got, start, end := captureWhileSending(t, rings, len(sent), v.NsB, v.IfB, ethFrames(sent))
	checkDelivery(t, sent, got, v.IndexA, start, end, true)
	checkStats(t, rings, got)
}

// udpOnly accepts IPv4 and IPv6 UDP (next header right after the fixed header). Packets
// start at the network header, as on every AF_PACKET SOCK_DGRAM socket.
var udpOnly = []bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtProto},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: packet.EtherIPv4, SkipFalse: 2},
	bpf.LoadAbsolute{Off: 9, Size: 1},
	bpf.Jump{Skip: 3},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: packet.EtherIPv6, SkipFalse: 4},
	bpf.LoadAbsolute{Off: 6, Size: 1},
	bpf.Jump{Skip: 0},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(packet.ProtoUDP), SkipFalse: 1},
	bpf.RetConstant{Val: 0xFFFF},
	bpf.RetConstant{Val: 0},
}

func TestRingsUserFilter(t *testing.T) {
	v := newVethPair(t)
	raw, err := bpf.Assemble(udpOnly)
	if err != nil {
		t.Fatal(err)
	}
	cfg := liveCfg
	cfg.Interface, cfg.Workers, cfg.Filter = v.IfA, 2, raw
	rings := openRingsIn(t, v.NsA, cfg)
	all := liveTraffic(rand.New(rand.NewPCG(9, 13)), 3000, 100)
	var udp []liveFrame
	for _, f := range all {
		if (f.proto == packet.EtherIPv4 && len(f.data) > 9 && f.data[9] == packet.ProtoUDP) ||
			(f.proto == packet.EtherIPv6 && len(f.data) > 6 && f.data[6] == packet.ProtoUDP) {
			udp = append(udp, f)
		}
	}
	if len(udp) == 0 || len(udp) == len(all) {
		t.Fatalf("%d of %d frames are UDP: the test needs both kinds", len(udp), len(all))
	}
	got, start, end := captureWhileSending(t, rings, len(udp), v.NsB, v.IfB, ethFrames(all))
	checkDelivery(t, udp, got, v.IndexA, start, end, false)
	checkStats(t, rings, got) // frames the filter refused are not counted
}

func TestRingsIgnoreOutgoing(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers = v.IfA, 2
	rings := openRingsIn(t, v.NsA, cfg)
	// A witness in B proves A's frames really left through the same veth.
	wcfg := liveCfg
	wcfg.Interface, wcfg.Workers = v.IfB, 1
	witness := openRingsIn(t, v.NsB, wcfg)

	frames := func(net byte) []liveFrame {
		var fs []liveFrame
		for i := range 300 {
			pkt := mkIPv4(mkIP4(10, net, byte(i>>8), byte(i)), mkIP4(203, 0, 113, 1), packet.ProtoUDP, mkUDP(1, 2, nil))
			fs = append(fs, kernelView(ethFrame(packet.EtherIPv4, pkt)))
		}
		return fs
	}
	fromA, fromB := frames(1), frames(2)
	type result struct {
		got [][]rxFrame
		err error
	}
	resA, resW := make(chan result, 1), make(chan result, 1)
	go func() {
		got, err := collect(rings, len(fromB), 20*time.Second, 300*time.Millisecond)
		resA <- result{got, err}
	}()
	go func() {
		got, err := collect(witness, len(fromA), 20*time.Second, 300*time.Millisecond)
		resW <- result{got, err}
	}()
	start := time.Now()
	sendFrames(t, v.NsA, v.IfA, ethFrames(fromA))
	sendFrames(t, v.NsB, v.IfB, ethFrames(fromB))
	a, w := <-resA, <-resW
	if a.err != nil || w.err != nil {
		t.Fatalf("poll: %v, %v", a.err, w.err)
	}
	checkDelivery(t, fromB, a.got, v.IndexA, start, time.Now(), false)
	if n := len(w.got[0]); n != len(fromA) {
		t.Errorf("the witness in %s saw %d of the %d frames sent from %s", v.NsB, n, len(fromA), v.NsA)
	}
}

func TestRingsInterfaceGone(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	// A long block timeout keeps the frames in open blocks when the interface leaves.
	cfg.Interface, cfg.Workers, cfg.BlockTimeout = v.IfA, 2, 300*time.Millisecond
	rings := openRingsIn(t, v.NsA, cfg)
	sent := liveTraffic(rand.New(rand.NewPCG(10, 14)), 100, 50)
	var received atomic.Int64
	errc := make(chan error, len(rings))
	for _, r := range rings {
		go func() {
			for {
				if _, err := r.Poll(50*time.Millisecond, func(*Frame) { received.Add(1) }); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	sendFrames(t, v.NsB, v.IfB, ethFrames(sent))
	runIP(t, "-n", v.NsA, "link", "del", v.IfA) // right away: frames still sit in open blocks
	for range rings {
		select {
		case err := <-errc:
			if !errors.Is(err, ErrInterfaceGone) || !strings.Contains(err.Error(), v.IfA) {
				t.Errorf("Poll error %q, want interface %s gone", err, v.IfA)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Poll did not report the deleted interface")
		}
	}
	// Blocks the kernel retired after the interface left were still delivered.
	if n := received.Load(); n != int64(len(sent)) {
		t.Errorf("received %d of %d frames sent before the interface left", n, len(sent))
	}
	for _, r := range rings { // the error sticks
		if _, err := r.Poll(0, nil); !errors.Is(err, ErrInterfaceGone) {
			t.Errorf("second Poll: %v", err)
		}
	}
}

// watchdog closes r if the test has not stopped it within a generous time: Close wakes a
// Poll that waits forever, so a lost wake-up fails the test instead of hanging it.
// watchedRing opens one ring on the first end of a new veth pair, under a watchdog.
func watchedRing(t *testing.T) (*vethPair, RingConfig, *Ring) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers = v.IfA, 1
	r := openRingsIn(t, v.NsA, cfg)[0]
	stop := watchdog(t, r)
	t.Cleanup(func() { stop() }) // before openRingsIn's Close: cleanups run last first
	return v, cfg, r
}

func watchdog(t *testing.T, r *Ring) (stop func() bool) {
	return time.AfterFunc(20*time.Second, func() {
		t.Error("Poll still waiting after 20 s: closing the ring")
		r.Close()
	}).Stop
}

func TestCloseWakesPollWaitingForever(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers = v.IfA, 1
	// Not openRingsIn: its cleanup would wait forever for the Close that failed to wake Poll.
	var rings []*Ring
	if err := inNetns(v.NsA, func() (err error) { rings, err = OpenRings(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	r := rings[0]
	polled := make(chan error, 1)
	go func() {
		_, err := r.Poll(-1, nil)
		polled <- err
	}()
	time.Sleep(50 * time.Millisecond) // most likely waiting by now; if not, it sees the ring closed
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for _, c := range []struct {
		what string
		ch   chan error
		want error
	}{{"Poll", polled, ErrClosed}, {"Close", closed, nil}} {
		select {
		case err := <-c.ch:
			if !errors.Is(err, c.want) {
				t.Errorf("%s returned %v, want %v", c.what, err, c.want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not return after Close (leaking the ring)", c.what)
		}
	}
	if _, err := r.Poll(-1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	if _, err := r.Stats(); err != nil {
		t.Errorf("Stats after Close: %v", err)
	}
}

// TestPollForeverSeesEveryBlock sends one frame at a time and waits for it with Poll(-1):
// the block retires (on its timer) sometimes before Poll waits and sometimes while it does.
func TestPollForeverSeesEveryBlock(t *testing.T) {
	v, cfg, r := watchedRing(t)
	sent := ethFrames(liveTraffic(rand.New(rand.NewPCG(5, 6)), 40, 40))
	rng := rand.New(rand.NewPCG(7, 8))
	got := 0
	count := func(*Frame) { got++ }
	for i, f := range sent {
		sendFrames(t, v.NsB, v.IfB, [][]byte{f})
		time.Sleep(time.Duration(rng.IntN(3)) * cfg.BlockTimeout)
		for got <= i {
			if _, err := r.Poll(-1, count); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
	}
	if got != len(sent) {
		t.Errorf("received %d frames, sent %d", got, len(sent))
	}
}

// TestPollForeverSeesErrorRaisedBeforeIt: the interface leaves while nobody polls, so the
// socket error's wake-up comes before Poll waits; Poll(-1) must still find the error.
func TestPollForeverSeesErrorRaisedBeforeIt(t *testing.T) {
	v, cfg, r := watchedRing(t)
	if _, err := r.Poll(0, nil); err != nil {
		t.Fatal(err)
	}
	runIP(t, "-n", v.NsA, "link", "del", v.IfA)
	time.Sleep(5 * cfg.BlockTimeout)
	for {
		_, err := r.Poll(-1, nil)
		if err == nil {
			continue // the grace period
		}
		if !errors.Is(err, ErrInterfaceGone) {
			t.Errorf("Poll error %v, want interface %s gone", err, v.IfA)
		}
		break
	}
}

func TestOpenRingsErrors(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Workers, cfg.FanoutGroup = 2, 4242
	cfg.Interface = v.IfA
	openRingsIn(t, v.NsA, cfg) // holds group 4242 on IfA

	cases := []struct {
		name   string
		iface  string
		group  uint16
		before []string // ip arguments run first
		kind   ErrorKind
		msg    string
	}{
		{"missing interface", "nosuch0", 0, nil, ErrInterfaceNotFound,
			`capture: interface "nosuch0" not found (ip link shows the available ones)`},
		{"name too long for an interface", strings.Repeat("x", 20), 0, nil, ErrInterfaceNotFound, "not found"},
		{"group used on another interface", "any", 4242, nil, ErrFanoutBusy,
			"another process uses fanout group 4242"},
		{"interface down", v.IfA, 0, []string{"-n", v.NsA, "link", "set", v.IfA, "down"}, ErrInterfaceGone,
			fmt.Sprintf("ip link set %s up", v.IfA)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				runIP(t, c.before...)
			}
			cfg := liveCfg
			cfg.Interface, cfg.Workers, cfg.FanoutGroup = c.iface, 2, c.group
			var rings []*Ring
			err := inNetns(v.NsA, func() (err error) { rings, err = OpenRings(cfg); return err })
			for _, r := range rings {
				r.Close()
			}
			if !errors.Is(err, c.kind) || !strings.Contains(fmt.Sprint(err), c.msg) {
				t.Errorf("OpenRings: %v, want kind %v with %q", err, c.kind, c.msg)
			}
		})
	}
}

// TestOpenRingsWithoutPrivilege runs OpenRings in a child process as nobody, which has no
// CAP_NET_RAW, and checks the message it prints.
func TestOpenRingsWithoutPrivilege(t *testing.T) {
	if os.Getenv("TELESCOPE_CAPTURE_CHILD") == "noperm" {
		_, err := OpenRings(RingConfig{Interface: "lo", Workers: 1})
		kind := "none"
		var ce *CaptureError
		if errors.As(err, &ce) {
			kind = ce.Kind.Error()
		}
		fmt.Printf("kind=%s\nerr=%v\n", kind, err)
		return
	}
	requireNetns(t)
	// The go test binary sits in a private directory; copy it where nobody can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tstest-noperm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "capture.test")
	if err := copyExecutable(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenRingsWithoutPrivilege$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TELESCOPE_CAPTURE_CHILD=noperm")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "err=capture: opening an AF_PACKET socket needs CAP_NET_RAW: run as root, or grant it once with: " +
		"sudo setcap cap_net_raw,cap_net_admin+ep $(command -v telescope)\n"
	if !strings.Contains(string(out), "kind=capture: permission\n") || !strings.Contains(string(out), want) {
		t.Errorf("child output:\n%s\nwant the permission error:\n%s", out, want)
	}
}

func copyExecutable(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestPollDoesNotAllocate measures one Poll that walks thousands of frames in many blocks.
func TestPollDoesNotAllocate(t *testing.T) {
	v := newVethPair(t)
	cfg := liveCfg
	cfg.Interface, cfg.Workers, cfg.RingBytes = v.IfA, 1, 8<<20
	r := openRingsIn(t, v.NsA, cfg)[0]
	sent := liveTraffic(rand.New(rand.NewPCG(3, 4)), 6000, 300)
	frames := 0
	count := func(*Frame) { frames++ }
	sendFrames(t, v.NsB, v.IfB, ethFrames(sent[:100]))
	time.Sleep(5 * cfg.BlockTimeout)
	if _, err := r.Poll(time.Second, count); err != nil { // warm up
		t.Fatal(err)
	}
	sendFrames(t, v.NsB, v.IfB, ethFrames(sent[100:]))
	time.Sleep(5 * cfg.BlockTimeout) // let the kernel retire the last block
	frames = 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := r.Poll(time.Second, count)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1000 || n != frames {
		t.Fatalf("Poll delivered %d frames (callback saw %d); want thousands to measure", n, frames)
	}
	if allocs := after.Mallocs - before.Mallocs; allocs != 0 {
		t.Errorf("Poll of %d frames allocated %d times", n, allocs)
	}
}

// BenchmarkRingPoll reports how many frames per second one ring takes from a veth flooded by
// a Go sender (both sides share the machine's cores, so this is a floor, not the ring's limit).
func BenchmarkRingPoll(b *testing.B) {
	v := newVethPair(b)
	cfg := liveCfg
	cfg.Interface, cfg.Workers, cfg.RingBytes = v.IfA, 1, 64<<20
	r := openRingsIn(b, v.NsA, cfg)[0]
	sender := netnstest.NewSender(b, v.NsB, v.IfB)
	frame := ethFrame(packet.EtherIPv4, mkIPv4(mkIP4(192, 0, 2, 1), mkIP4(203, 0, 113, 1), packet.ProtoTCP, mkSYN(1, 23, 0)))
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if err := sender.Send(frame); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	received := 0
	var key uint32
	fn := func(f *Frame) {
		var h packet.Header
		packet.DecodeNetwork(f.Protocol, f.Data, &h)
		key ^= h.AffinityKey()
		received++
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for received < b.N {
		if _, err := r.Poll(100*time.Millisecond, fn); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop.Store(true)
	<-done
	s, err := r.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(received)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(s.Drops), "kernel-drops")
	_ = key
}

// BenchmarkRingDrain times only the consumer: the ring is filled while nobody polls, then
// drained, so frames/s is what Poll's block walk plus a decode sustain on one core.
func BenchmarkRingDrain(b *testing.B) {
	v := newVethPair(b)
	cfg := liveCfg
	cfg.Interface, cfg.Workers, cfg.RingBytes = v.IfA, 1, 64<<20
	r := openRingsIn(b, v.NsA, cfg)[0]
	sender := netnstest.NewSender(b, v.NsB, v.IfB)
	frame := ethFrame(packet.EtherIPv4, mkIPv4(mkIP4(192, 0, 2, 1), mkIP4(203, 0, 113, 1), packet.ProtoTCP, mkSYN(1, 23, 0)))
	var h packet.Header
	received := 0
	fn := func(f *Frame) {
		packet.DecodeNetwork(f.Protocol, f.Data, &h)
		received++
	}
	const batch = 20000 // few enough that the block timer cannot use up the ring while nobody polls
	var busy time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		b.StopTimer()
		n := min(batch, b.N-sent)
		for range n {
			if err := sender.Send(frame); err != nil {
				b.Fatal(err)
			}
		}
		sent += n
		time.Sleep(3 * cfg.BlockTimeout) // the last block retires
		b.StartTimer()
		start := time.Now()
		for {
			n, err := r.Poll(0, fn)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		busy += time.Since(start)
	}
	b.StopTimer()
	s, err := r.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(received)/busy.Seconds(), "frames/s")
	b.ReportMetric(float64(s.Drops), "kernel-drops")
	if received+int(s.Drops) != b.N {
		b.Errorf("sent %d frames, received %d, kernel dropped %d", b.N, received, s.Drops)
	}
}

// TestFrameBehindCountsUnreadBlocks leaves three blocks unread (a frame each, each sent once
// the previous one's block retired), then reads them: the frames say
// how far behind the reader was, 3, 2 and 1 blocks, out of the ring's Blocks, and in bytes
// what those blocks hold: a block header and one frame each, far less than the blocks' size.
func TestFrameBehindCountsUnreadBlocks(t *testing.T) {
	v, cfg, r := watchedRing(t)
	sent := ethFrames(liveTraffic(rand.New(rand.NewPCG(9, 10)), 3, 3))
	for i, f := range sent {
		sendFrames(t, v.NsB, v.IfB, [][]byte{f})
		// Wait until its block retired, so that the next frame opens a block of its own.
		for deadline := time.Now().Add(10 * time.Second); ready(r) < i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("frame %d: its block did not retire (%d blocks ready)", i, ready(r))
			}
			time.Sleep(cfg.BlockTimeout)
		}
	}
	var behind, bytes []int
	if _, err := r.Poll(0, func(f *Frame) {
		behind = append(behind, f.Behind)
		bytes = append(bytes, f.BehindBytes)
	}); err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 2, 1}; !slices.Equal(behind, want) {
		t.Errorf("Behind of the frames read: %v, want %v", behind, want)
	}
	if r.Blocks() < 8 || r.Bytes() != r.Blocks()*r.BlockBytes() {
		t.Errorf("Blocks() = %d (want at least 8, minBlocks), Bytes() = %d, BlockBytes() = %d", r.Blocks(), r.Bytes(), r.BlockBytes())
	}
	// Block i holds its header, frame i's tpacket3_hdr and sockaddr_ll (under 256 bytes with
	// alignment) and the frame from its network header on (the link header, up to 22 bytes
	// with a tag, is not kept).
	if len(bytes) == 3 {
		for i := range bytes {
			used := bytes[i]
			if i < 2 {
				used -= bytes[i+1]
			}
			lo, hi := blockHdrLen+len(sent[i])-22, blockHdrLen+256+len(sent[i])
			if used < lo || used > hi {
				t.Errorf("BehindBytes %v: block %d holds %d bytes, want %d to %d for a %d-byte frame", bytes, i, used, lo, hi, len(sent[i]))
			}
		}
	}
	// Nothing unread: the next frame is 1 block behind.
	sendFrames(t, v.NsB, v.IfB, sent[:1])
	behind = behind[:0]
	for len(behind) == 0 {
		if _, err := r.Poll(-1, func(f *Frame) { behind = append(behind, f.Behind) }); err != nil {
			t.Fatal(err)
		}
	}
	if behind[0] != 1 {
		t.Errorf("Behind of a frame read at once: %d, want 1", behind[0])
	}
}

func ready(r *Ring) int {
	n, _ := r.readyBlocks()
	return n
}
