package pipeline

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/telescope-dev/telescope/detect"
)

// Spool holds the entries of one report list on disk, so a replay's memory does not grow
// with the number of detection episodes (a flood of one-packet episodes from spoofed
// sources makes millions). Entries are marshalled as they arrive and kept in memory only
// until runEntries of them (or spoolRunBytes) have gathered; each such run is sorted by key
// and appended to an unlinked temporary file. At the end the runs are merged (1024 at a
// time, in passes when there are more) into one JSON array in key order.
//
// Each worker adds through a part of its own (Part): its run gathers without a lock, and
// only a full run takes the lock, to claim its place in the file. Under a flood the shared
// run's lock, a spill holding it while the other workers waited, and an allocation per
// entry were a quarter of a replay's CPU.
//
// Memory: one run per part and one shared (at most spoolRunBytes, 1 MiB, plus 12 bytes an
// entry), 16 bytes per run written (1 M episodes: about 230 runs, 4 KiB), and 16 MiB of
// read buffers while merging (spoolReadBytes). Disk: about 0.25 KiB per entry, twice
// during a merge pass (past about 4 M entries of a list; below, the runs are merged
// straight into the report).
type Spool struct {
	mu         sync.Mutex
	dir        string
	runEntries int
	fanIn      int    // runs merged at once (spoolFanIn)
	buf        runBuf // the shared run (Add)
	parts      []*SpoolPart
	f          *os.File
	off        int64
	runs       []spoolRun
	n          int // entries in the runs written
	err        error
	onFail     func(error) // OnFail
	failed     atomic.Bool
	closed     bool // Close was called: a run spilled after (a merge's reader stopped late) fails
}

// runBuf gathers one run: every entry's key and line in one arena, so an entry costs no
// allocation of its own.
type runBuf struct {
	mem  []byte
	recs []runRec      // in arrival order
	w    *bufio.Writer // writes its runs (writeRun), kept: 64 KiB new for each run otherwise
}

// runRec is an entry of a runBuf: its key at mem[off:off+klen], its line right after.
type runRec struct{ off, klen, llen uint32 }

// spoolRun is a run in the file. ord orders the runs of parts made for an order (PartAt:
// a merge's reports) among equal keys, before the order their runs were written in.
type spoolRun struct {
	off, size int64
	ord       int
}

// spoolFanIn is how many runs one merge reads at once, with spoolReadBytes of read
// buffers in all: 2 M one-packet episodes of a list (about 460 runs of 1 MiB) merge into
// the report with no pass over the disk before.
const (
	spoolFanIn     = 1024
	spoolReadBytes = 16 << 20
)

// DefaultSpoolRun is the run length in entries (or spoolRunBytes): 1 M episodes (a flood
// of one-packet fingerprint episodes, about 0.23 KiB each) make at most spoolFanIn runs,
// merged in one pass.
const DefaultSpoolRun = 16384

// spoolRunBytes also ends a run: a run's buffer is written again for the next run, where
// runs of 16384 entries each grew a buffer of about 4 MiB per worker and detector into
// fresh memory (the first touch of a page costs more than the copy into it).
const spoolRunBytes = 1 << 20

// NewSpool returns an empty spool writing its runs in dir ("" for the OS temp dir).
func NewSpool(dir string, runEntries int) *Spool {
	if runEntries < 1 {
		runEntries = DefaultSpoolRun
	}
	return &Spool{dir: dir, runEntries: runEntries, fanIn: spoolFanIn}
}

// add marshals entry into b under key.
func (b *runBuf) add(key string, entry any) error {
	b.reserve()
	off := len(b.mem)
	b.mem = append(b.mem, key...)
	return b.addLine(off, entry)
}

// addEntry marshals a detector's entry into b under its sort key (d.AppendKey).
func (b *runBuf) addEntry(d *detect.Descriptor, entry detect.Entry) error {
	b.reserve()
	off := len(b.mem)
	b.mem = d.AppendKey(b.mem, entry)
	return b.addLine(off, entry)
}

// addEntryLine adds a detector's entry under its sort key with line, its JSON as
// appendEntryJSON would write it, given (a merge's entry read in that form).
func (b *runBuf) addEntryLine(d *detect.Descriptor, entry detect.Entry, line []byte) {
	b.reserve()
	off := len(b.mem)
	b.mem = d.AppendKey(b.mem, entry)
	key := len(b.mem) - off
	b.mem = append(b.mem, line...)
	b.ended(off, key)
}

