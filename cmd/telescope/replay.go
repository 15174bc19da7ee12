package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"

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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telescope replay [flags] PCAP...\n\nReads pcap/pcapng files (gzip too) in order through the same workers and detectors as run.\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no capture files given (telescope replay [flags] PCAP...)", errUsage)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	log, _, stopLog, err := newLogger(cfg.Log, stderr, true)
	if err != nil {
		return err
	}
	defer stopLog()

	collector := pipeline.NewEpisodes()
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: workerCount(cfg), Logger: log, Sink: collector})
	if err != nil {
		return err
	}
	if err := replayStateIn(p, *stateIn, log); err != nil { // state.go
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
	opts := pipeline.ReplayOptions{Files: files}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		opts.Progress, opts.Terminal = stderr, true
	} else if *progress {
		opts.Progress = stderr
	}
	res := p.Replay(ctx, opts)
	log.Info("replay finished",
		zap.Int("files", len(files)), zap.Int("failed_files", len(res.Errors)),
		zap.Uint64("records", res.Records), zap.Duration("elapsed", res.Elapsed),
		zap.Float64("packets_per_second", float64(res.Records)/res.Elapsed.Seconds()))

	var outErr error
	if *stateOut != "" && !res.Interrupted {
		if _, err := p.Checkpoint(*stateOut); err != nil {
			outErr = fmt.Errorf("--state-out: %w", err)
		}
	}
	var rep *pipeline.Report
	if *report != "" || *htmlOut != "" {
		rep = p.Report(collector)
	}
	if *report != "" {
		if err := writeOutput(*report, stdout, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}); err != nil {
			outErr = fmt.Errorf("--report: %w", err)
		}
	}
	if *htmlOut != "" {
		if err := writeOutput(*htmlOut, stdout, func(w io.Writer) error { return writeHTML(w, rep, files) }); err != nil && outErr == nil {
			outErr = fmt.Errorf("--html: %w", err)
		}
	}
	if *metricsOut != "" {
		if err := writeOutput(*metricsOut, stdout, func(w io.Writer) error { return writeExposition(reg, w) }); err != nil && outErr == nil {
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

// writeOutput writes to path atomically (a temporary file renamed into place), or to
// stdout for "-".
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	tmp, err := os.CreateTemp(dirOf(path), ".telescope-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			if i == 0 {
				return "/"
			}
			return path[:i]
		}
	}
	return "."
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
