package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/telescope-dev/telescope/internal/netnstest"
)

var (
	exeOnce sync.Once
	exeDir  string
	exePath string
	exeErr  error
)

// executable returns a copy of the test binary that every user may run (the uid 65534 test
// needs that); with TELESCOPE_MAIN=1 it behaves as the telescope command.
func executable(t *testing.T) string {
	t.Helper()
	exeOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			exeErr = err
			return
		}
		if exeDir, exeErr = os.MkdirTemp("", "telescope-exe-"); exeErr != nil {
			return
		}
		if exeErr = os.Chmod(exeDir, 0o755); exeErr != nil {
			return
		}
		data, err := os.ReadFile(self)
		if err != nil {
			exeErr = err
			return
		}
		exePath = filepath.Join(exeDir, "telescope")
		exeErr = os.WriteFile(exePath, data, 0o755)
	})
	if exeErr != nil {
		t.Fatalf("test executable: %v", exeErr)
	}
	return exePath
}

func cleanupExecutables() {
	if exeDir != "" {
		os.RemoveAll(exeDir)
	}
}

// syncBuffer collects a process's stderr while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonProc is a `telescope run` process inside a namespace.
type daemonProc struct {
	cmd    *exec.Cmd
	ns     string
	addr   string
	logs   *syncBuffer
	done   chan struct{}
	client *http.Client
}

// startDaemon runs `telescope run --config cfg` inside namespace ns and waits until
// /-/ready answers 200. The process is ended (by its id) at cleanup if still running.
func startDaemon(t *testing.T, ns, addr, cfg string) *daemonProc {
	t.Helper()
	d := startProc(t, exec.Command("ip", "netns", "exec", ns, executable(t), "run", "--web.enable-lifecycle", "--config", cfg))
	d.ns, d.addr = ns, addr
	d.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, a string) (net.Conn, error) {
			return netnstest.Dial(ns, network, a)
		},
	}}
	d.waitFor(t, "ready", 15*time.Second, func() bool {
		code, _, err := d.get("/-/ready")
		return err == nil && code == 200
	})
	return d
}

// startProc starts cmd, a telescope command line (the test binary standing in for the
// binary), its stderr kept in logs. The process is ended (by its id) at cleanup if still
// running.
func startProc(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1")
	cmd.Stderr = d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemonProc log:\n%s", d.logs.String())
		}
	})
	return d
}

func (d *daemonProc) get(path string) (int, string, error) {
	resp, err := d.client.Get("http://" + d.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (d *daemonProc) post(path string) (int, string, error) {
	resp, err := d.client.Post("http://"+d.addr+path, "text/plain", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metrics scrapes and parses /metrics.
func (d *daemonProc) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := d.get("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape: %d %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return mfs
}

// value returns the sample of family name whose labels include want (0 when absent).
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func (d *daemonProc) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-d.done:
			t.Fatalf("daemonProc exited while waiting for %s:\n%s", what, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits for a log line containing s.
func (d *daemonProc) waitLog(t *testing.T, s string) {
	t.Helper()
	d.waitFor(t, "log "+s, 10*time.Second, func() bool { return strings.Contains(d.logs.String(), s) })
}

// stop sends sig and waits for the exit status.
func (d *daemonProc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("daemonProc did not exit within 15 s of %v", sig)
	}
	return d.cmd.ProcessState.ExitCode()
}

// requireRoot skips loudly without root (fails under CI=true).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true)")
	}
	t.Skip("SKIPPING: needs root")
}

// TestRunWithoutPrivilege runs the daemonProc as an unprivileged user: it must exit 1 with a
// one-line error saying how to grant CAP_NET_RAW.
func TestRunWithoutPrivilege(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(executable(t), "run", "--web.listen-address", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	line := lastLine(stderr.String())
	if code != 1 || !strings.Contains(line, "CAP_NET_RAW") || !strings.Contains(line, "setcap cap_net_raw,cap_net_admin+ep") {
		t.Errorf("exit %d (%v), last line %q\n%s", code, err, line, stderr.String())
	}
}

// TestRunStartupErrors: a missing interface and an occupied listen address each give a
// one-line error saying what to do, and exit 1.
func TestRunStartupErrors(t *testing.T) {
	requireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing interface", []string{"run", "--web.listen-address", "127.0.0.1:0", "--config", cfgFile(t, "capture: {interface: nosuch0}\n")},
			[]string{`interface "nosuch0" not found`}},
		{"address in use", []string{"run", "--web.listen-address", ln.Addr().String()},
			[]string{ln.Addr().String(), "already in use", "--web.listen-address"}},
		{"pcap method in the static build", []string{"run", "--web.listen-address", "127.0.0.1:0", "--config", cfgFile(t, "capture: {method: pcap}\n")},
			[]string{"-tags pcap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "pcap method in the static build" && openPcapSource != nil {
				t.Skip("this binary is the pcap build")
			}
			code, _, stderr := telescope(t, tc.args...)
			line := lastLine(stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("last line %q lacks %q", line, w)
				}
			}
		})
	}
}

func cfgFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "telescope.yaml")
	writeConfig(t, p, text)
	return p
}
