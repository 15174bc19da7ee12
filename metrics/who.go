package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telescope-dev/telescope/snapshot"
)

// whoDescs are the series of "who is scanning" (README): all bounded — techniques are a
// fixed set, orgs come from the known-scanners file, countries are ISO codes, and the AS
// gauge has at most metrics.top_sources entries.
type whoDescs struct {
	technique, knownPackets, knownEpisodes, country, topASN *prometheus.Desc
}

func newWhoDescs(d func(name, help string, labels ...string) *prometheus.Desc) whoDescs {
	return whoDescs{
		technique:     d("scan_technique_packets_total", "Packets to the dark space by scan technique (syn, connect, ack, fin, null, xmas, maimon, udp, icmp_echo, odd).", "technique"),
		knownPackets:  d("known_scanner_packets_total", "Packets of scanner episodes whose source is a known scanning service (enrich.known_scanners), by organisation.", "org"),
		knownEpisodes: d("known_scanner_detections_total", "Detection episodes started by known scanning services, by detector and organisation (counted whatever enrich.alert_known says).", "detector", "org"),
		country:       d("country_packets_total", "Packets of scanner episodes by the source's country (ISO 3166-1 alpha-2, or unknown; needs enrich.geoip_country).", "country"),
		topASN:        d("top_asn_packets", "Packets of the last closed window's top sources summed by autonomous system (needs enrich.geoip_asn).", "rank", "asn", "as_name"),
	}
}

func (w *whoDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- w.technique
	ch <- w.knownPackets
	ch <- w.knownEpisodes
	ch <- w.country
	ch <- w.topASN
}

func (c *Collector) collectWho(ch chan<- prometheus.Metric, s *snapshot.Snapshot) {
	w := &c.who
	for _, n := range s.TechniquePackets {
		counter(ch, w.technique, n.Count, n.Name)
	}
	for _, n := range s.KnownScannerPackets {
		counter(ch, w.knownPackets, n.Count, n.Name)
	}
	for _, n := range s.KnownScannerEpisodes {
		counter(ch, w.knownEpisodes, n.Count, n.Detector, n.Org)
	}
	for _, n := range s.CountryPackets {
		counter(ch, w.country, n.Count, n.Name)
	}
	for i, a := range s.TopASNs {
		gauge(ch, w.topASN, float64(a.Packets), strconv.Itoa(i+1), strconv.FormatUint(uint64(a.ASN), 10), a.Name)
	}
}
