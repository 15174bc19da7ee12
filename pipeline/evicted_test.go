package pipeline

import (
	"path/filepath"
	"testing"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/packet"
)

// TestEvictionsClearAfterDetectorsTurnOff: sources counted while the detectors ran hold
// sketch blocks in their state; after a reload turns every detector off, or in a pipeline
// with every detector off that restored them from a checkpoint, their evictions must still
// release them (a worker skips the engine at eviction only while no detector has run since
// the start and nothing was restored).
func TestEvictionsClearAfterDetectorsTurnOff(t *testing.T) {
	parse := func(detect string) *configs.Config {
		cfg, err := configs.Parse([]byte("dark_prefixes: [198.51.100.0/24]\nlimits: {max_sources: 64}\n"+detect), "evicted.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	off := parse("detect: {scanner: {enabled: false}, telnet: {enabled: false}, udp_then_syn: {enabled: false}, " +
		"backscatter: {enabled: false}, fingerprint: {enabled: false}, hotspot: {enabled: false}}\n")
	for _, tc := range []struct {
		name    string
		start   *configs.Config
		restore bool // a checkpoint is restored by a pipeline with every detector off
	}{{"on then off", parse(""), false}, {"off from the start", off, false}, {"restored with detectors off", parse(""), true}} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{Config: tc.start, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			w := p.workers[0]
			var h packet.Header
			h.Result, h.IPVersion, h.Proto, h.L4, h.TCPFlags, h.WireLen = packet.ResultIP, 4, packet.ProtoTCP, true, 0x02, 40
			ts := int64(1e18)
			send := func(src [4]byte, dst byte, port uint16) {
				h.Src, h.Dst = packet.AddrFrom4(src[:]), packet.AddrFrom4([]byte{198, 51, 100, dst})
				h.DstPort, h.TS = port, ts
				ts += 1e6
				w.handle(&h)
			}
			// 40 sources, 30 probes each to distinct targets: windows, not episodes (below
			// the scanner's 100 packets), whose sets of targets and ports outgrow their
			// inline values.
			for s := range 40 {
				for i := range 30 {
					send([4]byte{192, 0, 2, byte(s)}, byte(i), uint16(1000+i))
				}
			}
			held := w.engine.SlabBlocks()
			if tc.start == off && held != 0 {
				t.Fatalf("%d slab blocks with every detector off", held)
			}
			if tc.start != off && held == 0 {
				t.Fatal("the sources hold no slab block: the test checks nothing")
			}
			if tc.restore {
				w.flush()
				state := filepath.Join(t.TempDir(), "state")
				if _, err := p.Checkpoint(state); err != nil {
					t.Fatal(err)
				}
				if p, err = New(Options{Config: off, Workers: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := p.RestoreState(state, RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
				w = p.workers[0]
				if got := w.engine.SlabBlocks(); got != held {
					t.Fatalf("%d slab blocks restored, %d saved", got, held)
				}
			} else if err := p.Reload(off); err != nil {
				t.Fatal(err)
			}
			w.applyConfig()
			// A flood of fresh sources evicts every one of them from the 64-entry table.
			for s := range 200 {
				send([4]byte{203, 0, byte(s >> 8), byte(s)}, 7, 23)
			}
			w.flush()
			if ev := w.sources.Evictions(); ev < 40 {
				t.Fatalf("%d evictions, want at least 40", ev)
			}
			if got, want := w.engine.SlabBlocks(), w.engine.HeldBlocks(); got != want {
				t.Errorf("%d slab blocks after every source was evicted, %d held by episodes and victims (leaked: %d)", got, want, got-want)
			}
		})
	}
}
