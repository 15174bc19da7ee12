// Command hotbatch measures a design for the hotspot detector's counts that issue 9's cost
// target may need: instead of updating a destination's counts at every packet (a cell, its
// levels, a set or a memo, top sources: several cache lines each, in random order), a worker
// appends one 24-byte record per dark packet to an array and, when a window closes, groups
// the window's records by destination (a counting sort on the dense index) and counts each
// group in the L1 cache: packets, distinct sources, the busiest ports and their distinct
// sources, the class counts and the top sources.
//
// It is a prototype for measuring, not the detector: it decodes the file first (not timed),
// deals the dark packets to the workers by source, then times, per worker (one after the
// other, or at once with -parallel; the last of -passes), the appends and the windows' work,
// and prints the time per packet beside the number of groups and candidates. With -check it
// also counts every window's distinct sources with Go maps and reports any difference. Memory is bounded: past -cap records a window's records are
// counted early and each destination's distinct sources go into a set of its own
// (aggregate.Distinct, exact to 4 096, 256 KiB of large sets per worker as the hotspot's),
// into which the window's later records are counted at its close. It leaves out the merge
// over workers, the receiver distribution and the episodes, which are per destination and
// window, not per packet.
//
//	go run ./internal/cmd/hotbatch -dark 203.0.0.0/16 bench/syn-5000000.pcap
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/packet"
)

// in is a decoded dark packet, what the worker's hotspot step would read from the header.
type in struct {
	ts    int64
	src   packet.Addr
	dst   packet.Addr
	dense int32
	port  uint16
	bits  uint8
}

// Bits of in.bits and rec.bits.
const (
	bSYN = 1 << iota
	bUDP
	bReply
)

// rec is one packet of the open window: the destination's id and the source's hash in one
// sort key, the packet's time, port and kind, and its place in the window (for the source's
// address, kept apart).
type rec struct {
	key  uint64 // id<<40 | 40 bits of the source's hash
	ts   int64
	port uint16
	bits uint8
	i    uint32
}

const srcBits = 40

type worker struct {
	recs, sorted []rec
	srcs         []packet.Addr
	nids         int // destinations without a dense index, this window (in idK, idV)
	dense        int
	count        []uint32
	set          []uint64 // scratch: a group's distinct sources (hash+1), open addressing
	setN         []uint32 // packets of each
	portK, portN []uint32 // scratch: a group's ports (port+1) and packets, open addressing
	idK          []packet.Addr
	idV          []uint32 // 1+id of idK's destination (0: empty)
	// results
	groups, cands, multi uint64
	sum                  uint64 // of the distinct sources, so that nothing is optimized away
	closing              time.Duration
	cap                  int                  // records per window before an early count
	slab                 aggregate.Slab       // the sets' blocks
	sets                 []aggregate.Distinct // by id: the sources of the window's early counts
	setOn                []uint64             // bitmap by id: sets[id] in use
	touched              []uint32             // ids whose set is in use
	spills               int
	minSources           int
	distinct             map[uint32]int // distinct sources by id, this window (nil: not kept)
}

