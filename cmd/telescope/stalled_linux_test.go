package main

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// miraiFrames builds one Mirai-style telnet SYN (sequence number = destination address)
// from each of n sources starting at first: each starts a detection episode, so each
// writes a log line.
func miraiFrames(t *testing.T, first, n int) [][]byte {
	t.Helper()
	ps := make([]pcaptest.Packet, 0, n)
	for s := first; s < first+n; s++ {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(s)})
		ps = append(ps, pcaptest.Packet{TS: time.Now(), Src: netip.AddrFrom4([4]byte{100, 64 + byte(s>>16), byte(s >> 8), byte(s)}),
			Dst: dst, SrcPort: 40000, DstPort: 23, Flags: 0x02, Seq: uint32(203)<<24 | 113<<8 | uint32(byte(s))})
	}
	return frames(t, ps)
}

// gatedReader reads a pipe only while open is set, like a log reader (journald, a FIFO's
// consumer) that stalls and comes back.
type gatedReader struct {
	open atomic.Bool
	got  syncBuffer
}

func (g *gatedReader) run(r *os.File) {
	buf := make([]byte, 64<<10)
	for {
		for !g.open.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		n, err := r.Read(buf)
		_, _ = g.got.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// TestRunWithStalledStderr runs `telescope run` in a network namespace with its stderr on
// a pipe nobody reads (issue 13, finding 3) and floods it with frames that each start a
// detection episode: capture keeps counting every frame, the log entries that cannot be
// written are dropped and counted, /-/healthy reports the stalled log output, a reload
// answers at once; once the pipe is read again the log says it was stalled and /-/healthy
// recovers; stalled again, SIGTERM still ends the process within a few seconds.
func TestRunWithStalledStderr(t *testing.T) {
	pair := netnstest.NewPair(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "telescope.yaml")
	const addr = "127.0.0.1:9813"
	// Every one-packet Mirai episode logs its two lines (the defaults log none of them).
	writeConfig(t, cfgPath, "sensor: stalled\ndark_prefixes: [203.0.113.0/24]\n"+
		"detect: {fingerprint: {log_min_packets: 1}}\n"+
		"capture: {interface: "+pair.IfA+", workers: 2, ring_mb: 8}\n"+
		"web: {listen_address: \""+addr+"\"}\n")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	d := &daemonProc{ns: pair.NsA, addr: addr, logs: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command("ip", "netns", "exec", pair.NsA, executable(t), "run", "--web.enable-lifecycle", "--config", cfgPath)
	d.cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1")
	d.cmd.Stderr = pw // an *os.File: the process writes the pipe itself, nothing copies it
	d.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, a string) (net.Conn, error) {
			return netnstest.Dial(pair.NsA, network, a)
		},
	}}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	reader := &gatedReader{}
	go reader.run(pr)
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill() // by its id
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log read from the pipe:\n%s", reader.got.String())
		}
	})
	d.waitFor(t, "ready", 15*time.Second, func() bool {
		code, _, err := d.get("/-/ready")
		return err == nil && code == 200
	})
	ipFrames := func() float64 { return value(d.metrics(t), "telescope_frames_total", "result", "ip") }
	dropped := func() float64 { return value(d.metrics(t), "telescope_log_events_dropped_total") }
	healthy := func() (int, string) {
		code, body, err := d.get("/-/healthy")
		if err != nil {
			t.Fatalf("/-/healthy: %v", err)
		}
		return code, body
	}
	send := netnstest.NewSender(t, pair.NsB, pair.IfB)

	// 1. Stalled: 20 000 episodes, far more log than the pipe (64 KiB) and the log queue
	// (8 192 entries) hold. Every frame is still counted.
	sent := 0
	for i := 0; i < 2; i++ {
		fs := miraiFrames(t, sent, 10000)
		send.SendAll(t, fs)
		sent += len(fs)
		want := float64(sent)
		d.waitFor(t, "every frame counted with stderr stalled", 10*time.Second, func() bool { return ipFrames() >= want })
	}
	time.Sleep(200 * time.Millisecond)
	if got := ipFrames(); got != float64(sent) {
		t.Errorf("ip frames %v, want %d (every frame sent, once)", got, sent)
	}
	if n := dropped(); n <= 0 {
		t.Errorf("telescope_log_events_dropped_total %v with stderr stalled, want > 0", n)
	} else {
		t.Logf("%d frames sent with stderr stalled: all counted, %v log entries dropped", sent, n)
	}
	d.waitFor(t, "/-/healthy to report the stalled log output", 10*time.Second, func() bool {
		code, body := healthy()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "stalled")
	})
	// Counting goes on during the stall, and a reload answers.
	fs := miraiFrames(t, sent, 5000)
	send.SendAll(t, fs)
	sent += len(fs)
	want := float64(sent)
	d.waitFor(t, "frames sent during the stall counted", 10*time.Second, func() bool { return ipFrames() >= want })
	start := time.Now()
	code, body, err := d.post("/-/reload") // the client gives up after 5 s
	if err != nil || code != 200 {
		t.Errorf("reload with stderr stalled: %d %q %v after %v", code, body, err, time.Since(start))
	} else {
		t.Logf("reload with stderr stalled answered in %v", time.Since(start).Round(time.Millisecond))
	}

	// 2. The pipe is read again: the log says it was stalled and dropped entries, and
	// /-/healthy recovers.
	reader.open.Store(true)
	d.waitFor(t, "the log to report the stall", 10*time.Second, func() bool {
		return strings.Contains(reader.got.String(), "log output was stalled or too slow; entries were dropped")
	})
	d.waitFor(t, "/-/healthy to recover", 10*time.Second, func() bool {
		code, _ := healthy()
		return code == 200
	})

	// 3. Stalled again, with 20 000 more episodes open: SIGTERM ends the process in time.
	reader.open.Store(false)
	for i := 0; i < 2; i++ {
		fs := miraiFrames(t, sent, 10000)
		send.SendAll(t, fs)
		sent += len(fs)
	}
	want = float64(sent)
	d.waitFor(t, "every frame counted", 10*time.Second, func() bool { return ipFrames() >= want })
	start = time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
		t.Logf("SIGTERM to exit with stderr stalled: %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Fatalf("the daemon did not exit within 8 s of SIGTERM with its stderr stalled")
	}
}
