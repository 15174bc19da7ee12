package daygen

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/telescope-dev/telescope/packet"
)

// Generate writes the day as an Ethernet pcap (nanosecond timestamps, time-ordered) and
// returns its truth: exactly the detections a correct implementation reports under the
// default configuration.
func Generate(w io.Writer, o Options) (*Truth, error) {
	pkts, truth, err := build(o)
	if err != nil {
		return nil, err
	}
	if err := writePcap(w, pkts); err != nil {
		return nil, err
	}
	return truth, nil
}

// WriteFile writes the day (Generate) to a new file at path and returns its truth.
func WriteFile(path string, o Options) (*Truth, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	truth, err := Generate(f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return truth, nil
}

// Packets returns the same day as decoded Headers (what packet.Decode makes of each frame
// Generate writes), for tests that drive the detectors without a pcap.
func Packets(o Options) ([]packet.Header, *Truth, error) {
	pkts, truth, err := build(o)
	if err != nil {
		return nil, nil, err
	}
	hs := make([]packet.Header, len(pkts))
	for i := range pkts {
		hs[i] = pkts[i].h
	}
	return hs, truth, nil
}

// gen is the state of one generation.
type gen struct {
	o          Options
	rng        *rand.Rand
	start, end int64 // [start, end) in ns
	pkts       []pkt
	truth      *Truth
	next4      uint32 // source allocator, IPv4 (100.64.0.0/10)
	next6      uint64 // source allocator, IPv6 (2001:db8:ffff::/48)
	surgeAt    int64  // start of the planted surge's first bucket
	surgeEnd   int64  // end of its last bucket (ProfileTelescope)
	err        error  // first internal inconsistency (reported by build)
}

func build(o Options) ([]pkt, *Truth, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	g := &gen{
		o:     o,
		rng:   rand.New(rand.NewPCG(uint64(o.Seed), 0x7e1e5c09e)),
		start: o.Start.UnixNano(),
		end:   o.Start.Add(o.Duration).UnixNano(),
		truth: newTruth(),
	}
	if o.Profile == ProfileTelescope {
		// Room for the whole day up front: regrowing a slice of millions of packets
		// costs more than generating them.
		room := int(170000*o.Scale) + 400000
		if o.TelnetOnly {
			room = int(17000*o.Scale) + 20000
		}
		g.pkts = make([]pkt, 0, room)
		g.telescopeDay()
	} else {
		g.background()
		g.telnetBackground()
		g.surge()
		g.scanners()
		g.telnetActors()
		g.bittorrent()
		g.backscatter()
		g.tools()
	}
	if g.err != nil {
		return nil, nil, g.err
	}
	sort.Slice(g.pkts, func(i, j int) bool {
		a, b := &g.pkts[i], &g.pkts[j]
		return a.h.TS < b.h.TS || (a.h.TS == b.h.TS && a.order < b.order)
	})
	surges := surgeTruth(g.pkts, g.start)
	if o.Profile == ProfileTelescope {
		// The ramp's first buckets may or may not reach the factor; the full ones must.
		ramp := g.surgeAt + int64(len(surgeRamp))*int64(surgeBucket)
		if len(surges) != 1 || surges[0].Start.UnixNano() < g.surgeAt || surges[0].Start.UnixNano() > ramp ||
			surges[0].End.UnixNano() != g.surgeEnd {
			return nil, nil, fmt.Errorf("daygen: internal error: planted surge %s to %s, the reference finds %+v",
				tm(g.surgeAt), tm(g.surgeEnd), surges)
		}
		g.truth.Surges = surges
		g.truth.Packets = len(g.pkts)
		return g.pkts, g.truth, nil
	}
	if len(surges) != 1 || surges[0].Start.UnixNano() != g.surgeAt || surges[0].End.UnixNano() != g.surgeAt+2*int64(surgeBucket) {
		return nil, nil, fmt.Errorf("daygen: internal error: planted surge at %s, the reference finds %+v",
			tm(g.surgeAt), surges)
	}
	g.truth.Surges = surges
	g.truth.Packets = len(g.pkts)
	return g.pkts, g.truth, nil
}

// emit appends a packet; its timestamp must lie in [start, end).
func (g *gen) emit(p pkt) {
	if (p.h.TS < g.start || p.h.TS >= g.end) && g.err == nil {
		g.err = fmt.Errorf("daygen: internal error: packet at %s outside the day", tm(p.h.TS))
	}
	p.order = len(g.pkts)
	g.pkts = append(g.pkts, p)
}

// count scales a base number of actors, never below min.
func (g *gen) count(base float64, min int) int {
	return max(int(math.Round(base*g.o.Scale)), min)
}

// between returns a uniform time in [a, b).
func (g *gen) between(a, b int64) int64 {
	if b <= a {
		return a
	}
	return a + g.rng.Int64N(b-a)
}

// actorStart returns a start time leaving room for span before the last hour of the day
// (so every episode ends well inside it) and after the first ten minutes.
func (g *gen) actorStart(span time.Duration) int64 {
	return g.between(g.start+int64(10*time.Minute), g.end-int64(time.Hour)-int64(span))
}

// fit shrinks the mean gap of n packets so that they fit in the room actorStart leaves.
func (g *gen) fit(n int, gap time.Duration) time.Duration {
	room := time.Duration(g.end-g.start) - 70*time.Minute
	return min(gap, room*2/3/time.Duration(max(n, 1)))
}

// spread returns n times from t: gaps uniform in [mean/2, 3*mean/2), so the largest gap is
// bounded (far below the detector window for every actor here).
func (g *gen) spread(n int, t int64, mean time.Duration) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = t
		t += int64(mean)/2 + g.rng.Int64N(max(int64(mean), 1))
	}
	return ts
}

// The dark space: two IPv4 /24s (512 addresses) and an IPv6 /48.
var (
	dark4a = netip.MustParseAddr("203.0.113.0").As4()
	dark4b = netip.MustParseAddr("198.51.100.0").As4()
	dark6  = netip.MustParseAddr("2001:db8:1::").As16()
)

const darkV4Count = 512

// darkV4 returns dark IPv4 address number i (0..511).
func darkV4(i int) netip.Addr {
	a := dark4a
	if i&256 != 0 {
		a = dark4b
	}
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

func (g *gen) randDark(v6 bool) netip.Addr {
	if !v6 {
		return darkV4(g.rng.IntN(darkV4Count))
	}
	a := dark6
	for i := 6; i < 16; i++ {
		a[i] = byte(g.rng.Uint32())
	}
	return netip.AddrFrom16(a)
}

// src allocates a fresh source address: every actor has its own.
func (g *gen) src(v6 bool) netip.Addr {
	if v6 {
		g.next6++
		a := netip.MustParseAddr("2001:db8:ffff::").As16()
		for i := 0; i < 8; i++ {
			a[15-i] = byte(g.next6 >> (8 * i))
		}
		return netip.AddrFrom16(a)
	}
	g.next4++
	if g.next4 >= 1<<22 && g.err == nil {
		g.err = fmt.Errorf("daygen: internal error: more than %d IPv4 sources", 1<<22)
	}
	n := 100<<24 | 64<<16 | g.next4
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func tm(ns int64) time.Time { return time.Unix(0, ns).UTC() }
