package daygen

import (
	"net/netip"
	"time"
)

// Truth is what a correct implementation must detect in the generated day under the default
// configuration: one entry per episode. Distinct counts (targets, ports) are exact here; an
// implementation that estimates them past a limit should be compared with a tolerance, and
// PeakRate is the exact sliding-minute maximum (an upper bound for a coarser count).
type Truth struct {
	Scanners     map[netip.Addr][]Scanner     // by source, episodes in time order
	TelnetSweeps map[netip.Addr][]TelnetSweep // by source, episodes in time order
	Surges       []Surge
	UDPThenSYN   []Pair
	Backscatter  []Attack
	Tools        map[netip.Addr][]Tool // by source, one per labelled tool
	// Groups are the coordinated scanners planted (sources of one /24 taking turns over one
	// port range).
	Groups []Group
	// Background is the number of background-radiation sources (which must trigger nothing).
	Background int
	// Packets is the number of packets in the day.
	Packets int
}

// Scanner is one scanner episode.
type Scanner struct {
	Class                   string // horizontal, vertical, mixed
	Packets, Targets, Ports uint64
	First, Last             time.Time
	// Technique and Summary, when not empty, are the technique and the one-line summary an
	// analyst would write (README, "Who is scanning").
	Technique, Summary string
}

// Group is a planted group of coordinated scanners.
type Group struct {
	Prefix  netip.Prefix
	Members []netip.Addr
	Packets uint64
	Summary string
}

// TelnetSweep is one telnet sweep episode.
type TelnetSweep struct {
	Mirai            bool
	Targets, Packets uint64
	First, Last      time.Time
}

// Surge is one telnet surge: from the start of its first bucket to the start of the first
// bucket that no longer surges.
type Surge struct {
	Start, End  time.Time
	PeakSources uint64
	Baseline    float64 // EWMA baseline when it started
}

// Pair is one udp_then_syn detection.
type Pair struct {
	Src, Dst    netip.Addr
	Port        uint16
	UDP, SYN    uint64
	Payload     string // dht, utp, other
	First, Last time.Time
}

// Attack is one backscatter episode (a DoS victim).
type Attack struct {
	Victim           netip.Addr
	Kind             string
	Packets, Targets uint64
	PeakRate         uint64 // exact maximum of packets in (t-60s, t]
	First, Last      time.Time
}

// Tool is one tool label of a source.
type Tool struct {
	Tool            string
	Packets, Probes uint64
	First, Last     time.Time
}

func newTruth() *Truth {
	return &Truth{
		Scanners:     map[netip.Addr][]Scanner{},
		TelnetSweeps: map[netip.Addr][]TelnetSweep{},
		Tools:        map[netip.Addr][]Tool{},
	}
}
