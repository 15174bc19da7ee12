package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// problem is one validation failure: the dotted key it concerns and what is wrong with it.
type problem struct{ key, msg string }

// Validate checks every value and reports all failures at once, one per line, each starting
// with its dotted key.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, errors.New(p.key+": "+p.msg))
	}
	return errors.Join(errs...)
}

// problems lists every validation failure, in the order of the keys in telescope.yaml.
func (c *Config) problems() []problem {
	var v validator
	v.labelValue("sensor", c.Sensor)
	v.prefixes("dark_prefixes", c.DarkPrefixes)

	cp := &c.Capture
	if cp.Interface == "" {
		v.add("capture.interface", `must not be empty (use "any" for every interface)`)
	}
	v.oneOf("capture.method", cp.Method, "afpacket", "pcap")
	v.between("capture.workers", cp.Workers, 0, 1024)
	v.between("capture.snaplen", cp.Snaplen, 168, 262144) // the fanout program reads up to 168 bytes
	v.between("capture.ring_mb", cp.RingMB, 1, 65536)
	if f := cp.ShedBacklog; !(f >= 0 && f < 1) {
		v.add("capture.shed_backlog", "must be a share of the ring from 0 (never shed) to less than 1, got "+strconv.FormatFloat(f, 'g', -1, 64))
	}
	if cp.Filter != "" && FilterCheck != nil {
		if err := FilterCheck(cp.Filter); err != nil {
			v.add("capture.filter", fmt.Sprintf("invalid pcap-filter expression %q: %v", cp.Filter, err))
		}
	}

	v.positive("window", c.Window)

	d := &c.Detect
	v.atLeast1("detect.scanner.min_packets", d.Scanner.MinPackets)
	v.atLeast1("detect.scanner.min_targets", d.Scanner.MinTargets)
	v.ports("detect.telnet.ports", d.Telnet.Ports)
	if d.Telnet.Enabled && len(d.Telnet.Ports) == 0 {
		v.add("detect.telnet.ports", "must not be empty while detect.telnet.enabled is true")
	}
	v.atLeast1("detect.telnet.min_targets", d.Telnet.MinTargets)
	v.positive("detect.telnet.surge_bucket", d.Telnet.SurgeBucket)
	if f := d.Telnet.SurgeFactor; !(f > 1) || math.IsInf(f, 0) {
		v.add("detect.telnet.surge_factor", "must be a finite number greater than 1, got "+strconv.FormatFloat(f, 'g', -1, 64))
	}
	v.atLeast1("detect.telnet.surge_min_sources", d.Telnet.SurgeMinSources)
	v.positive("detect.udp_then_syn.max_gap", d.UDPThenSYN.MaxGap)
	v.atLeast1("detect.backscatter.min_packets", d.Backscatter.MinPackets)
	if d.Backscatter.MinDuration < 0 {
		v.add("detect.backscatter.min_duration", "must not be negative, got "+d.Backscatter.MinDuration.String())
	}
	v.atMostAYear("detect.backscatter.min_duration", d.Backscatter.MinDuration)
	// A victim keeps its last min_rate_per_minute packet times until the rate is met (8
	// bytes each): 2^63-1 crashed replay (makeslice: cap out of range).
	v.between("detect.backscatter.min_rate_per_minute", d.Backscatter.MinRatePerMinute, 1, MaxRatePerMinute)
	v.atLeast1("detect.hotspot.min_sources", d.Hotspot.MinSources)
	v.detectLog(d) // validate_log.go

	v.atLeast1("limits.max_sources", c.Limits.MaxSources)
	v.atLeast1("limits.max_destinations", c.Limits.MaxDestinations)
	v.between("limits.max_sets_mb", c.Limits.MaxSetsMB, 1, 1<<20)

	v.between("metrics.top_ports", c.Metrics.TopPorts, 0, 65536)
	v.ports("metrics.watch_ports", c.Metrics.WatchPorts)
	v.between("metrics.top_sources", c.Metrics.TopSources, 0, 1000)

	v.listenAddress("web.listen_address", c.Web.ListenAddress)

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "logfmt", "console")
	v.summaryInterval("log.summary_interval", c.Log.SummaryInterval)

	if c.State.Path != "" {
		v.positive("state.checkpoint_interval", c.State.CheckpointInterval)
		if strings.HasSuffix(c.State.Path, "/") {
			v.add("state.path", fmt.Sprintf("must name a file, not a directory, got %q", c.State.Path))
		}
	}
	return v.probs
}

// validator collects problems; each method checks one kind of rule.
type validator struct{ probs []problem }

func (v *validator) add(key, msg string) { v.probs = append(v.probs, problem{key, msg}) }

func (v *validator) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n))
	}
}

func (v *validator) atLeast1(key string, n int) {
	if n < 1 {
		v.add(key, fmt.Sprintf("must be at least 1, got %d", n))
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.add(key, "must be a duration greater than 0, got "+d.String())
	}
	v.atMostAYear(key, d)
}

// MaxRatePerMinute bounds detect.backscatter.min_rate_per_minute: 1 000 000 packets a
// minute (~16 700 a second) at one victim, an 8 MB ring of times per victim that is not
// there yet.
const MaxRatePerMinute = 1_000_000

