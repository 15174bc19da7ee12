package detect

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/packet"
)

// TestStateBytesCoversWrites checks StateBytes against what PacketIn writes: a source's
// packets of one kind, below any episode's threshold, leave every byte of its state past
// StateBytes zero. (Reads cannot be observed; a write is a read of the line too.)
func TestStateBytesCoversWrites(t *testing.T) {
	const src = "192.0.2.7"
	kinds := []struct {
		name string
		pkt  func(i int) packet.Header
	}{
		{"SYN", func(i int) packet.Header { return syn(src, ip4("203.0.113.0", i), uint16(80+i%7), int64(i)) }},
		{"Mirai SYN", func(i int) packet.Header {
			h := syn(src, ip4("203.0.113.0", i), 80, int64(i))
			h.Seq = h.Dst.V4()
			return h
		}},
		{"telnet SYN", func(i int) packet.Header { return syn(src, ip4("203.0.113.0", i), 23, int64(i)) }},
		{"UDP", func(i int) packet.Header { return udp(src, ip4("203.0.113.0", i), uint16(53+i%5), int64(i), nil) }},
		{"echo", func(i int) packet.Header { return echo(src, ip4("203.0.113.0", i), int64(i)) }},
		{"ACK", func(i int) packet.Header { return tcp(src, ip4("203.0.113.0", i), packet.FlagACK, int64(i)) }},
		{"RST", func(i int) packet.Header { return tcp(src, ip4("203.0.113.0", i), packet.FlagRST, int64(i)) }},
		{"SYN-ACK", func(i int) packet.Header {
			return tcp(src, ip4("203.0.113.0", i), packet.FlagSYN|packet.FlagACK, int64(i))
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			h := newHarness(t, testConfig(t))
			var n uintptr
			for i := range 30 { // below the scanner's and the telnet sweep's thresholds
				p := k.pkt(i)
				n = h.e.StateBytes(&p)
				h.feed(p)
			}
			st := h.srcs.Get(addr(src))
			if st == nil {
				t.Fatal("no state for the source")
			}
			b := unsafe.Slice((*byte)(unsafe.Pointer(st)), unsafe.Sizeof(*st))
			for i := n; i < uintptr(len(b)); i++ {
				if b[i] != 0 {
					t.Fatalf("byte %d of the state written, past StateBytes %d of %d: %s", i, n, len(b), fieldAt(i))
				}
			}
			if k.name != "ACK" && k.name != "RST" && k.name != "SYN-ACK" && n == unsafe.Offsetof(st.Scan) {
				t.Fatalf("a probe's StateBytes %d leaves out the scanner's window", n)
			}
		})
	}
}

// fieldAt names the SourceState window holding byte i.
func fieldAt(i uintptr) string {
	var st SourceState
	switch {
	case i >= unsafe.Offsetof(st.Tel):
		return fmt.Sprintf("Tel+%d", i-unsafe.Offsetof(st.Tel))
	case i >= unsafe.Offsetof(st.FP):
		return fmt.Sprintf("FP+%d", i-unsafe.Offsetof(st.FP))
	case i >= unsafe.Offsetof(st.Scan):
		return fmt.Sprintf("Scan+%d", i-unsafe.Offsetof(st.Scan))
	}
	return "head"
}
