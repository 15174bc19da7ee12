package pipeline

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/packet"
)

// TestPrefaultSources: limits.prefault commits each worker's source table at its capacity
// (on Linux, where the tables are reserved outside the heap: every slot and the index) and
// changes nothing the pipeline counts: a generated day gives the same report with and
// without it, through tables that fill and evict (max_sources below the day's sources).
func TestPrefaultSources(t *testing.T) {
	path := filepath.Join(t.TempDir(), "day.pcap")
	if _, err := daygen.WriteFile(path, daygen.Options{Seed: 11, Scale: 0.5}); err != nil {
		t.Fatal(err)
	}
	const workers, maxSources = 2, 40000 // 20 000 slots a worker: 7 MiB, reserved on Linux
	var reports [2][]byte
	for i, prefault := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Limits.MaxSources = maxSources
		col := NewEpisodes()
		p, err := New(Options{Config: cfg, Workers: workers, Sink: col})
		if err != nil {
			t.Fatal(err)
		}
		if prefault {
			n, err := p.PrefaultSources()
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if runtime.GOOS == "linux" {
				// Every slot; the index of 65 536 words (512 KiB) is on the heap.
				want = maxSources * int(unsafe.Sizeof(aggregate.TableEntry[packet.Addr, sourceEntry]{}))
			}
			if n != want {
				t.Errorf("PrefaultSources = %d bytes, want %d", n, want)
			}
		}
		res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}})
		if len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		if _, ev := p.Tracked(); ev == 0 {
			t.Fatalf("prefault=%v: no eviction: the tables never filled", prefault)
		}
		if reports[i], err = json.Marshal(p.Report(col)); err != nil {
			t.Fatal(err)
		}
	}
	if string(reports[0]) != string(reports[1]) {
		t.Errorf("the report differs with prefault:\n%.2000s\nwithout:\n%.2000s", reports[1], reports[0])
	}
}
