// Package metrics exposes the pipeline's state as Prometheus metrics: one Collector that
// reads counters and snapshots at scrape time, and the HTTP server of the daemon.
package metrics

import (
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/snapshot"
)

// ReloadStatus is the outcome of the last configuration (re)load.
type ReloadStatus struct {
	ok atomic.Bool
	ts atomic.Int64 // unix seconds of the last success
}

// Set records a (re)load outcome at time t.
func (r *ReloadStatus) Set(ok bool, t time.Time) {
	r.ok.Store(ok)
	if ok {
		r.ts.Store(t.Unix())
	}
}

// alwaysFlags are flag combinations exposed even at zero, so rate() sees their first packets.
var alwaysFlags = []uint8{
	packet.FlagSYN, packet.FlagSYN | packet.FlagACK, packet.FlagRST,
	packet.FlagRST | packet.FlagACK, packet.FlagACK, packet.FlagFIN | packet.FlagACK,
	packet.FlagPSH | packet.FlagACK, packet.FlagSYN | packet.FlagECE | packet.FlagCWR, 0,
}

// Collector is a prometheus.Collector over snapshots of a pipeline: each scrape takes one
// snapshot and maps it to series.
type Collector struct {
	snap    func() *snapshot.Snapshot
	reload  *ReloadStatus
	version string

	mu     sync.Mutex
	sticky [aggregate.NumPortKinds]stickyPorts

	packets, bytes, frames, flags, ports, prefix                *prometheus.Desc
	uniq, hist, top, detTotal, detActive, telnet, fp, uts, bs   *prometheus.Desc
	dstHist                                                     *prometheus.Desc
	capPackets, capDrops, capUp, workerPkts, reloadOK, reloadTS *prometheus.Desc
	tracked, evictions, lastTS, buildInfo, watched, freezes     *prometheus.Desc
	logDropped, shed                                            *prometheus.Desc
	who                                                         whoDescs // who.go
}

// Options configure a Collector.
type Options struct {
	Sensor  string
	Version string
	// Snapshot returns the state to expose (pipeline.Pipeline.Snapshot); called once per
	// scrape.
	Snapshot func() *snapshot.Snapshot
	Reload   *ReloadStatus
}