// reserve gives an empty b its arrays at their full size at once: grown by append (by a
// quarter at a time past 256 KiB), a run's arena took about five times its 1 MiB in new
// arrays, memory the process had not touched (the kernel zeroes each page at its first
// write). Pages of the capacity not written are not touched.
func (b *runBuf) reserve() {
	if b.mem == nil {
		b.mem = make([]byte, 0, spoolRunBytes+spoolRunSlack)
		b.recs = make([]runRec, 0, spoolRunRecs)
	}
}

// spoolRunSlack is room past spoolRunBytes for the entry that fills a run, and
// spoolRunRecs the records reserved (DefaultSpoolRun: a run of smaller entries grows
// them).
const (
	spoolRunSlack = 64 << 10
	spoolRunRecs  = DefaultSpoolRun
)

// full reports whether b holds a whole run: runEntries entries, or spoolRunBytes.
func (b *runBuf) full(runEntries int) bool {
	return len(b.recs) >= runEntries || len(b.mem) >= spoolRunBytes
}

// appendEntryJSON appends entry as compact JSON: written by itself when it can (the entries
// that come in floods, detect.JSONAppender), else by encoding/json.
func appendEntryJSON(b []byte, entry any) ([]byte, error) {
	if a, ok := entry.(detect.JSONAppender); ok {
		return a.AppendJSON(b), nil
	}
	if a, ok := entry.(detect.JSONAppenderOK); ok {
		if out, ok := a.AppendJSONOK(b); ok {
			return out, nil
		}
	}
	line, err := json.Marshal(entry)
	if err != nil {
		return b, err
	}
	return append(b, line...), nil
}

// addLine marshals entry after its key, which starts at mem[off:].
func (b *runBuf) addLine(off int, entry any) error {
	key := len(b.mem) - off
	mem, err := appendEntryJSON(b.mem, entry)
	if err != nil {
		b.mem = b.mem[:off]
		return err
	}
	b.mem = mem
	b.ended(off, key)
	return nil
}

// ended records the entry at mem[off:], its key's key bytes then its line to the end.
func (b *runBuf) ended(off, key int) {
	b.recs = append(b.recs, runRec{uint32(off), uint32(key), uint32(len(b.mem) - off - key)})
}

func (b *runBuf) key(r runRec) []byte  { return b.mem[r.off : r.off+r.klen] }
func (b *runBuf) line(r runRec) []byte { return b.mem[r.off+r.klen : r.off+r.klen+r.llen] }

// sort orders the run by key, equal keys in arrival order (their place in mem): a total
// order, so the faster unstable sort gives the stable order.
func (b *runBuf) sort() {
	slices.SortFunc(b.recs, func(x, y runRec) int {
		if c := bytes.Compare(b.key(x), b.key(y)); c != 0 {
			return c
		}
		return cmp.Compare(x.off, y.off)
	})
}

// size returns the bytes the run takes on disk.
func (b *runBuf) size() int64 {
	var n int64
	for _, r := range b.recs {
		n += recSize(r.klen, r.llen)
	}
	return n
}

func (b *runBuf) reset() { b.mem, b.recs = b.mem[:0], b.recs[:0] }

// Add adds an entry under its sort key. Errors (a full disk) are kept for WriteJSON.
func (s *Spool) Add(key string, entry any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added(s.buf.add(key, entry))
}

// addEntry adds a detector's entry under its sort key (d.AppendKey), as Add does.
func (s *Spool) addEntry(d *detect.Descriptor, entry detect.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added(s.buf.addEntry(d, entry))
}

// added spills the shared run once it is full (err: the entry could not be added; s.mu
// held).
func (s *Spool) added(err error) {
	if err != nil {
		s.fail(err)
		return
	}
	if s.buf.full(s.runEntries) {
		s.fail(s.spill(&s.buf, 0))
	}
}

// SpoolPart is one worker's way into a Spool: only that worker adds through it.
type SpoolPart struct {
	s   *Spool
	buf runBuf
	err error
	ord int // its runs' place among equal keys (PartAt)
}

// Part returns a new part of s (call it before the workers start).
func (s *Spool) Part() *SpoolPart { return s.PartAt(0) }

// PartAt returns a new part of s whose entries come, among entries of equal keys, after
// those of parts of a lower ord and before those of a higher one, whenever their runs were
// written: a merge's readers each spool a report's episodes as they decode it, in
// parallel, and the report keeps the order of a merge that added them one report after
// the other. The shared run's entries (Add) have ord 0.
func (s *Spool) PartAt(ord int) *SpoolPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &SpoolPart{s: s, ord: ord}
	s.parts = append(s.parts, p)
	return p
}

