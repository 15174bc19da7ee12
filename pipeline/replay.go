package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/snapshot"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/detect"
)

// ReplayOptions configure a replay of capture files.
type ReplayOptions struct {
	Files []string
	// Progress, when set, receives a progress line at most once a second; Terminal makes it
	// rewrite one line (carriage return) instead of printing one per update.
	Progress io.Writer
	Terminal bool
	// After is the packet time the replay goes on from (ns, 0: none), the clock of the state
	// restored before it (--state-in), and AfterName names that state: a file that begins
	// before it is warned about as one that begins before an earlier file ended.
	After     int64
	AfterName string
	// Filter, when set, is capture.filter's program (compiled for frames that start at
	// the network header, as for the live rings): a packet it rejects is not counted, as
	// live. A frame cut before its network header is not filtered.
	Filter *filter.Program
}

// ReplayResult is what happened to the input.
type ReplayResult struct {
	Records     uint64  // records read over all files
	Errors      []error // one per file that could not be read to its end
	Interrupted bool
	Elapsed     time.Duration
	// OutOfOrder counts the files that began before a file replayed earlier ended (by more
	// than orderSlack): each was logged as a warning.
	OutOfOrder int
	// Filtered counts the records Filter rejected (of Records).
	Filtered uint64
}

// orderSlack is how far before the end of the files replayed so far a file may begin
// without a warning: a capture rotated into files (tcpdump -G, -C) goes on where the last
// one ended, give or take the jitter of a multi-queue capture.
const orderSlack = int64(time.Second)

// replayOrder is the packet time the files replayed so far reached, to tell when a file
// begins before it: the detectors run on packet time, so files given out of order (a shell
// glob that sorts cap-10 before cap-2) or overlapping captures (two sensors of one
// period, which mergecap interleaves) give other results, silently, but for this.
type replayOrder struct {
	last     int64  // the latest record time so far, 0: none yet
	lastFile string // the file it is in
	late     int    // files that began before last (ReplayResult.OutOfOrder)
}

// replaySource reports replay progress as a capture source named "replay".
type replaySource struct {
	records atomic.Uint64
	up      atomic.Bool
}

func (r *replaySource) Stats() snapshot.CaptureCounts {
	return snapshot.CaptureCounts{Interface: "replay", Packets: r.records.Load(), Up: r.up.Load()}
}

// Replay reads the files in order through the workers, as fast as it can, on packet time,
// then ends every episode. A damaged file is reported and the next one read; what was read
// before the damage counts.
func (p *Pipeline) Replay(ctx context.Context, o ReplayOptions) ReplayResult {
	start := time.Now()
	src := &replaySource{}
	src.up.Store(true)
	p.addCapture(src)

	d := p.startDispatch()
	d.packetClock = true // summary lines on packet time, by segment (summary.go)
	d.filter = o.Filter
	segNow := make([]*atomic.Uint32, len(p.workers))
	for i, w := range p.workers {
		segNow[i] = &w.segNow
	}
	p.summary.segment(segNow)
	res := ReplayResult{}
	prog := newProgress(o, src)
	order := replayOrder{last: o.After, lastFile: o.AfterName}
	for _, name := range o.Files {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		if err := p.replayFile(ctx, name, d, src, prog, &order); err != nil {
			if errors.Is(err, context.Canceled) {
				res.Interrupted = true
				break
			}
			res.Errors = append(res.Errors, err)
			p.log.Error("cannot read capture file to its end", zap.String("file", name), zap.Error(err))
		}
	}
	d.close()
	src.up.Store(false)
	prog.done()
	res.Records = src.records.Load()
	res.Elapsed = time.Since(start)
	res.OutOfOrder = order.late
	res.Filtered = d.filtered
	if o.Filter != nil {
		p.inputsMu.Lock()
		if p.filter == nil {
			p.filter = &ReportFilter{Expression: o.Filter.Expr}
		}
		p.filter.FilteredOut += d.filtered
		p.inputsMu.Unlock()
	}
	return res
}

// replayOpened, when set (by tests), is called with each file replay has just opened.
var replayOpened func(name string)

