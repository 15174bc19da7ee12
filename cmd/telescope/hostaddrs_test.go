package main

import (
	"context"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestHostAddrsLog: the host's addresses are announced as not dark only when no dark prefix
// is configured; with dark prefixes the line would be wrong (they are not used).
func TestHostAddrsLog(t *testing.T) {
	if addrs, err := hostAddrs(); err != nil || len(addrs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no host addresses to read (%v): this test needs at least one", err)
		}
		t.Skipf("SKIPPED: no host addresses to read here (%v)", err)
	}
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{"", 1},
		{"dark_prefixes: [203.0.113.0/24]\n", 0},
	} {
		cfg, err := configs.Parse([]byte(tc.yaml), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		core, logs := observer.New(zap.InfoLevel)
		updateHostAddrs(p, zap.New(core))
		if n := logs.FilterMessage("host addresses are not dark (no dark prefix is configured)").Len(); n != tc.want {
			t.Errorf("config %q: %d lines saying the host addresses are not dark, want %d: %v", tc.yaml, n, tc.want, logs.All())
		}
	}
}

// TestHostAddrsReadOnlyWithoutDarkPrefixes: the watch reads the host's addresses at each
// tick while no dark prefix is configured, not while dark prefixes are (they would not be
// used), and again once a reload removes them.
func TestHostAddrsReadOnlyWithoutDarkPrefixes(t *testing.T) {
	parse := func(yaml string) *configs.Config {
		t.Helper()
		cfg, err := configs.Parse([]byte(yaml), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	p, err := pipeline.New(pipeline.Options{Config: parse("dark_prefixes: [203.0.113.0/24]\n"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	read := func() ([]netip.Addr, error) {
		reads.Add(1)
		return []netip.Addr{netip.MustParseAddr("192.0.2.7")}, nil
	}
	tick := make(chan time.Time) // unbuffered: a tick is taken once the one before is done
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchHostAddrsOn(ctx, p, zap.NewNop(), tick, read)
	}()
	ticks := func(n int) {
		for range n {
			tick <- time.Now()
		}
	}
	ticks(4)
	if n := reads.Load(); n != 0 {
		t.Errorf("with dark prefixes: %d reads in 4 ticks, want 0", n)
	}
	if err := p.Reload(parse("")); err != nil {
		t.Fatal(err)
	}
	ticks(4)
	cancel()
	<-done // the fourth tick's read is done: it was taken before the cancel
	if n := reads.Load(); n != 4 {
		t.Errorf("without dark prefixes: %d reads in 4 ticks, want 4", n)
	}
}