// Add adds an entry under its sort key, as Spool.Add does.
func (p *SpoolPart) Add(key string, entry any) {
	p.added(p.buf.add(key, entry))
}

// addEntry adds a detector's entry under its sort key (d.AppendKey).
func (p *SpoolPart) addEntry(d *detect.Descriptor, entry detect.Entry) {
	p.added(p.buf.addEntry(d, entry))
}

// addEntryLine adds a detector's entry with its JSON line (runBuf.addEntryLine).
func (p *SpoolPart) addEntryLine(d *detect.Descriptor, entry detect.Entry, line []byte) {
	p.buf.addEntryLine(d, entry, line)
	p.added(nil)
}

// added spills the part's run once it is full (err: the entry could not be added).
func (p *SpoolPart) added(err error) {
	if err != nil {
		p.fail(err)
		return
	}
	if p.buf.full(p.s.runEntries) {
		p.fail(p.s.spillOut(&p.buf, p.ord))
	}
}

func (p *SpoolPart) fail(err error) { keepFirst(&p.err, err); p.s.failNow(err) }
func (s *Spool) fail(err error)     { keepFirst(&s.err, err); s.failNow(err) }

// OnFail sets f, called once (from the goroutine that met it) with the first error an
// entry or a run could not be spooled with: the spool can no longer give every entry, so
// its report is lost, and a replay of days need not go on to find out at its end. Set it
// before any entry is added.
func (s *Spool) OnFail(f func(error)) { s.onFail = f }

// failNow calls onFail with err, the first time there is an error.
func (s *Spool) failNow(err error) {
	if err != nil && s.onFail != nil && s.failed.CompareAndSwap(false, true) {
		s.onFail(err)
	}
}

// keepFirst keeps err in *first unless an error is there already.
func keepFirst(first *error, err error) {
	if err != nil && *first == nil {
		*first = err
	}
}

// Len returns the entries added (the parts' too: call it once no part adds any more).
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n + len(s.buf.recs)
	for _, p := range s.parts {
		n += len(p.buf.recs)
	}
	return n
}

// Runs returns the runs written to disk so far.
func (s *Spool) Runs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

// Buffered returns the entries of the shared run held in memory (at most the run length).
func (s *Spool) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf.recs)
}

func tempFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "telescope-spool-*")
	if err != nil {
		return nil, fmt.Errorf("detection spool: %w", err)
	}
	// Unlinked at once: nothing is left behind, whatever way the process ends.
	_ = os.Remove(f.Name())
	return f, nil
}

// spill sorts b and appends it to the file as one run (s.mu held). b is emptied even when
// that fails: the error fails the report, and a full disk must not grow the memory.
func (s *Spool) spill(b *runBuf, ord int) error {
	if len(b.recs) == 0 {
		return nil
	}
	defer b.reset()
	b.sort()
	f, off, err := s.claim(b, ord)
	if err != nil {
		return err
	}
	return writeRun(f, b, off)
}

// spillOut writes a part's run b (of order ord), holding s.mu only to claim its place in
// the file: the other workers go on adding meanwhile (pwrite to distinct ranges of one
// file).
func (s *Spool) spillOut(b *runBuf, ord int) error {
	if len(b.recs) == 0 {
		return nil
	}
	defer b.reset()
	b.sort()
	s.mu.Lock()
	f, off, err := s.claim(b, ord)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return writeRun(f, b, off)
}

// errSpoolClosed fails a run spilled once the spool is closed.
var errSpoolClosed = errors.New("detection spool: closed")

// claim reserves the file range of run b (of order ord) and returns the file and the
// offset (s.mu held).
func (s *Spool) claim(b *runBuf, ord int) (*os.File, int64, error) {
	if s.closed {
		return nil, 0, errSpoolClosed
	}
	if s.f == nil {
		f, err := tempFile(s.dir)
		if err != nil {
			return nil, 0, err
		}
		s.f = f
	}
	size := b.size()
	off := s.off
	s.runs = append(s.runs, spoolRun{off: off, size: size, ord: ord})
	s.off += size
	s.n += len(b.recs)
	return s.f, off, nil
}

