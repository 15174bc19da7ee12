package studyhtml

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
	"github.com/telescope-dev/telescope/pipeline"
)

// pageEpisodes is what the page shows of the detection episodes, gathered in one pass over
// them, each detector's in report order (add): counts, the top sources' profiles, the
// surges, the timeline's bars (all of a row, or its longest maxTimelineBars), each table's
// largest maxRows episodes, and the UDP-then-SYN pairs' receivers and senders. It holds
// those, not every episode: a page of a replay's spool read back (millions of one-packet
// fingerprint episodes) takes the memory of its selections.
type pageEpisodes struct {
	maxRows int
	top     map[string]bool           // the report's top sources
	topIP   map[detect.IP]bool        // the same, for the entries that hold an IP (no string made per entry)
	prof    map[string]map[string]int // their profiles: label → episodes
	counts  [nRows]int
	surges  []*detect.TelnetSurgeEntry
	mirai   int // telnet sweeps with Mirai's fingerprint
	bars    [nRows]barSel
	tables  [nRows]rowSel
	poll    pollPairs
	seq     int // episodes added
}

// The page's detector rows, in its order (the timeline's and the tables').
const (
	rowScanner = iota
	rowTelnetSweep
	rowTelnetSurge
	rowUDPThenSYN
	rowBackscatter
	rowFingerprint
	nRows
)

func newPageEpisodes(r *pipeline.Report, maxRows int) *pageEpisodes {
	pe := &pageEpisodes{maxRows: maxRows, top: map[string]bool{}, topIP: map[detect.IP]bool{}, prof: map[string]map[string]int{}}
	for _, s := range r.Sources.Top {
		pe.top[s.Addr] = true
		if a, err := netip.ParseAddr(s.Addr); err == nil {
			pe.topIP[detect.IP(packet.AddrFromNetip(a))] = true
		}
	}
	pe.poll.init(maxPollKeys)
	return pe
}

// add takes one episode (of a detector the page does not show: ignored).
func (pe *pageEpisodes) add(e detect.Entry) {
	pe.seq++
	row, from, to, size := -1, detect.Time(0), detect.Time(0), uint64(0)
	switch e := e.(type) {
	case *detect.ScannerEntry:
		row, from, to, size = rowScanner, e.FirstSeen, e.LastSeen, e.Packets
		pe.profile(e.Src, "scanner "+e.Class)
	case *detect.TelnetSweepEntry:
		row, from, to, size = rowTelnetSweep, e.FirstSeen, e.LastSeen, e.Packets
		if e.Mirai {
			pe.mirai++
			pe.profile(e.Src, "telnet sweep (mirai)")
		} else {
			pe.profile(e.Src, "telnet sweep")
		}
	case *detect.TelnetSurgeEntry:
		row, from, to, size = rowTelnetSurge, e.Start, e.End, e.PeakSources
		pe.surges = append(pe.surges, e)
	case *detect.UDPThenSYNEntry:
		row, from, to, size = rowUDPThenSYN, e.FirstSeen, e.LastSeen, e.UDPPackets+e.SYNPackets
		if pe.topIP[e.Src] {
			pe.profile(e.Src.String(), "udp→syn "+e.Payload)
		}
		pe.poll.add(e)
	case *detect.BackscatterEntry:
		row, from, to, size = rowBackscatter, e.FirstSeen, e.LastSeen, e.Packets
		pe.profile(e.Victim, "backscatter "+e.Kind)
	case *detect.ToolEntry:
		row, from, to, size = rowFingerprint, e.FirstSeen, e.LastSeen, e.Packets
		if pe.topIP[e.Src] {
			pe.profile(e.Src.String(), "tool "+e.Tool)
		}
	}
	if row < 0 {
		return
	}
	pe.counts[row]++
	pe.bars[row].add(int64(from), int64(to), pe.seq)
	pe.tables[row].add(e, size, from, pe.seq, pe.maxRows)
}

func (pe *pageEpisodes) profile(addr, label string) {
	if !pe.top[addr] {
		return
	}
	if pe.prof[addr] == nil {
		pe.prof[addr] = map[string]int{}
	}
	pe.prof[addr][label]++
}

// episodes is the episodes the page counts (every detector's but the hotspot's).
func (pe *pageEpisodes) episodes() int {
	n := 0
	for _, c := range pe.counts {
		n += c
	}
	return n
}

// gatherEpisodes reads the page's episodes: from o.Episodes when set (a spool), else from
// r's detections.
func gatherEpisodes(r *pipeline.Report, o Options) (*pageEpisodes, error) {
	pe := newPageEpisodes(r, o.MaxEpisodeRows)
	if o.Episodes != nil {
		return pe, o.Episodes(func(e detect.Entry) error { pe.add(e); return nil })
	}
	for _, d := range detect.Descriptors() {
		for _, e := range r.Detections[d.ReportKey] {
			pe.add(e)
		}
	}
	return pe, nil
}

// largest keeps, of the items added, the n first by their order (cmp): all of them, in
// the order added, while there are at most n. It prunes to n whenever it holds 2n, so it
// never holds more, and the order must break every tie (by the order added).
type largest[T any] struct {
	total int
	kept  []T
}

func (l *largest[T]) add(v T, n int, cmp func(a, b T) int) {
	l.total++
	l.kept = append(l.kept, v)
	if len(l.kept) >= 2*n {
		l.prune(n, cmp)
	}
}

func (l *largest[T]) prune(n int, cmp func(a, b T) int) {
	slices.SortFunc(l.kept, cmp)
	l.kept = l.kept[:min(len(l.kept), n)]
}

