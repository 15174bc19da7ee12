package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/packet"
)

// These tests use tcpdump (libpcap) as the oracle: record counts must equal those of
// `tcpdump -r FILE --count`, and the records themselves those tcpdump writes back out with
// -w (read with a minimal parser of their own, not with our reader).

// corpusDir holds the capture files of tcpdump's regression suite.
var corpusDir = filepath.Join("..", "testdata", "tcpdump-tests")

// testRec is a record kept for comparison (Data copied).
type testRec struct {
	TS      int64
	WireLen uint32
	Link    packet.LinkType
	Data    []byte
}

// readResult is what one reader made of one file.
type readResult struct {
	recs     []testRec
	full     bool    // read to a clean end
	problem  string  // why not (error text); our warnings when full
	offsets  []int64 // ours: where each record starts
	timedOut bool
	snaplen  uint32 // tcpdump: the snapshot length libpcap used (in its output header)
}

// readAll reads every record of path with our reader, giving up after limit.
func readAll(path string, limit time.Duration) readResult {
	done := make(chan readResult, 1)
	go func() {
		var res readResult
		f, err := Open(path)
		if err != nil {
			res.problem = err.Error()
			done <- res
			return
		}
		defer f.Close()
		for {
			rec, err := f.Next()
			if err == io.EOF {
				res.full = true
				res.problem = strings.Join(f.Warnings(), "; ")
				break
			}
			if err != nil {
				res.problem = err.Error()
				break
			}
			res.recs = append(res.recs, testRec{rec.TS, rec.WireLen, rec.Link, bytes.Clone(rec.Data)})
			res.offsets = append(res.offsets, f.RecordOffset())
		}
		done <- res
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		return readResult{timedOut: true, problem: fmt.Sprintf("no result after %v (hang?)", limit)}
	}
}

// requireTcpdump returns the path of tcpdump, skipping (failing in CI) without it.
func requireTcpdump(t *testing.T) string {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tcpdump is required in CI: %v", err)
		}
		t.Skip("SKIPPING: tcpdump is not installed; cannot compare with libpcap. Install tcpdump to run this test.")
	}
	if testing.Short() {
		t.Skip("skipping the comparison with tcpdump in -short mode")
	}
	return tcpdump
}

var tcpdumpCount = regexp.MustCompile(`(?m)^(\d+) packets?$`)

// tcpdumpRead runs `tcpdump -r path --count -w out` with ns timestamps. It read the file to
// its end when it exits 0 without an error line on stderr. The records it read are taken
// from out.
func tcpdumpRead(tcpdump, path, out string) readResult {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--time-stamp-precision=nano", "-r", path, "--count", "-w", out}
	if os.Geteuid() == 0 {
		args = append(args, "-Z", "root") // else it writes out as user tcpdump, into our 0700 dir
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tcpdump, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res readResult
	count := -1
	if m := tcpdumpCount.FindSubmatch(stdout.Bytes()); m != nil {
		count, _ = strconv.Atoi(string(m[1]))
	}
	var errLines []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "tcpdump: ") {
			errLines = append(errLines, l)
		}
	}
	switch {
	case ctx.Err() != nil:
		res.problem = "tcpdump timed out"
	case runErr != nil || len(errLines) > 0:
		res.problem = strings.TrimSpace(fmt.Sprintf("%v: %s", runErr, strings.Join(errLines, " ")))
	default:
		res.full = true
	}
	if count < 0 {
		if res.full {
			res.full, res.problem = false, "no count in tcpdump's output: "+stdout.String()
		}
		return res
	}
	recs, snaplen, err := readTcpdumpOutput(out)
	if err != nil && count > 0 {
		res.full, res.problem = false, fmt.Sprintf("reading tcpdump's output: %v", err)
	}
	res.recs, res.snaplen = recs, snaplen
	if len(recs) != count {
		res.full = false
		res.problem += fmt.Sprintf(" (tcpdump counted %d records but wrote %d)", count, len(recs))
	}
	return res
}

