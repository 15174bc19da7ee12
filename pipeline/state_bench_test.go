package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/packet"
)

// BenchmarkCheckpoint1M measures a checkpoint of 1 M tracked sources (2 workers): the
// longest time a worker is held while its state is copied (the capture pause), the whole
// checkpoint (copy, write, fsync, rename) and the file size; then the restore.
//
//	go test -run '^$' -bench Checkpoint1M -benchtime 3x ./pipeline/
func BenchmarkCheckpoint1M(b *testing.B) {
	cfg, err := configs.Parse([]byte("dark_prefixes: [10.0.0.0/8]\nlimits: {max_sources: 1000000}\n"), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(Options{Config: cfg, Workers: 2})
	if err != nil {
		b.Fatal(err)
	}
	var h packet.Header
	h.Result, h.IPVersion, h.Proto, h.L4, h.TCPFlags, h.DstPort = packet.ResultIP, 4, packet.ProtoTCP, true, 0x02, 23
	h.Dst = packet.AddrFrom4([]byte{10, 1, 2, 3})
	for i := range 1_000_000 {
		h.Src = packet.AddrFrom4([]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		h.TS = int64(1e18) + int64(i)*1000
		p.workers[packet.WorkerIndex(h.AffinityKey(), 2)].handle(&h)
	}
	path := filepath.Join(b.TempDir(), "state")
	var st CheckpointStats
	b.ResetTimer()
	for range b.N {
		if st, err = p.Checkpoint(path); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(st.Sources), "sources")
	b.ReportMetric(float64(st.Bytes)/1e6, "MB")
	b.ReportMetric(float64(st.Pause.Microseconds())/1e3, "pause-ms")
	b.ReportMetric(float64(st.Elapsed.Microseconds())/1e3, "checkpoint-ms")
	q, _ := New(Options{Config: cfg, Workers: 2})
	if _, err := q.RestoreState(path, RestoreOptions{}); err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil {
		b.Logf("file %d bytes, %d sources restored", fi.Size(), q.workers[0].sources.Len()+q.workers[1].sources.Len())
	}
}