// NewCollector returns a collector; register it on a registry of the caller's.
func NewCollector(o Options) *Collector {
	cl := prometheus.Labels{"sensor": o.Sensor}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("telescope_"+name, help, labels, cl)
	}
	c := &Collector{snap: o.Snapshot, reload: o.Reload, version: o.Version}
	if c.reload == nil {
		c.reload = &ReloadStatus{}
	}
	c.packets = d("packets_total", "IP packets received, by IP version and protocol.", "ip", "protocol")
	c.bytes = d("bytes_total", "Wire bytes of IP packets received, by IP version and protocol.", "ip", "protocol")
	c.frames = d("frames_total", "Frames read, by decode result.", "result")
	c.flags = d("tcp_flags_packets_total", "TCP packets by flag combination (set bits in the order FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).", "flags")
	c.ports = d("dst_port_packets_total", "Packets by destination port: SYN probes (tcp_syn) and UDP datagrams (udp); the busiest and watched ports, the rest as port=\"other\".", "kind", "port")
	c.prefix = d("prefix_packets_total", "IP packets by dark destination prefix (not_dark: outside every configured prefix).", "prefix")
	c.uniq = d("sources_unique", "Distinct source addresses in the last closed window.", "window")
	c.hist = d("source_packets_per_window", "Packets per source per closed window.")
	c.dstHist = d("destination_packets_per_window", "Packets per dark destination address per closed window (the receiver distribution; counted by the hotspot detector).")
	c.top = d("top_source_packets", "Packets of the busiest sources in the last closed window.", "rank", "src")
	c.detTotal = d("detections_total", "Detection episodes started, by detector and class.", "detector", "class")
	c.detActive = d("detections_active", "Detection episodes in progress, by detector.", "detector")
	c.telnet = d("telnet_sources", "Distinct sources sending SYN probes to the telnet ports in the last complete surge bucket.")
	c.fp = d("fingerprint_packets_total", "SYN probes carrying a scanning tool's fingerprint.", "tool")
	c.uts = d("udp_then_syn_sources_total", "UDP-then-SYN (BitTorrent-like) detections by UDP payload kind.", "payload")
	c.bs = d("backscatter_packets_total", "Backscatter packets (replies of DoS victims to spoofed sources) by kind.", "kind")
	c.watched = d("watched_port_scanners_total", "Scanner episodes that probed a watched port (each episode counted once per port).", "port")
	c.capPackets = d("capture_packets_total", "Packets received by the capture sockets (records read, when replaying).", "interface")
	c.capDrops = d("capture_drops_total", "Packets the kernel dropped before a worker saw them (ring full).", "interface", "where")
	c.freezes = d("capture_queue_freezes_total", "Times the kernel found a capture ring full and froze it until a worker released a block.", "interface")
	c.capUp = d("capture_up", "1 while the capture socket is open and bound (while the input is read, when replaying).", "interface")
	c.workerPkts = d("worker_packets_total", "Frames handled by each worker.", "worker")
	c.reloadOK = d("config_last_reload_successful", "1 if the last configuration (re)load succeeded.")
	c.reloadTS = d("config_last_reload_success_timestamp_seconds", "Time of the last successful configuration (re)load.")
	c.tracked = d("tracked_sources", "Entries in the bounded per-source tables (sources, UDP flows, DoS victims).")
	c.evictions = d("evictions_total", "Least recently seen entries evicted from the bounded per-source tables.")
	c.lastTS = d("last_packet_timestamp_seconds", "Packet time of the latest packet.")
	c.logDropped = d("log_events_dropped_total", "Log entries (detection events included) dropped because the log output was stalled or too slow.")
	c.shed = d("detection_shed_packets_total", "Dark-space packets the detectors skipped because the capture ring was filling up (capture.shed_backlog); the counters counted them.")
	c.buildInfo = d("build_info", "Build information; the value is 1.", "version", "goversion")
	c.who = newWhoDescs(d)
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.packets, c.bytes, c.frames, c.flags, c.ports, c.prefix, c.uniq, c.hist, c.top,
		c.detTotal, c.detActive, c.telnet, c.fp, c.uts, c.bs, c.watched, c.capPackets,
		c.capDrops, c.freezes, c.capUp, c.workerPkts, c.reloadOK, c.reloadTS, c.tracked,
		c.evictions, c.lastTS, c.buildInfo, c.dstHist, c.logDropped, c.shed,
	} {
		ch <- d
	}
	c.who.describe(ch)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Collect implements prometheus.Collector: one snapshot, mapped to series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	t := s.Totals

	for v, ip := range []string{"4", "6"} {
		for pi, name := range aggregate.ProtoNames {
			if (v == 0 && pi == aggregate.IdxICMPv6) || (v == 1 && pi == aggregate.IdxICMP) {
				continue // folded into other below
			}
			pk, by := t.Packets[v][pi], t.Bytes[v][pi]
			if pi == aggregate.IdxOther {
				alt := aggregate.IdxICMPv6
				if v == 1 {
					alt = aggregate.IdxICMP
				}
				pk += t.Packets[v][alt]
				by += t.Bytes[v][alt]
			}
			counter(ch, c.packets, pk, ip, name)
			counter(ch, c.bytes, by, ip, name)
		}
	}
	for r := packet.Result(0); r < packet.NumResults; r++ {
		counter(ch, c.frames, t.Frames[r], r.String())
	}
	seen := [256]bool{}
	for _, f := range alwaysFlags {
		seen[f] = true
		counter(ch, c.flags, t.Flags[f], packet.FlagsName(f))
	}
	for f, n := range t.Flags {
		if n != 0 && !seen[f] {
			counter(ch, c.flags, n, packet.FlagsName(uint8(f)))
		}
	}
	c.collectPorts(ch, t, s.TopPorts, s.WatchPorts)
	for _, p := range s.Prefixes {
		counter(ch, c.prefix, p.Count, p.Name)
	}
	counter(ch, c.prefix, s.NotDark, "not_dark")

	c.collectWindow(ch, s)
	c.collectDetections(ch, s)
	c.collectWho(ch, s)

	for _, cp := range s.Captures {
		counter(ch, c.capPackets, cp.Packets, cp.Interface)
		counter(ch, c.capDrops, cp.KernelDrops, cp.Interface, "kernel")
		counter(ch, c.freezes, cp.QueueFreezes, cp.Interface)
		gauge(ch, c.capUp, boolValue(cp.Up), cp.Interface)
	}
	for i, n := range s.WorkerFrames {
		counter(ch, c.workerPkts, n, strconv.Itoa(i))
	}
	gauge(ch, c.reloadOK, boolValue(c.reload.ok.Load()))
	gauge(ch, c.reloadTS, float64(c.reload.ts.Load()))
	gauge(ch, c.tracked, float64(s.Tracked))
	counter(ch, c.evictions, s.Evictions)
	gauge(ch, c.lastTS, float64(s.LastPacketTS)/1e9)
	counter(ch, c.logDropped, s.LogEntriesDropped)
	counter(ch, c.shed, s.DetectionShed)
	gauge(ch, c.buildInfo, 1, c.version, runtime.Version())
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// stickyPorts is the set of ports exposed for one kind at the last scrape, and the offset
// that keeps "other" continuous when a port joins or leaves that set.
type stickyPorts struct {
	scraped bool
	kept    map[uint16]bool   // ports that were once in the top (bounded, see collectPorts)
	exposed map[uint16]uint64 // kept ∪ watched, with their values at the last scrape
	offset  int64             // "other" = packets to unexposed ports − offset
}

