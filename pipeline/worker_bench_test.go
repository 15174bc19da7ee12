package pipeline

import (
	"io"
	"os"
	"testing"

	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/packet"
)

// BenchmarkWorkerDay times one worker alone on a day decoded beforehand: no reader, no
// dispatch, no second worker on the other core, so that a change to the per-packet path
// shows with less of the noise of a whole replay. Same files and variables as
// BenchmarkReplayDay (TELESCOPE_BENCH_PCAP, TELESCOPE_BENCH_DARK):
//
//	go test -run '^$' -bench WorkerDay -benchtime 3x ./pipeline/
func BenchmarkWorkerDay(b *testing.B) {
	path := os.Getenv("TELESCOPE_BENCH_PCAP")
	if path == "" {
		path = benchDay(b)
	}
	y := ""
	if dark := os.Getenv("TELESCOPE_BENCH_DARK"); dark != "" {
		y = "dark_prefixes: [" + dark + "]\n"
	}
	cfg, err := configs.Parse([]byte(y), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	batches := decodeBatches(b, path)
	var packets int
	for _, bt := range batches {
		packets += bt.n
	}
	var ns int64
	for b.Loop() {
		p, err := New(Options{Config: cfg, Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		w := p.workers[0]
		c0 := cpuTime()
		for _, bt := range batches {
			w.processBatch(bt)
		}
		ns += cpuTime() - c0
	}
	b.ReportMetric(float64(ns)/float64(b.N)/float64(packets), "cpu-ns/packet")
}

// decodeBatches reads and decodes the whole file into full batches owned by worker 0.
func decodeBatches(b *testing.B, path string) []*batch {
	f, err := capture.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out []*batch
	var rec capture.Record
	bt := newBatch(1, newBatchHeaders(1), 0)
	for {
		err := f.Read(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		h := &bt.h[bt.n]
		h.TS, h.WireLen = rec.TS, rec.WireLen
		packet.Decode(rec.Link, rec.Data, h)
		bt.now = max(bt.now, rec.TS)
		bt.own[0] = append(bt.own[0], uint16(bt.n))
		if bt.n++; bt.n == batchSize {
			out = append(out, bt)
			now := bt.now
			bt = newBatch(1, newBatchHeaders(1), 0)
			bt.now = now
		}
	}
	if bt.n > 0 {
		out = append(out, bt)
	}
	return out
}