// readTcpdumpOutput reads a pcap file written by tcpdump with ns timestamps. It is a
// separate, minimal parser (of the one simple variant libpcap writes) so that the oracle does
// not depend on the reader under test; gopacket's pcapgo would refuse the records with a
// captured length above the original length that libpcap passes through.
func readTcpdumpOutput(path string) ([]testRec, uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 24 {
		return nil, 0, fmt.Errorf("%d bytes, no file header", len(b))
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b) == 0xa1b23c4d {
		order = binary.BigEndian
	} else if order.Uint32(b) != 0xa1b23c4d {
		return nil, 0, fmt.Errorf("magic % x is not that of a ns pcap file", b[:4])
	}
	snaplen, link := order.Uint32(b[16:]), packet.LinkType(order.Uint32(b[20:])&linkTypeMask)
	var recs []testRec
	for b = b[24:]; len(b) > 0; {
		if len(b) < 16 || len(b) < 16+int(order.Uint32(b[8:])) {
			return recs, snaplen, fmt.Errorf("record %d cut short", len(recs))
		}
		caplen := int(order.Uint32(b[8:]))
		ts := int64(order.Uint32(b))*1e9 + int64(order.Uint32(b[4:]))
		recs = append(recs, testRec{ts, order.Uint32(b[12:]), link, b[16 : 16+caplen]})
		b = b[16+caplen:]
	}
	return recs, snaplen, nil
}

// compareRecords checks our records against tcpdump's, as far as both go, and returns the
// first difference.
func compareRecords(ours, tcp readResult) error {
	for i := range min(len(ours.recs), len(tcp.recs)) {
		o, c := ours.recs[i], tcp.recs[i]
		if o.WireLen != c.WireLen {
			return fmt.Errorf("record %d: original length %d, tcpdump %d", i, o.WireLen, c.WireLen)
		}
		// tcpdump writes 32-bit seconds and fractions: equal modulo 2^32 ns, which is all
		// that survives for fractions out of range (µs fields of 10^6 or more, times 1000).
		// A pcapng time before 1970 or past packet.MaxTS is clamped to that end where
		// libpcap keeps all 64 bits (and tcpdump writes the low 32 of its seconds).
		clamped := o.TS == 0 || o.TS == packet.MaxTS
		if d := (o.TS - c.TS) % (1 << 32); d != 0 && !clamped {
			return fmt.Errorf("record %d: time %d ns, tcpdump %d ns", i, o.TS, c.TS)
		}
		// libpcap cuts a record longer than the snapshot length; we keep it whole.
		cut := len(o.Data) > len(c.Data) && uint32(len(c.Data)) == tcp.snaplen
		if !bytes.Equal(o.Data, c.Data) && !(cut && bytes.HasPrefix(o.Data, c.Data)) {
			return fmt.Errorf("record %d: %d bytes of data, tcpdump %d, or different content",
				i, len(o.Data), len(c.Data))
		}
		// tcpdump writes DLT_RAW as LINKTYPE_RAW whatever number the input used for it.
		raw := (o.Link == packet.LinkRawBSD1 || o.Link == packet.LinkRawBSD2) && c.Link == packet.LinkRaw
		if o.Link != c.Link && !raw {
			return fmt.Errorf("record %d: link type %v, tcpdump %v", i, o.Link, c.Link)
		}
	}
	return nil
}

// outcome is the comparison of one file.
type outcome struct {
	name      string
	ours, tcp readResult
}

// compareFiles reads every file with both readers, two tcpdump processes at a time (the
// machine is shared).
func compareFiles(t *testing.T, tcpdump string, paths []string) []outcome {
	out := t.TempDir()
	results := make([]outcome, len(paths))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := paths[i]
				results[i] = outcome{
					name: filepath.Base(p),
					ours: readAll(p, 20*time.Second),
					tcp:  tcpdumpRead(tcpdump, p, filepath.Join(out, strconv.Itoa(i)+".pcap")),
				}
			}
		}()
	}
	for i := range paths {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

// corpusFiles lists the files of the corpus.
func corpusFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(corpusDir, e.Name()))
		}
	}
	if len(files) < 800 {
		t.Fatalf("corpus %s has only %d files; expected the ~830 of tcpdump's test suite", corpusDir, len(files))
	}
	return files
}

