package capture

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/netnstest"
)

// The live tests run on a private veth pair between two namespaces (internal/netnstest).
type vethPair = netnstest.Pair

func requireNetns(t testing.TB)                { netnstest.Require(t) }
func newVethPair(t testing.TB) *vethPair       { return netnstest.NewPair(t) }
func runIP(t testing.TB, args ...string)       { netnstest.IP(t, args...) }
func inNetns(ns string, fn func() error) error { return netnstest.In(ns, fn) }

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

// sendFrames writes every frame from namespace ns through interface ifname.
func sendFrames(t testing.TB, ns, ifname string, frames [][]byte) {
	t.Helper()
	netnstest.NewSender(t, ns, ifname).SendAll(t, frames)
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
