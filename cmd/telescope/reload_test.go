package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/metrics"
	"github.com/telescope-dev/telescope/pipeline"
)

// TestReloadNamesChangesAndPendingRestartKeys: every reload logs the keys it changed, and
// the restart-only keys changed since the start, by their exact name, until the restart
// (a second reload does not forget them).
func TestReloadNamesChangesAndPendingRestartKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("window: 5m\n")
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 1, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cf: commonFlags{config: path}, cfg: cfg, started: cfg, p: p, log: log,
		level: zap.NewAtomicLevel(), status: &metrics.ReloadStatus{}}

	check := func(step string, changed, pending []string) {
		t.Helper()
		var gotChanged, gotPending []string
		for _, e := range logs.TakeAll() {
			if e.Message == "config reloaded" {
				m := e.ContextMap()
				gotChanged = toStrings(m["changed"])
				gotPending = toStrings(m["pending_restart"])
			}
		}
		if !reflect.DeepEqual(gotChanged, changed) || !reflect.DeepEqual(gotPending, pending) {
			t.Errorf("%s: changed %q pending %q, want %q and %q", step, gotChanged, gotPending, changed, pending)
		}
	}
	write("window: 5m\ncapture:\n  snaplen: 512\n")
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	check("snaplen", []string{}, []string{"capture.snaplen"})
	write("window: 10m\ncapture:\n  snaplen: 512\ndetect:\n  scanner:\n    min_packets: 50\n")
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	check("window", []string{"window", "detect.scanner.min_packets"}, []string{"capture.snaplen"})
}

func toStrings(v any) []string {
	out := []string{}
	switch s := v.(type) {
	case []string:
		out = append(out, s...)
	case []any:
		for _, x := range s {
			out = append(out, x.(string))
		}
	}
	return out
}

// TestCheckConfigRefusesWhatRunRefuses: check-config fails on what only run used to
// find out: capture.method pcap in the static build, a listen address that cannot be
// resolved.
func TestCheckConfigRefusesWhatRunRefuses(t *testing.T) {
	if openPcapSource != nil {
		t.Skip("the pcap build can capture with method pcap")
	}
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte("capture:\n  method: pcap\nweb:\n  listen_address: no-such-host.invalid:9813\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := telescope(t, "check-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{
		path + ": capture.method: pcap needs a binary built with cgo and libpcap",
		path + `: web.listen_address: "no-such-host.invalid:9813" cannot be listened on`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestReloadKeepsRestartOnlyValues: a reload applies none of the restart-only keys it
// names as pending, not even those the pipeline could read again (limits): the hotspot's
// shared limits took a reloaded limits.max_destinations at once while the workers kept the
// started one, and checkpoints described the state with the reloaded limits, so a restart
// under the started configuration refused a state that matched it.
func TestReloadKeepsRestartOnlyValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.yaml")
	started := "dark_prefixes: [203.0.113.0/24]\nlimits: {max_sources: 4096, max_destinations: 512}\n"
	if err := os.WriteFile(path, []byte(started), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 2, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cf: commonFlags{config: path}, cfg: cfg, started: cfg, p: p, log: zap.NewNop(),
		level: zap.NewAtomicLevel(), status: &metrics.ReloadStatus{}}
	if err := os.WriteFile(path, []byte("dark_prefixes: [203.0.113.0/24]\nlimits: {max_sources: 8192, max_destinations: 1024}\nwindow: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	if _, err := p.Checkpoint(state); err != nil {
		t.Fatal(err)
	}
	// A restart under the started configuration takes the state.
	q, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 2, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.RestoreState(state, pipeline.RestoreOptions{}); err != nil {
		t.Fatalf("the state of a daemon started with its configuration, after a reload naming restart-only keys, does not restore with that configuration: %v", err)
	}
}
