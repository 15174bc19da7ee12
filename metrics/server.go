package metrics

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Defaults of the HTTP limits (ServerOptions.Limits fields left at zero take these).
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 30 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultMaxConnections      = 64
	DefaultMaxRequestsInFlight = 4
)

// Limits bound what HTTP clients can hold: a telescope's endpoint may face the very
// scanners it watches. Zero values take the Default* constants; a negative value disables
// that limit.
type Limits struct {
	// ReadHeaderTimeout closes a connection whose request headers (the first request's
	// included) do not arrive in time, so a silent connection is closed too.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, WriteTimeout writing its response.
	ReadTimeout, WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for its next request.
	IdleTimeout time.Duration
	// MaxConnections caps the open connections; one accepted past the cap is closed at once
	// (without a response), so file descriptors never run out for the capture.
	MaxConnections int
	// MaxRequestsInFlight caps concurrent scrapes of /metrics; past it a scrape gets 503.
	MaxRequestsInFlight int
}

func (l Limits) withDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0 // net/http: no timeout
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxRequestsInFlight == 0 {
		l.MaxRequestsInFlight = DefaultMaxRequestsInFlight
	}
	return l
}

// ServerOptions configure the daemon's HTTP endpoints.
type ServerOptions struct {
	Address  string
	Registry *prometheus.Registry
	Logger   *zap.Logger
	// Ready reports whether every capture socket is open (nil: always ready).
	Ready func() bool
	// Healthy returns an error while something keeps the daemon from doing its job (the
	// log output stalled); nil: always healthy.
	Healthy func() error
	// Reload re-reads the configuration for POST /-/reload (nil: endpoint not available).
	Reload func() error
	// EnableLifecycle allows POST /-/reload (--web.enable-lifecycle); without it the
	// endpoint answers 403, as Prometheus does. SIGHUP reloads either way.
	EnableLifecycle bool
	// WebConfigFile is the exporter-toolkit web configuration (--web.config.file): TLS,
	// basic auth, headers. Empty: plain HTTP without authentication.
	WebConfigFile string
	// Landing serves "/" (nil: the built-in page listing the endpoints).
	Landing http.Handler
	Limits  Limits
	Version string
}

// Server serves /metrics, /-/healthy, /-/ready, /-/reload and a landing page, like the
// Prometheus exporters do, through the exporter-toolkit (TLS and basic auth from
// --web.config.file).
type Server struct {
	srv    *http.Server
	ln     *capListener
	webCfg string
	log    *zap.Logger
	done   chan error
	up     atomic.Bool
}

// Listen validates the web config and binds the address (so a bad file or "address in
// use" is reported before anything starts).
func Listen(o ServerOptions) (*Server, error) {
	if o.WebConfigFile != "" {
		if err := web.Validate(o.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", o.WebConfigFile, err)
		}
	}
	ln, err := net.Listen("tcp", o.Address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("web.listen_address %s is already in use (another telescope or exporter?): stop it or choose another address with --web.listen-address", o.Address)
		}
		return nil, fmt.Errorf("web.listen_address %s: %w", o.Address, err)
	}
	lim := o.Limits.withDefaults()
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		ln:     &capListener{Listener: ln, max: int64(lim.MaxConnections)},
		webCfg: o.WebConfigFile,
		log:    log,
		done:   make(chan error, 1),
	}
	s.srv = &http.Server{
		Handler:           Handler(o),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
	}
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves in the background until Shutdown.
func (s *Server) Serve() {
	s.up.Store(true)
	flags := &web.FlagConfig{WebConfigFile: &s.webCfg}
	go func() {
		err := web.Serve(s.ln, s.srv, flags, slog.New(&zapHandler{log: s.log}))
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil {
			s.log.Error("HTTP server stopped", zap.Error(err))
		}
		s.done <- err
	}()
}

// Shutdown stops serving, letting scrapes in flight finish.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.up.Load() {
		return s.ln.Close()
	}
	err := s.srv.Shutdown(ctx)
	if e := <-s.done; err == nil {
		err = e
	}
	return err
}

// capListener closes connections accepted past max open ones.
type capListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.open.Add(1) > l.max {
			l.open.Add(-1)
			c.Close()
			continue
		}
		if l.max <= 0 {
			return c, nil
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// Handler returns the daemon's HTTP handler.
func Handler(o ServerOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	lim := o.Limits.withDefaults()
	inFlight := lim.MaxRequestsInFlight
	if inFlight < 0 {
		inFlight = 0
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog:            zap.NewStdLog(log),
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: inFlight,
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		if o.Healthy != nil {
			if err := o.Healthy(); err != nil {
				http.Error(w, "Unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, "Not ready: capture sockets are not all open", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		if o.Reload == nil {
			http.Error(w, "reload is not available in this mode", http.StatusNotImplemented)
			return
		}
		if !o.EnableLifecycle {
			http.Error(w, "Lifecycle API is not enabled: start with --web.enable-lifecycle, or send SIGHUP", http.StatusForbidden)
			return
		}
		if err := o.Reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded")
	})
	if o.Landing != nil {
		mux.Handle("/", o.Landing)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, landing, html.EscapeString(o.Version))
		})
	}
	return mux
}

const landing = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>telescope</title></head>
<body>
<h1>telescope</h1>
<p>A network telescope sensor: it counts the unsolicited traffic reaching dark prefixes and detects who is scanning (version %s).</p>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/-/healthy">/-/healthy</a>: liveness</li>
<li><a href="/-/ready">/-/ready</a>: readiness (every capture socket open)</li>
<li>POST /-/reload: re-read the configuration file</li>
</ul>
</body></html>
`

// zapHandler passes the exporter-toolkit's slog records to the daemon's zap logger.
type zapHandler struct {
	log    *zap.Logger
	fields []zap.Field
	group  string
}

func (h *zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func (h *zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, h.field(a))
		return true
	})
	if ce := h.log.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h *zapHandler) field(a slog.Attr) zap.Field {
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	return zap.Any(key, a.Value.Resolve().Any())
}

func (h *zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.fields = append([]zap.Field(nil), h.fields...)
	for _, a := range attrs {
		n.fields = append(n.fields, h.field(a))
	}
	return &n
}

func (h *zapHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	default:
		return zapcore.DebugLevel
	}
}
