package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/floodgen"
	"github.com/telescope-dev/telescope/packet"
)

// writeFlood streams a pcap of n SYN probes, each from a fresh random (spoofed) IPv4 source
// to a random port of 203.0.113.0/24, spread evenly over an hour of packet time.
func writeFlood(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := floodgen.Write(f, floodgen.Flood{Start: floodgen.Start, N: n, Span: time.Hour, Seed: 5}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rssBytes reads the resident set size of this process.
func rssBytes(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * uint64(os.Getpagesize())
}

// TestSpoofedFloodMemoryIsBounded replays 5 M SYN probes from 5 M random sources with a
// small source cap: memory stays under a bound derived from max_sources (the unbounded
// alternative would hold 5 M sources, gigabytes), every eviction is counted, and no
// detector fires on one-packet sources.
func TestSpoofedFloodMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("5M-packet flood skipped in -short mode")
	}
	const packets = 5_000_000
	const maxSources = 20_000
	cfg, err := configs.Parse([]byte("dark_prefixes: [203.0.113.0/24]\nlimits: {max_sources: "+strconv.Itoa(maxSources)+"}\n"), "flood.yaml")
	if err != nil {
		t.Fatal(err)
	}
	col := NewEpisodes()
	p, err := New(Options{Config: cfg, Workers: 2, Sink: col})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "flood.pcap")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, rss0 := ms.HeapInuse, rssBytes(t)

	var wg sync.WaitGroup
	wg.Add(2)
	var writeErr error
	go func() { defer wg.Done(); writeErr = writeFlood(fifo, packets) }()
	peakHeap, peakRSS := heap0, rss0
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peakHeap = max(peakHeap, m.HeapInuse)
			peakRSS = max(peakRSS, rssBytes(t))
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	res := p.Replay(context.Background(), ReplayOptions{Files: []string{fifo}})
	close(done)
	wg.Wait()
	if writeErr != nil || len(res.Errors) != 0 || res.Records != packets {
		t.Fatalf("replay: %d records, errors %v, writer %v", res.Records, res.Errors, writeErr)
	}

	// The live heap once the flood is over (after a collection, the pipeline still holding
	// every table) is deterministic enough to hold to a tight bound; the peaks in between
	// depend on when the collector ran (GOGC=100 lets the heap reach twice the live heap
	// before a collection) and on the machine's load, so they get that headroom.
	runtime.GC()
	runtime.ReadMemStats(&ms)
	liveHeap := ms.HeapInuse

	// The bound: per tracked source, its table entry and its share of the flow, victim and
	// episode tables (generously 2 KiB in all), plus what does not depend on sources: two
	// 64k-entry Space-Saving summaries, two HLLs and a counter shard per worker, the batches.
	const perSource, fixed = 2 << 10, 48 << 20
	bound := uint64(maxSources*perSource + fixed)
	t.Logf("%d packets in %v; live Go heap after +%d MiB (bound %d MiB); peaks: Go heap +%d MiB, RSS +%d MiB (bound %d MiB); 5M tracked sources would take > 1.5 GiB",
		res.Records, res.Elapsed.Round(time.Millisecond), (liveHeap-heap0)>>20, bound>>20,
		(peakHeap-heap0)>>20, (peakRSS-rss0)>>20, 2*bound>>20)
	if liveHeap > heap0 && liveHeap-heap0 > bound {
		t.Errorf("live Go heap grew by %d MiB, above the bound of %d MiB", (liveHeap-heap0)>>20, bound>>20)
	}
	if peakHeap-heap0 > 2*bound {
		t.Errorf("Go heap peaked %d MiB above its start, above the bound of %d MiB", (peakHeap-heap0)>>20, 2*bound>>20)
	}
	if peakRSS-rss0 > 2*bound {
		t.Errorf("RSS peaked %d MiB above its start, above the bound of %d MiB", (peakRSS-rss0)>>20, 2*bound>>20)
	}
	tracked, evictions := p.Tracked()
	if tracked > maxSources {
		t.Errorf("tracked %d entries, cap %d", tracked, maxSources)
	}
	// Nearly every packet brought a new source (random 32-bit addresses repeat ~3000 times).
	if evictions < packets-maxSources-10_000 {
		t.Errorf("evictions %d, want about %d", evictions, packets-maxSources)
	}
	r := p.Report(col)
	d := r.Detections
	n := 0
	for key, list := range d {
		if key != "hotspot" {
			n += len(list)
		}
	}
	if n != 0 {
		t.Errorf("one-packet spoofed sources made %d detections: %+v", n, d)
	}
	// Seen from the receivers, though, the flood is real: each address of the /24 gets
	// ~1 600 distinct one-packet sources per window, to random ports, for the whole hour.
	hot := EntriesOf[*detect.HotspotEntry](d, "hotspot")
	if len(hot) != 256 {
		t.Errorf("%d hotspot episodes, want one per address of the /24 (256)", len(hot))
	}
	for _, h := range hot {
		if h.Class != "syn_flood" || h.Port != 0 {
			t.Errorf("hotspot %+v, want a syn_flood of the address (port 0)", h)
			break
		}
	}
	if r.Sources.Unique < packets*98/100 || r.Sources.Unique > packets*102/100 {
		t.Errorf("unique sources %d, want %d within 2%%", r.Sources.Unique, packets)
	}
}

// TestSourceEntrySize keeps a source table entry (paid for every slot of max_sources, and
// touched by every packet) at six cache lines: at 408 bytes each entry straddled a seventh
// line, and a table of a million entries cost 24 MB more to first touch.
func TestSourceEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(aggregate.TableEntry[packet.Addr, sourceEntry]{}); n > 384 {
		t.Errorf("a source table entry is %d bytes, budget 384 (six cache lines)", n)
	}
}
