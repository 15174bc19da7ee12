package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/bpf"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/capture/filter"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/metrics"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/pipeline"
)

// liveSource is a running capture: AF_PACKET rings (default) or libpcap (-tags pcap).
type liveSource interface {
	Open() error
	Run(ctx context.Context) error
	Ready() bool
}

// openPcapSource is set by the pcap build (run_pcap.go); nil in the static build.
var openPcapSource func(p *pipeline.Pipeline, cfg *configs.Config) liveSource

// compileFilter compiles capture.filter for the AF_PACKET rings, whose frames start at the
// IP header: the built-in compiler, or libpcap's in the pcap build.
var compileFilter = filter.Compile

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	lifecycle := fs.Bool("web.enable-lifecycle", false, "enable POST /-/reload (SIGHUP reloads either way)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telescope run [flags]\n\nCaptures live on capture.interface and serves /metrics on web.listen_address.\nNeeds CAP_NET_RAW (root, or setcap cap_net_raw,cap_net_admin+ep on the binary).\n\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: unexpected argument %q (capture files are read by 'telescope replay')", errUsage, pos[0])
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if err := checkBuild(cfg, "config"); err != nil {
		return err
	}
	log, level, stopLog, err := newLogger(cfg.Log, stderr, false)
	if err != nil {
		return err
	}
	defer stopLog()

	workers := workerCount(cfg)
	build := func() (*pipeline.Pipeline, error) {
		return pipeline.New(pipeline.Options{Config: cfg, Workers: workers, Logger: log})
	}
	p, err := build()
	if err != nil {
		return err
	}
	if p, err = restoreLive(p, cfg, log, build); err != nil { // state.go
		return err
	}
	if cfg.Limits.Prefault {
		start := time.Now()
		n, err := p.PrefaultSources()
		if err != nil {
			return fmt.Errorf("limits.prefault: %w", err)
		}
		log.Info("source tables' memory committed", zap.Int("bytes", n), zap.Duration("took", time.Since(start)))
	}
	src, err := newLiveSource(p, cfg, workers)
	if err != nil {
		return err
	}
	if len(cfg.DarkPrefixes) == 0 {
		log.Warn("no dark prefixes configured: every destination but this host's own addresses counts as dark; set dark_prefixes")
	}
	updateHostAddrs(p, log) // the host's own addresses are never dark (kept current below)
	reload := &metrics.ReloadStatus{}
	reload.Set(true, time.Now())
	reg := newRegistry(cfg, p, reload)
	d := &daemon{cf: cf, cfg: cfg, started: cfg, p: p, log: log, level: level, status: reload}
	srv, err := metrics.Listen(metrics.ServerOptions{
		Address: cfg.Web.ListenAddress, Registry: reg, Logger: log, Version: buildVersion(),
		Ready: src.Ready, Reload: d.reload, EnableLifecycle: *lifecycle, WebConfigFile: cf.webConfig,
		Landing: landingPage(cfg.Sensor, p.Snapshot), Healthy: p.LogHealthy,
	})
	if err != nil {
		return err
	}
	if err := src.Open(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	srv.Serve()
	log.Info("telescope started",
		zap.String("version", buildVersion()), zap.String("interface", cfg.Capture.Interface),
		zap.String("method", cfg.Capture.Method), zap.Int("workers", workers),
		zap.String("listen_address", srv.Addr()), zap.Stringers("dark_prefixes", cfg.DarkPrefixes))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var returned atomic.Bool // ctx is done because the command returns, not by a signal
	defer returned.Store(true)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				// A second signal ends the process at once (the default action), without
				// the final checkpoint: for a shutdown that cannot finish.
				if !returned.Load() {
					stop()
					log.Info("stopping; a second SIGINT or SIGTERM ends the process at once")
				}
				return
			case <-hup:
				_ = d.reload()
			}
		}
	}()

	go watchHostAddrs(ctx, p, log)
	ckCtx, stopCk := context.WithCancel(ctx)
	waitCk := startCheckpoints(ckCtx, p, cfg)
	runErr := src.Run(ctx)
	stopCk()
	waitCk()
	finalCheckpoint(p, cfg, log)
	t := p.Totals()
	var frames uint64
	for _, n := range t.Frames {
		frames += n
	}
	tracked, evictions := p.Tracked()
	log.Info("telescope stopped",
		zap.Uint64("frames", frames), zap.Uint64("ip_packets", t.Frames[packet.ResultIP]),
		zap.Uint64("non_ip_frames", t.Frames[packet.ResultNonIP]),
		zap.Uint64("truncated", t.Frames[packet.ResultTruncated]),
		zap.Uint64("malformed", t.Frames[packet.ResultMalformed]),
		zap.Int64("tracked_sources", tracked), zap.Uint64("evictions", evictions))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return runErr
}

