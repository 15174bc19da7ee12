//go:build linux

// Package netnstest builds private test networks: two network namespaces joined by a veth
// pair, with helpers to run code inside a namespace and to write raw frames into it.
// Frames written into one end from namespace B reach the other end in namespace A and
// nothing ever reaches the host's interfaces. Everything created is removed in t.Cleanup,
// by name, also when the test fails.
package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Require skips a test loudly without root or the ip command (fails it when CI=true).
func Require(t testing.TB) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root for network namespaces, veth and AF_PACKET"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs the ip command (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("LIVE CAPTURE TEST CANNOT RUN (CI=true): " + why)
	}
	t.Skip("LIVE CAPTURE TEST SKIPPED: " + why)
}

var seq atomic.Int32

// Pair is a veth link between two fresh namespaces: IfA lives in NsA, IfB in NsB.
type Pair struct {
	NsA, NsB string
	IfA, IfB string
	IndexA   int // ifindex of IfA inside NsA
}

// NewPair creates the namespaces and the link, both ends up, loopback up in NsA, IPv6 off
// (so the kernel sends no DAD, MLD or router solicitations of its own) and no addresses.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	Require(t)
	n := seq.Add(1)
	p := &Pair{
		NsA: fmt.Sprintf("tstest-%d-%d-a", os.Getpid(), n),
		NsB: fmt.Sprintf("tstest-%d-%d-b", os.Getpid(), n),
		IfA: fmt.Sprintf("tsa%d", n),
		IfB: fmt.Sprintf("tsb%d", n),
	}
	for _, ns := range []string{p.NsA, p.NsB} {
		IP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		err := In(ns, func() error {
			for _, c := range []string{"all", "default"} {
				f := "/proc/sys/net/ipv6/conf/" + c + "/disable_ipv6"
				if err := os.WriteFile(f, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("disable IPv6 in %s: %v", ns, err)
		}
	}
	IP(t, "-n", p.NsA, "link", "set", "lo", "up")
	p.Link(t)
	return p
}

// Link (re)creates the veth link of the pair, both ends up.
func (p *Pair) Link(t testing.TB) {
	t.Helper()
	IP(t, "-n", p.NsA, "link", "add", p.IfA, "type", "veth", "peer", "name", p.IfB, "netns", p.NsB)
	IP(t, "-n", p.NsA, "link", "set", p.IfA, "up")
	IP(t, "-n", p.NsB, "link", "set", p.IfB, "up")
	err := In(p.NsA, func() error {
		ifi, err := net.InterfaceByName(p.IfA)
		if err == nil {
			p.IndexA = ifi.Index
		}
		return err
	})
	if err != nil {
		t.Fatalf("look up %s: %v", p.IfA, err)
	}
}

// Unlink deletes the veth link (both ends).
func (p *Pair) Unlink(t testing.TB) {
	t.Helper()
	IP(t, "-n", p.NsA, "link", "del", p.IfA)
}

// IP runs the ip command and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// In runs fn on an OS thread switched into the named namespace. Sockets fn opens stay in
// that namespace. It uses a goroutine of its own: if switching back fails, the thread stays
// locked and the runtime discards it when the goroutine exits.
func In(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Sender writes whole Ethernet frames to one interface with an AF_PACKET SOCK_RAW socket.
// Its protocol is 0, so it receives nothing.
type Sender struct {
	fd   int
	addr unix.SockaddrLinklayer
}

// NewSender opens a sender on interface ifname of namespace ns, closed at cleanup.
func NewSender(t testing.TB, ns, ifname string) *Sender {
	t.Helper()
	s := &Sender{fd: -1}
	err := In(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fd = fd
		ifr, err := unix.NewIfreq(ifname)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		s.addr = unix.SockaddrLinklayer{Ifindex: int(ifr.Uint32())}
		return nil
	})
	if s.fd >= 0 {
		t.Cleanup(func() { unix.Close(s.fd) })
	}
	if err != nil {
		t.Fatalf("sender on %s in %s: %v", ifname, ns, err)
	}
	return s
}

// Send writes one frame, waiting out a full transmit queue.
func (s *Sender) Send(frame []byte) error {
	for {
		err := unix.Sendto(s.fd, frame, 0, &s.addr)
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// SendAll writes every frame and fails the test on error.
func (s *Sender) SendAll(t testing.TB, frames [][]byte) {
	t.Helper()
	for i, f := range frames {
		if err := s.Send(f); err != nil {
			t.Fatalf("send frame %d (%d bytes): %v", i, len(f), err)
		}
	}
}

// Dial connects to addr from inside namespace ns (the connection's socket lives there).
func Dial(ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := In(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	return c, err
}