// TestCorpusMatchesTcpdump reads every file of tcpdump's test suite with our reader and with
// tcpdump: where both read a file to its end, the record counts must be equal, and every file
// tcpdump reads to its end must be read to its end by us too. The records must be those
// tcpdump reads (time, original length, data, link type).
func TestCorpusMatchesTcpdump(t *testing.T) {
	tcpdump := requireTcpdump(t)
	results := compareFiles(t, tcpdump, corpusFiles(t))

	var matched, records int
	var weReject, tcpRejects, bothReject, warned []string
	for _, r := range results {
		switch {
		case r.ours.timedOut:
			t.Errorf("%s: our reader: %s", r.name, r.ours.problem)
			continue
		case r.ours.full && r.tcp.full:
			if len(r.ours.recs) != len(r.tcp.recs) {
				t.Errorf("%s: we read %d records, tcpdump %d", r.name, len(r.ours.recs), len(r.tcp.recs))
				continue
			}
			matched++
			records += len(r.ours.recs)
			if r.ours.problem != "" {
				warned = append(warned, r.ours.problem)
			}
		case r.tcp.full:
			t.Errorf("%s: tcpdump reads all %d records, we stop after %d: %s",
				r.name, len(r.tcp.recs), len(r.ours.recs), r.ours.problem)
			weReject = append(weReject, r.name)
		case r.ours.full:
			tcpRejects = append(tcpRejects, fmt.Sprintf("%s: we read %d records (%s); tcpdump %d: %s",
				r.name, len(r.ours.recs), r.ours.problem, len(r.tcp.recs), r.tcp.problem))
		default:
			bothReject = append(bothReject, fmt.Sprintf("%s: we stop after %d records: %s; tcpdump after %d: %s",
				r.name, len(r.ours.recs), r.ours.problem, len(r.tcp.recs), r.tcp.problem))
		}
		if err := compareRecords(r.ours, r.tcp); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}
	sort.Strings(warned)
	t.Logf("%d files: %d read fully by both with equal counts and records (%d records), "+
		"%d we reject but tcpdump reads, %d tcpdump rejects but we read, %d both reject",
		len(results), matched, records, len(weReject), len(tcpRejects), len(bothReject))
	for _, s := range tcpRejects {
		t.Logf("tcpdump rejects, we read: %s", s)
	}
	for _, s := range bothReject {
		t.Logf("both reject: %s", s)
	}
	for _, s := range warned {
		t.Logf("read by both, with warnings: %s", s)
	}
	if matched < 800 {
		t.Errorf("only %d files read fully by both with equal counts; expected at least 800", matched)
	}
}