func (p *Pipeline) replayFile(ctx context.Context, name string, d *dispatcher, src *replaySource, prog *progress, order *replayOrder) (err error) {
	// The file's first and latest record times (0: none; a pcapng simple packet block has
	// no time), for the order of the files and the report's inputs; its records are what
	// it adds to src.records (only replay adds to it; the add deferred below runs first).
	first, last := int64(0), int64(0)
	base := src.records.Load()
	defer func() {
		if last > order.last {
			order.last, order.lastFile = last, name
		}
		p.addInput(name, first, last, src.records.Load()-base, err)
	}()
	// Told to stop while a pipe or FIFO is quiet, or a FIFO has no writer yet, the open or
	// read waiting for it returns (its error is then the interruption); a file is read on
	// to the next check of ctx below.
	f, err := capture.OpenContext(ctx, name)
	if err != nil {
		return err
	}
	defer f.Close()
	if replayOpened != nil {
		replayOpened(name)
	}
	// A mapped file that shrinks while it is read faults past its new end (in f.Read or in
	// decoding a record's data in d.add, before the packet counts): a damaged file, reported
	// like the others, not a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			if err = f.FaultError(v); err == nil {
				panic(v)
			}
		}
	}()
	defer prog.fileDone(f)
	warned := map[packet.LinkType]bool{}
	defer func() {
		for _, w := range f.Warnings() {
			p.log.Warn(w, zap.String("file", name))
		}
	}()
	// records counts the records not yet added to src.records: one atomic add per 1024
	// records instead of a locked instruction per record (scrapes and progress see the
	// count at most 1023 records behind; the end adds the rest).
	records := uint64(0)
	defer func() { src.records.Add(records) }()
	var rec capture.Record
	for i := 0; ; i++ {
		err := f.Read(&rec)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if rec.TS > last {
			if first == 0 {
				first = rec.TS
				p.checkOrder(name, first, order)
			}
			last = rec.TS
		}
		if !rec.Link.Known() && !warned[rec.Link] {
			warned[rec.Link] = true
			p.log.Warn("link type not decoded; its frames count as non_ip_frames",
				zap.String("file", name), zap.String("link_type", rec.Link.String()))
		}
		d.add(&rec)
		records++
		if records == 1024 {
			src.records.Add(records)
			records = 0
		}
		if i&0xffff == 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			prog.tick(f)
		}
	}
}

// addInput notes a file read (for the report's inputs): its first and latest record times
// (0: none), its records and the error that ended it early, if any.
func (p *Pipeline) addInput(name string, first, last int64, records uint64, err error) {
	in := InputFile{File: name, Records: records}
	if first != 0 {
		f, l := detect.Time(first), detect.Time(last)
		in.FirstPacket, in.LastPacket = &f, &l
	}
	switch {
	case errors.Is(err, context.Canceled):
		in.Error = "interrupted"
	case err != nil:
		in.Error = err.Error()
	}
	p.inputsMu.Lock()
	p.inputs = append(p.inputs, in)
	p.inputsMu.Unlock()
}

// checkOrder warns when file name, whose first record time is first, begins before the
// files replayed so far ended.
func (p *Pipeline) checkOrder(name string, first int64, order *replayOrder) {
	if order.last == 0 || first >= order.last-orderSlack {
		return
	}
	order.late++
	p.log.Warn("capture file begins before the files replayed so far ended: the detectors run on packet time, so replay files in time order (--sort orders them by their first packets), and merge overlapping captures into one (mergecap)",
		zap.String("file", name), zap.Time("first_packet", time.Unix(0, first).UTC()),
		zap.String("previous_file", order.lastFile), zap.Time("previous_last_packet", time.Unix(0, order.last).UTC()),
		zap.Duration("back", time.Duration(order.last-first)))
	if where := p.countedAlready(name, first); where != "" {
		p.log.Warn("capture file counted already: it has the name and first packet of a file "+where+", so its packets count twice (replay each file once, in one run or in a chain of --state-in runs)",
			zap.String("file", name), zap.Time("first_packet", time.Unix(0, first).UTC()))
	}
}

// countedAlready says where a file of name's base name whose first packet is at first
// was counted before ("" if nowhere): in the state restored, or earlier in this replay.
func (p *Pipeline) countedAlready(name string, first int64) string {
	p.inputsMu.Lock()
	defer p.inputsMu.Unlock()
	same := func(ins []InputFile) bool {
		for _, in := range ins {
			if in.FirstPacket != nil && int64(*in.FirstPacket) == first && filepath.Base(in.File) == filepath.Base(name) {
				return true
			}
		}
		return false
	}
	switch {
	case p.continued != nil && same(p.continued.Inputs):
		return "the restored state (--state-in) counted"
	case same(p.inputs):
		return "read earlier in this replay"
	}
	return ""
}

