package pipeline

import (
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/packet"
)

func TestShedderThresholds(t *testing.T) {
	const block = 1000
	for _, tc := range []struct {
		share      float64
		blocks     int
		at, resume int // bytes
	}{
		{0.5, 32, 16000, 4000},
		{0.5, 8, 4000, 1000},
		{0.9, 10, 9000, 2250},
		{0.01, 32, 2000, 500}, // at least 2 blocks: one unread block is the normal case
		{0.99, 3, 2970, 742},
		{0.999, 3, 2997, 749},
		{0, 32, 0, 0},  // never
		{0.5, 1, 0, 0}, // a one-block ring cannot tell
		{-1, 32, 0, 0}, // config validation refuses it; never, if it came
		{0.75, 64, 48000, 12000},
	} {
		var s shedder
		s.setLimit(tc.share, tc.blocks*block, block)
		if s.at != tc.at || s.resume != tc.resume {
			t.Errorf("setLimit(%v, %d blocks): at %d resume %d, want %d and %d", tc.share, tc.blocks, s.at, s.resume, tc.at, tc.resume)
		}
	}
}

// TestShedderHysteresis: shedding starts at the threshold and lasts until the backlog is down
// to a quarter of it; a new limit of 0 stops it at once.
func TestShedderHysteresis(t *testing.T) {
	var s shedder
	s.setLimit(0.5, 3200, 100) // 1600 and 400 bytes
	var got []bool
	for _, behind := range []int{100, 1500, 1600, 3000, 1000, 500, 400, 800, 1500, 1600, 100} {
		got = append(got, s.update(behind))
	}
	want := []bool{false, false, true, true, true, true, false, false, false, true, false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shedding by backlog: %v, want %v", got, want)
	}
	s.update(2000)
	s.setLimit(0.5, 3200, 100) // a reload with the same value keeps the state
	if !s.on {
		t.Error("setLimit with the same share ended the shedding")
	}
	s.setLimit(0, 3200, 100)
	if s.update(3100) {
		t.Error("shedding with shed_backlog 0")
	}
}

// TestShedPacketsAreCountedNotDetected feeds a scanner's probes to two pipelines, one of them
// shedding: the counters are the same, the shedding one counted every dark packet as shed
// and detected nothing.
func TestShedPacketsAreCountedNotDetected(t *testing.T) {
	cfg, err := configs.Parse([]byte("dark_prefixes: [198.51.100.0/24]\n"+
		"detect: {scanner: {min_packets: 10, min_targets: 10}}\n"), "shed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(shed bool) *Pipeline {
		p, err := New(Options{Config: cfg, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		w := p.workers[0]
		var h packet.Header
		h.Result, h.IPVersion, h.Proto, h.L4, h.TCPFlags, h.WireLen = packet.ResultIP, 4, packet.ProtoTCP, true, 0x02, 40
		h.Src = packet.AddrFrom4([]byte{192, 0, 2, 7})
		for i := range 300 {
			w.shed = shed && i%3 != 2 // the last of every three is not dark: never shed
			h.Dst = packet.AddrFrom4([]byte{198, 51, 100, byte(i)})
			if i%3 == 2 {
				h.Dst = packet.AddrFrom4([]byte{203, 0, 113, byte(i)})
			}
			h.DstPort = uint16(1000 + i)
			h.TS = int64(1e18) + int64(i)*1e6
			w.handle(&h)
		}
		w.flush()
		return p
	}
	on, shed := run(false), run(true)
	if a, b := on.Totals(), shed.Totals(); !reflect.DeepEqual(a, b) {
		t.Errorf("counters differ when shedding:\n%+v\n%+v", a, b)
	}
	if n := shed.workers[0].shedTotal.Load(); n != 200 {
		t.Errorf("packets shed: %d, want 200 (the dark ones)", n)
	}
	if n := on.workers[0].shedTotal.Load(); n != 0 {
		t.Errorf("packets shed without shedding: %d", n)
	}
	if s := shed.Snapshot(); s.DetectionShed != 200 {
		t.Errorf("snapshot DetectionShed %d, want 200", s.DetectionShed)
	}
	scanners := func(p *Pipeline) int64 {
		for _, d := range p.Snapshot().Detectors {
			if d.Name == "scanner" {
				return d.Active
			}
		}
		t.Fatal("no scanner detector in the snapshot")
		return 0
	}
	if got := scanners(on); got != 1 {
		t.Errorf("active scanner episodes without shedding: %d, want 1", got)
	}
	if got := scanners(shed); got != 0 {
		t.Errorf("active scanner episodes while shedding: %d, want 0", got)
	}
}
