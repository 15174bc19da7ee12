package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/metrics"
	"github.com/telescope-dev/telescope/pipeline"
)

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	report := fs.String("report", "", "write the JSON report to FILE (- for stdout)")
	htmlOut := fs.String("html", "", "write the study as one self-contained HTML page to FILE (- for stdout)")
	metricsOut := fs.String("metrics-out", "", "write the final Prometheus text exposition to FILE (- for stdout)")
	serve := fs.Bool("serve", false, "serve /metrics during the replay and keep serving after the end (until SIGINT/SIGTERM)")
	stateIn := fs.String("state-in", "", "restore detector state from FILE (a --state-out of the previous part) before reading")
	stateOut := fs.String("state-out", "", "leave episodes open at the end and write the detector state to FILE, for --state-in of the next part")
	progress := fs.Bool("progress", false, "print a progress line on stderr at most once a second (default: when stderr is a terminal)")
	sortIn := fs.Bool("sort", false, "replay the files in the order of their first packet's time, not in the order given (each file's first record is read first; not for - or FIFOs)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telescope replay [flags] PCAP...\n\nReads pcap/pcapng files (gzip and zstd too; - is standard input) in order through the same workers\nand detectors as run.\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no capture files given (telescope replay [flags] PCAP...)", errUsage)
	}
	if err := checkStdinInput(files, os.Stdin); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	prog, err := replayFilter(cfg)
	if err != nil {
		return err
	}
	// Every output is checked before any input is read.
	outs, err := checkOutputs(stdout, outputSpec{"--report", *report}, outputSpec{"--metrics-out", *metricsOut},
		outputSpec{"--html", *htmlOut}, outputSpec{"--state-out", *stateOut})
	if err != nil {
		return err
	}
	reportOut, metricsOutput, htmlOutput := outs[0], outs[1], outs[2]
	log, _, logQueue, stopLog, err := newLoggerQueue(cfg.Log, stderr, true)
	if err != nil {
		return err
	}
	defer stopLog()
	if *sortIn {
		if files, err = sortInputs(files, log); err != nil {
			return err
		}
	}

	sink, spool := replaySinks(reportOut != nil, htmlOutput != nil)
	if spool != nil {
		defer spool.Close()
	}
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: workerCount(cfg), Logger: log, Sink: sink})
	if err != nil {
		return err
	}
	stateClock, err := replayStateIn(p, *stateIn, log) // state.go
	if err != nil {
		return err
	}
	p.SetKeepState(*stateOut != "")
	reload := &metrics.ReloadStatus{}
	reload.Set(true, time.Now())
	reg := newRegistry(cfg, p, reload)

	var srv *metrics.Server
	if *serve {
		srv, err = metrics.Listen(metrics.ServerOptions{Address: cfg.Web.ListenAddress, Registry: reg, Logger: log, Version: buildVersion(), WebConfigFile: cf.webConfig,
			Landing: landingPage(cfg.Sensor, p.Snapshot)})
		if err != nil {
			return err
		}
		srv.Serve()
		log.Info("serving metrics", zap.String("address", srv.Addr()))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var returned atomic.Bool // ctx is done because the command returns, not by a signal
	defer returned.Store(true)
	go func() {
		// Told to stop: the end events of the episodes still open are logged as far as the
		// queue holds them, the rest counted (log_entries_dropped), not waited for.
		<-ctx.Done()
		if returned.Load() {
			return
		}
		logQueue.SetLossless(false)
		stop() // a second signal ends the process at once (the default action)
		log.Info("stopping; a second SIGINT or SIGTERM ends the process at once")
	}()
	opts := pipeline.ReplayOptions{Files: files, Filter: prog}
	if prog != nil {
		log.Info("capture.filter applies to the replayed packets, as it does to the live capture", zap.String("filter", cfg.Capture.Filter))
	}
	if *stateIn != "" {
		opts.After, opts.AfterName = stateClock, "--state-in "+*stateIn
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		opts.Progress, opts.Terminal = stderr, true
	} else if *progress {
		opts.Progress = stderr
	}
	replayCtx, stopReplay := context.WithCancel(ctx)
	defer stopReplay()
	var replayed atomic.Bool // the input is read: a spool failing now fails the report alone
	if spool != nil {
		// The report is lost at the spool's first failure (a full temp file system): say
		// so and stop then, not after hours of a replay whose report cannot be written.
		// (Set before the replay adds the first entry.)
		spool.OnFail(func(err error) {
			if replayed.Load() {
				return // the --report error says it
			}
			log.Error("the report and page can no longer be written: their detection spool failed; stopping the replay (TMPDIR chooses the spool's file system)",
				zap.Error(err), zap.String("spool_dir", os.TempDir()))
			stopReplay()
		})
	}
	res := p.Replay(replayCtx, opts)
	replayed.Store(true)
	log.Info("replay finished",
		zap.Int("files", len(files)), zap.Int("failed_files", len(res.Errors)),
		zap.Uint64("records", res.Records), zap.Duration("elapsed", res.Elapsed),
		zap.Float64("packets_per_second", float64(res.Records)/res.Elapsed.Seconds()),
		zap.Uint64("log_entries_dropped", p.LogEntriesDropped()),
		zap.Int("files_out_of_order", res.OutOfOrder),
		zap.Uint64("filtered_out", res.Filtered))

	var outErr error
	if *stateOut != "" && !res.Interrupted {
		if _, err := p.Checkpoint(*stateOut); err != nil {
			outErr = fmt.Errorf("--state-out: %w", err)
		}
	}
	if spool != nil { // a report or a page: one report, its descriptions read from the spool
		rep, err := p.ReportFrom(spool)
		if err != nil {
			err = fmt.Errorf("reading the scanner episodes back from the detection spool: %w", err)
		}
		if reportOut != nil {
			werr := err
			if werr == nil {
				werr = reportOut.write(stdout, func(w io.Writer) error { return pipeline.WriteReportSpooled(w, rep, spool) })
			}
			if werr != nil {
				outErr = fmt.Errorf("--report: %w", werr)
			}
		}
		if htmlOutput != nil {
			werr := err
			if werr == nil {
				werr = htmlOutput.write(stdout, func(w io.Writer) error { return writeHTML(w, rep, files, spool) })
			}
			if werr != nil && outErr == nil {
				outErr = fmt.Errorf("--html: %w", werr)
			}
		}
	}
	if metricsOutput != nil {
		if err := metricsOutput.write(stdout, func(w io.Writer) error { return writeExposition(reg, w) }); err != nil && outErr == nil {
			outErr = fmt.Errorf("--metrics-out: %w", err)
		}
	}
	if srv != nil && outErr == nil && !res.Interrupted {
		log.Info("replay done; still serving metrics until SIGINT/SIGTERM", zap.String("address", srv.Addr()))
		<-ctx.Done()
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	switch {
	case outErr != nil:
		return outErr
	case res.Interrupted:
		return fmt.Errorf("interrupted after %d records; the report covers what was read", res.Records)
	case len(res.Errors) > 0:
		// Each damaged file was logged with its offset; the one-line summary names them.
		if len(res.Errors) == 1 {
			return res.Errors[0]
		}
		return fmt.Errorf("%d files could not be read to their end; first: %v", len(res.Errors), res.Errors[0])
	}
	return nil
}

// writeExposition writes the registry in the Prometheus text format.
func writeExposition(reg *prometheus.Registry, w io.Writer) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// replaySinks returns what collects replay's episodes: with a report or a page, a spool to
// disk ($TMPDIR) of every ended episode, read back to write them and, for the scanner
// episodes, to describe the report's top sources and groups, so that memory does not grow
// with their number. Without either nothing would read a spool: a flood of one-packet
// fingerprint episodes spent most of its replay marshalling, sorting and writing entries
// for nothing.
func replaySinks(report, html bool) (pipeline.Tee, *pipeline.DetectionSpool) {
	if !report && !html {
		return pipeline.Tee{}, nil
	}
	spool := pipeline.NewDetectionSpool("", 0)
	return pipeline.Tee{spool}, spool
}

// replayFilter is capture.filter's program for replay (nil: none), compiled as for the
// live rings (frames from the network header on).
func replayFilter(cfg *configs.Config) (*filter.Program, error) {
	if cfg.Capture.Filter == "" {
		return nil, nil
	}
	raw, err := compileFilter(cfg.Capture.Filter, uint32(cfg.Capture.Snaplen))
	if err == nil {
		var p *filter.Program
		if p, err = filter.NewProgram(raw); err == nil {
			p.Expr = cfg.Capture.Filter
			return p, nil
		}
	}
	return nil, fmt.Errorf("capture.filter: %w", err)
}

// sortInputs orders files by their first packet's time (--sort) and logs what it did.
func sortInputs(files []string, log *zap.Logger) ([]string, error) {
	start := time.Now()
	sorted, moved, err := pipeline.SortInputs(files)
	if err != nil {
		return nil, fmt.Errorf("%w: --sort reads each file's first packet before the replay: %v", errUsage, err)
	}
	log.Info("inputs sorted by their first packet's time", zap.Int("files", len(files)),
		zap.Int("moved", moved), zap.Duration("elapsed", time.Since(start)))
	return sorted, nil
}

// checkStdinInput refuses standard input ("-") given twice (the second would find it read
// to its end) or when it is a terminal (a capture is piped or redirected into it).
func checkStdinInput(files []string, stdin *os.File) error {
	if n := slices.Index(files, capture.Stdin); n >= 0 {
		if slices.Contains(files[n+1:], capture.Stdin) {
			return fmt.Errorf("%w: - (standard input) is given twice", errUsage)
		}
		if isTerminal(stdin) {
			return fmt.Errorf("%w: - reads a capture from standard input, which is a terminal here (tcpdump -w - | telescope replay -)", errUsage)
		}
	}
	return nil
}