// newLiveSource builds the capture of capture.method.
func newLiveSource(p *pipeline.Pipeline, cfg *configs.Config, workers int) (liveSource, error) {
	switch cfg.Capture.Method {
	case "pcap":
		if openPcapSource == nil {
			return nil, errors.New("capture.method pcap needs a binary built with cgo and libpcap: go build -tags pcap ./cmd/telescope (or use method: afpacket)")
		}
		return openPcapSource(p, cfg), nil
	default:
		var prog []bpf.RawInstruction
		if cfg.Capture.Filter != "" {
			var err error
			prog, err = compileFilter(cfg.Capture.Filter, uint32(cfg.Capture.Snaplen))
			if err != nil {
				return nil, fmt.Errorf("capture.filter: %w", err)
			}
		}
		return p.NewLive(capture.RingConfig{
			Interface: cfg.Capture.Interface,
			Workers:   workers,
			SnapLen:   cfg.Capture.Snaplen,
			RingBytes: cfg.Capture.RingMB << 20,
			Filter:    prog,
		}), nil
	}
}

// daemon holds what a reload needs.
type daemon struct {
	mu  sync.Mutex
	cf  commonFlags
	cfg *configs.Config // in effect
	// started is the config the process started with: restart-only keys keep its values.
	started *configs.Config
	p       *pipeline.Pipeline
	log     *zap.Logger
	level   zap.AtomicLevel
	status  *metrics.ReloadStatus
}

// reload re-reads the config file (SIGHUP, POST /-/reload). Thresholds, prefixes, metric
// limits and the log level change in place, without closing the capture sockets or
// resetting any counter; an invalid file is refused and the running config stays.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var cfg *configs.Config
	var err error
	if d.cf.config == "" {
		cfg, err = configs.Parse(configs.DefaultYAML, "embedded telescope.yaml")
	} else {
		cfg, err = configs.Load(d.cf.config)
	}
	if err == nil {
		cfg, err = d.cf.override(cfg)
	}
	if err == nil {
		// Restart-only keys keep their started values (named in pending below).
		err = d.p.Reload(configs.Applied(d.started, cfg))
	}
	if err != nil {
		d.status.Set(false, time.Now())
		d.log.Error("config reload failed; the running config stays", zap.String("file", d.cf.config), zap.Error(err))
		return err
	}
	// Restart-only keys are compared with the config the process started with, so a
	// change still pending is named again at every reload until the restart.
	var pending, changed []string
	for _, k := range configs.Diff(d.started, cfg) {
		if configs.IsRestartOnly(k) {
			pending = append(pending, k)
		}
	}
	for _, k := range configs.Diff(d.cfg, cfg) {
		if !configs.IsRestartOnly(k) {
			changed = append(changed, k)
		}
	}
	if len(pending) > 0 {
		d.log.Warn("config keys changed but only take effect after a restart", zap.Strings("keys", pending))
	}
	if lvl, err := zap.ParseAtomicLevel(cfg.Log.Level); err == nil {
		d.level.SetLevel(lvl.Level())
	}
	d.cfg = cfg
	d.status.Set(true, time.Now())
	d.log.Info("config reloaded", zap.String("file", d.cf.config), zap.Strings("changed", changed),
		zap.Strings("pending_restart", pending))
	return nil
}
