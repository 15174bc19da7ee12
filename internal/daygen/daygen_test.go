package daygen

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// collect records every event.
type collect struct {
	mu     sync.Mutex
	events []*detect.Event
}

func (c *collect) Detection(ev *detect.Event) {
	c.mu.Lock()
	cp := *ev // ev is reused after the call
	c.events = append(c.events, &cp)
	c.mu.Unlock()
}

// runEngines feeds the day through `workers` engines with source affinity, as the pipeline
// does: each worker has its own source table; every engine advances after each batch.
func runEngines(t *testing.T, pkts []packet.Header, workers int) ([]*detect.Event, []*detect.Counters) {
	t.Helper()
	c, err := configs.Parse(nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	cfg := detect.NewConfig(c, workers)
	cfg.MaxFlows = 1 << 16
	sink := &collect{}
	surge := detect.NewSurge(workers, sink)
	surge.SetConfig(cfg)
	srcs := map[packet.Addr]bool{}
	for i := range pkts {
		srcs[pkts[i].Src] = true
	}
	engines := make([]*detect.Engine, workers)
	tables := make([]*aggregate.Table[packet.Addr, detect.SourceState], workers)
	counters := make([]*detect.Counters, workers)
	for w := range workers {
		counters[w] = &detect.Counters{}
		engines[w] = detect.NewEngine(cfg, w, sink, surge, counters[w])
		e := engines[w]
		tables[w] = aggregate.NewTable[packet.Addr, detect.SourceState](len(srcs)+1, func(a *packet.Addr) uint64 { return a.Hash(7) })
		tables[w].SetEvict(func(k *packet.Addr, v *detect.SourceState) { e.Evicted(k, v, 0) })
	}
	advance := func(now int64) {
		for _, e := range engines {
			e.Advance(now)
		}
	}
	advance(pkts[0].TS)
	const batch = 256
	for i := range pkts {
		p := &pkts[i]
		w := packet.WorkerIndex(p.AffinityKey(), workers)
		st, _ := tables[w].Touch(p.Src)
		engines[w].Packet(p, st)
		if i%batch == batch-1 {
			advance(p.TS)
		}
	}
	last := pkts[len(pkts)-1].TS
	advance(last)
	for _, e := range engines {
		e.Finish(last)
	}
	surge.Finish(last)
	for w := range workers {
		if n := tables[w].Evictions() + counters[w].Evictions.Load(); n != 0 {
			t.Fatalf("worker %d evicted %d entries: the comparison needs every state kept", w, n)
		}
	}
	// Dropping every source must return every slab block they held: what remains is held
	// by the engine's own tables (victims), or leaked.
	n := len(sink.events)
	for w := range workers {
		tables[w].Range(func(k *packet.Addr, st *detect.SourceState) bool {
			engines[w].Evicted(k, st, last)
			return true
		})
		if got, held := engines[w].SlabBlocks(), engines[w].HeldBlocks(); got != held {
			t.Errorf("worker %d: %d slab blocks in use, %d referenced: blocks leaked", w, got, held)
		}
	}
	if len(sink.events) != n {
		t.Errorf("dropping sources after Finish made %d events", len(sink.events)-n)
	}
	return sink.events, counters
}

// checkDay asserts precision and recall 1.0 and exact values for every detector.
func checkDay(t *testing.T, truth *Truth, events []*detect.Event) {
	t.Helper()
	diffs, unpaired := Check(truth, events)
	for _, d := range diffs {
		if d.Want == 0 {
			t.Errorf("%s: nothing planted: the day does not exercise this detector", d.Name)
		}
		if !d.OK() {
			t.Error(d.String())
		} else {
			t.Logf("%s: %d planted, all detected, precision and recall 1.0", d.Name, d.Want)
		}
	}
	if unpaired != 0 {
		t.Errorf("%d episodes without exactly one Start and one End", unpaired)
	}
}

func TestDayDetections(t *testing.T) {
	cases := []struct {
		name string
		o    Options
	}{
		{"scale 0.1", Options{Seed: 1, Scale: 0.1}},
		{"scale 0.05, 3h, other seed", Options{Seed: 42, Scale: 0.05, Duration: 3 * time.Hour}},
	}
	if !testing.Short() {
		cases = append(cases, struct {
			name string
			o    Options
		}{"scale 1", Options{Seed: 7}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkts, truth, err := Packets(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d packets, %d background sources", len(pkts), truth.Background)
			for _, workers := range []int{2} {
				events, _ := runEngines(t, pkts, workers)
				checkDay(t, truth, events)
			}
		})
	}
}

func TestDaySingleWorkerSameAnswers(t *testing.T) {
	pkts, truth, err := Packets(Options{Seed: 3, Scale: 0.05, Duration: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	events, _ := runEngines(t, pkts, 1)
	checkDay(t, truth, events)
}

func TestGeneratePcap(t *testing.T) {
	o := Options{Seed: 5, Scale: 0.05, Duration: 2 * time.Hour, Start: time.Date(2023, 7, 1, 13, 0, 30, 0, time.UTC)}
	var buf bytes.Buffer
	truth, err := Generate(&buf, o)
	if err != nil {
		t.Fatal(err)
	}
	want, truth2, err := Packets(o)
	if err != nil {
		t.Fatal(err)
	}
	if truth.Packets != truth2.Packets || len(truth.UDPThenSYN) != len(truth2.UDPThenSYN) {
		t.Fatalf("Generate and Packets disagree: %d/%d packets", truth.Packets, truth2.Packets)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	start := o.Start.Truncate(time.Minute).UnixNano()
	var prev int64
	n := 0
	for ; ; n++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		tsn := ci.Timestamp.UnixNano()
		if n == 0 && tsn != start {
			t.Fatalf("first packet at %s, want %s", ci.Timestamp, time.Unix(0, start))
		}
		if tsn < prev {
			t.Fatalf("packet %d goes back in time", n)
		}
		prev = tsn
		if n >= len(want) {
			continue
		}
		// The decoder must see in each frame exactly the Header that Packets returns.
		h := packet.Header{TS: tsn, WireLen: uint32(ci.Length)}
		packet.Decode(packet.LinkEthernet, data, &h)
		// Where the IP header starts is the frame's (after its Ethernet header), not the
		// packet's: checked, then left out of the comparison.
		if !h.Net || h.NetOff != 14 {
			t.Fatalf("packet %d: IP header at %d (%v), want 14", n, h.NetOff, h.Net)
		}
		h.NetOff, h.Net = 0, false
		if h != want[n] {
			t.Fatalf("packet %d decodes differently:\n got  %+v\n want %+v", n, h, want[n])
		}
	}
	if n != truth.Packets || n != len(want) {
		t.Fatalf("pcap holds %d packets, truth says %d, Packets gives %d", n, truth.Packets, len(want))
	}
}

func TestDeterministic(t *testing.T) {
	o := Options{Seed: 9, Scale: 0.02, Duration: 2 * time.Hour}
	a, ta, err := Packets(o)
	if err != nil {
		t.Fatal(err)
	}
	b, tb, err := Packets(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || ta.Packets != tb.Packets {
		t.Fatalf("same options, different days: %d vs %d packets", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("packet %d differs", i)
		}
	}
	c, _, err := Packets(Options{Seed: 10, Scale: 0.02, Duration: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(c) == len(a) && c[len(c)/2] == a[len(a)/2] {
		t.Fatal("another seed gives the same day")
	}
}

func TestOptionsValidation(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Duration: time.Hour}, "shorter than the minimum"},
		{Options{Scale: -1}, "scale -1"},
		{Options{Scale: math.NaN()}, "scale NaN"},
		{Options{Scale: 1000}, "scale 1000"},
	}
	for _, tc := range cases {
		if _, _, err := Packets(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.o, err, tc.want)
		}
	}
}

// BenchmarkDayEngines feeds a generated day (scale 0.2) through two engines on one
// goroutine, as two workers would split it, and reports the cost per packet.
func BenchmarkDayEngines(b *testing.B) {
	pkts, _, err := Packets(Options{Seed: 1, Scale: 0.2})
	if err != nil {
		b.Fatal(err)
	}
	c, err := configs.Parse(nil, "default")
	if err != nil {
		b.Fatal(err)
	}
	cfg := detect.NewConfig(c, 2)
	cfg.MaxFlows = 1 << 17
	b.ResetTimer()
	for range b.N {
		sink := &collect{}
		surge := detect.NewSurge(2, sink)
		surge.SetConfig(cfg)
		var engines [2]*detect.Engine
		var tables [2]*aggregate.Table[packet.Addr, detect.SourceState]
		for w := range 2 {
			engines[w] = detect.NewEngine(cfg, w, sink, surge, &detect.Counters{})
			e := engines[w]
			tables[w] = aggregate.NewTable[packet.Addr, detect.SourceState](1<<17, func(a *packet.Addr) uint64 { return a.Hash(7) })
			tables[w].SetEvict(func(k *packet.Addr, v *detect.SourceState) { e.Evicted(k, v, 0) })
		}
		for i := range pkts {
			p := &pkts[i]
			w := packet.WorkerIndex(p.AffinityKey(), 2)
			st, _ := tables[w].Touch(p.Src)
			engines[w].Packet(p, st)
			if i%256 == 255 {
				engines[0].Advance(p.TS)
				engines[1].Advance(p.TS)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
}
