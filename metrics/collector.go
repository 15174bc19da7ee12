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
	"github.com/telescope-dev/telescope/capture"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
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
	capture.FlagSYN, capture.FlagSYN | capture.FlagACK, capture.FlagRST,
	capture.FlagRST | capture.FlagACK, capture.FlagACK, capture.FlagFIN | capture.FlagACK,
	capture.FlagPSH | capture.FlagACK, capture.FlagSYN | capture.FlagECE | capture.FlagCWR, 0,
}

// Collector is a prometheus.Collector over a pipeline.
type Collector struct {
	p       *pipeline.Pipeline
	reload  *ReloadStatus
	version string

	mu     sync.Mutex
	sticky [aggregate.NumPortKinds]map[uint16]bool // ports exposed once stay exposed

	packets, bytes, frames, flags, ports, prefix                *prometheus.Desc
	uniq, hist, top, detTotal, detActive, telnet, fp, uts, bs   *prometheus.Desc
	capPackets, capDrops, capUp, workerPkts, reloadOK, reloadTS *prometheus.Desc
	tracked, evictions, lastTS, buildInfo                       *prometheus.Desc
}

// Options configure a Collector.
type Options struct {
	Sensor   string
	Version  string
	Pipeline *pipeline.Pipeline
	Reload   *ReloadStatus
}

// NewCollector returns a collector; register it on a registry of the caller's.
func NewCollector(o Options) *Collector {
	cl := prometheus.Labels{"sensor": o.Sensor}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("telescope_"+name, help, labels, cl)
	}
	c := &Collector{p: o.Pipeline, reload: o.Reload, version: o.Version}
	if c.reload == nil {
		c.reload = &ReloadStatus{}
	}
	for k := range c.sticky {
		c.sticky[k] = map[uint16]bool{}
	}
	c.packets = d("packets_total", "IP packets received, by IP version and protocol.", "ip", "protocol")
	c.bytes = d("bytes_total", "Wire bytes of IP packets received, by IP version and protocol.", "ip", "protocol")
	c.frames = d("frames_total", "Frames read, by decode result.", "result")
	c.flags = d("tcp_flags_packets_total", "TCP packets by flag combination (set bits in the order FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).", "flags")
	c.ports = d("dst_port_packets_total", "Packets by destination port: SYN probes (tcp_syn) and UDP datagrams (udp); the busiest and watched ports, the rest as port=\"other\".", "kind", "port")
	c.prefix = d("prefix_packets_total", "IP packets by dark destination prefix (not_dark: outside every configured prefix).", "prefix")
	c.uniq = d("sources_unique", "Distinct source addresses in the last closed window.", "window")
	c.hist = d("source_packets_per_window", "Packets per source per closed window.")
	c.top = d("top_source_packets", "Packets of the busiest sources in the last closed window.", "rank", "src")
	c.detTotal = d("detections_total", "Detection episodes started, by detector and class.", "detector", "class")
	c.detActive = d("detections_active", "Detection episodes in progress, by detector.", "detector")
	c.telnet = d("telnet_sources", "Distinct sources sending SYN probes to the telnet ports in the last complete surge bucket.")
	c.fp = d("fingerprint_packets_total", "SYN probes carrying a scanning tool's fingerprint.", "tool")
	c.uts = d("udp_then_syn_sources_total", "UDP-then-SYN (BitTorrent-like) detections by UDP payload kind.", "payload")
	c.bs = d("backscatter_packets_total", "Backscatter packets (replies of DoS victims to spoofed sources) by kind.", "kind")
	c.capPackets = d("capture_packets_total", "Packets received by the capture sockets (records read, when replaying).", "interface")
	c.capDrops = d("capture_drops_total", "Packets dropped before the workers saw them: by the kernel (ring full) or in a queue.", "interface", "where")
	c.capUp = d("capture_up", "1 while the capture socket is open and bound (while the input is read, when replaying).", "interface")
	c.workerPkts = d("worker_packets_total", "Frames handled by each worker.", "worker")
	c.reloadOK = d("config_last_reload_successful", "1 if the last configuration (re)load succeeded.")
	c.reloadTS = d("config_last_reload_success_timestamp_seconds", "Time of the last successful configuration (re)load.")
	c.tracked = d("tracked_sources", "Entries in the bounded per-source tables (sources, UDP flows, DoS victims).")
	c.evictions = d("evictions_total", "Least recently seen entries evicted from the bounded per-source tables.")
	c.lastTS = d("last_packet_timestamp_seconds", "Packet time of the latest packet.")
	c.buildInfo = d("build_info", "Build information; the value is 1.", "version", "goversion")
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.packets, c.bytes, c.frames, c.flags, c.ports, c.prefix, c.uniq, c.hist, c.top,
		c.detTotal, c.detActive, c.telnet, c.fp, c.uts, c.bs, c.capPackets, c.capDrops,
		c.capUp, c.workerPkts, c.reloadOK, c.reloadTS, c.tracked, c.evictions, c.lastTS,
		c.buildInfo,
	} {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Collect implements prometheus.Collector: everything is read now, from atomics and
// published snapshots; nothing here blocks a worker.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	t := c.p.Totals()
	cfg := c.p.Config()

	for v, ip := range []string{"4", "6"} {
		for pi, name := range aggregate.ProtoNames {
			if (v == 0 && pi == aggregate.ProtoICMPv6) || (v == 1 && pi == aggregate.ProtoICMP) {
				continue // folded into other below
			}
			pk, by := t.Packets[v][pi], t.Bytes[v][pi]
			if pi == aggregate.ProtoOther {
				alt := aggregate.ProtoICMPv6
				if v == 1 {
					alt = aggregate.ProtoICMP
				}
				pk += t.Packets[v][alt]
				by += t.Bytes[v][alt]
			}
			counter(ch, c.packets, pk, ip, name)
			counter(ch, c.bytes, by, ip, name)
		}
	}
	for r := capture.Result(0); r < capture.NumResults; r++ {
		counter(ch, c.frames, t.Frames[r], r.String())
	}
	seen := [256]bool{}
	for _, f := range alwaysFlags {
		seen[f] = true
		counter(ch, c.flags, t.Flags[f], capture.FlagsName(f))
	}
	for f, n := range t.Flags {
		if n != 0 && !seen[f] {
			counter(ch, c.flags, n, capture.FlagsName(uint8(f)))
		}
	}
	c.collectPorts(ch, t, cfg.Metrics.TopPorts, cfg.Metrics.WatchPorts)
	for _, s := range c.p.PrefixSlots() {
		counter(ch, c.prefix, t.Prefix[s], c.p.PrefixName(s))
	}
	counter(ch, c.prefix, t.Prefix[0], "not_dark")

	c.collectWindow(ch, cfg.Window.String())
	c.collectDetections(ch)

	for _, s := range c.p.Captures() {
		pk, kd, qd, up := s.Stats()
		iface := s.Interface()
		counter(ch, c.capPackets, pk, iface)
		counter(ch, c.capDrops, kd, iface, "kernel")
		counter(ch, c.capDrops, qd, iface, "queue")
		u := 0.0
		if up {
			u = 1
		}
		gauge(ch, c.capUp, u, iface)
	}
	for i, w := range c.p.Workers() {
		counter(ch, c.workerPkts, w.C.FrameTotal(), strconv.Itoa(i))
	}
	ok := 0.0
	if c.reload.ok.Load() {
		ok = 1
	}
	gauge(ch, c.reloadOK, ok)
	gauge(ch, c.reloadTS, float64(c.reload.ts.Load()))
	tracked, ev := c.p.Tracked()
	gauge(ch, c.tracked, float64(tracked))
	counter(ch, c.evictions, ev)
	gauge(ch, c.lastTS, float64(t.LastTS)/1e9)
	gauge(ch, c.buildInfo, 1, c.version, runtime.Version())
}

