package metrics

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// startServer serves o on a free loopback port until the test ends.
func startServer(t *testing.T, o ServerOptions) *Server {
	t.Helper()
	o.Address = "127.0.0.1:0"
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "telescope_test_total", Help: "test"}))
	}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func get(t *testing.T, c *http.Client, url string, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reloads := 0
	s := startServer(t, ServerOptions{Version: "v1.2.3", Reload: func() error { reloads++; return nil }, EnableLifecycle: true})
	c := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + s.Addr()
	for path, want := range map[string]string{
		"/metrics": "telescope_test_total 0", "/-/healthy": "Healthy", "/-/ready": "Ready", "/": "v1.2.3",
	} {
		if code, body := get(t, c, base+path, "", ""); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, code, body, want)
		}
	}
	if code, _ := get(t, c, base+"/nope", "", ""); code != 404 {
		t.Errorf("GET /nope: %d, want 404", code)
	}
	resp, err := c.Post(base+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || reloads != 1 {
		t.Errorf("POST /-/reload with the lifecycle API: %d, %d reloads", resp.StatusCode, reloads)
	}
}

func TestReloadNeedsLifecycleFlag(t *testing.T) {
	reloads := 0
	s := startServer(t, ServerOptions{Reload: func() error { reloads++; return nil }})
	resp, err := http.Post("http://"+s.Addr()+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || reloads != 0 || !strings.Contains(string(b), "--web.enable-lifecycle") {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %d %q, %d reloads; want 403 and none", resp.StatusCode, b, reloads)
	}
}

func TestLandingHook(t *testing.T) {
	s := startServer(t, ServerOptions{Landing: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "live overview of "+r.URL.Path)
	})})
	c := &http.Client{Timeout: 5 * time.Second}
	if code, body := get(t, c, "http://"+s.Addr()+"/", "", ""); code != 200 || body != "live overview of /" {
		t.Errorf("landing hook: %d %q", code, body)
	}
	if code, body := get(t, c, "http://"+s.Addr()+"/metrics", "", ""); code != 200 || !strings.Contains(body, "telescope_test_total") {
		t.Errorf("/metrics with a landing hook: %d %q", code, body)
	}
}

// writeWebConfig writes a self-signed certificate for 127.0.0.1 and an exporter-toolkit
// web config with TLS and one basic-auth user; it returns the config path and a client
// trusting the certificate.
func writeWebConfig(t *testing.T, user, pass string) (string, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "telescope test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	must(t, os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web-config.yml")
	must(t, os.WriteFile(cfg, []byte("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  "+user+": "+string(hash)+"\n"), 0o600))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cfg, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	cfg, tlsClient := writeWebConfig(t, "prometheus", "s3cret")
	s := startServer(t, ServerOptions{WebConfigFile: cfg})
	url := "https://" + s.Addr() + "/metrics"
	if code, _ := get(t, tlsClient, url, "", ""); code != http.StatusUnauthorized {
		t.Errorf("scrape without credentials: %d, want 401", code)
	}
	if code, _ := get(t, tlsClient, url, "prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("scrape with a wrong password: %d, want 401", code)
	}
	if code, body := get(t, tlsClient, url, "prometheus", "s3cret"); code != 200 || !strings.Contains(body, "telescope_test_total 0") {
		t.Errorf("scrape with credentials: %d %q, want 200 and the exposition", code, body)
	}
	// Plain HTTP to the TLS endpoint never gets the exposition.
	plain := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	if resp, err := plain.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "telescope_test_total") {
			t.Errorf("plain-HTTP scrape of the TLS endpoint served: %d %q", resp.StatusCode, b)
		}
	}
	// A client that does not trust the certificate fails the handshake.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(url); err == nil {
		t.Errorf("a client without the CA completed the TLS handshake")
	}
}

func TestWebConfigInvalid(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"missing-cert.yml": "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
		"unknown-key.yml":  "tls_server_config: {}\nbasic_auth: {}\n",
		"bad-hash.yml":     "basic_auth_users:\n  u: not-a-bcrypt-hash\n",
	} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), 0o600))
		if s, err := Listen(ServerOptions{Address: "127.0.0.1:0", Registry: prometheus.NewRegistry(), WebConfigFile: p}); err == nil {
			s.Shutdown(context.Background())
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "--web.config.file") {
			t.Errorf("%s: error does not name the flag: %v", name, err)
		}
	}
	if _, err := Listen(ServerOptions{Address: "127.0.0.1:0", WebConfigFile: filepath.Join(dir, "absent.yml")}); err == nil {
		t.Errorf("a missing web config file was accepted")
	}
}

