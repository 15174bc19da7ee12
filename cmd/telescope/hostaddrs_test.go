package main

import (
	"os"
	"testing"

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