func main() {
	dark := flag.String("dark", "", "dark prefixes, comma-separated (required)")
	workers := flag.Int("workers", 2, "workers the packets are dealt to by source")
	window := flag.Duration("window", 5*time.Minute, "window length")
	minSources := flag.Int("min-sources", 100, "hotspot.min_sources")
	check := flag.Bool("check", false, "check the distinct counts against Go maps (with no early count)")
	capRecs := flag.Int("cap", 1<<20, "records per worker and window before they are counted early")
	parallel := flag.Bool("parallel", false, "run the workers at once (each on a thread), not one after the other")
	passes := flag.Int("passes", 1, "passes over the file per worker, the last one timed (2: buffers already in use, as in a running daemon)")
	flag.Parse()
	if flag.NArg() != 1 || *dark == "" {
		fmt.Fprintln(os.Stderr, "usage: hotbatch -dark PREFIXES [-workers N] [-window D] [-check] FILE")
		os.Exit(2)
	}
	var list []netip.Prefix
	for _, s := range strings.Split(*dark, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, "hotbatch:", err)
			os.Exit(2)
		}
		list = append(list, p)
	}
	px, err := aggregate.NewPrefixes(list, aggregate.NewPrefixSlots())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hotbatch:", err)
		os.Exit(2)
	}
	ins, err := load(flag.Arg(0), px, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hotbatch:", err)
		os.Exit(1)
	}
	// The workers run one after the other, or (-parallel) at once, each on a thread of its
	// own, as the pipeline's do: they then share the caches and the memory bus.
	wks := make([]*worker, len(ins))
	took := make([]time.Duration, len(ins))
	var wg sync.WaitGroup
	for wi, w := range ins {
		wk := &worker{dense: px.ExactSize(), idK: make([]packet.Addr, 1<<16), idV: make([]uint32, 1<<16),
			minSources: (*minSources + *workers - 1) / *workers, cap: max(*capRecs, 1)}
		wk.slab.BigLimit = 32 << 10
		if *check {
			wk.distinct = map[uint32]int{}
		}
		wks[wi] = wk
		one := func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for range *passes - 1 { // warm-up passes: the buffers, then reused
				wk.run(w, int64(*window), false)
			}
			wk.groups, wk.multi, wk.cands, wk.spills, wk.closing = 0, 0, 0, 0, 0
			t0 := time.Now()
			wk.run(w, int64(*window), *check)
			took[wi] = time.Since(t0)
		}
		if *parallel {
			wg.Add(1)
			go func() { defer wg.Done(); one() }()
		} else {
			one()
		}
	}
	wg.Wait()
	total := 0
	var elapsed time.Duration
	for wi, wk := range wks {
		n, d := len(ins[wi]), took[wi]
		elapsed += d
		total += n
		fmt.Printf("worker %d: %d packets, %.1f ns/packet (%.1f counting); %d destination groups (%d with 2+ packets), %d with >= %d sources; %d early counts\n",
			wi, n, float64(d.Nanoseconds())/float64(max(n, 1)), float64(wk.closing.Nanoseconds())/float64(max(n, 1)),
			wk.groups, wk.multi, wk.cands, wk.minSources, wk.spills)
	}
	fmt.Printf("all: %d packets, %.1f ns/packet\n", total, float64(elapsed.Nanoseconds())/float64(max(total, 1)))
}

