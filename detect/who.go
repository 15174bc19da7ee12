package detect

import (
	"strconv"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Who is what the enrichment (package enrich: known scanning services, GeoIP, ASN) knows
// about the address of a detection: the source of a scanner, sweep, pair or tool, the victim
// of backscatter. The pipeline's event sink fills it at each episode start and end; the
// engines never see it. Empty fields are left out of the report and the logs.
type Who struct {
	Org     string `json:"org,omitempty"`     // known scanning service (enrich.known_scanners)
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2 (enrich.geoip_country)
	ASN     uint32 `json:"asn,omitempty"`     // autonomous system number (enrich.geoip_asn)
	ASName  string `json:"as_name,omitempty"` // its organisation
	// Silenced is true when the episode is left out of the alert series (a known scanner
	// with enrich.alert_known: false).
	Silenced bool `json:"silenced,omitempty"`
}

// Labels returns the entry's labels for the enrichment to fill.
func (w *Who) Labels() *Who { return w }

func (w *Who) marshalLog(enc zapcore.ObjectEncoder) {
	if w.Org != "" {
		enc.AddString("org", w.Org)
	}
	if w.Country != "" {
		enc.AddString("country", w.Country)
	}
	if w.ASN != 0 {
		enc.AddUint32("asn", w.ASN)
		enc.AddString("as_name", w.ASName)
	}
	if w.Silenced {
		enc.AddBool("silenced", true)
	}
}

// Labelled is an entry with one address that enrichment labels.
type Labelled interface {
	Entry
	Address() string
	Labels() *Who
}

func (e *ScannerEntry) Address() string     { return e.Src }
func (e *TelnetSweepEntry) Address() string { return e.Src }
func (e *UDPThenSYNEntry) Address() string  { return e.Src.String() }
func (e *BackscatterEntry) Address() string { return e.Victim }
func (e *ToolEntry) Address() string        { return e.Src.String() }

// ScanEstimates extrapolate a scanner seen in the dark IPv4 space to the whole IPv4 space
// (README, "Internet-wide estimates"). They are left out when the dark IPv4 space is unknown
// (no dark_prefixes configured), the source is IPv6, or the episode has no duration.
type ScanEstimates struct {
	// ProbesPerSecondEstimated = packets / duration × 2^32 / dark IPv4 addresses.
	ProbesPerSecondEstimated float64 `json:"probes_per_second_estimated,omitempty"`
	// IPv4SweepSecondsEstimated = duration × dark IPv4 addresses / addresses probed: the
	// time the scanner would take to reach every IPv4 address at the pace it covered the
	// dark space.
	IPv4SweepSecondsEstimated float64 `json:"ipv4_sweep_seconds_estimated,omitempty"`
}

// Scan returns the estimates to fill.
func (s *ScanEstimates) Scan() *ScanEstimates { return s }

func (s *ScanEstimates) marshalLog(enc zapcore.ObjectEncoder) {
	if s.ProbesPerSecondEstimated > 0 {
		enc.AddFloat64("probes_per_second_estimated", s.ProbesPerSecondEstimated)
		enc.AddFloat64("ipv4_sweep_seconds_estimated", s.IPv4SweepSecondsEstimated)
	}
}

func (p *Profile) marshalLog(enc zapcore.ObjectEncoder) {
	if p == nil {
		return
	}
	enc.AddUint64("addresses", p.Addresses)
	enc.AddUint16("port_min", p.PortMin)
	enc.AddUint16("port_max", p.PortMax)
	enc.AddString("protocols", strings.Join(p.Protocols, ","))
	if len(p.TopPorts) > 0 {
		enc.AddString("top_port", p.TopPorts[0].Proto+"/"+strconv.Itoa(int(p.TopPorts[0].Port)))
		enc.AddFloat64("top_port_share", p.TopPorts[0].Share)
	}
}
