// Command memlat measures what a random read costs on this machine as the memory read
// grows: the replay's tables (the per-source table, its index, the hotspot's arrays) are
// hundreds of MiB read at random, where tcpdump reads one buffer. For each size it times
// reads that depend on the one before (a pointer chase over the region's cache lines in a
// random cycle: the latency of a miss, with its page walk) and reads that do not (random
// lines, many in flight: the throughput the workers' prefetching stages can reach), once in
// Go heap memory (4 KiB pages) and once in memory mapped with transparent huge pages
// requested (aggregate.Reserve, as the tables are; Linux only). Before the reads, it times the
// first write to each 4 KiB page of the new region: the page faults a process pays once for
// each table and array it grows, which tcpdump, with one buffer, does not.
//
// On the development VM (AMD EPYC, 2 cores, a paravirtualized guest), in three runs, a
// dependent read took 145-160 ns within 16 MiB, 185-195 ns within 64 MiB and 250-330 ns
// within 256 MiB, with either kind of page, and independent reads 6, 9 and 11-21 ns: the
// guest's huge pages do not shorten the walk (the host maps the guest's memory in small
// pages), so on such a machine a table's size, not only its lines, is paid at each miss.
//
// With -back N it only writes N MiB of fresh memory and exits. A guest that reports its free
// memory to the host (virtio-balloon free page reporting: the development VM's kernel runs
// with page_reporting.page_reporting_order=11) gets memory freed a few seconds earlier back
// from the host at each first touch, at about 2 ms a MiB, where memory still backed costs
// 0.06 ms a MiB: a process started right after this one finds its pages backed, as every
// page is on a machine without a hypervisor. bench.sh --backed runs it before each timed run.
//
//	go run ./internal/cmd/memlat [-sizes 1,4,16,64,256] [-reads 2000000]
//	go run ./internal/cmd/memlat -back 1024
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
)

func main() {
	sizes := flag.String("sizes", "1,4,16,64,256", "region sizes in MiB, comma-separated")
	reads := flag.Int("reads", 2_000_000, "timed reads per measure")
	back := flag.Int("back", 0, "only write this many MiB of fresh memory and exit (see above)")
	flag.Parse()
	if *back != 0 {
		if *back < 1 || *back > 1<<16 {
			fmt.Fprintf(os.Stderr, "memlat: -back %d is not a size in MiB (1 to 65536)\n", *back)
			os.Exit(2)
		}
		w := aggregate.ReserveOrMake[uint64](&back, *back<<20/8)
		touch(w)
		return
	}
	var mibs []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1<<16 {
			fmt.Fprintf(os.Stderr, "memlat: -sizes: %q is not a size in MiB (1 to 65536)\n", f)
			os.Exit(2)
		}
		mibs = append(mibs, n)
	}
	if *reads < 1 {
		fmt.Fprintln(os.Stderr, "memlat: -reads must be positive")
		os.Exit(2)
	}
	fmt.Println("MiB  memory                       first touch ns/4KiB  dependent ns/read  independent ns/read")
	for _, mib := range mibs {
		words := mib << 20 / 8
		for _, huge := range []bool{false, true} {
			kind := "Go heap (4 KiB pages)"
			var w []uint64
			if huge {
				kind = "mapped, huge pages asked"
				w = aggregate.Reserve[uint64](&kind, words)
				if w == nil {
					continue // not Linux, or the mapping failed
				}
			} else {
				w = make([]uint64, words)
			}
			first := touch(w)
			dep := chase(w, *reads)
			ind := scatter(w, *reads)
			fmt.Printf("%4d %-28s %19.0f %18.1f %20.1f\n", mib, kind, first, dep, ind)
		}
	}
}

// pageWords is a 4 KiB page in words.
const pageWords = 4096 / 8

// touch writes the first word of each 4 KiB page of w, a region no one has written yet, and
// returns the time per page: the page fault, and the zeroing of the page (or of the huge
// page it falls in, once per 2 MiB).
func touch(w []uint64) float64 {
	start := time.Now()
	for i := 0; i < len(w); i += pageWords {
		w[i] = 1
	}
	d := time.Since(start)
	return float64(d.Nanoseconds()) / float64((len(w)+pageWords-1)/pageWords)
}

// lineWords is a cache line in words: the chase visits one word a line.
const lineWords = 8

// chase links the region's lines in one random cycle and follows it: each read's address
// is the word the read before returned.
func chase(w []uint64, reads int) float64 {
	n := len(w) / lineWords
	perm := rand.Perm(n)
	for i, p := range perm {
		w[p*lineWords] = uint64(perm[(i+1)%n] * lineWords)
	}
	at := uint64(perm[0] * lineWords)
	for range min(reads, n) { // warm: every page is touched before timing
		at = w[at]
	}
	start := time.Now()
	for range reads {
		at = w[at]
	}
	d := time.Since(start)
	runtime.KeepAlive(at) // the reads are not optimised away
	return float64(d.Nanoseconds()) / float64(reads)
}

// scatter reads random words whose addresses do not depend on earlier reads.
func scatter(w []uint64, reads int) float64 {
	mask := uint64(1)
	for mask < uint64(len(w)) {
		mask <<= 1
	}
	mask = mask>>1 - 1 // the largest power of two within the region, less one
	x, sum := uint64(0x9e3779b97f4a7c15), uint64(0)
	start := time.Now()
	for range reads {
		x ^= x << 13 // xorshift: cheap, and not a function of the values read
		x ^= x >> 7
		x ^= x << 17
		sum += w[x&mask]
	}
	d := time.Since(start)
	runtime.KeepAlive(sum)
	return float64(d.Nanoseconds()) / float64(reads)
}