// load decodes the file's dark IP packets and deals them to n workers by source.
func load(path string, px *aggregate.Prefixes, n int) ([][]in, error) {
	f, err := capture.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([][]in, n)
	var r capture.Record
	var h packet.Header
	for {
		if err := f.Read(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		packet.Decode(r.Link, r.Data, &h)
		if h.Result != packet.ResultIP {
			continue
		}
		slot, dense := px.MatchDst(&h.Dst, h.IPVersion == 4)
		if slot == 0 {
			continue
		}
		var b uint8
		var port uint16
		switch {
		case h.SYNProbe():
			b, port = bSYN, h.DstPort
		case h.Proto == packet.ProtoUDP && h.L4:
			b, port = bUDP, h.DstPort
		case h.Proto == packet.ProtoTCP && h.L4:
			b, port = bReply, h.DstPort
		case h.Proto == packet.ProtoICMP || h.Proto == packet.ProtoICMPv6:
			b = bReply
		}
		w := int(h.Src.Hash(0x2545f4914f6cdd1d) % uint64(n))
		out[w] = append(out[w], in{ts: r.TS, src: h.Src, dst: h.Dst, dense: dense, port: port, bits: b})
	}
}

func (w *worker) run(ins []in, size int64, check bool) {
	end := int64(-1 << 62)
	for i := range ins {
		p := &ins[i]
		if p.ts >= end {
			if len(w.recs) > 0 {
				w.close(check)
			}
			end = (p.ts/size + 1) * size
		}
		var id uint32
		if p.dense >= 0 {
			id = uint32(p.dense)
		} else {
			// Open addressing by the address's hash, at most half full.
			if w.nids >= len(w.idV)/2 {
				fmt.Fprintf(os.Stderr, "hotbatch: more than %d destinations without a dense index in one window and worker (this prototype's table)\n", len(w.idV)/2)
				os.Exit(1)
			}
			j := p.dst.Hash(0x9e3779b97f4a7c15) & uint64(len(w.idV)-1)
			for w.idV[j] != 0 && w.idK[j] != p.dst {
				j = (j + 1) & uint64(len(w.idV)-1)
			}
			if w.idV[j] == 0 {
				w.idK[j], w.idV[j] = p.dst, uint32(w.dense+w.nids+1)
				w.nids++
			}
			id = w.idV[j] - 1
		}
		if len(w.recs) >= w.cap {
			w.countRecs(true, false)
		}
		x := p.src.Hash(0x1f83d9abfb41bd6b)
		w.recs = append(w.recs, rec{key: uint64(id)<<srcBits | x&(1<<srcBits-1), ts: p.ts, port: p.port, bits: p.bits, i: uint32(len(w.srcs))})
		w.srcs = append(w.srcs, p.src)
	}
	if len(w.recs) > 0 {
		w.close(check)
	}
}

// close counts the window's records and ends the window.
func (w *worker) close(check bool) { w.countRecs(false, check) }

// countRecs counts the records so far: a counting sort by destination id, then each group;
// early (the records reached the cap), each group's sources go to its destination's set.
func (w *worker) countRecs(early, check bool) {
	t0 := time.Now()
	defer func() { w.closing += time.Since(t0) }()
	if early {
		w.spills++
		check = false
	}
	n := w.dense + w.nids + 1
	if cap(w.count) < n {
		w.count = make([]uint32, n)
	}
	count := w.count[:n]
	clear(count)
	for i := range w.recs {
		count[w.recs[i].key>>srcBits+1]++
	}
	for i := 1; i < n; i++ {
		count[i] += count[i-1]
	}
	w.sorted = slices.Grow(w.sorted[:0], len(w.recs))[:len(w.recs)]
	for i := range w.recs {
		r := &w.recs[i]
		k := r.key >> srcBits
		w.sorted[count[k]] = *r
		count[k]++
	}
	for lo := 0; lo < len(w.sorted); {
		id := w.sorted[lo].key >> srcBits
		hi := lo + 1
		for hi < len(w.sorted) && w.sorted[hi].key>>srcBits == id {
			hi++
		}
		w.group(w.sorted[lo:hi], early)
		lo = hi
	}
	if check {
		w.checkWindow()
	}
	w.recs, w.srcs = w.recs[:0], w.srcs[:0]
	if early {
		return
	}
	for _, id := range w.touched {
		w.sets[id].Reset(&w.slab)
		w.setOn[id>>6] = 0
	}
	w.touched = w.touched[:0]
	if w.nids > 0 {
		clear(w.idV)
		w.nids = 0
	}
}

// group counts one destination's records of the window (early: of an early count, whose
// sources go to the destination's set).
func (w *worker) group(g []rec, early bool) {
	id := uint32(g[0].key >> srcBits)
	var set *aggregate.Distinct
	if early || w.inSet(id) {
		set = w.setOf(id)
	}
	if !early {
		w.groups++
	}
	var sources int
	var syn, udp, reply int
	if len(g) == 1 && set == nil {
		sources = 1
	} else {
		if !early {
			w.multi++
		}
		size := 8
		for size < 2*len(g) {
			size *= 2
		}
		if cap(w.set) < size {
			w.set, w.setN = make([]uint64, size), make([]uint32, size)
			w.portK, w.portN = make([]uint32, size), make([]uint32, size)
		}
		ds := set
		set, setN := w.set[:size], w.setN[:size]
		portK, portN := w.portK[:size], w.portN[:size]
		clear(set)
		clear(portK)
		mask := uint64(size - 1)
		for i := range g {
			r := &g[i]
			x := r.key&(1<<srcBits-1) + 1
			j := (x * 0x9e3779b97f4a7c15 >> 20) & mask
			for set[j] != 0 && set[j] != x {
				j = (j + 1) & mask
			}
			if set[j] == 0 {
				set[j], setN[j] = x, 0
				sources++
				if ds != nil {
					ds.AddLater(&w.slab, x)
				}
			}
			setN[j]++
			switch {
			case r.bits&bSYN != 0:
				syn++
			case r.bits&bUDP != 0:
				udp++
			case r.bits&bReply != 0:
				reply++
			}
			if r.port != 0 {
				k := uint32(r.port) + 1
				j := uint64(k*0x9e3779b1>>16) & mask
				for portK[j] != 0 && portK[j] != k {
					j = (j + 1) & mask
				}
				if portK[j] == 0 {
					portK[j], portN[j] = k, 0
				}
				portN[j]++
			}
		}
		if ds != nil {
			if early {
				return // counted at the close
			}
			sources = int(ds.Count(&w.slab))
		}
		// The two busiest ports' distinct sources: a second pass over the group each.
		var top [2]uint16
		var topN [2]uint32
		for j, k := range portK {
			if c := portN[j]; k != 0 && c > topN[1] {
				top[1], topN[1] = uint16(k-1), c
				if topN[1] > topN[0] {
					top[0], top[1], topN[0], topN[1] = top[1], top[0], topN[1], topN[0]
				}
			}
		}
		for k := range top {
			if topN[k] >= uint32(w.minSources) {
				w.sum += uint64(w.portSources(g, top[k]))
			}
		}
		// Top sources: the five with the most packets (only for a candidate).
		if sources >= w.minSources {
			w.cands++
			var best [5]uint32
			for j := range set {
				if set[j] != 0 {
					if c := setN[j]; c > best[4] {
						best[4] = c
						slices.SortFunc(best[:], func(a, b uint32) int { return int(b) - int(a) })
					}
				}
			}
			w.sum += uint64(best[0])
		}
	}
	w.sum += uint64(sources + syn + udp + reply)
	if w.distinct != nil {
		w.distinct[uint32(g[0].key>>srcBits)] = sources
	}
}

func (w *worker) inSet(id uint32) bool {
	return int(id>>6) < len(w.setOn) && w.setOn[id>>6]&(1<<(id&63)) != 0
}

// setOf returns id's set of sources, in use from now on.
func (w *worker) setOf(id uint32) *aggregate.Distinct {
	if int(id) >= len(w.sets) {
		w.sets = append(w.sets, make([]aggregate.Distinct, int(id)+1-len(w.sets))...)
		w.setOn = append(w.setOn, make([]uint64, int(id)/64+1-len(w.setOn))...)
	}
	if !w.inSet(id) {
		w.setOn[id>>6] |= 1 << (id & 63)
		w.touched = append(w.touched, id)
	}
	return &w.sets[id]
}

// portSources counts the distinct sources of a group's records to port p.
func (w *worker) portSources(g []rec, p uint16) int {
	size := 8
	for size < 2*len(g) {
		size *= 2
	}
	set := w.set[:size]
	clear(set)
	mask := uint64(size - 1)
	n := 0
	for i := range g {
		if g[i].port != p {
			continue
		}
		x := g[i].key&(1<<srcBits-1) + 1
		j := (x * 0x9e3779b97f4a7c15 >> 20) & mask
		for set[j] != 0 && set[j] != x {
			j = (j + 1) & mask
		}
		if set[j] == 0 {
			set[j] = x
			n++
		}
	}
	return n
}

// checkWindow counts the window's distinct sources per destination with maps and compares.
func (w *worker) checkWindow() {
	m := map[uint32]map[packet.Addr]bool{}
	for _, r := range w.recs {
		id := uint32(r.key >> srcBits)
		if m[id] == nil {
			m[id] = map[packet.Addr]bool{}
		}
		m[id][w.srcs[r.i]] = true
	}
	for id, s := range m {
		if w.distinct[id] != len(s) {
			fmt.Printf("check: destination %d: %d sources counted, %d by map\n", id, w.distinct[id], len(s))
		}
	}
	clear(w.distinct)
}
