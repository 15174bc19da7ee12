package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
	"github.com/telescope-dev/telescope/studyhtml"
)

// cmdReport renders or merges saved replay reports.
func cmdReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	html := fs.String("html", "", "write the study as one self-contained HTML page to FILE (- for stdout)")
	report := fs.String("report", "", "write the (merged) JSON report to FILE (- for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telescope report [--html FILE] [--report FILE] REPORT.json...\n\nRenders a saved replay report as HTML, or merges the reports of several files or days\n(counters add up; unique counts come from the union of the reports' sketches).\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no report files given (telescope report [--html FILE] [--report FILE] REPORT.json...)", errUsage)
	}
	if *html == "" && *report == "" {
		return fmt.Errorf("%w: nothing to write: give --html FILE and/or --report FILE", errUsage)
	}
	// Every output is checked (and distinct) before any input is read.
	outs, err := checkOutputs(stdout, outputSpec{"--report", *report}, outputSpec{"--html", *html})
	if err != nil {
		return err
	}
	reportOut, htmlOut := outs[0], outs[1]
	// A report merged twice is named as soon as it is read, not after every report has
	// been (a month of days' reports takes minutes to read).
	named := func(err error) error {
		var dup *pipeline.DuplicateInputError
		if errors.As(err, &dup) {
			return errors.New(dup.Between(files[dup.A], files[dup.B]))
		}
		var cont *pipeline.ContinuedInputError
		if errors.As(err, &cont) {
			return errors.New(cont.Between(files[cont.A], files[cont.B]))
		}
		return err
	}
	// The episodes go to a spool on disk ($TMPDIR), which the report and the page read
	// back: each report's as it is decoded, through a part of its own whose order is the
	// report's, so that neither a merge of many days nor one large report holds its
	// episodes in memory, nor a reader the report it reads.
	var spoolErr atomic.Pointer[error]
	spool := pipeline.NewDetectionSpool("", 0)
	defer spool.Close()
	spool.OnFail(func(err error) { spoolErr.Store(&err) })
	failed := func() error {
		if err := spoolErr.Load(); err != nil {
			return fmt.Errorf("the episodes' spool failed (TMPDIR chooses its file system): %w", *err)
		}
		return nil
	}
	// A report given alone keeps its groups; a merge finds its own.
	reports, stop := readReports(files, spool.PartAt, len(files) > 1)
	defer stop()
	var r *pipeline.Report
	if len(files) == 1 {
		res := <-reports[0]
		if res.err != nil {
			return res.err
		}
		r = res.r
		if err := pipeline.DuplicateInput([]*pipeline.Report{r}); err != nil {
			return named(err)
		}
		if err := failed(); err != nil {
			return err
		}
	} else {
		m := pipeline.NewMerger(spool)
		for _, got := range reports {
			res := <-got
			if res.err != nil {
				return res.err
			}
			if err := m.Add(res.r); err != nil {
				return named(err)
			}
			if err := failed(); err != nil {
				return err
			}
		}
		if r, err = m.Report(); err != nil {
			return err
		}
	}
	if reportOut != nil {
		if err := reportOut.write(stdout, func(w io.Writer) error {
			return pipeline.WriteReportSpooled(w, r, spool)
		}); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if htmlOut != nil {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = filepath.Base(f)
		}
		if err := htmlOut.write(stdout, func(w io.Writer) error { return writeHTML(w, r, names, spool) }); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	return nil
}

// readResult is a report read, or why not.
type readResult struct {
	r   *pipeline.Report
	err error
}

// readReports reads files on up to GOMAXPROCS goroutines (decoding a report's JSON is
// most of a merge's work, and each file's is its own), each file's result on its own
// channel, so that the caller takes them in order. File i's episodes go to partOf(i) as
// they are decoded (its groups too unless skipGroups), and what the caller takes is the
// rest of the report. A reader keeps its slot until the caller has taken its report, so at
// most GOMAXPROCS of those wait in memory however slowly the caller merges. stop ends the
// reading of files not begun yet, and the episodes of those being read.
func readReports(files []string, partOf func(int) detect.Sink, skipGroups bool) (results []chan readResult, stop func()) {
	results = make([]chan readResult, len(files))
	for i := range results {
		results[i] = make(chan readResult)
	}
	done := make(chan struct{})
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	go func() {
		for i, f := range files {
			select {
			case slots <- struct{}{}:
			case <-done:
				return
			}
			go func() {
				defer func() { <-slots }()
				r, err := readReport(f, pipeline.ReportDecoder{Sink: partOf(i), Stop: done, SkipGroups: skipGroups})
				select {
				case results[i] <- readResult{r, err}:
				case <-done:
				}
			}()
		}
	}()
	return results, func() { close(done) }
}

// readReport reads a report, streaming it through its decompression when it is gzip or
// zstd (by its magic, as replay reads captures: a report archived so is read as it is).
// dec takes its episodes.
func readReport(path string, dec pipeline.ReportDecoder) (*pipeline.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file := &streamReader{r: f}
	buf := bufio.NewReaderSize(file, 1<<20)
	magic, _ := buf.Peek(4)
	src := &streamReader{r: buf}
	switch kind := capture.Compression(magic); kind {
	case "gzip", "zstd":
		var z io.Reader
		if kind == "gzip" {
			z, err = gzip.NewReader(buf)
		} else {
			var zd *zstd.Decoder
			if zd, err = zstd.NewReader(buf, zstd.WithDecoderConcurrency(1)); err == nil {
				defer zd.Close()
				z = zd
			}
		}
		if err != nil && file.err == nil {
			return nil, fmt.Errorf("%s: corrupt %s stream: %w", path, kind, err)
		}
		src = &streamReader{r: z, what: "corrupt " + kind + " stream"}
	}
	var r *pipeline.Report
	if file.err == nil {
		r, err = dec.Decode(src)
	}
	switch {
	case file.err != nil: // the file could not be read (its error names it)
		return nil, file.err
	case src.err != nil: // nor decompressed: not the JSON's fault
		return nil, fmt.Errorf("%s: %s: %w", path, src.what, src.err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a telescope report: %w", path, err)
	}
	if r.TCPFlags == nil && r.Frames == 0 && r.FirstPacket == nil {
		return nil, fmt.Errorf("%s: not a telescope report (no frames, packets or flags)", path)
	}
	return r, nil
}

// streamReader keeps the first error of its reader but the end of the stream: the JSON
// decoder wraps it in messages of its own.
type streamReader struct {
	r    io.Reader
	what string // what its errors are
	err  error
}

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// writeHTML writes the study page of r; inputs name what it covers. The page reads the
// episodes from spool when there is one, else from r.
func writeHTML(w io.Writer, r *pipeline.Report, inputs []string, spool *pipeline.DetectionSpool) error {
	if r == nil {
		return errors.New("no report")
	}
	o := studyhtml.Options{Inputs: inputs}
	if spool != nil {
		o.Episodes = spool.Each
	}
	return studyhtml.Render(w, r, o)
}