// writeRun writes b's records at off of f.
func writeRun(f *os.File, b *runBuf, off int64) error {
	if b.w == nil {
		b.w = bufio.NewWriterSize(io.NewOffsetWriter(f, off), 64<<10)
	} else {
		b.w.Reset(io.NewOffsetWriter(f, off))
	}
	w := b.w
	for _, r := range b.recs {
		if _, err := writeRec(w, b.key(r), b.line(r)); err != nil {
			return err
		}
	}
	return w.Flush()
}

// recHeader writes a record's header (its key's and line's lengths) and returns its length.
func recHeader(hdr *[2 * binary.MaxVarintLen64]byte, klen, llen int) int {
	n := binary.PutUvarint(hdr[:], uint64(klen))
	return n + binary.PutUvarint(hdr[n:], uint64(llen))
}

// recSize is the bytes writeRec writes for a record.
func recSize(klen, llen uint32) int64 {
	var hdr [2 * binary.MaxVarintLen64]byte
	return int64(recHeader(&hdr, int(klen), int(llen))) + int64(klen) + int64(llen)
}

func writeRec(w *bufio.Writer, key, line []byte) (int64, error) {
	var hdr [2 * binary.MaxVarintLen64]byte
	n := recHeader(&hdr, len(key), len(line))
	if _, err := w.Write(hdr[:n]); err != nil {
		return 0, err
	}
	if _, err := w.Write(key); err != nil {
		return 0, err
	}
	if _, err := w.Write(line); err != nil {
		return 0, err
	}
	return int64(n + len(key) + len(line)), nil
}

// runReader reads one run's records in order.
type runReader struct {
	r         *bufio.Reader
	buf       []byte // the current record's key then line (reused: valid until next)
	key, line []byte
	seq       int // the run's position, to break ties in arrival order
}

func (rr *runReader) next() (bool, error) {
	kl, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ll, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return false, err
	}
	rr.buf = slices.Grow(rr.buf[:0], int(kl+ll))[:kl+ll]
	if _, err := io.ReadFull(rr.r, rr.buf); err != nil {
		return false, err
	}
	rr.key, rr.line = rr.buf[:kl], rr.buf[kl:]
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge reads runs of f in key order, calling emit for each record (key and line are valid
// until emit returns).
func merge(f *os.File, runs []spoolRun, emit func(key, line []byte) error) error {
	h := make(runHeap, 0, len(runs))
	// 32 KiB of read buffer a run, less past 512 runs: at most spoolReadBytes in all.
	size := max(4<<10, min(32<<10, spoolReadBytes/max(len(runs), 1)))
	for i, r := range runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(f, r.off, r.size), size), seq: i}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, rr)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		rr := h[0]
		if err := emit(rr.key, rr.line); err != nil {
			return err
		}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