// MaxDuration bounds every duration key. A year is past any window, gap or interval a
// telescope uses, and keeps a packet time (at most packet.MaxTS, 2^62 ns) plus a few of
// them within int64: a window of 2562047h, which time.ParseDuration accepts, wrapped the
// detectors' due times to the distant past and hung the first episode's end.
const MaxDuration = Duration(365 * 24 * time.Hour)

func (v *validator) atMostAYear(key string, d Duration) {
	if d > MaxDuration {
		v.add(key, "must be at most "+MaxDuration.String()+" (a year), got "+d.String())
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	v.add(key, fmt.Sprintf("must be %s, got %q", orList(quoted), s))
}

// orList writes "a or b", or "one of a, b, c".
func orList(items []string) string {
	if len(items) == 2 {
		return items[0] + " or " + items[1]
	}
	return "one of " + strings.Join(items, ", ")
}

// ports checks a list of ports: each 1..65535 (uint16 already caps it), each once.
func (v *validator) ports(key string, ports []uint16) {
	first := map[uint16]int{}
	for i, p := range ports {
		item := fmt.Sprintf("%s[%d]", key, i)
		if p == 0 {
			v.add(item, "must be a port number 1..65535, got 0")
			continue
		}
		if j, dup := first[p]; dup {
			v.add(item, fmt.Sprintf("port %d is listed twice (also %s[%d])", p, key, j))
			continue
		}
		first[p] = i
	}
}

// MaxLabelValue bounds label values taken from the config (sensor): they are on every series.
const MaxLabelValue = 128

// labelValue checks a Prometheus label value: valid UTF-8, at most MaxLabelValue bytes.
func (v *validator) labelValue(key, s string) {
	switch {
	case len(s) > MaxLabelValue:
		v.add(key, fmt.Sprintf("must be at most %d bytes (it labels every series), got %d", MaxLabelValue, len(s)))
	case !utf8.ValidString(s):
		v.add(key, "must be valid UTF-8 (it is a Prometheus label value)")
	}
}

// MaxDarkPrefixes bounds dark_prefixes configured at once, in check-config, run and every
// reload alike: each has its own counter slot in every worker while configured
// (aggregate.MaxPrefixes; a reload frees the slots of the prefixes it removes).
const MaxDarkPrefixes = 4095

// prefixes checks the dark prefixes: valid, no host bits, no IPv4-mapped IPv6 (packets carry
// plain IPv4 addresses, so it would never match), no duplicates, no overlaps (a packet would
// count under two prefixes). Overlaps are found in O(n log n): sorted by address then
// length, a prefix overlaps an earlier one exactly when it lies inside the widest prefix
// seen since the last one that did not cover it. Each problem is reported on the item
// listed later in the file, naming the earlier one.
func (v *validator) prefixes(key string, ps []netip.Prefix) {
	if len(ps) > MaxDarkPrefixes {
		v.add(key, fmt.Sprintf("at most %d prefixes, got %d", MaxDarkPrefixes, len(ps)))
		return
	}
	var good []int // indexes of the well-formed prefixes
	for i, p := range ps {
		item := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case !p.IsValid():
			v.add(item, "invalid prefix")
			continue
		case p.Addr().Is4In6():
			v.add(item, fmt.Sprintf("%q is an IPv4-mapped IPv6 prefix; write IPv4 prefixes as a.b.c.d/n", p))
			continue
		case p != p.Masked():
			v.add(item, fmt.Sprintf("%q has host bits set (did you mean %s?)", p, p.Masked()))
			continue
		}
		good = append(good, i)
	}
	sorted := append([]int(nil), good...)
	sort.SliceStable(sorted, func(a, b int) bool {
		pa, pb := ps[sorted[a]], ps[sorted[b]]
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c < 0
		}
		return pa.Bits() < pb.Bits()
	})
	bad := map[int]string{}
	cover := -1 // the prefix, in sort order, that covers the most addresses so far
	for _, i := range sorted {
		if cover >= 0 && ps[cover].Overlaps(ps[i]) {
			first, later := min(cover, i), max(cover, i)
			p, q := ps[later], ps[first]
			if p == q {
				bad[later] = fmt.Sprintf("%q is listed twice (also %s[%d])", p, key, first)
			} else if _, seen := bad[later]; !seen {
				bad[later] = fmt.Sprintf("%q overlaps %s[%d] %q", p, key, first, q)
			}
			continue // cover, the outermost, stays
		}
		cover = i
	}
	for _, i := range good {
		if msg, ok := bad[i]; ok {
			v.add(fmt.Sprintf("%s[%d]", key, i), msg)
		}
	}
}

// listenAddress checks a host:port for net.Listen; the host may be empty (every address).
func (v *validator) listenAddress(key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		if ae, ok := err.(*net.AddrError); ok {
			reason = ae.Err
		}
		v.add(key, fmt.Sprintf("%q is not a valid host:port such as \":9813\" (%s)", addr, reason))
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(key, fmt.Sprintf("%q: the port must be a number 0..65535, got %q", addr, port))
	}
}
