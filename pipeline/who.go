package pipeline

import (
	"math"
	"net/netip"

	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/telescope-dev/telescope/aggregate"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/enrich"
	"github.com/telescope-dev/telescope/snapshot"
)

// who labels what the pipeline reports about its actors, at the moments that allow it
// (episode start and end events, top lists, scrapes) and never per packet: the enrichment
// (known scanning services, country, AS) and the Internet-wide estimates. It keeps the
// label metrics. Events arrive from every worker; one mutex guards everything (events are
// rare, and a reload swaps the databases under it).
type who struct {
	// empty: no list and no database are open (kept with enr): then only scanner and
	// telnet surge entries have anything to do here, and event returns at once for the
	// others, without the lock (a flood's every episode, from every worker).
	empty      atomic.Bool
	mu         sync.Mutex
	enr        *enrich.Enricher
	alertKnown bool
	dark4      uint64 // dark IPv4 addresses watched; 0 = unknown (no IPv4 dark prefix)

	// open holds the scanner episodes in progress, and the known scanners' episodes of any
	// detector: what their start counted (bounded by the engines' episode tables).
	open map[string]openEpisode

	orgPackets     map[string]uint64    // scanner episode packets by known org
	countryPackets map[string]uint64    // scanner episode packets by source country
	knownEpisodes  map[[2]string]uint64 // detector, org -> episodes started
	// excluded counts the episodes left out of the alert series (alert_known: false):
	// started by detector and class, and still active by detector.
	excludedStarted map[[2]string]uint64
	excludedActive  map[string]int64
}

// openEpisode is what a start event counted for its episode.
type openEpisode struct {
	packets  uint64
	org      string
	country  string
	excluded bool
}

// newWho opens the enrichment files of c.
func newWho(c *configs.Config) (*who, error) {
	w := &who{
		open:            map[string]openEpisode{},
		orgPackets:      map[string]uint64{},
		countryPackets:  map[string]uint64{},
		knownEpisodes:   map[[2]string]uint64{},
		excludedStarted: map[[2]string]uint64{},
		excludedActive:  map[string]int64{},
	}
	if err := w.reload(c); err != nil {
		return nil, err
	}
	return w, nil
}

