package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/logq"
)

// FuzzRestoreSections: whatever a checkpoint's sections hold (past its checksums: a state
// written by a buggy or other build), restoring them either fails with an error or gives
// a pipeline that replays on and ends its episodes; it never panics (run restores at
// start: a panic there would stop the daemon at every restart). The seeds are the
// sections of a real checkpoint (sources with open windows, episodes, hotspot windows in
// parts), the surge's or the hotspot's section replaced by the input. The workers'
// section, megabytes of counters and tables (too large for the fuzzer to mutate at any
// useful rate), is damaged by TestRestoreDamagedWorkerSection instead.
//
//	go test -run '^$' -fuzz FuzzRestoreSections -fuzztime 5m ./pipeline/
func FuzzRestoreSections(f *testing.F) {
	cfg, names, seed, next := restoreSeed(f)
	for i := 1; i < 3; i++ {
		b := seed[i]
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)/2])
		f.Add(uint8(i+4), b) // resumed after a downtime
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		secs := seed
		secs[1+which%2] = b
		restoreOn(t, cfg, names, secs, which&4 != 0, next)
	})
}

// TestRestoreDamagedSections damages each section of a real checkpoint (past its
// checksums) in fixed ways, each section 16 times truncated and 16 times with one byte
// changed, spread over it: every restore fails with an error or gives a pipeline that
// replays on (restoreOn), and some of the damaged states are refused.
func TestRestoreDamagedSections(t *testing.T) {
	cfg, names, seed, next := restoreSeed(t)
	rng := rand.New(rand.NewPCG(9, 9))
	refused := 0
	for i := range seed {
		for k := range 32 {
			secs := seed
			b := bytes.Clone(seed[i])
			at := k % 16 * len(b) / 16
			if k < 16 {
				b = b[:at]
			} else {
				at += rng.IntN(max(len(b)/16, 1))
				b[at] ^= byte(1 + rng.IntN(255))
			}
			secs[i] = b
			if !restoreOn(t, cfg, names, secs, k%2 == 1, next) {
				refused++
			}
		}
	}
	if refused < 16 {
		t.Errorf("only %d of %d damaged states refused: the checks of a restore catch little", refused, 32*len(seed))
	}
	t.Logf("%d of %d damaged states refused, the others replayed on", refused, 32*len(seed))
}

// restoreSeed replays the first 35 s of evalCapture (sources with open windows, episodes,
// hotspot windows in parts) into one worker keeping its state, checkpoints it and returns
// the configuration, the sections' names and bytes, and a file of the next 5 s.
func restoreSeed(t testing.TB) (*configs.Config, [3]string, [3][]byte, string) {
	t.Helper()
	cfg, err := configs.Parse([]byte(hotDark+"window: 10s\nlimits: {max_sources: 512, max_destinations: 64}\ndetect:\n  hotspot: {min_sources: 30}\n"), "fuzz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(evalCapture(t))
	if err != nil {
		t.Fatal(err)
	}
	// The state of the first 35 s; the next 5 s replayed on what was restored.
	first, rest := splitPcap(t, data, hotT0.Add(35*time.Second))
	next, _ := splitPcap(t, rest, hotT0.Add(40*time.Second))
	files := []string{filepath.Join(t.TempDir(), "first.pcap"), filepath.Join(t.TempDir(), "next.pcap")}
	for i, b := range [][]byte{first, next} {
		if err := os.WriteFile(files[i], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(Options{Config: cfg, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.SetKeepState(true)
	if res := p.Replay(context.Background(), ReplayOptions{Files: files[:1]}); len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	if _, err := p.Checkpoint(filepath.Join(t.TempDir(), "state")); err != nil {
		t.Fatal(err)
	}
	names := [3]string{"worker/0", "surge", "hotspot"}
	return cfg, names, [3][]byte{p.workers[0].enc.Bytes(), p.surgeEnc.Bytes(), p.hotEnc.Bytes()}, files[1]
}

// restoreLog is the pipelines' logger of restoreOn: one log queue for all (a queue's
// writer runs for the life of the process, so a queue per pipeline, ~1.6 MiB each, grew
// a fuzzing process by that much per execution until it ran out of memory).
var restoreLog = zap.New(logq.New(zapcore.NewNopCore(), logq.Options{}).Core())

// restoreOn loads the sections secs (named names) into a new pipeline of one worker under
// cfg (resumed an hour after evalCapture's start, or as --state-in) and, if they are
// accepted, replays next on it: a refusal is fine (the daemon starts fresh), a panic or a
// failing replay is not.
func restoreOn(t testing.TB, cfg *configs.Config, names [3]string, secs [3][]byte, resume bool, next string) (accepted bool) {
	t.Helper()
	q, err := New(Options{Config: cfg, Workers: 1, Logger: restoreLog})
	if err != nil {
		t.Fatal(err)
	}
	o := RestoreOptions{}
	if resume {
		o = RestoreOptions{Resume: true, Now: hotT0.Add(time.Hour).UnixNano()}
	}
	var info RestoreInfo
	err = q.loadSections(func(name string) (*checkpoint.Decoder, error) {
		for i, n := range names {
			if n == name {
				return checkpoint.NewDecoder(secs[i]), nil
			}
		}
		return nil, fmt.Errorf("no section %q", name)
	}, o, &info)
	if err != nil {
		return false
	}
	if res := q.Replay(context.Background(), ReplayOptions{Files: []string{next}}); len(res.Errors) != 0 {
		t.Fatalf("replaying on the restored state: %v", res.Errors)
	}
	return true
}
