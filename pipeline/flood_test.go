package pipeline

import (
	"bufio"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
)

// writeFlood streams a pcap of n SYN probes, each from a fresh random (spoofed) IPv4 source
// to a random port of 203.0.113.0/24, spread evenly over an hour of packet time.
func writeFlood(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	if _, err := w.Write(hdr); err != nil {
		f.Close()
		return err
	}
	rng := rand.New(rand.NewPCG(5, 5))
	rec := make([]byte, 16+54)
	copy(rec[16:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 40})
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	step := int64(time.Hour) / int64(n)
	for i := 0; i < n; i++ {
		ts := start + int64(i)*step
		binary.LittleEndian.PutUint32(rec[0:], uint32(ts/1e9))
		binary.LittleEndian.PutUint32(rec[4:], uint32(ts%1e9))
		binary.LittleEndian.PutUint32(rec[8:], 54)
		binary.LittleEndian.PutUint32(rec[12:], 54)
		ip := rec[16+14:]
		binary.BigEndian.PutUint16(ip[4:], uint16(rng.Uint32N(54321))) // never ZMap's IP ID
		ip[8], ip[9] = 64, 6
		binary.BigEndian.PutUint32(ip[12:], rng.Uint32())
		dst := 0xcb007100 | rng.Uint32N(256)
		binary.BigEndian.PutUint32(ip[16:], dst)
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], uint16(rng.Uint32()))
		binary.BigEndian.PutUint16(tcp[2:], uint16(1+rng.Uint32N(65535)))
		binary.BigEndian.PutUint32(tcp[4:], dst+1) // never Mirai's seq == dst
		tcp[12], tcp[13] = 5<<4, 0x02
		binary.BigEndian.PutUint16(tcp[14:], 29200)
		if _, err := w.Write(rec); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
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

	// The bound: per tracked source, its table entry and its share of the flow, victim and
	// episode tables (generously 2 KiB in all), plus what does not depend on sources: two
	// 64k-entry Space-Saving summaries, two HLLs and a counter shard per worker, the batches.
	const perSource, fixed = 2 << 10, 48 << 20
	bound := uint64(maxSources*perSource + fixed)
	t.Logf("%d packets in %v; Go heap +%d MiB, RSS +%d MiB (bound %d MiB; 5M tracked sources would take > 1.5 GiB)",
		res.Records, res.Elapsed.Round(time.Millisecond), (peakHeap-heap0)>>20, (peakRSS-rss0)>>20, bound>>20)
	if peakHeap-heap0 > bound {
		t.Errorf("Go heap grew by %d MiB, above the bound of %d MiB", (peakHeap-heap0)>>20, bound>>20)
	}
	if peakRSS-rss0 > bound {
		t.Errorf("RSS grew by %d MiB, above the bound of %d MiB", (peakRSS-rss0)>>20, bound>>20)
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
