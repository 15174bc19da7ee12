package main

import (
	"net/http"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/snapshot"
	"github.com/telescope-dev/telescope/studyhtml"
)

// overviewTop is how many ports the landing page lists per kind.
const overviewTop = 15

// overview maps a pipeline snapshot — the one the metrics collector reads — to the
// landing page's plain values.
func overview(sensor string, s *snapshot.Snapshot) studyhtml.Overview {
	t := s.Totals
	o := studyhtml.Overview{
		Sensor: sensor, Version: buildVersion(), Now: time.Now(),
		Packets:          map[string]uint64{},
		TCPFlags:         map[string]uint64{},
		ActiveDetections: map[string]int64{},
		DetectionsTotal:  map[string]uint64{},
		Tracked:          s.Tracked, Evictions: s.Evictions,
	}
	if s.LastPacketTS != 0 {
		o.LastPacket = time.Unix(0, s.LastPacketTS).UTC()
	}
	for v := range t.Packets {
		for pi, name := range aggregate.ProtoNames {
			o.Packets[name] += t.Packets[v][pi]
		}
	}
	for f, n := range t.Flags {
		if n != 0 {
			o.TCPFlags[packet.FlagsName(uint8(f))] = n
		}
	}
	for _, p := range aggregate.TopPorts(&t.Ports[aggregate.PortsTCPSYN], overviewTop) {
		o.TopSYNPorts = append(o.TopSYNPorts, studyhtml.PortCount{Port: p.Port, Packets: p.Packets})
	}
	for _, p := range aggregate.TopPorts(&t.Ports[aggregate.PortsUDP], overviewTop) {
		o.TopUDPPorts = append(o.TopUDPPorts, studyhtml.PortCount{Port: p.Port, Packets: p.Packets})
	}
	if w := s.Window; w != nil {
		o.Last = studyhtml.Window{Start: time.Unix(0, w.Start).UTC(), End: time.Unix(0, w.End).UTC(),
			Packets: w.Packets, Sources: w.Unique}
		for _, src := range w.Top {
			o.Last.TopSources = append(o.Last.TopSources, studyhtml.SourceCount{Addr: src.Addr.String(), Packets: src.Packets})
		}
	}
	for _, d := range s.Detectors {
		o.ActiveDetections[d.Name] = d.Active
		for _, c := range d.Started {
			o.DetectionsTotal[d.Name] += c.Count
		}
	}
	for _, c := range s.Captures {
		o.Captures = append(o.Captures, studyhtml.Capture{Interface: c.Interface, Up: c.Up,
			Packets: c.Packets, KernelDrops: c.KernelDrops, QueueFreezes: c.QueueFreezes})
	}
	return o
}

// landingPage serves the live overview of the pipeline's snapshots at "/", refreshed by
// the browser every few seconds.
func landingPage(sensor string, snap func() *snapshot.Snapshot) http.Handler {
	return studyhtml.LiveHandler(func() studyhtml.Overview { return overview(sensor, snap()) }, 5*time.Second)
}
