package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestReplayServe: with --serve, /metrics shows the final counts after the replay and the
// process keeps serving until SIGTERM, then exits 0.
func TestReplayServe(t *testing.T) {
	pcap, ps := smallCapture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(executable(t), "replay", "--serve", "--web.listen-address", addr, pcap)
	cmd.Env = append(os.Environ(), "TELESCOPE_MAIN=1")
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	want := `telescope_frames_total{result="ip",sensor=""} 41`
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) && strings.Contains(string(b), `telescope_capture_up{interface="replay",sensor=""} 0`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics after the replay:\n%s", want, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(ps) != 41 {
		t.Fatalf("capture has %d packets", len(ps))
	}
	// The landing page is the live overview of the same snapshot: 41 IP packets, 40 of
	// them SYNs to port 23 (the smallCapture's telnet sweep).
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"IP packets since start", ">41<", "replay"} {
		if resp.StatusCode != 200 || !strings.Contains(string(page), want) {
			t.Errorf("landing page (status %d) lacks %q", resp.StatusCode, want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("replay --serve exited by itself (%v)", err)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replay --serve did not stop on SIGTERM")
	}
}

// TestDHTVectorThenSYN replays the real DHT get_peers datagram seen by a telescope
// (testdata/dht-get-peers.ipv4.hex, raw IP) followed by a SYN from the same source to the
// same ip:port: exactly one udp_then_syn detection with payload dht.
func TestDHTVectorThenSYN(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dht-get-peers.ipv4.hex"))
	if err != nil {
		t.Fatal(err)
	}
	dht, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2019, 1, 10, 8, 0, 0, 0, time.UTC)
	syn := pcaptest.Packet{Src: netip.MustParseAddr("189.127.196.8"), Dst: netip.MustParseAddr("211.1.11.177"),
		SrcPort: 40387, DstPort: 4776, Flags: 0x02}
	synBytes, err := syn.IPBytes()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dht.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcaptest.NewWriter(f, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range [][]byte{dht, synBytes} {
		if err := w.WriteFrame(pcaptest.Frame{TS: t0.Add(time.Duration(i) * 30 * time.Second), Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := telescope(t, "replay", "--report", "-", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pipeline.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	got := pipeline.EntriesOf[*detect.UDPThenSYNEntry](r.Detections, "udp_then_syn")
	if len(got) != 1 {
		t.Fatalf("udp_then_syn detections: %+v", got)
	}
	e := got[0]
	if e.Src.String() != "189.127.196.8" || e.Dst.String() != "211.1.11.177" || e.Port != 4776 || e.Payload != "dht" || e.UDPPackets != 1 || e.SYNPackets != 1 {
		t.Errorf("detection %+v", *e)
	}
	if r.Packets.IPv4.UDP != 1 || r.Packets.IPv4.TCP != 1 || len(r.DstPorts.UDP) != 1 || r.DstPorts.UDP[0].Port != 4776 {
		t.Errorf("report tables: %+v %+v", r.Packets.IPv4, r.DstPorts.UDP)
	}
}

// TestFirstSignalEndsQuietReplay: a replay of a FIFO whose writer went quiet (tcpdump -w
// into a FIFO on a quiet link), or that no writer opened yet, stops at the first SIGTERM,
// as interrupted. Before, the read (or the open) waited for the writer, and only a second
// signal ended the process.
func TestFirstSignalEndsQuietReplay(t *testing.T) {
	for _, writer := range []bool{true, false} {
		name := map[bool]string{true: "writer quiet after the header", false: "no writer yet"}[writer]
		t.Run(name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "capture.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			d := startProc(t, exec.Command(executable(t), "replay", fifo))
			if writer {
				w := openFIFOWriter(t, d, fifo)
				defer w.Close()
				// A pcap header, then nothing: the replay waits for more.
				hdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
				if _, err := w.Write(hdr); err != nil {
					t.Fatal(err)
				}
			} else {
				// The open waits in the kernel for a writer (after the signal handling is
				// set up): wait_for_partner in the waiting thread's wchan.
				d.waitFor(t, "the replay waiting in open(2) for the FIFO's writer", 15*time.Second, func() bool {
					return anyThreadWaits(d.cmd.Process.Pid, "wait_for_partner")
				})
			}
			if code := d.stop(t, syscall.SIGTERM); code != 1 {
				t.Errorf("exit code %d after SIGTERM, want 1 (interrupted)\n%s", code, d.logs.String())
			}
			if logs := d.logs.String(); !strings.Contains(logs, "interrupted after 0 records") {
				t.Errorf("no interruption error in the log:\n%s", logs)
			}
		})
	}
}

// anyThreadWaits reports whether a thread of process pid waits in the kernel function
// wchan (/proc/PID/task/TID/wchan).
func anyThreadWaits(pid int, wchan string) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "wchan"))
	for _, p := range tasks {
		if b, err := os.ReadFile(p); err == nil && string(b) == wchan {
			return true
		}
	}
	return false
}

// openFIFOWriter opens fifo for writing once d has opened it for reading (O_NONBLOCK: until
// then the open fails, and a replay that failed must not hang the test). The replay opens
// its files after its signal handling is set up.
func openFIFOWriter(t *testing.T, d *daemonProc, fifo string) *os.File {
	t.Helper()
	var w *os.File
	d.waitFor(t, "the replay opening its FIFO", 15*time.Second, func() bool {
		var err error
		w, err = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	})
	return w
}

// TestSecondSignalEnds: a shutdown that cannot finish (here, replay blocked opening its
// --report FIFO, which has no reader) logs that a second signal ends the process, and the
// second SIGTERM does, by the signal's default action. Before, every SIGTERM and SIGINT
// after the first was caught and ignored: a hung replay (a damaged pcapng's times hung a
// detector's episode ends) spun at 100 % CPU until SIGKILL.
func TestSecondSignalEnds(t *testing.T) {
	pcap, _ := smallCapture(t)
	fifo := filepath.Join(t.TempDir(), "report.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startProc(t, exec.Command(executable(t), "replay", "--report", fifo, pcap))
	d.waitLog(t, "replay finished") // then it opens the FIFO, and waits for a reader
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, "a second SIGINT or SIGTERM ends the process at once")
	d.stop(t, syscall.SIGTERM)
	if ws := d.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGTERM {
		t.Errorf("after the second SIGTERM: %v, want killed by SIGTERM\n%s", d.cmd.ProcessState, d.logs.String())
	}
}