// waitClosed reads from c until the server closes it; false if it is still open at the
// deadline (generous: the assertion is "closed", not how fast).
func waitClosed(c net.Conn, deadline time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	s := startServer(t, ServerOptions{Limits: Limits{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond}})
	// A connection that never sends a request.
	silent, err := net.Dial("tcp", s.Addr())
	must(t, err)
	defer silent.Close()
	// A keep-alive connection after one scrape.
	kept, err := net.Dial("tcp", s.Addr())
	must(t, err)
	defer kept.Close()
	_, err = io.WriteString(kept, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close || strings.TrimSpace(string(body)) != "Healthy" {
		t.Fatalf("keep-alive request: %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	if !waitClosed(silent, 10*time.Second) {
		t.Errorf("a connection that sent nothing is still open")
	}
	if !waitClosed(kept, 10*time.Second) {
		t.Errorf("an idle keep-alive connection is still open")
	}
}

func TestConnectionCap(t *testing.T) {
	const max = 3
	s := startServer(t, ServerOptions{Limits: Limits{MaxConnections: max, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range max {
		c, err := net.Dial("tcp", s.Addr())
		must(t, err)
		held = append(held, c)
	}
	// Past the cap, connections are closed without a response, many of them.
	for i := range 20 {
		c, err := net.Dial("tcp", s.Addr())
		must(t, err)
		if !waitClosed(c, 10*time.Second) {
			t.Fatalf("connection %d past the cap of %d is still open", max+i+1, max)
		}
		c.Close()
	}
	if n := s.ln.open.Load(); n != max {
		t.Errorf("open connections %d, want %d", n, max)
	}
	// The held ones still work.
	_, err := io.WriteString(held[0], "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(held[0]), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on a held connection: %v", err)
	}
	resp.Body.Close()
	// Closing one frees a slot for a new scraper.
	held[1].Close()
	held = append(held[:1], held[2:]...)
	var ok bool
	for range 100 {
		c, err := net.Dial("tcp", s.Addr())
		must(t, err)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			ok = true
			break
		}
		time.Sleep(20 * time.Millisecond) // the server notices the close asynchronously
	}
	if !ok {
		t.Errorf("no connection served after one of the held ones closed")
	}
}

// blockingCollector blocks Collect until release is closed.
type blockingCollector struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

var blockingDesc = prometheus.NewDesc("telescope_blocking", "test", nil, nil)

func (b *blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- blockingDesc }
func (b *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	if b.calls.Add(1) == 1 {
		close(b.entered)
	}
	<-b.release
	ch <- prometheus.MustNewConstMetric(blockingDesc, prometheus.GaugeValue, 1)
}

func TestScrapesInFlightAreCapped(t *testing.T) {
	bc := &blockingCollector{entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(bc)
	s := startServer(t, ServerOptions{Registry: reg, Limits: Limits{MaxRequestsInFlight: 1}})
	c := &http.Client{Timeout: 10 * time.Second}
	first := make(chan int, 1)
	go func() {
		resp, err := c.Get("http://" + s.Addr() + "/metrics")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-bc.entered
	code, body := get(t, c, "http://"+s.Addr()+"/metrics", "", "")
	if code != http.StatusServiceUnavailable {
		t.Errorf("second scrape while one is in flight: %d %q, want 503", code, body)
	}
	// Health and readiness are not scrapes: they answer while the scrape is stuck.
	if code, _ := get(t, c, "http://"+s.Addr()+"/-/healthy", "", ""); code != 200 {
		t.Errorf("/-/healthy during a stuck scrape: %d", code)
	}
	close(bc.release)
	if code := <-first; code != 200 {
		t.Errorf("first scrape: %d", code)
	}
	if code, _ := get(t, c, "http://"+s.Addr()+"/metrics", "", ""); code != 200 {
		t.Errorf("scrape after the first ended: %d", code)
	}
	if n := bc.calls.Load(); n != 2 {
		t.Errorf("collector ran %d times, want 2 (the refused scrape must not collect)", n)
	}
}

// TestHealthyReportsAStalledLog: /-/healthy says 503 with the reason while the Healthy
// hook returns an error (the log output stalled), 200 once it recovers.
func TestHealthyReportsAStalledLog(t *testing.T) {
	var stalled atomic.Bool
	s := startServer(t, ServerOptions{Healthy: func() error {
		if stalled.Load() {
			return errors.New("log output stalled for 3s")
		}
		return nil
	}})
	c := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + s.Addr() + "/-/healthy"
	if code, _ := get(t, c, url, "", ""); code != 200 {
		t.Errorf("healthy: %d", code)
	}
	stalled.Store(true)
	if code, body := get(t, c, url, "", ""); code != 503 || !strings.Contains(body, "log output stalled") {
		t.Errorf("stalled log: %d %q", code, body)
	}
	stalled.Store(false)
	if code, _ := get(t, c, url, "", ""); code != 200 {
		t.Errorf("recovered: %d", code)
	}
}
