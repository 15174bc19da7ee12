package metrics

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ServerOptions configure the daemon's HTTP endpoints.
type ServerOptions struct {
	Address  string
	Registry *prometheus.Registry
	Logger   *zap.Logger
	// Ready reports whether every capture socket is open (nil: always ready).
	Ready func() bool
	// Reload re-reads the configuration for POST /-/reload (nil: endpoint disabled).
	Reload  func() error
	Version string
}

// Server serves /metrics, /-/healthy, /-/ready, /-/reload and a landing page, like the
// Prometheus exporters do.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	up   atomic.Bool
}

// Listen binds the address (so "address in use" is reported before anything starts).
func Listen(o ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", o.Address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("web.listen_address %s is already in use (another telescope or exporter?): stop it or choose another address with --web.listen-address", o.Address)
		}
		return nil, fmt.Errorf("web.listen_address %s: %w", o.Address, err)
	}
	s := &Server{ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{Handler: Handler(o), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves in the background until Shutdown.
func (s *Server) Serve() {
	s.up.Store(true)
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
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

// Handler returns the daemon's HTTP handler.
func Handler(o ServerOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(log),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
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
		if err := o.Reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, landing, html.EscapeString(o.Version))
	})
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
