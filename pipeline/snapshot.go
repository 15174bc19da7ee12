package pipeline

import (
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/snapshot"
)

// Snapshot reads the pipeline's state now. It never blocks a worker: everything comes
// from atomics, published window summaries and the rarely written detector maps.
func (p *Pipeline) Snapshot() *snapshot.Snapshot {
	rc := p.rc.Load()
	s := &snapshot.Snapshot{
		Totals:       p.Totals(),
		WindowLength: rc.cfg.Window.String(),
		TopPorts:     rc.cfg.Metrics.TopPorts,
		WatchPorts:   rc.cfg.Metrics.WatchPorts,
	}
	t := s.Totals
	for i := range rc.prefixes.Slots() {
		s.Prefixes = append(s.Prefixes, snapshot.NamedCount{Name: rc.prefixes.Name(i), Count: rc.prefixes.Count(i, t)})
	}
	s.NotDark = t.Prefix[0]
	s.NoDarkPrefixes = len(rc.cfg.DarkPrefixes) == 0
	s.Window = p.lastWindow()
	hh := &p.hot.Hist
	for i := range s.DestinationsPerWindow.Counts {
		s.DestinationsPerWindow.Counts[i] = hh.Counts[i].Load()
	}
	s.DestinationsPerWindow.Sum, s.DestinationsPerWindow.Count = hh.Sum.Load(), hh.Count.Load()
	for _, w := range p.workers {
		for i := range s.SourcesPerWindow.Counts {
			s.SourcesPerWindow.Counts[i] += w.Hist.Counts[i].Load()
		}
		s.SourcesPerWindow.Sum += w.Hist.Sum.Load()
		s.SourcesPerWindow.Count += w.Hist.Count.Load()
		s.WorkerFrames = append(s.WorkerFrames, w.C.FrameTotal())
		s.Tracked += w.tracked.Load() + w.Det.Tracked.Load()
		s.Evictions += w.evictions.Load() + w.Det.Evictions.Load()
		s.DetectionShed += w.shedTotal.Load()
	}
	ex := p.excludedCounts() // before the engines' counters (who.go)
	p.snapDetectors(s)
	p.snapWho(s, ex)
	for _, c := range p.captureSources() {
		s.Captures = append(s.Captures, c.Stats())
	}
	s.LastPacketTS = t.LastTS
	s.LogEntriesDropped = p.LogEntriesDropped()
	return s
}

func (p *Pipeline) snapDetectors(s *snapshot.Snapshot) {
	sum := func(get func(w *worker) uint64) uint64 {
		var n uint64
		for _, w := range p.workers {
			n += get(w)
		}
		return n
	}
	for di, d := range detect.Descriptors() {
		ds := snapshot.DetectorSnapshot{Name: d.Name}
		for _, w := range p.workers {
			ds.Active += w.Det.Active[di].Load()
		}
		if d.Name == detect.TelnetSurge { // one detector over all workers
			ds.Active = p.surge.Active()
		}
		for ci, class := range d.Classes {
			n := sum(func(w *worker) uint64 { return w.Det.Detections[di][ci].Load() })
			if d.Name == detect.TelnetSurge {
				n = p.surge.Detections()
			}
			ds.Started = append(ds.Started, snapshot.NamedCount{Name: class, Count: n})
		}
		s.Detectors = append(s.Detectors, ds)
	}
	s.TelnetSources = p.surge.LastBucketSources()
	for i, tool := range detect.Tools {
		s.FingerprintPackets = append(s.FingerprintPackets,
			snapshot.NamedCount{Name: tool, Count: sum(func(w *worker) uint64 { return w.Det.FingerprintPackets[i].Load() })})
	}
	for i, kind := range detect.PayloadKinds {
		s.UDPThenSYNSources = append(s.UDPThenSYNSources,
			snapshot.NamedCount{Name: kind, Count: sum(func(w *worker) uint64 { return w.Det.UDPThenSYNSources[i].Load() })})
	}
	for i, kind := range detect.BackscatterKinds {
		s.BackscatterPackets = append(s.BackscatterPackets,
			snapshot.NamedCount{Name: kind, Count: sum(func(w *worker) uint64 { return w.Det.BackscatterPackets[i].Load() })})
	}
	// The ports the engines count: the first MaxWatchPorts distinct ones, in config order.
	seen := map[uint16]bool{}
	for _, port := range s.WatchPorts {
		if seen[port] || len(seen) == detect.MaxWatchPorts {
			continue
		}
		seen[port] = true
		s.WatchedPortScanners = append(s.WatchedPortScanners,
			snapshot.PortEpisodes{Port: port, Episodes: sum(func(w *worker) uint64 { return w.Det.WatchedScanners(port) })})
	}
}
