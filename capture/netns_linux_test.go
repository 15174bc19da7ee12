package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The live tests build a private network: two namespaces joined by a veth pair. Frames are
// written into one end from namespace B and captured at the other end in namespace A, so
// nothing ever reaches the host's interfaces. Namespaces are removed in t.Cleanup.

// requireNetns skips a live test loudly without root (fails it when CI=true).
func requireNetns(t testing.TB) {
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

var netnsSeq atomic.Int32

// vethPair is a veth link between two fresh namespaces: IfA lives in NsA, IfB in NsB.
type vethPair struct {
	NsA, NsB string
	IfA, IfB string
	IndexA   int // ifindex of IfA inside NsA
}

// newVethPair creates the namespaces and the link, both ends up, IPv6 off (so the kernel
// sends no DAD, MLD or router solicitations of its own) and no addresses.
func newVethPair(t testing.TB) *vethPair {
	t.Helper()
	requireNetns(t)
	n := netnsSeq.Add(1)
	v := &vethPair{
		NsA: fmt.Sprintf("tstest-%d-%d-a", os.Getpid(), n),
		NsB: fmt.Sprintf("tstest-%d-%d-b", os.Getpid(), n),
		IfA: fmt.Sprintf("tsa%d", n),
		IfB: fmt.Sprintf("tsb%d", n),
	}
	for _, ns := range []string{v.NsA, v.NsB} {
		runIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		err := inNetns(ns, func() error {
			for _, c := range []string{"all", "default"} {
				p := "/proc/sys/net/ipv6/conf/" + c + "/disable_ipv6"
				if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("disable IPv6 in %s: %v", ns, err)
		}
	}
	runIP(t, "-n", v.NsA, "link", "add", v.IfA, "type", "veth", "peer", "name", v.IfB, "netns", v.NsB)
	runIP(t, "-n", v.NsA, "link", "set", v.IfA, "up")
	runIP(t, "-n", v.NsB, "link", "set", v.IfB, "up")
	err := inNetns(v.NsA, func() error {
		ifi, err := net.InterfaceByName(v.IfA)
		if err == nil {
			v.IndexA = ifi.Index
		}
		return err
	})
	if err != nil {
		t.Fatalf("look up %s: %v", v.IfA, err)
	}
	return v
}

func runIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into the named namespace. Sockets fn opens stay
// in that namespace. It uses a goroutine of its own: if switching back fails, the thread
// stays locked and the runtime discards it when the goroutine exits.
func inNetns(ns string, fn func() error) error {
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

// openRingsIn opens rings inside namespace ns and closes them at cleanup.
func openRingsIn(t testing.TB, ns string, cfg RingConfig) []*Ring {
	t.Helper()
	var rings []*Ring
	err := inNetns(ns, func() (err error) {
		rings, err = OpenRings(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("OpenRings(%+v) in %s: %v", cfg, ns, err)
	}
	t.Cleanup(func() {
		for _, r := range rings {
			if err := r.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	return rings
}

// frameSender writes whole Ethernet frames to one interface with an AF_PACKET SOCK_RAW
// socket. Its protocol is 0, so it receives nothing.
type frameSender struct {
	fd   int
	addr unix.SockaddrLinklayer
}

// newSender opens a sender on interface ifname of namespace ns.
func newSender(t testing.TB, ns, ifname string) *frameSender {
	t.Helper()
	s := &frameSender{fd: -1}
	err := inNetns(ns, func() error {
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

// send writes one frame, waiting out a full transmit queue.
func (s *frameSender) send(frame []byte) error {
	for {
		err := unix.Sendto(s.fd, frame, 0, &s.addr)
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// sendFrames writes every frame from namespace ns through interface ifname.
func sendFrames(t testing.TB, ns, ifname string, frames [][]byte) {
	t.Helper()
	s := newSender(t, ns, ifname)
	for i, f := range frames {
		if err := s.send(f); err != nil {
			t.Fatalf("send frame %d (%d bytes): %v", i, len(f), err)
		}
	}
}

// Test MAC addresses: the destination is nobody's, so the receiving stack ignores the frames.
var (
	macDst = []byte{0x02, 0, 0, 0, 0, 0x01}
	macSrc = []byte{0x02, 0, 0, 0, 0, 0x02}
)

// ethFrame builds an Ethernet frame; typ is an EtherType or an 802.3 length.
func ethFrame(typ uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f, macDst)
	copy(f[6:], macSrc)
	binary.BigEndian.PutUint16(f[12:], typ)
	return append(f, payload...)
}

// rxFrame is a received Frame with its data copied.
type rxFrame struct {
	Frame
	ring int
}

// key identifies a frame's content as the ring reports it.
func (f *rxFrame) key() string { return frameKey(f.Protocol, f.VLANValid, f.VLAN, f.Data) }

func frameKey(proto uint16, vlanValid bool, vlan uint16, data []byte) string {
	return fmt.Sprintf("%04x/%t/%d/%x", proto, vlanValid, vlan, data)
}

// collect polls every ring in its own goroutine until want frames arrived in total (or
// timeout passed), then keeps polling for settle to catch frames beyond want. It returns
// the frames of each ring and the first Poll error.
func collect(rings []*Ring, want int, timeout, settle time.Duration) ([][]rxFrame, error) {
	var (
		total atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	errc := make(chan error, len(rings))
	out := make([][]rxFrame, len(rings))
	for i, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := func(f *Frame) {
				c := rxFrame{Frame: *f, ring: i}
				c.Data = append([]byte(nil), f.Data...)
				out[i] = append(out[i], c)
				total.Add(1)
			}
			for !stop.Load() {
				if _, err := r.Poll(10*time.Millisecond, fn); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(timeout)
	for total.Load() < int64(want) && time.Now().Before(deadline) && len(errc) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(settle)
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return out, err
	default:
		return out, nil
	}
}