// TestDamagedCorpusMatchesTcpdump damages corpus files the way disks, transfers and fuzzers
// do (cut at random points, a header or length field overwritten) and checks that we stop
// where libpcap stops: where tcpdump reads the damaged file to its end, we do too with the
// same records; where it stops with an error, we return the same records before an error,
// unless a warning of ours says why we read on (a deliberate extension).
// TELESCOPE_DAMAGE_VARIANTS sets the number of damaged files (default 160; 3000 pass too).
func TestDamagedCorpusMatchesTcpdump(t *testing.T) {
	tcpdump := requireTcpdump(t)
	variants := 160
	if v, err := strconv.Atoi(os.Getenv("TELESCOPE_DAMAGE_VARIANTS")); err == nil && v > 0 {
		variants = v
	}
	var pcaps, pcapngs []string // damaged alike, though pcapng files are far fewer
	for _, p := range corpusFiles(t) {
		switch filepath.Ext(p) {
		case ".pcap":
			pcaps = append(pcaps, p)
		case ".pcapng":
			pcapngs = append(pcapngs, p)
		}
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same damage every run
	var paths, what []string
	for i := range variants {
		sources := pcaps
		if i%2 == 1 {
			sources = pcapngs
		}
		src := sources[rng.IntN(len(sources))]
		orig, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		clean := readAll(src, 20*time.Second)
		data, desc := damage(rng, orig, clean.offsets)
		p := filepath.Join(dir, fmt.Sprintf("%03d-%s", i, filepath.Base(src)))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		what = append(what, desc)
	}
	results := compareFiles(t, tcpdump, paths)
	var counts [3]int
	for i, r := range results {
		counts[judge(t, r.name+" ("+what[i]+")", r)]++
	}
	t.Logf("%d damaged files: %d read fully by both, %d stopped by both at the same record, %d read further by us",
		len(results), counts[sameFull], counts[sameStop], counts[readFurther])
}

// Verdicts of judge.
const (
	sameFull    = iota // both read the file to its end, with the same records
	sameStop           // both stop with an error after the same records
	readFurther        // we read on where libpcap or tcpdump gives up, for a reason we state
)

// judge checks our reading of a file against tcpdump's, records an error for any
// unexplained difference, and returns the verdict.
func judge(t *testing.T, name string, r outcome) int {
	t.Helper()
	if r.ours.timedOut {
		t.Errorf("%s: our reader: %s", name, r.ours.problem)
		return readFurther
	}
	if err := compareRecords(r.ours, r.tcp); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	nOurs, nTcp := len(r.ours.recs), len(r.tcp.recs)
	switch {
	case r.tcp.full:
		if !r.ours.full || nOurs != nTcp {
			t.Errorf("%s: tcpdump reads all %d records; we read %d, then: %s", name, nTcp, nOurs, r.ours.problem)
		}
		return sameFull
	case nOurs == nTcp && !r.ours.full:
		return sameStop
	case nTcp == 0 && strings.Contains(r.tcp.problem, "unknown data link type"):
		// tcpdump cannot compile its (empty) filter for a link type it does not know;
		// a reader has no reason to refuse it.
		t.Logf("%s: tcpdump refuses the link type, we read %d records: %s", name, nOurs, r.tcp.problem)
	case nOurs > nTcp && strings.Contains(r.ours.problem, "libpcap refuses"):
		t.Logf("%s: we read on past libpcap's stop at record %d: %s", name, nTcp, r.ours.problem)
	default:
		t.Errorf("%s: tcpdump stops after %d records (%s); we after %d (full=%v): %s",
			name, nTcp, r.tcp.problem, nOurs, r.ours.full, r.ours.problem)
	}
	return readFurther
}

// TestCraftedFilesMatchTcpdump compares with tcpdump on files built to probe each
// acceptance rule of libpcap: versions, magic numbers, snapshot and record lengths, link
// type bits, pcapng options, block kinds and sections. Beyond counts, compareRecords
// checks our timestamps (every if_tsresol kind) against libpcap's.
func TestCraftedFilesMatchTcpdump(t *testing.T) {
	tcpdump := requireTcpdump(t)
	le, be := binary.LittleEndian, binary.BigEndian
	d := frame(0, 74)
	r := func(caplen, wire uint32, data []byte) pcapRec { return pcapRec{1700000000, 123456, caplen, wire, data} }
	two := []pcapRec{rec(1700000000, 999999, d), rec(1700000001, 5, d[:60])}
	files := map[string][]byte{}
	for _, v := range [][2]uint16{{1, 0}, {2, 0}, {2, 2}, {2, 3}, {2, 4}, {2, 5}, {3, 0}, {543, 0}, {543, 1}} {
		files[fmt.Sprintf("version %d.%d", v[0], v[1])] = pcapBytes(le, pcapMicro, v[0], v[1], 0, 1, two...)
	}
	for name, m := range map[string]uint32{"µs": pcapMicro, "ns": pcapNano, "Kuznetsov": pcapKuznetsov, "Navtel": 0xa12b3c4d} {
		files["magic "+name+" LE"] = pcapBytes(le, m, 2, 4, 65535, 1, two...)
		files["magic "+name+" BE"] = pcapBytes(be, m, 2, 4, 65535, 101, two...)
	}
	for _, snap := range []uint32{0, 1, 60, 65535, 0x7fffffff, 0x80000000, 0xffffffff} {
		files[fmt.Sprintf("snaplen %#x", snap)] = pcapBytes(le, pcapMicro, 2, 4, snap, 1, two...)
	}
	files["Kuznetsov Ethernet snaplen+14"] = pcapBytes(le, pcapKuznetsov, 2, 4, 60, 1, rec(1, 2, d), rec(3, 4, frame(1, 75)))
	files["link type FCS bits"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1|0x04000000|0x10000000, two...)
	files["caplen 262144"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1, rec(1, 0, frame(0, 262144)), two[0])
	files["caplen 262145"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1, two[0], rec(1, 0, frame(0, 262145)))
	files["caplen 262145 D-Bus"] = pcapBytes(le, pcapMicro, 2, 4, 0, 231, rec(1, 0, frame(0, 262145)))
	files["caplen > snaplen > max"] = pcapBytes(le, pcapMicro, 2, 4, 1<<20, 1, two[0], rec(1, 0, frame(0, 300000)))
	files["caplen > wire, 2.4"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1, r(74, 60, d), two[1])
	files["caplen > wire, 2.3"] = pcapBytes(le, pcapMicro, 2, 3, 0, 1, r(74, 60, d), r(60, 74, d[:60]))
	files["µs field >= 10^6"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1, pcapRec{5, 4e9, 74, 74, d})
	files["empty pcap"] = pcapBytes(le, pcapMicro, 2, 4, 0, 1)

	type ngCase struct {
		name string
		opts func(n *ngBuilder) [][]byte
	}
	for _, c := range []ngCase{
		{"no options", func(n *ngBuilder) [][]byte { return nil }},
		{"if_tsresol 10^-3", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(3)} }},
		{"if_tsresol 10^-9", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(9)} }},
		{"if_tsresol 10^-12", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(12)} }},
		{"if_tsresol 10^-19", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(19)} }},
		{"if_tsresol 10^-20", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(20)} }},
		{"if_tsresol 2^-10", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(0x80 | 10)} }},
		{"if_tsresol 2^-30", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(0x80 | 30)} }},
		{"if_tsresol 2^-64", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(0x80 | 64)} }},
		{"if_tsresol twice", func(n *ngBuilder) [][]byte { return [][]byte{n.tsresol(6), n.tsresol(9)} }},
		{"if_tsresol of 2 bytes", func(n *ngBuilder) [][]byte { return [][]byte{n.opt(optTSResol, []byte{6, 0})} }},
		{"if_tsoffset", func(n *ngBuilder) [][]byte { return [][]byte{n.tsoffset(-100), n.tsresol(9)} }},
		{"if_tsoffset twice", func(n *ngBuilder) [][]byte { return [][]byte{n.tsoffset(1), n.tsoffset(2)} }},
		{"if_tsoffset of 7 bytes", func(n *ngBuilder) [][]byte { return [][]byte{n.opt(optTSOffset, make([]byte, 7))} }},
		{"opt_endofopt of 4 bytes", func(n *ngBuilder) [][]byte { return [][]byte{n.opt(optEndOfOpt, []byte("abcd"))} }},
		{"option cut short", func(n *ngBuilder) [][]byte { return [][]byte{n.order.AppendUint16(n.order.AppendUint16(nil, 2), 40)} }},
	} {
		for _, order := range []binary.AppendByteOrder{le, be} {
			n := newSection(order)
			n.idb(1, 0, c.opts(n)...)
			n.epb(0, 1700000000<<20|123456, 80, d).epb(0, 5, 60, d[:60])
			files[fmt.Sprintf("pcapng %s %v", c.name, order)] = n.b
		}
	}
	ngFile := func(build func(n *ngBuilder)) []byte {
		n := newSection(le)
		build(n)
		return n.b
	}
	files["pcapng version 1.2"] = func() []byte { b := ngFile(func(n *ngBuilder) { n.idb(1, 0).epb(0, 1, 74, d) }); b[14] = 2; return b }()
	files["pcapng no interface"] = ngFile(func(n *ngBuilder) { n.block(0x0BAD, nil) })
	files["pcapng packet before interface"] = ngFile(func(n *ngBuilder) { n.epb(0, 1, 74, d).idb(1, 0) })
	files["pcapng simple packet blocks"] = ngFile(func(n *ngBuilder) { n.idb(1, 60).spb(74, d[:60]).spb(50, d[:50]) })
	files["pcapng simple packet block cut"] = ngFile(func(n *ngBuilder) { n.idb(1, 0).spb(74, d[:60]) })
	files["pcapng packet blocks"] = ngFile(func(n *ngBuilder) { n.idb(1, 0).idb(1, 0).pb(1, 7, d).pb(2, 7, d) })
	files["pcapng unknown blocks"] = ngFile(func(n *ngBuilder) { n.block(0x0BAD, nil).idb(1, 0).block(5, []byte("isb")).epb(0, 1, 74, d) })
	files["pcapng caplen > snaplen"] = ngFile(func(n *ngBuilder) { n.idb(1, 60).epb(0, 1, 74, d[:50]).epb(0, 2, 74, d) })
	files["pcapng two sections"] = append(ngFile(func(n *ngBuilder) { n.idb(1, 0).epb(0, 1, 74, d) }),
		ngFile(func(n *ngBuilder) { n.idb(1, 0).epb(0, 2, 74, d).epb(0, 3, 60, d[:60]) })...)
	files["pcapng second section without interface"] = append(ngFile(func(n *ngBuilder) { n.idb(1, 0).epb(0, 1, 74, d) }),
		ngFile(func(n *ngBuilder) { n.epb(0, 2, 74, d) })...)
	files["pcapng sections of both byte orders"] = append(ngFile(func(n *ngBuilder) { n.idb(1, 0).epb(0, 1, 74, d) }),
		newSection(be).idb(1, 0).epb(0, 2, 74, d).b...)
	files["pcapng link types differ"] = ngFile(func(n *ngBuilder) { n.idb(1, 0).idb(228, 0).epb(0, 1, 74, d).epb(1, 2, 60, d[:60]) })
	files["pcapng snaplens differ"] = ngFile(func(n *ngBuilder) { n.idb(1, 0).idb(1, 100).epb(0, 1, 74, d).epb(1, 2, 60, d[:60]) })

	dir := t.TempDir()
	var names, paths []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		p := filepath.Join(dir, fmt.Sprintf("%02d.cap", i))
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var counts [3]int
	for i, r := range compareFiles(t, tcpdump, paths) {
		counts[judge(t, names[i], r)]++
	}
	t.Logf("%d crafted files: %d read fully by both, %d stopped by both at the same record, %d read further by us",
		len(paths), counts[sameFull], counts[sameStop], counts[readFurther])
}