// dispatcher decodes records into shared batches, marking each frame with its owner, and
// broadcasts them to the worker goroutines (replay, and live capture through libpcap).
type dispatcher struct {
	p       *Pipeline
	pool    batchPool
	mem     *batchHeaders // the pool's headers
	chans   []chan *batch
	workers int
	b       *batch
	now     int64
	wg      sync.WaitGroup
	final   atomic.Int64
	// packetClock: the summary lines follow packet time (replay), ticked per batch;
	// otherwise the wall clock (live, startSummaryClock).
	packetClock bool
	// seg is the segment of the batches sent (a line of the summary ends each: cut), and
	// sumNext when the next is due (logSummary.due; 0: not asked yet, math.MaxInt64:
	// lines off).
	seg     uint32
	sumNext int64
	// filter rejects the packets capture.filter would have kept out of a live capture
	// (replay); filtered counts them.
	filter   *filter.Program
	filtered uint64
}

// batchesInFlight is the size of the pool of batches for n workers. A batch goes back to
// the reader once every worker has handled it, so a worker busy for a few milliseconds at a
// window's end (the hotspot's hand-over) holds the others back once the pool is spent: the
// pool covers such a stall at the reader's rate, whatever the number of workers, and gives
// each worker 4 batches at least. With 12 batches for 2 workers (4 per worker and 4 more),
// the workers of the 20x day waited 290-350 ms each for batches and the process used 1.82
// of 2 CPUs; with 48 (8.5 MiB of headers), 190-230 ms and 1.86 (the SYN file 1.86 -> 1.90,
// the burst 1.81 -> 1.84).
func batchesInFlight(n int) int { return max(48, 4*(n+1)) }

// startDispatch starts one goroutine per worker consuming batches.
func (p *Pipeline) startDispatch() *dispatcher {
	n := len(p.workers)
	nb := batchesInFlight(n)
	mem := p.batchMem.Swap(nil) // nil: in use by another dispatcher, or the first
	if mem == nil {
		mem = newBatchHeaders(nb) // the workers, and so nb, are fixed for the pipeline's life
	}
	d := &dispatcher{p: p, pool: newBatchPool(nb, n, mem), mem: mem, chans: make([]chan *batch, n), workers: n}
	for i, w := range p.workers {
		d.chans[i] = make(chan *batch, cap(d.pool))
		d.wg.Add(1)
		w.starting = true // before the goroutine: no race
		go func(w *worker, in <-chan *batch) {
			defer d.wg.Done()
			for b := range in {
				w.processBatch(b)
				d.pool.release(b)
			}
			w.finish(d.final.Load())
		}(w, d.chans[i])
	}
	d.b = d.pool.get()
	return d
}

// close sends the last batch, waits for the workers to finish every episode, then ends the
// telnet surge aggregation.
func (d *dispatcher) close() {
	d.flush()
	d.final.Store(d.now)
	for _, c := range d.chans {
		close(c)
	}
	d.wg.Wait()
	d.p.batchMem.Store(d.mem) // no worker reads a batch any more
	if !d.p.keepState.Load() {
		d.p.surge.Finish(d.now)
	}
	if !d.p.keepState.Load() {
		d.p.hot.Finish()
	}
	if d.packetClock {
		d.p.summary.final(d.now)
	} else {
		d.p.summary.final(time.Now().UnixNano())
	}
	d.p.logq.Drain() // the end events, as far as the log output takes them
}

// headerAhead is how many headers ahead of the one it fills the dispatcher requests.
const headerAhead = 8

// cutSegment ends the batches' segment when a summary line is due by ts, the time of the
// record about to be added: the batch so far goes first, so that no batch holds records of
// two lines (summary.go).
func (d *dispatcher) cutSegment(ts int64) {
	if d.b.n > 0 {
		d.send()
	}
	if d.p.summary.cut(max(ts, d.now), d.seg) {
		d.seg++
	}
	d.sumNext = d.p.summary.due()
}