// reload re-opens the enrichment files (so updated databases are picked up); on error the
// old ones stay in use.
func (w *who) reload(c *configs.Config) error {
	e, err := enrich.Open(enrich.Paths{
		KnownScanners: c.Enrich.KnownScanners,
		GeoIPCountry:  c.Enrich.GeoIPCountry,
		GeoIPASN:      c.Enrich.GeoIPASN,
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.enr
	w.enr, w.alertKnown, w.dark4 = e, c.Enrich.AlertKnown, darkIPv4(c.DarkPrefixes)
	w.empty.Store(e.Empty())
	for _, org := range e.Orgs() {
		if _, ok := w.orgPackets[org]; !ok {
			w.orgPackets[org] = 0 // every org of the file has its series from the start
		}
	}
	w.mu.Unlock()
	old.Close()
	return nil
}

// darkIPv4 counts the IPv4 addresses of the dark prefixes (validated not to overlap); 0
// when none is IPv4: the dark IPv4 space is then unknown (an empty dark_prefixes makes
// every destination dark, which says nothing about its size).
func darkIPv4(prefixes []netip.Prefix) uint64 {
	var n uint64
	for _, p := range prefixes {
		if p.Addr().Is4() {
			n += 1 << (32 - p.Bits())
		}
	}
	return n
}

// event labels an event's entry before it is logged and collected.
func (w *who) event(ev *detect.Event) {
	if w.empty.Load() {
		switch ev.Entry.(type) {
		case *detect.ScannerEntry, *detect.TelnetSurgeEntry:
		default:
			return // unlabelled (nothing to look up), and not a scanner: nothing below applies
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var labels *detect.Who
	if l, ok := ev.Entry.(detect.Labelled); ok {
		labels = l.Labels()
		if !w.enr.Empty() { // no list, no database: nothing to look up (a flood's every episode)
			if a, err := netip.ParseAddr(l.Address()); err == nil {
				w.enr.Label(a, labels)
			}
		}
	}
	switch e := ev.Entry.(type) {
	case *detect.ScannerEntry:
		w.estimateScan(e)
	case *detect.TelnetSurgeEntry:
		if w.dark4 > 0 {
			e.BotsEstimated = round(botsEstimate(e.PeakSources, e.PeakProbes, w.dark4))
		}
	}
	if labels == nil {
		return
	}
	scan, _ := ev.Entry.(*detect.ScannerEntry)
	_, victim := ev.Entry.(*detect.BackscatterEntry) // labelled, but no scanner
	if scan == nil && (labels.Org == "" || victim) {
		return
	}
	key := episodeKey(ev)
	if ev.Phase == detect.Start {
		o := openEpisode{country: labels.Country}
		if !victim {
			o.org = labels.Org
		}
		if o.org != "" {
			w.knownEpisodes[[2]string{ev.Detector, o.org}]++
			if !w.alertKnown {
				o.excluded, labels.Silenced = true, true
				w.excludedStarted[[2]string{ev.Detector, ev.Class}]++
				w.excludedActive[ev.Detector]++
			}
		}
		if scan != nil {
			o.packets = scan.Packets
			w.countPackets(o, scan.Packets)
		}
		w.open[key] = o
		return
	}
	o, ok := w.open[key]
	if !ok {
		return
	}
	delete(w.open, key)
	if o.excluded {
		w.excludedActive[ev.Detector]--
		labels.Silenced = true
	}
	if scan != nil && scan.Packets > o.packets {
		w.countPackets(o, scan.Packets-o.packets)
	}
}

// countPackets adds scanner episode packets to the org and country counters.
func (w *who) countPackets(o openEpisode, n uint64) {
	if o.org != "" {
		w.orgPackets[o.org] += n
	}
	if w.enr.HasGeo() {
		c := o.country
		if c == "" {
			c = "unknown"
		}
		w.countryPackets[c] += n
	}
}

// estimateScan extrapolates an IPv4 scanner to the IPv4 space (README, "Internet-wide
// estimates").
func (w *who) estimateScan(e *detect.ScannerEntry) {
	e.ScanEstimates = detect.ScanEstimates{}
	a, err := netip.ParseAddr(e.Src)
	if w.dark4 == 0 || err != nil || !a.Unmap().Is4() {
		return
	}
	secs := float64(e.LastSeen-e.FirstSeen) / 1e9
	if secs <= 0 {
		return
	}
	scale := float64(1<<32) / float64(w.dark4)
	e.ProbesPerSecondEstimated = round(float64(e.Packets) / secs * scale)
	if e.Profile != nil && e.Profile.Addresses > 0 {
		e.IPv4SweepSecondsEstimated = round(secs * float64(w.dark4) / float64(e.Profile.Addresses))
	}
}

// botsEstimate is the number of bots behind a surge bucket in which `sources` distinct
// sources sent `probes` SYN probes to a dark IPv4 space of dark4 addresses. A bot that sends
// k probes in the bucket, each to a uniformly random IPv4 address, sends a Poisson number
// of them, of mean lambda = k x dark4 / 2^32, into the dark space; only the bots with at
// least one are seen, so probes/sources is the mean of a zero-truncated Poisson,
// lambda / (1 - e^-lambda), solved here for lambda, and the bots are sources / (1 - e^-lambda).
// A bot active in the bucket sends at least one probe (lambda >= dark4 / 2^32): with one
// probe per source the estimate is sources x 2^32 / dark4, the most the data allow. Never
// more than 2^32 (one bot per IPv4 address). Bots that differ in speed make this an
// underestimate (the slow ones are seen less often than the mean says).
func botsEstimate(sources, probes, dark4 uint64) float64 {
	if sources == 0 || dark4 == 0 {
		return 0
	}
	const space = 1 << 32
	lo := float64(dark4) / space
	mean := float64(max(probes, sources)) / float64(sources)
	seen := func(l float64) float64 { return -math.Expm1(-l) } // P(a bot is seen)
	lam := lo
	if lo/seen(lo) < mean {
		// lambda / (1 - e^-lambda) increases with lambda and is at least lambda: the root
		// lies in [lo, mean].
		a, b := lo, mean
		for range 200 {
			m := (a + b) / 2
			if m/seen(m) < mean {
				a = m
			} else {
				b = m
			}
		}
		lam = (a + b) / 2
	}
	return min(float64(sources)/seen(lam), space)
}

// round keeps three significant decimals (estimates claim no more).
func round(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	return v
}

// episodeKey identifies an episode between its start and end events.
func episodeKey(ev *detect.Event) string {
	k := ev.Detector + "|"
	switch e := ev.Entry.(type) {
	case *detect.UDPThenSYNEntry:
		return k + e.Src.String() + "|" + e.Dst.String() + "|" + strconv.Itoa(int(e.Port))
	case *detect.ToolEntry:
		return k + e.Src.String() + "|" + e.Tool
	case detect.Labelled:
		return k + e.Address()
	}
	return k
}

// label fills the labels of one address (top sources, groups).
func (w *who) label(addr string, l *detect.Who) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.enr.Label(a, l)
}

// excludedCounts copies the counts of episodes left out of the alert series. The snapshot
// reads them before the engines' counters: an engine counts an episode before its event
// reaches who, so these never exceed the engine counts read afterwards.
type excludedCounts struct {
	started map[[2]string]uint64
	active  map[string]int64
}

func (p *Pipeline) excludedCounts() excludedCounts {
	w := p.who
	w.mu.Lock()
	defer w.mu.Unlock()
	ex := excludedCounts{started: map[[2]string]uint64{}, active: map[string]int64{}}
	for k, n := range w.excludedStarted {
		ex.started[k] = n
	}
	for k, n := range w.excludedActive {
		ex.active[k] = n
	}
	return ex
}

// snapWho adds the label metrics to a snapshot and takes the known scanners' excluded
// episodes (ex, read before the engines' counters) out of the alert series.
func (p *Pipeline) snapWho(s *snapshot.Snapshot, ex excludedCounts) {
	for i, name := range detect.Techniques {
		var n uint64
		for _, wk := range p.workers {
			n += wk.Det.TechniquePackets[i].Load()
		}
		s.TechniquePackets = append(s.TechniquePackets, snapshot.NamedCount{Name: name, Count: n})
	}
	w := p.who
	w.mu.Lock()
	defer w.mu.Unlock()
	s.KnownScannerPackets = sortedCounts(w.orgPackets)
	s.CountryPackets = sortedCounts(w.countryPackets)
	for k, n := range w.knownEpisodes {
		s.KnownScannerEpisodes = append(s.KnownScannerEpisodes, snapshot.DetectorOrgCount{Detector: k[0], Org: k[1], Count: n})
	}
	sort.Slice(s.KnownScannerEpisodes, func(i, j int) bool {
		a, b := s.KnownScannerEpisodes[i], s.KnownScannerEpisodes[j]
		return a.Detector < b.Detector || a.Detector == b.Detector && a.Org < b.Org
	})
	for i := range s.Detectors {
		d := &s.Detectors[i]
		// An episode may end between the two reads: never below 0.
		d.Active = max(d.Active-ex.active[d.Name], 0)
		for j := range d.Started {
			d.Started[j].Count -= min(ex.started[[2]string{d.Name, d.Started[j].Name}], d.Started[j].Count)
		}
	}
	if s.Window != nil && w.enr.HasGeo() {
		s.TopASNs = w.topASNs(s.Window)
	}
}

// topASNs sums the packets of the last closed window's top sources (metrics.top_sources of
// them) by autonomous system, busiest first (ties by number); sources without an AS are
// left out.
func (w *who) topASNs(ws *aggregate.WindowStats) []snapshot.ASNCount {
	by := map[uint32]*snapshot.ASNCount{}
	for _, src := range ws.Top {
		var l detect.Who
		w.enr.Label(src.Addr.Netip(), &l)
		if l.ASN == 0 {
			continue
		}
		c := by[l.ASN]
		if c == nil {
			c = &snapshot.ASNCount{ASN: l.ASN, Name: l.ASName}
			by[l.ASN] = c
		}
		c.Packets += src.Packets
	}
	out := make([]snapshot.ASNCount, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Packets > out[j].Packets || out[i].Packets == out[j].Packets && out[i].ASN < out[j].ASN
	})
	return out
}

func sortedCounts(m map[string]uint64) []snapshot.NamedCount {
	out := make([]snapshot.NamedCount, 0, len(m))
	for k, n := range m {
		out = append(out, snapshot.NamedCount{Name: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
