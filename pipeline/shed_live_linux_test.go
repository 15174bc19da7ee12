package pipeline

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// heldLive is a live pipeline of one worker on a veth pair whose worker can be held (as a
// long checkpoint would hold it) while packets fill its ring.
type heldLive struct {
	t      *testing.T
	p      *Pipeline
	logs   *observer.ObservedLogs
	snd    *netnstest.Sender
	unlock func()
}

// newHeldLive starts the pipeline (shed_backlog 0.5) on a 1 MiB ring with the given block
// timeout, its worker held.
func newHeldLive(t *testing.T, timeout time.Duration) *heldLive {
	pair := netnstest.NewPair(t)
	cfg, err := configs.Parse([]byte("dark_prefixes: [198.51.100.0/24]\ncapture: {shed_backlog: 0.5}\n"), "shed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{Config: cfg, Workers: 1, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB: 8 blocks of 128 KiB, about 900 of these frames each.
	l := p.NewLive(capture.RingConfig{Interface: pair.IfA, SnapLen: 256, RingBytes: 1 << 20, BlockTimeout: timeout})
	if err := netnstest.In(pair.NsA, l.Open); err != nil {
		t.Fatal(err)
	}
	w := p.workers[0]
	w.stateMu.Lock() // the worker cannot poll until released
	var once sync.Once
	unlock := func() { once.Do(w.stateMu.Unlock) }
	t.Cleanup(unlock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &heldLive{t: t, p: p, logs: logs, snd: netnstest.NewSender(t, pair.NsB, pair.IfB), unlock: unlock}
}

// syns returns n SYNs to the dark /24 from distinct sources, numbered from first.
func (h *heldLive) syns(n, first int) [][]byte {
	out := make([][]byte, 0, n)
	for i := first; i < first+n; i++ {
		pk := pcaptest.Packet{TS: time.Now(), Src: netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}),
			Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), SrcPort: 40000, DstPort: 23, Flags: 0x02}
		b, err := pk.EthernetBytes()
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// waitFrames waits until the worker has counted want frames.
func (h *heldLive) waitFrames(want uint64) {
	h.t.Helper()
	frames := func() uint64 {
		var n uint64
		for _, f := range h.p.Snapshot().WorkerFrames {
			n += f
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); frames() < want; {
		if time.Now().After(deadline) {
			h.t.Fatalf("worker counted %d frames, want %d", frames(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveShedsWhenBehind holds a live worker while 5 000 SYNs fill most of its 8-block
// ring, then lets it go: it reads the first blocks with the ring over half full, so the
// detectors skip their packets, logs a warning, and counts every frame with no kernel drop;
// once it has caught up, further packets reach the detectors.
func TestLiveShedsWhenBehind(t *testing.T) {
	// Blocks retire when full, not on a short timer: on a busy machine a slow sender would
	// otherwise spread the frames over more, partly filled blocks than the ring has.
	const timeout = 500 * time.Millisecond
	h := newHeldLive(t, timeout)
	h.snd.SendAll(t, h.syns(5000, 0))
	time.Sleep(2 * timeout) // the last, partly filled block retires on its timer
	h.unlock()
	h.waitFrames(5000)

	s := h.p.Snapshot()
	if s.DetectionShed == 0 || s.DetectionShed > 5000 {
		t.Errorf("packets shed: %d, want some of the 5000", s.DetectionShed)
	}
	for _, c := range s.Captures {
		if c.KernelDrops != 0 {
			t.Errorf("kernel drops: %d", c.KernelDrops)
		}
	}
	h.p.logq.Drain() // log entries are written by the log queue's goroutine
	if n := h.logs.FilterMessageSnippet("detection shed under load").Len(); n != 1 {
		t.Errorf("%d shedding warnings, want 1: %v", n, h.logs.All())
	}
	shed := s.DetectionShed
	t.Logf("%d of 5000 packets shed", shed)

	// Caught up: the next packets reach the detectors.
	h.snd.SendAll(t, h.syns(100, 5000))
	h.waitFrames(5100)
	if got := h.p.Snapshot().DetectionShed; got != shed {
		t.Errorf("packets shed after catching up: %d, want still %d", got, shed)
	}
}

// TestLiveNoShedForEmptyBlocks holds a live worker under light traffic: six packets, each in
// a block of its own that retires on its timer, leave six of eight blocks unread but almost
// no work. The worker must not shed them (a backlog counted in blocks would).
func TestLiveNoShedForEmptyBlocks(t *testing.T) {
	const timeout = 20 * time.Millisecond
	h := newHeldLive(t, timeout)
	for _, f := range h.syns(6, 0) {
		h.snd.SendAll(t, [][]byte{f})
		time.Sleep(5 * timeout)
	}
	h.unlock()
	h.waitFrames(6)
	s := h.p.Snapshot()
	if s.DetectionShed != 0 {
		t.Errorf("packets shed: %d of 6, want none", s.DetectionShed)
	}
	if n := s.Totals.Flags[0x02]; n != 6 {
		t.Errorf("SYNs counted: %d, want 6", n)
	}
}