// damage returns a damaged copy of a capture file (whose records start at offsets) and
// says what was done.
func damage(rng *rand.Rand, orig []byte, offsets []int64) ([]byte, string) {
	b := bytes.Clone(orig)
	// A field of the file header or of a record or block header: offset within it, 4 bytes.
	field := func() (int, string) {
		if len(offsets) == 0 || rng.IntN(4) == 0 {
			o := 4 * rng.IntN(min(len(b), 64)/4) // pcapng: the section header and often an IDB
			return o, fmt.Sprintf("file header byte %d", o)
		}
		rec := int(offsets[rng.IntN(len(offsets))])
		o := rec + 4*rng.IntN(7)
		return o, fmt.Sprintf("record at %d, byte %d", rec, o-rec)
	}
	switch k := rng.IntN(10); {
	case k < 4: // cut
		n := rng.IntN(len(b))
		if len(offsets) > 0 && k == 0 {
			n = int(offsets[rng.IntN(len(offsets))]) + rng.IntN(24) // cut near a record start
		}
		n = min(n, len(b)-1)
		return b[:n], fmt.Sprintf("cut at %d of %d", n, len(b))
	case k < 9: // overwrite a 32-bit field with an interesting value
		o, where := field()
		if o+4 > len(b) {
			n := min(o, len(b)-1)
			return b[:n], fmt.Sprintf("cut at %d of %d", n, len(b))
		}
		vals := []uint32{0, 1, 3, 12, 13, 27, 28, 0x7fffffff, 0x80000000, 0xffffffff, 65535, 65536,
			262144, 262145, 1 << 20, 16 << 20, 128 << 20, rng.Uint32()}
		v := vals[rng.IntN(len(vals))]
		old := string(b[o : o+4])
		for i := range 4 { // either byte order
			if rng.IntN(2) == 0 {
				b[o+i] = byte(v >> (8 * i))
			} else {
				b[o+i] = byte(v >> (8 * (3 - i)))
			}
		}
		if string(b[o:o+4]) == old {
			b[o] ^= 0x40
		}
		return b, fmt.Sprintf("%s set to % x", where, b[o:o+4])
	default: // flip one bit anywhere
		o := rng.IntN(len(b))
		b[o] ^= 1 << rng.IntN(8)
		return b, fmt.Sprintf("bit flipped in byte %d", o)
	}
}