// maxStickyFactor bounds the kept ports of a kind at this many times top_ports.
const maxStickyFactor = 2

// collectPorts exposes the top ports by packets plus the watched ones, and the rest as
// "other". A port once in the top stays exposed while at most twice top_ports are kept;
// past that, the kept ports no longer in the top leave. Every series stays monotonic and
// "other" grows by exactly the packets no exposed series showed: a port that leaves adds
// to "other" only what it received since the last scrape, and a port that joins keeps in
// "other" what it received before (its own series starts at its full count, as a new
// series, whose first value rate() does not count).
func (c *Collector) collectPorts(ch chan<- prometheus.Metric, t *aggregate.Totals, topN int, watch []uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, kind := range aggregate.PortKindNames {
		counts := &t.Ports[k]
		st := &c.sticky[k]
		if st.kept == nil {
			st.kept = map[uint16]bool{}
		}
		top := aggregate.TopPorts(counts, topN)
		inTop := make(map[uint16]bool, len(top))
		for _, p := range top {
			inTop[p.Port] = true
			st.kept[p.Port] = true
		}
		if len(st.kept) > maxStickyFactor*max(topN, 1) {
			for p := range st.kept {
				if !inTop[p] {
					delete(st.kept, p)
				}
			}
		}
		exposed := make(map[uint16]uint64, len(st.kept)+len(watch))
		for p := range st.kept {
			exposed[p] = counts[p]
		}
		for _, p := range watch {
			exposed[p] = counts[p]
		}
		if st.scraped {
			for p, last := range st.exposed {
				if _, ok := exposed[p]; !ok {
					st.offset += int64(last)
				}
			}
			for p, n := range exposed {
				if _, ok := st.exposed[p]; !ok {
					st.offset -= int64(n)
				}
			}
		}
		st.exposed, st.scraped = exposed, true

		ports := make([]int, 0, len(exposed))
		for p := range exposed {
			ports = append(ports, int(p))
		}
		sort.Ints(ports)
		var total, listed uint64
		for _, n := range counts {
			total += n
		}
		for _, p := range ports {
			listed += counts[p]
			counter(ch, c.ports, counts[p], kind, strconv.Itoa(p))
		}
		counter(ch, c.ports, uint64(int64(total-listed)-st.offset), kind, "other")
	}
}

func (c *Collector) collectWindow(ch chan<- prometheus.Metric, s *snapshot.Snapshot) {
	uniq := 0.0
	if ws := s.Window; ws != nil {
		uniq = float64(ws.Unique)
		for i, src := range ws.Top {
			gauge(ch, c.top, float64(src.Packets), strconv.Itoa(i+1), src.Addr.String())
		}
	}
	gauge(ch, c.uniq, uniq, s.WindowLength)

	constHist(ch, c.hist, &s.SourcesPerWindow)
	constHist(ch, c.dstHist, &s.DestinationsPerWindow)
}

func constHist(ch chan<- prometheus.Metric, desc *prometheus.Desc, h *snapshot.Histogram) {
	buckets := make(map[float64]uint64, aggregate.HistBuckets)
	var cum uint64
	for i := 0; i < aggregate.HistBuckets; i++ {
		cum += h.Counts[i]
		buckets[float64(uint64(1)<<i)] = cum
	}
	ch <- prometheus.MustNewConstHistogram(desc, h.Count, float64(h.Sum), buckets)
}

func (c *Collector) collectDetections(ch chan<- prometheus.Metric, s *snapshot.Snapshot) {
	for _, d := range s.Detectors {
		gauge(ch, c.detActive, float64(d.Active), d.Name)
		for _, cl := range d.Started {
			counter(ch, c.detTotal, cl.Count, d.Name, cl.Name)
		}
	}
	gauge(ch, c.telnet, float64(s.TelnetSources))
	for _, n := range s.FingerprintPackets {
		counter(ch, c.fp, n.Count, n.Name)
	}
	for _, n := range s.UDPThenSYNSources {
		counter(ch, c.uts, n.Count, n.Name)
	}
	for _, n := range s.BackscatterPackets {
		counter(ch, c.bs, n.Count, n.Name)
	}
	for _, w := range s.WatchedPortScanners {
		counter(ch, c.watched, w.Episodes, strconv.Itoa(int(w.Port)))
	}
}
