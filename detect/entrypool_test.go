package detect

import (
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/packet"
)

// entrySink records every event's entry as it came (raw) and through KeepEntry (kept);
// transient says whether it declares itself a TransientSink that keeps none.
type entrySink struct {
	transient bool
	raw, kept []Entry
}

func (s *entrySink) Detection(ev *Event) {
	s.raw = append(s.raw, ev.Entry)
	s.kept = append(s.kept, KeepEntry(ev.Entry))
}

func (s *entrySink) TransientEntries() bool { return s.transient }

// runMiraiSources gives an engine with sink one fingerprinted SYN from each of n sources
// and ends every episode.
func runMiraiSources(t *testing.T, sink Sink, n int) {
	t.Helper()
	cfg := testConfig(t)
	e := NewEngine(cfg, 0, sink, nil, &Counters{})
	srcs := newSourceTable(1024)
	srcs.SetEvict(func(k *packet.Addr, v *SourceState) { e.Evicted(k, v, t0) })
	e.SetSources(srcs)
	for i := range n {
		h := syn(ip4("198.51.0.0", i), "203.0.113.9", 23, t0+int64(i)*sec)
		h.Seq = h.Dst.V4() // Mirai
		slot, _ := srcs.TouchSlot(h.Src)
		_, st := srcs.At(slot)
		e.PacketIn(&h, st, -1, slot)
	}
	e.Finish(t0 + int64(n)*sec)
}

// TestEntriesReusedOnlyForTransientSinks: an engine whose sink keeps entries (the default)
// hands out a new one per event; one whose sink is transient reuses one, and what that
// sink keeps through KeepEntry equals the entries the other engine handed out.
func TestEntriesReusedOnlyForTransientSinks(t *testing.T) {
	const n = 5
	keeps, transient := &entrySink{}, &entrySink{transient: true}
	runMiraiSources(t, keeps, n)
	runMiraiSources(t, transient, n)
	if len(keeps.raw) != 2*n || len(transient.raw) != 2*n {
		t.Fatalf("%d and %d events, want a start and an end for each of %d sources", len(keeps.raw), len(transient.raw), n)
	}
	seen := map[Entry]bool{}
	for _, e := range keeps.raw {
		if seen[e] {
			t.Fatalf("an entry handed to a sink that keeps entries came again")
		}
		seen[e] = true
	}
	for i, e := range transient.raw {
		if e != transient.raw[0] {
			t.Fatalf("event %d: a transient sink got a new entry, want the engine's one reused", i)
		}
		if reflect.ValueOf(transient.kept[i]).Pointer() == reflect.ValueOf(e).Pointer() {
			t.Fatalf("event %d: KeepEntry returned the reused entry itself", i)
		}
	}
	srcs := map[IP]bool{}
	for i := range keeps.raw {
		if !reflect.DeepEqual(keeps.raw[i], transient.kept[i]) {
			t.Errorf("event %d: kept %+v, want %+v", i, transient.kept[i], keeps.raw[i])
		}
		srcs[transient.kept[i].(*ToolEntry).Src] = true
	}
	if len(srcs) != n {
		t.Errorf("the kept entries name %d sources, want %d", len(srcs), n)
	}
	var scan Entry = &ScannerEntry{Src: "192.0.2.1"}
	if KeepEntry(scan) != scan {
		t.Error("KeepEntry copied an entry type no engine reuses")
	}
}

// TestIsTransient: nil keeps nothing; a plain Sink may keep entries.
func TestIsTransient(t *testing.T) {
	if !IsTransient(nil) || IsTransient(&recSink{}) || IsTransient(&entrySink{}) || !IsTransient(&entrySink{transient: true}) {
		t.Error("IsTransient: want true for nil and a transient sink only")
	}
}

// TestEntryPoolNeverReuses: every entry handed out is a distinct, zeroed value (sinks keep
// entries: the log queue, the report's spool), across chunk boundaries.
func TestEntryPoolNeverReuses(t *testing.T) {
	var p entryPool[ToolEntry]
	seen := map[*ToolEntry]bool{}
	for i := range 3*entryChunk + 5 {
		e := p.get()
		if seen[e] {
			t.Fatalf("entry %d handed out twice", i)
		}
		seen[e] = true
		if *e != (ToolEntry{}) {
			t.Fatalf("entry %d not zeroed: %+v", i, *e)
		}
		e.Packets = uint64(i) + 1 // a later get must not see this
	}
}

// TestToolEntryAllocations: a fingerprint entry costs one allocation per chunk of entries,
// not one per episode start or end.
func TestToolEntryAllocations(t *testing.T) {
	var e Engine
	w := &ToolWindow{Probes: 1, Match: [4]uint64{1}}
	src := packet.AddrFrom4([]byte{192, 0, 2, 1})
	var last *ToolEntry
	allocs := testing.AllocsPerRun(10*entryChunk, func() { last = e.toolEntry(src, w, 0) })
	if allocs > 2.0/entryChunk {
		t.Errorf("%.3f allocations per entry, want one per %d entries", allocs, entryChunk)
	}
	if last.Src != IP(src) || last.Tool != Tools[0] || last.Packets != 1 || last.Probes != 1 {
		t.Errorf("entry %+v", *last)
	}
}

// logLine is e as a JSON log line's fields.
func logLine(t *testing.T, e Entry) string {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	buf, err := enc.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(e)})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestLogEntryCopies: LogEntry gives a copy of each reused entry type that logs as the entry
// does and can be given back (ReleaseLogged); the entry itself for the others, which cannot.
// A copy given back and taken again holds the new entry's values only.
func TestLogEntryCopies(t *testing.T) {
	type releaser interface{ ReleaseLogged() }
	tool := &ToolEntry{Src: IP(addr(ip4("198.51.0.0", 7))), Tool: "mirai", Packets: 3, Probes: 3, FirstSeen: Time(t0), LastSeen: Time(t0 + sec)}
	flow := &UDPThenSYNEntry{Src: IP(addr("198.51.0.8")), Dst: IP(addr("203.0.113.9")), Port: 6881, UDPPackets: 2, SYNPackets: 1, Payload: "dht"}
	for _, e := range []Entry{tool, flow} {
		c := LogEntry(e)
		if reflect.ValueOf(c).Pointer() == reflect.ValueOf(e).Pointer() {
			t.Fatalf("%T: LogEntry returned the entry itself", e)
		}
		if got, want := logLine(t, c), logLine(t, e); got != want {
			t.Fatalf("%T: the copy logs %s, want %s", e, got, want)
		}
		r, ok := c.(releaser)
		if !ok {
			t.Fatalf("%T: the copy cannot be given back", e)
		}
		r.ReleaseLogged()
	}
	other := &ToolEntry{Src: IP(addr(ip4("198.51.0.0", 9))), Tool: "zmap", Packets: 1}
	if got, want := logLine(t, LogEntry(other)), logLine(t, other); got != want {
		t.Fatalf("a copy taken again logs %s, want %s", got, want)
	}
	var scan Entry = &ScannerEntry{Src: "192.0.2.1"}
	if LogEntry(scan) != scan {
		t.Error("LogEntry copied an entry type no engine reuses")
	}
	if _, ok := Entry(tool).(releaser); ok {
		t.Error("an engine's own ToolEntry can be given back to the pool")
	}
}
