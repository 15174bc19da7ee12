package floodgen

import (
	"bytes"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/packet"
)

// TestWriteSwarm: the swarm's pcap decodes to N SYN probes from exactly Bots sources outside
// the dark /16, to addresses of 203.0.0.0/16, every other one to TCP/23, none with Mirai's
// fingerprint, spread over the span.
func TestWriteSwarm(t *testing.T) {
	var buf bytes.Buffer
	sw := Swarm{Start: Start, N: 10000, Bots: 300, Span: time.Minute, Seed: 3}
	if err := WriteSwarm(&buf, sw); err != nil {
		t.Fatal(err)
	}
	f, err := capture.NewReader(&buf, "swarm.pcap")
	if err != nil {
		t.Fatal(err)
	}
	srcs := map[packet.Addr]bool{}
	n, telnet := 0, 0
	var first, last int64
	for {
		rec, err := f.Next()
		if err != nil {
			break
		}
		var h packet.Header
		packet.Decode(rec.Link, rec.Data, &h)
		h.TS = rec.TS
		dst := h.Dst.V4()
		if h.Proto != packet.ProtoTCP || !h.SYNProbe() || dst>>16 != 203<<8 {
			t.Fatalf("packet %d: %+v, want a SYN probe to 203.0.0.0/16", n, h)
		}
		if h.Src.V4()>>24 != 11 {
			t.Fatalf("packet %d from %v, want 11.0.0.0/8", n, h.Src)
		}
		if h.Seq == dst {
			t.Fatalf("packet %d carries Mirai's fingerprint", n)
		}
		if h.DstPort == 23 {
			telnet++
		}
		srcs[h.Src] = true
		if n == 0 {
			first = h.TS
		}
		last = h.TS
		n++
	}
	if n != sw.N || len(srcs) != sw.Bots || telnet < sw.N/2 || telnet > sw.N/2+sw.N/60000+2 {
		t.Errorf("%d packets from %d sources, %d to TCP/23: want %d from %d, half to TCP/23", n, len(srcs), telnet, sw.N, sw.Bots)
	}
	if span := time.Duration(last - first); span < 59*time.Second || span > time.Minute {
		t.Errorf("packets over %v, want a minute", span)
	}
}
