//go:build pcap && cgo

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/pipeline"
)

// dltRaw is libpcap's DLT_RAW on Linux: frames that start at the IP header, as the
// AF_PACKET rings deliver them to a filter.
const dltRaw = layers.LinkType(12)

// In the pcap build, capture.method: pcap captures through libpcap, and libpcap's compiler
// takes any pcap-filter expression, for either method.
func init() {
	openPcapSource = func(p *pipeline.Pipeline, cfg *configs.Config) liveSource {
		c := cfg.Capture
		return p.NewStream(c.Interface, func() (pipeline.RecordSource, error) {
			return capture.OpenPcap(c.Interface, c.Snaplen, c.RingMB<<20, c.Filter, 100*time.Millisecond)
		}, func(err error) bool { return errors.Is(err, capture.ErrPcapTimeout) })
	}
	compileFilter = libpcapCompile
	configs.FilterCheck = func(expr string) error {
		// Valid for the rings (IP at offset 0) or for libpcap on an Ethernet interface;
		// the capture reports the expression again at open if it does not fit the one used.
		_, err := libpcapCompile(expr, 262144)
		if err != nil {
			if _, e := pcap.CompileBPFFilter(layers.LinkTypeEthernet, 262144, expr); e == nil {
				return nil
			}
		}
		return err
	}
}

func libpcapCompile(expr string, snaplen uint32) ([]bpf.RawInstruction, error) {
	ins, err := pcap.CompileBPFFilter(dltRaw, int(snaplen), expr)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	out := make([]bpf.RawInstruction, len(ins))
	for i, in := range ins {
		out[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out, nil
}
