package pipeline

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/telescope-dev/telescope/detect"
)

// Spool holds the entries of one report list on disk, so a replay's memory does not grow
// with the number of detection episodes (a flood of one-packet episodes from spoofed
// sources makes millions). Entries are marshalled as they arrive and kept in memory only
// until runEntries of them have gathered; each such run is sorted by key and appended to
// an unlinked temporary file. At the end the runs are merged (64 at a time, in passes when
// there are more) into one JSON array in key order.
//
// Memory: one run (runEntries marshalled entries, about 0.25 KiB each: 4 MiB), 16 bytes per
// run written (1 M episodes at 16384 per run: 62 runs, 1 KiB), and 64 read buffers of
// 32 KiB while merging. Disk: about 0.25 KiB per entry, twice during a merge pass (past
// 1 M entries; below, the runs are merged straight into the report).
type Spool struct {
	mu         sync.Mutex
	dir        string
	runEntries int
	buf        []spoolRec
	f          *os.File
	off        int64
	runs       []spoolRun
	n          int
	err        error
}

type spoolRec struct {
	key  string
	line []byte
}

type spoolRun struct{ off, size int64 }

// spoolFanIn is how many runs one merge reads at once.
const spoolFanIn = 64

// DefaultSpoolRun is the run length in entries: 1 M episodes (a flood of one-packet
// fingerprint episodes) make at most spoolFanIn runs, merged in one pass.
const DefaultSpoolRun = 16384

// NewSpool returns an empty spool writing its runs in dir ("" for the OS temp dir).
func NewSpool(dir string, runEntries int) *Spool {
	if runEntries < 1 {
		runEntries = DefaultSpoolRun
	}
	return &Spool{dir: dir, runEntries: runEntries}
}

// Add adds an entry under its sort key. Errors (a full disk) are kept for WriteJSON.
func (s *Spool) Add(key string, entry any) {
	var line []byte
	var err error
	if a, ok := entry.(detect.JSONAppender); ok {
		line = a.AppendJSON(make([]byte, 0, 256))
	} else {
		line, err = json.Marshal(entry)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.fail(err)
		return
	}
	s.n++
	s.buf = append(s.buf, spoolRec{key: key, line: line})
	if len(s.buf) >= s.runEntries {
		s.fail(s.spill())
	}
}

func (s *Spool) fail(err error) {
	if err != nil && s.err == nil {
		s.err = err
	}
}

// Len returns the entries added.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Runs returns the runs written to disk so far.
func (s *Spool) Runs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

// Buffered returns the entries held in memory (at most the run length).
func (s *Spool) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
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

// spill sorts the buffered entries and appends them to the file as one run.
func (s *Spool) spill() error {
	if len(s.buf) == 0 {
		return nil
	}
	if s.f == nil {
		f, err := tempFile(s.dir)
		if err != nil {
			return err
		}
		s.f = f
	}
	sortRecs(s.buf)
	w := bufio.NewWriterSize(io.NewOffsetWriter(s.f, s.off), 64<<10)
	var size int64
	for _, r := range s.buf {
		n, err := writeRec(w, r)
		if err != nil {
			return err
		}
		size += n
	}
	if err := w.Flush(); err != nil {
		return err
	}
	s.runs = append(s.runs, spoolRun{off: s.off, size: size})
	s.off += size
	clear(s.buf)
	s.buf = s.buf[:0]
	return nil
}

func sortRecs(rs []spoolRec) {
	// Stable, so equal keys keep their arrival order.
	slices.SortStableFunc(rs, func(a, b spoolRec) int { return strings.Compare(a.key, b.key) })
}

func writeRec(w *bufio.Writer, r spoolRec) (int64, error) {
	var hdr [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(r.key)))
	n += binary.PutUvarint(hdr[n:], uint64(len(r.line)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return 0, err
	}
	if _, err := w.WriteString(r.key); err != nil {
		return 0, err
	}
	if _, err := w.Write(r.line); err != nil {
		return 0, err
	}
	return int64(n + len(r.key) + len(r.line)), nil
}