func (d *dispatcher) add(rec *capture.Record) {
	if d.packetClock && rec.TS >= d.sumNext {
		d.cutSegment(rec.TS)
	}
	b := d.b
	if j := b.n + headerAhead; j < batchSize {
		// The batch's headers were last read by the workers on the other cores: each is
		// requested for writing a few packets before decoding fills it.
		prefetch.WriteSpan(unsafe.Pointer(&b.h[j]), unsafe.Sizeof(b.h[j]))
	}
	h := &b.h[b.n]
	h.TS = rec.TS
	h.WireLen = rec.WireLen
	packet.Decode(rec.Link, rec.Data, h)
	if d.filter != nil && h.Net && !d.filter.Match(rec.Data[h.NetOff:], rec.WireLen-min(uint32(h.NetOff), rec.WireLen)) {
		d.filtered++ // its header is overwritten by the next packet's
		return
	}
	wi := packet.WorkerIndex(h.AffinityKey(), d.workers)
	b.own[wi] = append(b.own[wi], uint16(b.n))
	b.n++
	if rec.TS > d.now {
		d.now = rec.TS
	}
	if b.n == batchSize {
		d.send()
	}
}

func (d *dispatcher) send() {
	b := d.b
	b.now, b.seg = d.now, d.seg
	if d.packetClock {
		d.sumNext = d.p.summary.due() // the interval may have been reloaded
	}
	b.refs.Store(int32(d.workers))
	for _, c := range d.chans {
		c <- b
	}
	d.b = d.pool.get()
}

// flush sends the last, partial batch (also when empty: it carries the final time).
func (d *dispatcher) flush() {
	d.send()
	d.pool <- d.b
	d.b = nil
}

// progress prints packets, packets/s, the share of input read and the time left (an
// estimate, from the rate so far), and the file being read, at most once a second.
type progress struct {
	w        io.Writer
	term     bool
	src      *replaySource
	total    int64 // bytes of all input files; -1: unknown (a pipe, FIFO or standard input)
	doneIn   int64 // bytes of the files finished
	files    int   // files finished
	nfiles   int
	start    time.Time
	last     time.Time
	disabled bool
}

func newProgress(o ReplayOptions, src *replaySource) *progress {
	pr := &progress{w: o.Progress, term: o.Terminal, src: src, start: time.Now(), disabled: o.Progress == nil, nfiles: len(o.Files)}
	if pr.disabled {
		return pr
	}
	pr.last = pr.start
	for _, f := range o.Files {
		st, err := os.Stat(f)
		if err != nil {
			continue // it fails to open, and counts for nothing
		}
		if !st.Mode().IsRegular() || f == capture.Stdin {
			pr.total = -1 // a stream's size is known at its end only
			break
		}
		pr.total += st.Size()
	}
	return pr
}

func (pr *progress) fileDone(f *capture.File) {
	if pr.disabled {
		return
	}
	pr.doneIn += f.Size()
	pr.files++
}

func (pr *progress) tick(f *capture.File) {
	if pr.disabled {
		return
	}
	now := time.Now()
	if now.Sub(pr.last) < time.Second {
		return
	}
	pr.last = now
	pr.print(pr.doneIn+f.InputBytes(), f.Name())
}

// print prints a progress line, read bytes of the input read so far; name, when not "",
// is the file being read.
func (pr *progress) print(read int64, name string) {
	n := pr.src.records.Load()
	elapsed := time.Since(pr.start)
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(n) / secs
	}
	line := fmt.Sprintf("replay: %d packets, %.0f packets/s", n, rate)
	if pr.total >= 0 {
		pct := 100.0
		if pr.total > 0 {
			pct = min(100*float64(read)/float64(pr.total), 100)
		}
		line += fmt.Sprintf(", %.1f%% of input", pct)
		if read > 0 && read < pr.total {
			left := time.Duration(float64(elapsed) * float64(pr.total-read) / float64(read))
			line += fmt.Sprintf(", about %v left", left.Round(time.Second))
		}
	}
	if name != "" && pr.nfiles > 1 {
		line += fmt.Sprintf(", file %d of %d (%s)", pr.files+1, pr.nfiles, name)
	}
	if pr.term {
		fmt.Fprintf(pr.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(pr.w, line)
	}
}

func (pr *progress) done() {
	if pr.disabled {
		return
	}
	pr.print(max(pr.total, 0), "")
	if pr.term {
		fmt.Fprintln(pr.w)
	}
}