// reduce merges runs fanIn at a time into a new file until at most fanIn remain.
// The groups of a pass are merged at once, up to GOMAXPROCS of them: a group's records are
// its runs' records, written the same way, so its place in the new file is known before.
func (s *Spool) reduce() error {
	for len(s.runs) > s.fanIn {
		nf, err := tempFile(s.dir)
		if err != nil {
			return err
		}
		var out []spoolRun
		var off int64
		for i := 0; i < len(s.runs); i += s.fanIn {
			var size int64
			for _, r := range s.runs[i:min(i+s.fanIn, len(s.runs))] {
				size += r.size
			}
			out = append(out, spoolRun{off: off, size: size})
			off += size
		}
		errs := make([]error, len(out))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(out)) {
			wg.Go(func() {
				for g := int(next.Add(1) - 1); g < len(out); g = int(next.Add(1) - 1) {
					errs[g] = s.mergeGroup(nf, out[g], s.runs[g*s.fanIn:min((g+1)*s.fanIn, len(s.runs))])
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			nf.Close()
			return err
		}
		s.f.Close()
		s.f, s.runs, s.off = nf, out, off
	}
	return nil
}

// mergeGroup merges the runs of group into nf as the run at.
func (s *Spool) mergeGroup(nf *os.File, at spoolRun, group []spoolRun) error {
	w := bufio.NewWriterSize(io.NewOffsetWriter(nf, at.off), 64<<10)
	var size int64
	if err := merge(s.f, group, func(key, line []byte) error {
		n, err := writeRec(w, key, line)
		size += n
		return err
	}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if size != at.size {
		return fmt.Errorf("detection spool: merged %d bytes of runs of %d", size, at.size)
	}
	return nil
}

// WriteJSON writes the entries as a JSON array in key order, indented as
// json.Encoder.SetIndent(prefix, indent) would indent it at that depth: "[]" when empty.
func (s *Spool) WriteJSON(w io.Writer, prefix, indent string) error {
	return s.writeJSON(w, prefix, indent, &mergeBufs{})
}

func (s *Spool) writeJSON(w io.Writer, prefix, indent string, bufs *mergeBufs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.settle(); err != nil {
		return err
	}
	if s.n == 0 {
		_, err := io.WriteString(w, "[]")
		return err
	}
	if err := s.reduce(); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	if err := writeMerged(s.f, s.runs, w, prefix+indent, indent, bufs); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n"+prefix+"]")
	return err
}

// settle writes the runs still in memory (s.mu held) and returns the spool's first error.
// The spool can be read again after (Each, then WriteJSON).
func (s *Spool) settle() error {
	s.fail(s.spill(&s.buf, 0))
	for _, p := range s.parts {
		s.fail(p.err)
		s.fail(s.spill(&p.buf, p.ord))
	}
	// The runs in order (their place breaks ties between equal keys, merge): by their
	// parts' order, then as written. Once reduced, they all have order 0, in that order.
	slices.SortStableFunc(s.runs, func(a, b spoolRun) int { return cmp.Compare(a.ord, b.ord) })
	return s.err
}

// each calls fn with each entry's line (compact JSON) in key order.
func (s *Spool) each(fn func(line []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.settle(); err != nil {
		return err
	}
	if s.n == 0 {
		return nil
	}
	if err := s.reduce(); err != nil {
		return err
	}
	return merge(s.f, s.runs, func(_, line []byte) error { return fn(line) })
}

// mergedBlock is how many bytes of lines the merge hands over at a time.
const mergedBlock = 256 << 10

// errMergeStopped ends a merge whose output failed.
var errMergeStopped = errors.New("detection spool: output failed")

// writeMerged writes the lines of runs in key order to w as the elements of a JSON array,
// each on a new line at depth inner, indented by indent: the merge (reading the runs) and
// the indenting and writing go on two goroutines, a block of lines at a time (a report's
// last step, when the workers have stopped: one core did both).
func writeMerged(f *os.File, runs []spoolRun, w io.Writer, inner, indent string, bufs *mergeBufs) error {
	full, free := make(chan []byte, 2), make(chan []byte, 4)
	for i := range cap(free) {
		if i < len(bufs.blocks) {
			free <- bufs.blocks[i][:0]
		} else {
			free <- make([]byte, 0, mergedBlock+4<<10)
		}
	}
	bufs.blocks = bufs.blocks[:0]
	stop := make(chan struct{})
	var mergeErr error
	go func() {
		defer close(full)
		blk := <-free
		mergeErr = merge(f, runs, func(_, line []byte) error {
			// A line is compact JSON: a newline ends it (strings escape theirs).
			blk = append(append(blk, line...), '\n')
			if len(blk) < mergedBlock {
				return nil
			}
			select {
			case <-stop:
				return errMergeStopped
			case full <- blk:
			}
			blk = <-free
			return nil
		})
		if mergeErr == nil && len(blk) > 0 {
			full <- blk
		}
	}()
	var werr error
	out := bufs.out
	sep, next := "\n"+inner, ",\n"+inner
	for blk := range full {
		if werr == nil {
			out = out[:0]
			for rest := blk; len(rest) > 0; {
				i := bytes.IndexByte(rest, '\n')
				out = appendIndent(append(out, sep...), rest[:i], inner, indent)
				sep, rest = next, rest[i+1:]
			}
			if _, werr = w.Write(out); werr != nil {
				close(stop)
			}
		}
		free <- blk[:0]
	}
	// The merge has ended (it closed full): the blocks in free are the caller's again.
	bufs.out = out[:0]
	for len(free) > 0 {
		bufs.blocks = append(bufs.blocks, <-free)
	}
	if werr != nil {
		return werr
	}
	return mergeErr
}

// mergeBufs are writeMerged's blocks and indented output, kept from one list of the report
// to the next (DetectionSpool.WriteJSON): new for each list, they were 1-2 MiB of memory the
// process had not touched yet per list.
type mergeBufs struct {
	blocks [][]byte
	out    []byte
}

// Close removes the spool's file. A part's run spilled after fails (errSpoolClosed): a
// merge's reader may still be decoding when the merge gives up.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// DetectionSpool is the report's detections, spooled to disk as episodes end (a
// detect.Sink, like Episodes, whose entries stay in memory): one spool per detector, in
// descriptor order, each sorted by the detector's SortKey.
type DetectionSpool struct {
	lists []*Spool // by index of detect.Descriptors()
	// The groups' sieve of the scanner episodes spooled (describeScans): the shared one
	// under mu, and one per part, added to by its worker alone.
	mu     sync.Mutex
	sieve  *groupSieve
	sieves []*groupSieve
}

// NewDetectionSpool returns an empty spool writing in dir ("" for the OS temp dir), with
// runs of runEntries entries (0: DefaultSpoolRun).
func NewDetectionSpool(dir string, runEntries int) *DetectionSpool {
	d := &DetectionSpool{sieve: newGroupSieve(maphash.MakeSeed())}
	for range detect.Descriptors() {
		d.lists = append(d.lists, NewSpool(dir, runEntries))
	}
	return d
}

// OnFail sets f, called once with the first error of any of the detectors' lists (named as
// the report names them), as Spool.OnFail.
func (d *DetectionSpool) OnFail(f func(error)) {
	var once sync.Once
	for i, s := range d.lists {
		key := detect.Descriptors()[i].ReportKey
		s.OnFail(func(err error) {
			once.Do(func() { f(fmt.Errorf("detections.%s: %w", key, err)) })
		})
	}
}

// Detection implements detect.Sink: the End event of every episode is spooled under its
// detector's sort key.
func (d *DetectionSpool) Detection(ev *detect.Event) {
	if i := spooled(ev); i >= 0 {
		d.lists[i].addEntry(detect.Descriptors()[i], ev.Entry)
		if s, ok := ev.Entry.(*detect.ScannerEntry); ok {
			d.mu.Lock()
			d.sieve.add(s)
			d.mu.Unlock()
		}
	}
}

// groupSieve returns the groups' sieve of every scanner episode spooled (the parts' too):
// a report's descriptions then read the scanner episodes back once, not twice.
func (d *DetectionSpool) groupSieve() *groupSieve {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sieves {
		d.sieve.merge(s)
	}
	d.sieves = nil
	return d.sieve
}

// spooled returns the list of ev (its index in detect.Descriptors()), -1 when ev is not
// spooled (not an End).
func spooled(ev *detect.Event) int {
	if ev.Phase != detect.End {
		return -1
	}
	return detect.DetectorIndex(ev.Detector)
}

// part returns a worker's part of d: it adds to each list through a part of its own
// (Spool.Part). Call it before the workers start.
func (d *DetectionSpool) part() detect.Sink { return d.PartAt(0) }

// PartAt returns a part of d for one goroutine, whose episodes come after those of parts
// of a lower ord among episodes of equal sort keys (Spool.PartAt): a merge spools report
// i's episodes through PartAt(i) as it decodes the report, and its report is the one it
// made adding the reports' episodes in order.
func (d *DetectionSpool) PartAt(ord int) detect.Sink {
	p := &detectionSpoolPart{sieve: newGroupSieve(d.sieve.seed)}
	d.mu.Lock()
	d.sieves = append(d.sieves, p.sieve)
	d.mu.Unlock()
	for _, s := range d.lists {
		p.lists = append(p.lists, s.PartAt(ord))
	}
	return p
}

// TransientEntries implements detect.TransientSink: entries are marshalled as they come.
func (d *DetectionSpool) TransientEntries() bool { return true }

// TransientEntries implements detect.TransientSink, as DetectionSpool's.
func (d *detectionSpoolPart) TransientEntries() bool { return true }

// detectionSpoolPart is one worker's part of a DetectionSpool.
type detectionSpoolPart struct {
	lists []*SpoolPart
	sieve *groupSieve
}

// Detection implements detect.Sink, as DetectionSpool.Detection.
func (d *detectionSpoolPart) Detection(ev *detect.Event) {
	if i := spooled(ev); i >= 0 {
		d.lists[i].addEntry(detect.Descriptors()[i], ev.Entry)
		if s, ok := ev.Entry.(*detect.ScannerEntry); ok {
			d.sieve.add(s)
		}
	}
}

// detectionLine adds the End of an episode of the i-th detector with its JSON line, as
// json.Marshal or its AppendJSON writes it (lineSink): a merge's reader has the line of
// each entry it parsed without reflection, and the marshalling was a seventh of a merge.
func (d *detectionSpoolPart) detectionLine(i int, e detect.Entry, line []byte) {
	d.lists[i].addEntryLine(detect.Descriptors()[i], e, line)
	if s, ok := e.(*detect.ScannerEntry); ok {
		d.sieve.add(s)
	}
}

// lineSink is a sink that takes an entry with its line already written (detectionLine).
type lineSink interface {
	detectionLine(i int, e detect.Entry, line []byte)
}

// Each calls fn with every episode spooled, decoded, each detector's in report order
// (detectors in descriptor order): what the study page reads, holding what it shows, not
// the episodes. The spool can still be written after.
func (d *DetectionSpool) Each(fn func(detect.Entry) error) error {
	for i := range detect.Descriptors() {
		if err := d.eachOf(i, fn); err != nil {
			return err
		}
	}
	return nil
}

// EachOf is Each for one detector's episodes (detector: its Descriptor.Name).
func (d *DetectionSpool) EachOf(detector string, fn func(detect.Entry) error) error {
	if i := detect.DetectorIndex(detector); i >= 0 {
		return d.eachOf(i, fn)
	}
	return nil
}

// eachOf calls fn with each episode of the i-th detector, decoded.
func (d *DetectionSpool) eachOf(i int, fn func(detect.Entry) error) error {
	desc := detect.Descriptors()[i]
	return d.lists[i].each(func(line []byte) error {
		e := desc.NewEntry()
		if p, ok := e.(detect.JSONParser); ok && p.ParseJSON(line) {
			return fn(e) // the floods' entries, read without reflection
		}
		if err := json.Unmarshal(line, e); err != nil {
			return fmt.Errorf("detections.%s: %w", desc.ReportKey, err)
		}
		return fn(e)
	})
}

// Entries returns the episodes spooled.
func (d *DetectionSpool) Entries() int {
	n := 0
	for _, s := range d.lists {
		n += s.Len()
	}
	return n
}

// WriteJSON writes the "detections" object as json.Encoder.SetIndent(prefix, indent)
// writes it at that depth.
func (d *DetectionSpool) WriteJSON(w io.Writer, prefix, indent string) error {
	var bufs mergeBufs
	return writeDetectionsObject(w, prefix, indent, func(w io.Writer, i int) error {
		return d.lists[i].writeJSON(w, prefix+indent, indent, &bufs)
	})
}

// writeDetectionsObject writes the "detections" object at depth prefix: each detector's
// key, then its list, which list(w, the detector's index) writes at depth prefix+indent.
func writeDetectionsObject(w io.Writer, prefix, indent string, list func(io.Writer, int) error) error {
	inner := prefix + indent
	if _, err := io.WriteString(w, "{"); err != nil {
		return err
	}
	for i, desc := range detect.Descriptors() {
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		if _, err := fmt.Fprintf(w, "%s%s%q: ", sep, inner, desc.ReportKey); err != nil {
			return err
		}
		if err := list(w, i); err != nil {
			return fmt.Errorf("detections.%s: %w", desc.ReportKey, err)
		}
	}
	_, err := io.WriteString(w, "\n"+prefix+"}")
	return err
}

// Close removes the spool's files.
func (d *DetectionSpool) Close() error {
	var errs []error
	for _, s := range d.lists {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// WriteReport writes the report (as json.Encoder with SetIndent("", "  ") writes
// Report) with its detections streamed from the spool, so the report's size does not
// have to fit in memory; the spool's scanner episodes, read back, describe the top sources
// and the groups.
func (p *Pipeline) WriteReport(w io.Writer, d *DetectionSpool) error {
	r, err := p.ReportFrom(d)
	if err != nil {
		return err
	}
	return WriteReportSpooled(w, r, d)
}

// WriteReportJSON writes r as json.Encoder with SetIndent("", "  ") writes it, its
// detections entry by entry (each marshalled and indented on its own): the encoder made
// the whole report one buffer and indented it in a second pass, checking it as it went,
// which took a third of merging ten reports of the 20x day (telescope report).
func WriteReportJSON(w io.Writer, r *Report) error {
	return writeReportAround(w, r, func(w io.Writer) error { return writeDetectionsJSON(w, r.Detections, "  ", "  ") })
}

// WriteReportSpooled writes r as WriteReportJSON does, its detections from d (a replay's,
// or a merge's: see Merger); r's own are not written.
func WriteReportSpooled(w io.Writer, r *Report, d *DetectionSpool) error {
	return writeReportAround(w, r, func(w io.Writer) error { return d.WriteJSON(w, "  ", "  ") })
}

// writeReportAround writes r as json.Encoder with SetIndent("", "  ") writes it, but
// for its detections, which detections writes in their place (at depth 1). Its groups
// (the last field) are written one at a time: a merge of many bots' days has millions of
// members, and the report encoded whole then indented held them three times over (0.4 GB
// for two reports of a million scanner episodes each).
func writeReportAround(w io.Writer, r *Report, detections func(io.Writer) error) error {
	empty := NewEpisodes().Detections()
	head := *r
	head.Detections = empty
	if len(r.Groups) > 0 {
		head.Groups = []Group{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&head); err != nil {
		return err
	}
	// The report with empty detections: cut out that object and write the detections there.
	emptyJSON, err := json.MarshalIndent(empty, "  ", "  ")
	if err != nil {
		return err
	}
	key := append([]byte("\n  \"detections\": "), emptyJSON...)
	i := bytes.Index(b.Bytes(), key)
	if i < 0 || bytes.Contains(b.Bytes()[i+1:], key) {
		return errors.New("report: detections not found once in the encoded report")
	}
	if _, err := w.Write(b.Bytes()[:i+len(key)-len(emptyJSON)]); err != nil {
		return err
	}
	if err := detections(w); err != nil {
		return err
	}
	rest := b.Bytes()[i+len(key):]
	if len(r.Groups) == 0 {
		_, err = w.Write(rest)
		return err
	}
	const tail = "\n  \"groups\": []\n}\n"
	if !bytes.HasSuffix(rest, []byte(tail)) {
		return errors.New("report: groups not found at the end of the encoded report")
	}
	if _, err := w.Write(rest[:len(rest)-len(tail)]); err != nil {
		return err
	}
	return writeGroups(w, r.Groups)
}

// writeGroups writes the report's end from its groups on, as json.Encoder with
// SetIndent("", "  ") ends it: a group at a time.
func writeGroups(w io.Writer, groups []Group) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString("\n  \"groups\": ["); err != nil {
		return err
	}
	var line, compact []byte
	for i := range groups {
		var err error
		if compact, err = json.Marshal(&groups[i]); err != nil {
			return err
		}
		line = line[:0]
		if i > 0 {
			line = append(line, ',')
		}
		line = appendIndent(append(line, "\n    "...), compact, "    ", "  ")
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("\n  ]\n}\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// writeDetectionsJSON writes d as DetectionSpool.WriteJSON writes a spool: every
// detector's list (empty ones as []), each entry on its own line at depth 2.
func writeDetectionsJSON(w io.Writer, d Detections, prefix, indent string) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	at := prefix + indent + indent // an entry's depth
	var line, compact []byte
	err := writeDetectionsObject(bw, prefix, indent, func(w io.Writer, i int) error {
		entries := d[detect.Descriptors()[i].ReportKey]
		if len(entries) == 0 {
			_, err := io.WriteString(w, "[]")
			return err
		}
		line = append(line[:0], '[')
		for j, e := range entries {
			var err error
			if compact, err = appendEntryJSON(compact[:0], e); err != nil {
				return err
			}
			if j > 0 {
				line = append(line, ',')
			}
			line = append(append(line, '\n'), at...)
			line = appendIndent(line, compact, at, indent)
			if _, err := w.Write(line); err != nil {
				return err
			}
			line = line[:0]
		}
		_, err := io.WriteString(w, "\n"+prefix+indent+"]")
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// appendIndent appends src, compact JSON as json.Marshal writes it (valid, no whitespace
// outside strings), indented as json.Indent(dst, src, prefix, indent) indents it: the
// spool's entries are its own marshalled values, so the scanner json.Indent runs to check
// them (most of the cost of writing a large report) is not needed.
func appendIndent(dst, src []byte, prefix, indent string) []byte {
	depth := 0
	open := false // after '{' or '[': a newline comes unless the value is empty
	newline := func(dst []byte) []byte {
		dst = append(dst, '\n')
		dst = append(dst, prefix...)
		for range depth {
			dst = append(dst, indent...)
		}
		return dst
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if open && c != '}' && c != ']' {
			open = false
			depth++
			dst = newline(dst)
		}
		switch c {
		case '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(src)-1)
			dst = append(dst, src[i:j+1]...)
			i = j
		case '{', '[':
			dst = append(dst, c)
			open = true
		case ',':
			dst = append(dst, c)
			dst = newline(dst)
		case ':':
			dst = append(dst, ':', ' ')
		case '}', ']':
			if open {
				open = false // empty: "{}" or "[]"
			} else {
				depth--
				dst = newline(dst)
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