// runReader reads one run's records in order.
type runReader struct {
	r   *bufio.Reader
	cur spoolRec
	seq int // the run's position, to break ties in arrival order
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
	b := make([]byte, kl+ll)
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return false, err
	}
	rr.cur = spoolRec{key: string(b[:kl]), line: b[kl:]}
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].cur.key != h[j].cur.key {
		return h[i].cur.key < h[j].cur.key
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

// merge reads runs of f in key order, calling emit for each record.
func merge(f *os.File, runs []spoolRun, emit func(spoolRec) error) error {
	h := make(runHeap, 0, len(runs))
	for i, r := range runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(f, r.off, r.size), 32<<10), seq: i}
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
		if err := emit(rr.cur); err != nil {
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

// reduce merges runs spoolFanIn at a time into a new file until at most spoolFanIn remain.
func (s *Spool) reduce() error {
	for len(s.runs) > spoolFanIn {
		nf, err := tempFile(s.dir)
		if err != nil {
			return err
		}
		var off int64
		var out []spoolRun
		for i := 0; i < len(s.runs); i += spoolFanIn {
			group := s.runs[i:min(i+spoolFanIn, len(s.runs))]
			w := bufio.NewWriterSize(io.NewOffsetWriter(nf, off), 64<<10)
			var size int64
			if err := merge(s.f, group, func(r spoolRec) error {
				n, err := writeRec(w, r)
				size += n
				return err
			}); err != nil {
				nf.Close()
				return err
			}
			if err := w.Flush(); err != nil {
				nf.Close()
				return err
			}
			out = append(out, spoolRun{off: off, size: size})
			off += size
		}
		s.f.Close()
		s.f, s.runs, s.off = nf, out, off
	}
	return nil
}

// WriteJSON writes the entries as a JSON array in key order, indented as
// json.Encoder.SetIndent(prefix, indent) would indent it at that depth: "[]" when empty.
func (s *Spool) WriteJSON(w io.Writer, prefix, indent string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.n == 0 {
		_, err := io.WriteString(w, "[]")
		return err
	}
	if err := s.spill(); err != nil {
		return err
	}
	if err := s.reduce(); err != nil {
		return err
	}
	inner := prefix + indent
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	first := true
	var ind []byte
	err := merge(s.f, s.runs, func(r spoolRec) error {
		sep := ",\n" + inner
		if first {
			sep, first = "\n"+inner, false
		}
		ind = appendIndent(append(ind[:0], sep...), r.line, inner, indent)
		_, err := w.Write(ind)
		return err
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n"+prefix+"]")
	return err
}

// Close removes the spool's file.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
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
}

// NewDetectionSpool returns an empty spool writing in dir ("" for the OS temp dir), with
// runs of runEntries entries (0: DefaultSpoolRun).
func NewDetectionSpool(dir string, runEntries int) *DetectionSpool {
	d := &DetectionSpool{}
	for range detect.Descriptors() {
		d.lists = append(d.lists, NewSpool(dir, runEntries))
	}
	return d
}

// Detection implements detect.Sink: the End event of every episode is spooled under its
// detector's sort key.
func (d *DetectionSpool) Detection(ev *detect.Event) {
	if ev.Phase != detect.End {
		return
	}
	if i := detect.DetectorIndex(ev.Detector); i >= 0 {
		d.lists[i].Add(detect.Descriptors()[i].SortKey(ev.Entry), ev.Entry)
	}
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
	inner := prefix + indent
	if _, err := io.WriteString(w, "{"); err != nil {
		return err
	}
	for i, s := range d.lists {
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		key := detect.Descriptors()[i].ReportKey
		if _, err := fmt.Fprintf(w, "%s%s%q: ", sep, inner, key); err != nil {
			return err
		}
		if err := s.WriteJSON(w, inner, indent); err != nil {
			return fmt.Errorf("detections.%s: %w", key, err)
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
// have to fit in memory; scans (NewScannerEpisodes, may be nil) holds the scanner episodes
// that describe the top sources and the groups.
func (p *Pipeline) WriteReport(w io.Writer, d *DetectionSpool, scans *Episodes) error {
	r := p.Report(scans) // the scanner episodes describe top sources and groups
	empty := NewEpisodes().Detections()
	r.Detections = empty
	var head bytes.Buffer
	enc := json.NewEncoder(&head)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	// The report with empty detections: cut out that object and stream the spool there.
	emptyJSON, err := json.MarshalIndent(empty, "  ", "  ")
	if err != nil {
		return err
	}
	key := append([]byte("\n  \"detections\": "), emptyJSON...)
	i := bytes.Index(head.Bytes(), key)
	if i < 0 || bytes.Contains(head.Bytes()[i+1:], key) {
		return errors.New("report: detections not found once in the encoded report")
	}
	if _, err := w.Write(head.Bytes()[:i+len(key)-len(emptyJSON)]); err != nil {
		return err
	}
	if err := d.WriteJSON(w, "  ", "  "); err != nil {
		return err
	}
	_, err = w.Write(head.Bytes()[i+len(key):])
	return err
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