// items returns the items kept: all in the order added, or past n the n first by cmp.
func (l *largest[T]) items(n int, cmp func(a, b T) int) []T {
	if l.total > n {
		l.prune(n, cmp)
	}
	return l.kept
}

// barSel is a timeline row: its episodes' span and count, and its bars, all of them in
// report order while they are at most maxTimelineBars, else the longest (ties: the
// earlier first), longest first.
type barSel struct {
	largest[timeBar]
	from, to int64
}

type timeBar struct {
	from, to int64
	seq      int
}

func longerBar(x, y timeBar) int {
	return cmp.Or(cmp.Compare(y.to-y.from, x.to-x.from), cmp.Compare(x.seq, y.seq))
}

func (b *barSel) add(from, to int64, seq int) {
	if b.total == 0 || from < b.from {
		b.from = from
	}
	if b.total == 0 || to > b.to {
		b.to = to
	}
	b.largest.add(timeBar{from, to, seq}, maxTimelineBars, longerBar)
}

// episodes returns the row's bars to draw.
func (b *barSel) episodes() [][2]int64 {
	bars := b.items(maxTimelineBars, longerBar)
	out := make([][2]int64, len(bars))
	for i, e := range bars {
		out[i] = [2]int64{e.from, e.to}
	}
	return out
}

// rowSel is a detector's table: its largest episodes by size (packets; a surge's peak
// sources), ties by report order, at most max once all are in.
type rowSel struct{ largest[tableEntry] }

type tableEntry struct {
	e     detect.Entry
	size  uint64
	start detect.Time
	seq   int
}

func largerEntry(x, y tableEntry) int {
	return cmp.Or(cmp.Compare(y.size, x.size), cmp.Compare(x.seq, y.seq))
}

func (t *rowSel) add(e detect.Entry, size uint64, start detect.Time, seq, max int) {
	t.largest.add(tableEntry{e, size, start, seq}, max, largerEntry)
}

// entries returns the table's rows: all in report order, or past max the largest in time
// order (ties by size, then report order).
func (t *rowSel) entries(max int) []tableEntry {
	kept := t.items(max, largerEntry)
	if t.total > max {
		slices.SortStableFunc(kept, func(x, y tableEntry) int { return cmp.Compare(x.start, y.start) })
	}
	return kept
}

// pollPairs is what the pollution section says of the UDP-then-SYN episodes: the distinct
// senders, receiving hosts and receivers (ip:port), each receiver's distinct senders, and
// each payload class's episodes and distinct senders. Kept by address, not as strings: a
// pair is a few words. Each set of distinct keys is a distinctSample of at most limit
// keys: exact up to it, a uniform sample past it (the page says "≈"), so that the page of
// a long study does not grow with its pairs. A receiver's senders are the pairs sample's.
type pollPairs struct {
	n          int
	senders    distinctSample[detect.IP]
	hosts      distinctSample[detect.IP]
	receivers  distinctSample[pollRecv]
	pairs      distinctSample[pollPair]
	recv       map[pollRecv]int // the pairs sample's pairs by receiver
	payload    map[string]uint64
	paySenders distinctSample[paySender]
	payN       map[string]int // the paySenders sample's senders by class
}

type pollRecv struct {
	dst  detect.IP
	port uint16
}

type pollPair struct {
	pollRecv
	src detect.IP
}

type paySender struct {
	payload string
	src     detect.IP
}

// Seeds of the pollution section's sample hashes (fixed: the same input, the same page).
const (
	seedPollSender = 0x5eed0001
	seedPollHost   = 0x5eed0002
	seedPollRecv   = 0x5eed0003
	seedPollPair   = 0x5eed0004
	seedPollPay    = 0x5eed0005
)

func (p *pollPairs) init(limit int) {
	p.recv, p.payload, p.payN = map[pollRecv]int{}, map[string]uint64{}, map[string]int{}
	p.senders = newDistinctSample[detect.IP](limit, nil)
	p.hosts = newDistinctSample[detect.IP](limit, nil)
	p.receivers = newDistinctSample[pollRecv](limit, nil)
	p.pairs = newDistinctSample(limit, func(k pollPair) { uncount(p.recv, k.pollRecv) })
	p.paySenders = newDistinctSample(limit, func(k paySender) { uncount(p.payN, k.payload) })
}

// uncount takes one from m[k], dropping the key at zero.
func uncount[K comparable](m map[K]int, k K) {
	if m[k]--; m[k] == 0 {
		delete(m, k)
	}
}

func ipHash(a *detect.IP, seed uint64) uint64 { return (*packet.Addr)(a).Hash(seed) }

func (k *pollRecv) hash(seed uint64) uint64 {
	return packet.Mix64(ipHash(&k.dst, seed) ^ uint64(k.port)*0x9e3779b97f4a7c15)
}

func (p *pollPairs) add(e *detect.UDPThenSYNEntry) {
	p.n++
	p.senders.add(e.Src, ipHash(&e.Src, seedPollSender))
	p.hosts.add(e.Dst, ipHash(&e.Dst, seedPollHost))
	r := pollRecv{e.Dst, e.Port}
	p.receivers.add(r, r.hash(seedPollRecv))
	k := pollPair{r, e.Src}
	if p.pairs.add(k, packet.Mix64(r.hash(seedPollPair)^ipHash(&e.Src, seedPollPair))) {
		p.recv[r]++
	}
	p.payload[e.Payload]++
	if p.paySenders.add(paySender{e.Payload, e.Src}, packet.Mix64(ipHash(&e.Src, seedPollPay)^strHash(e.Payload))) {
		p.payN[e.Payload]++
	}
}

// strHash is FNV-1a of s.
func strHash(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 0x100000001b3
	}
	return h
}
