package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/logq"
	"github.com/telescope-dev/telescope/metrics"
	"github.com/telescope-dev/telescope/pipeline"
)

func init() {
	// Config validation checks capture.filter with the built-in compiler, unless the pcap
	// build installed libpcap's (run_pcap.go; init order between files is not relied on).
	if configs.FilterCheck == nil {
		configs.FilterCheck = filter.Check
	}
}

// commonFlags are the flags shared by run and replay, named like the Prometheus exporters'.
type commonFlags struct {
	config    string
	listen    string
	logLevel  string
	logFormat string
	webConfig string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (default: the embedded configs/telescope.yaml)")
	fs.StringVar(&c.listen, "web.listen-address", "", "address to serve /metrics on (overrides web.listen_address)")
	fs.StringVar(&c.logLevel, "log.level", "", "log level: debug, info, warn, error (overrides log.level)")
	fs.StringVar(&c.logFormat, "log.format", "", "log format: json, logfmt, console (overrides log.format)")
	fs.StringVar(&c.webConfig, "web.config.file", "", "exporter-toolkit web configuration file enabling TLS and/or basic auth (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md)")
}

// load reads the config (or the embedded default) and applies the flag overrides.
func (c *commonFlags) load() (*configs.Config, error) {
	var cfg *configs.Config
	var err error
	if c.config == "" {
		cfg, err = configs.Parse(configs.DefaultYAML, "embedded telescope.yaml")
	} else {
		cfg, err = configs.Load(c.config)
	}
	if err != nil {
		return nil, err
	}
	return c.override(cfg)
}

func (c *commonFlags) override(cfg *configs.Config) (*configs.Config, error) {
	if c.listen != "" {
		cfg.Web.ListenAddress = c.listen
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	if c.logFormat != "" {
		cfg.Log.Format = c.logFormat
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	return cfg, nil
}

// newLogger builds the zap logger: JSON (or console) lines on w, times in RFC 3339 with
// nanoseconds. The level can change on reload. Entries go through a bounded queue
// (internal/logq) to one writer goroutine that writes whatever queued up in one write, so
// a slow or stalled w never blocks the caller: live (lossless false) drops and counts
// what does not fit; replay (lossless) waits while w makes progress. The returned stop
// flushes, giving up once w has made no progress for a few seconds.
func newLogger(cfg configs.Log, w io.Writer, lossless bool) (*zap.Logger, zap.AtomicLevel, func(), error) {
	log, lvl, _, stop, err := newLoggerQueue(cfg, w, lossless)
	return log, lvl, stop, err
}

// workerLines lets the pipeline's workers encode their detection lines (off: every line
// is zap's entry; a test compares the two).
var workerLines = true

// newLoggerQueue is newLogger also returning the log queue.
func newLoggerQueue(cfg configs.Log, w io.Writer, lossless bool) (*zap.Logger, zap.AtomicLevel, *logq.Queue, func(), error) {
	lvl, err := zap.ParseAtomicLevel(cfg.Level)
	if err != nil {
		return nil, lvl, nil, nil, fmt.Errorf("log.level: %w", err)
	}
	ec := logEncoderConfig()
	var enc zapcore.Encoder
	switch cfg.Format {
	case "console":
		enc = zapcore.NewConsoleEncoder(ec)
	case "logfmt":
		enc = newLogfmtEncoder(ec)
	default:
		enc = newEventJSONEncoder(ec)
	}
	ws := zapcore.Lock(logq.Buffer(w))
	o := logq.Options{Lossless: lossless, Release: true, FlushDelay: logFlushDelay}
	if ej, ok := enc.(*eventJSONEncoder); ok && ej.fast && workerLines {
		// The pipeline's workers encode their detection lines themselves (pipeline.EventLineEncoder).
		o.Lines = &logq.Lines{Out: ws, Encoder: ej}
	}
	q := logq.New(zapcore.NewCore(enc, ws, lvl), o)
	log := zap.New(q.Core())
	return log, lvl, q, func() { _ = log.Sync() }, nil
}

// logFlushDelay is how long log lines may wait in the output's buffer: a write a second
// at most, rather than one each time the queue empties (each woke the runtime's sysmon for
// a millisecond of 20 µs ticks: a third of a live daemon's context switches on the 20x day).
// Every line is written at exit (Drain) and by Sync.
const logFlushDelay = time.Second

// logEncoderConfig is the log lines' keys and encodings, in every format.
func logEncoderConfig() zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	return ec
}

// workerCount resolves capture.workers (0 = one per CPU).
func workerCount(cfg *configs.Config) int {
	if cfg.Capture.Workers > 0 {
		return cfg.Capture.Workers
	}
	return runtime.NumCPU()
}

// newRegistry builds a registry with the telescope collector and the Go and process
// collectors, all carrying the sensor label.
func newRegistry(cfg *configs.Config, p *pipeline.Pipeline, reload *metrics.ReloadStatus) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(metrics.Options{
		Sensor: cfg.Sensor, Version: buildVersion(), Snapshot: p.Snapshot, Reload: reload,
	}))
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"sensor": cfg.Sensor}, reg)
	wrapped.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