// collectPorts exposes the top ports by packets plus the watched ones, and the rest as
// "other". A port once exposed stays exposed (up to twice top_ports), so "other" does not
// drop whenever the ranking shuffles.
func (c *Collector) collectPorts(ch chan<- prometheus.Metric, t *aggregate.Totals, topN int, watch []uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, kind := range aggregate.PortKindNames {
		counts := &t.Ports[k]
		top := pipeline.TopPorts(counts, topN)
		st := c.sticky[k]
		if len(st) > 2*topN {
			st = map[uint16]bool{}
			c.sticky[k] = st
		}
		for _, p := range top {
			st[p.Port] = true
		}
		show := make(map[uint16]bool, len(st)+len(watch))
		for p := range st {
			show[p] = true
		}
		for _, p := range watch {
			show[p] = true
		}
		ports := make([]int, 0, len(show))
		for p := range show {
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
		counter(ch, c.ports, total-listed, kind, "other")
	}
}

func (c *Collector) collectWindow(ch chan<- prometheus.Metric, window string) {
	ws := c.p.LastWindow()
	uniq := 0.0
	if ws != nil {
		uniq = float64(ws.Unique)
		for i, s := range ws.Top {
			gauge(ch, c.top, float64(s.Packets), strconv.Itoa(i+1), s.Addr.String())
		}
	}
	gauge(ch, c.uniq, uniq, window)

	var counts [aggregate.HistBuckets + 1]uint64
	var sum, count uint64
	for _, w := range c.p.Workers() {
		for i := range counts {
			counts[i] += w.Hist.Counts[i].Load()
		}
		sum += w.Hist.Sum.Load()
		count += w.Hist.Count.Load()
	}
	buckets := make(map[float64]uint64, aggregate.HistBuckets)
	var cum uint64
	for i := 0; i < aggregate.HistBuckets; i++ {
		cum += counts[i]
		buckets[float64(uint64(1)<<i)] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.hist, count, float64(sum), buckets)
}

func (c *Collector) collectDetections(ch chan<- prometheus.Metric) {
	ws := c.p.Workers()
	surge := c.p.Surge()
	for di, det := range detect.Detectors {
		var active int64
		for _, w := range ws {
			active += w.Det.Active[di].Load()
		}
		if det == detect.TelnetSurge {
			active = surge.Active()
		}
		gauge(ch, c.detActive, float64(active), det)
		for ci, class := range detect.Classes[det] {
			var n uint64
			for _, w := range ws {
				n += w.Det.Detections[di][ci].Load()
			}
			if det == detect.TelnetSurge {
				n = surge.Detections()
			}
			counter(ch, c.detTotal, n, det, class)
		}
	}
	gauge(ch, c.telnet, float64(surge.LastBucketSources()))
	sumOver := func(get func(w *pipeline.Worker) uint64) uint64 {
		var n uint64
		for _, w := range ws {
			n += get(w)
		}
		return n
	}
	for i, tool := range detect.Tools {
		counter(ch, c.fp, sumOver(func(w *pipeline.Worker) uint64 { return w.Det.FingerprintPackets[i].Load() }), tool)
	}
	for i, kind := range detect.PayloadKinds {
		counter(ch, c.uts, sumOver(func(w *pipeline.Worker) uint64 { return w.Det.UDPThenSYNSources[i].Load() }), kind)
	}
	for i, kind := range detect.BackscatterKinds {
		counter(ch, c.bs, sumOver(func(w *pipeline.Worker) uint64 { return w.Det.BackscatterPackets[i].Load() }), kind)
	}
}
