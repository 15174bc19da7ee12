package main

import (
	"context"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/pipeline"
)

// hostAddrsEvery is how often the live daemon re-reads the host's addresses.
const hostAddrsEvery = 2 * time.Second

// hostAddrs returns the addresses of every interface of the host.
func hostAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// updateHostAddrs reads the host's addresses and publishes them to the pipeline (not dark
// while no dark prefix is configured); it logs a change.
func updateHostAddrs(p *pipeline.Pipeline, log *zap.Logger) { publishHostAddrs(p, log, hostAddrs) }

// publishHostAddrs is updateHostAddrs with the addresses read by read.
func publishHostAddrs(p *pipeline.Pipeline, log *zap.Logger, read func() ([]netip.Addr, error)) {
	addrs, err := read()
	if err != nil {
		log.Warn("cannot read the host's addresses", zap.Error(err))
		return
	}
	changed, err := p.SetHostAddrs(addrs)
	if err != nil {
		log.Warn("cannot publish the host's addresses", zap.Error(err))
		return
	}
	switch {
	case changed && p.HostAddrsApply():
		log.Info("host addresses are not dark (no dark prefix is configured)", zap.Stringers("addresses", addrs))
	case changed:
		log.Debug("host addresses read; only the configured dark prefixes count", zap.Stringers("addresses", addrs))
	}
}

// watchHostAddrs re-reads the host's addresses every hostAddrsEvery until ctx ends.
func watchHostAddrs(ctx context.Context, p *pipeline.Pipeline, log *zap.Logger) {
	t := time.NewTicker(hostAddrsEvery)
	defer t.Stop()
	watchHostAddrsOn(ctx, p, log, t.C, hostAddrs)
}

// watchHostAddrsOn re-reads the host's addresses (read) at each tick while no dark prefix
// is configured (HostAddrsApply): with dark prefixes they are not used, and each read was
// a netlink dump of about seven system calls, each of which woke the runtime's sysmon
// into 20 µs ticks for a millisecond (as the log writes did, logq.Options.FlushDelay). A
// reload that removes the dark prefixes finds the addresses read at start or before;
// the next tick reads them again, as an address change is found.
func watchHostAddrsOn(ctx context.Context, p *pipeline.Pipeline, log *zap.Logger, tick <-chan time.Time, read func() ([]netip.Addr, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if p.HostAddrsApply() {
				publishHostAddrs(p, log, read)
			}
		}
	}
}
