// Package aggregate holds what the workers count: per-worker counter shards read with
// atomic loads, sketches with bounded memory (top-k, distinct counts), the bounded
// per-source table, and packet-time windows.
package aggregate

import (
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/telescope-dev/telescope/internal/prefetch"
	"github.com/telescope-dev/telescope/packet"
)

// Protocol indexes of the packet and byte counters.
const (
	IdxTCP = iota
	IdxUDP
	IdxICMP
	IdxICMPv6
	IdxOther
	NumProtos
)

// ProtoNames are the `protocol` label values, by index.
var ProtoNames = [NumProtos]string{"tcp", "udp", "icmp", "icmpv6", "other"}

// Destination port kinds.
const (
	PortsTCPSYN = iota // SYN probes
	PortsUDP           // UDP datagrams
	NumPortKinds
)

// PortKindNames are the `kind` label values, by index.
var PortKindNames = [NumPortKinds]string{"tcp_syn", "udp"}

// MaxPrefixes bounds the dark prefixes configured at once (configs.MaxDarkPrefixes).
const MaxPrefixes = 4095

// MaxPrefixSlots bounds the prefix counter slots: a reload counts the old and the new
// prefix set at once until every worker has adopted the new one (PrefixSlots), and slot 0
// is "not dark".
const MaxPrefixSlots = 2*MaxPrefixes + 2

// ProtoIndex maps a decoded IP packet to its protocol counter. ICMP counts as icmp only in
// IPv4 and ICMPv6 only in IPv6; anything else is other.
func ProtoIndex(h *packet.Header) int {
	switch h.Proto {
	case packet.ProtoTCP:
		return IdxTCP
	case packet.ProtoUDP:
		return IdxUDP
	case packet.ProtoICMP:
		if h.IPVersion == 4 {
			return IdxICMP
		}
	case packet.ProtoICMPv6:
		if h.IPVersion == 6 {
			return IdxICMPv6
		}
	}
	return IdxOther
}

// Counters is one worker's shard. Only its worker writes it; readers sum the shards of all
// workers with atomic loads at scrape time, like node_exporter reads per-CPU counters.
type Counters struct {
	Frames  [packet.NumResults]atomic.Uint64
	Packets [2][NumProtos]atomic.Uint64 // [IPv4, IPv6][protocol]
	Bytes   [2][NumProtos]atomic.Uint64
	Flags   [256]atomic.Uint64
	Ports   [NumPortKinds][65536]atomic.Uint64
	Prefix  [MaxPrefixSlots]atomic.Uint64
	FirstTS atomic.Int64 // packet time of the worker's first frame, 0 before it
	LastTS  atomic.Int64
	_       [64]byte // keep the next shard's hot words off this one's last cache line
}

// Local accumulates a batch of packets in plain memory; Flush publishes it to the shard.
// Small, hot counters go through Local (one atomic add per counter per batch instead of
// per packet). The 128k port counters go through a small direct-mapped cache of recent
// ports (a full local copy would only double the cache misses): a port seen again in the
// batch is counted in plain memory, and a shard counter gets one atomic add when its cache
// slot is taken by another port or at Flush. A locked add per packet costs more than the
// rest of the counting, and it stalls the worker on the stores before it.
type Local struct {
	ports    [portCacheSlots]portCount
	portUsed [portCacheSlots]uint8 // the port cache's taken slots, in the order taken
	nPorts   int
	frames   [packet.NumResults]uint64
	packets  [2][NumProtos]uint64
	bytes    [2][NumProtos]uint64
	flags    [256]uint64
	prefix   [MaxPrefixSlots]uint64
	maxSlot  int // highest prefix slot touched since the last flush
	firstTS  int64
	lastTS   int64
	anyFlags bool
}

// portCacheSlots is the size of Local's port cache (16 bytes a slot).
const portCacheSlots = 256 // a power of two <= 256 (portUsed holds uint8 indexes)

// portCount is one slot of Local's port cache: key is kind<<16 | port, plus 1 so that the
// zero slot is empty.
type portCount struct {
	key uint32
	n   uint64
}

// countPort adds one packet to a port counter through the cache.
func (l *Local) countPort(kind int, port uint16, c *Counters) {
	key, i := portSlot(kind, port)
	s := &l.ports[i]
	if s.key == key {
		s.n++
		return
	}
	if s.key != 0 {
		k := s.key - 1
		c.Ports[k>>16][k&0xffff].Add(s.n)
	} else {
		l.portUsed[l.nPorts] = uint8(i)
		l.nPorts++
	}
	s.key, s.n = key, 1
}

// portSlot is the port cache's key for a port counter and the slot it maps to.
func portSlot(kind int, port uint16) (key, slot uint32) {
	key = uint32(kind)<<16 | uint32(port) + 1
	return key, (key * 0x9E3779B1) >> 24
}

// portKind is the port counters h counts in (PortsTCPSYN, PortsUDP), or -1: none.
func portKind(h *packet.Header) int {
	switch {
	case h.SYNProbe():
		return PortsTCPSYN
	case h.Proto == packet.ProtoUDP && h.L4:
		return PortsUDP
	}
	return -1
}

// Prefetch requests, for writing, the shard counter that counting h's port will add to:
// that of the port its slot of the port cache holds now. Under a flood to random ports every
// packet takes a slot over, and its locked add to a random line of 1 MiB of counters waits
// for that line with every later load behind it.
func (l *Local) Prefetch(h *packet.Header, c *Counters) {
	kind := portKind(h)
	if kind < 0 {
		return
	}
	key, i := portSlot(kind, h.DstPort)
	if s := &l.ports[i]; s.key != key && s.key != 0 {
		k := s.key - 1
		prefetch.Write(unsafe.Pointer(&c.Ports[(k>>16)%NumPortKinds][k&0xffff]))
	}
}

// Count adds one decoded frame. slot is the frame's dark-prefix slot (0 = not dark), only
// meaningful for IP packets.
func (l *Local) Count(h *packet.Header, slot int, c *Counters) {
	l.frames[h.Result]++
	if l.firstTS == 0 || h.TS < l.firstTS {
		l.firstTS = h.TS
	}
	if h.TS > l.lastTS {
		l.lastTS = h.TS
	}
	if h.Result != packet.ResultIP {
		return
	}
	v := 0
	if h.IPVersion == 6 {
		v = 1
	}
	p := ProtoIndex(h)
	l.packets[v][p]++
	l.bytes[v][p] += uint64(h.WireLen)
	l.prefix[slot]++
	if slot > l.maxSlot {
		l.maxSlot = slot
	}
	if !h.L4 {
		return
	}
	if h.Proto == packet.ProtoTCP {
		l.flags[h.TCPFlags]++
		l.anyFlags = true
	}
	if kind := portKind(h); kind >= 0 {
		l.countPort(kind, h.DstPort, c)
	}
}

// flushAhead is how many port counters ahead of its locked add Flush requests.
const flushAhead = 8

// Flush publishes and clears what Count accumulated.
func (l *Local) Flush(c *Counters) {
	used := l.portUsed[:l.nPorts]
	for j, i := range used {
		if j+flushAhead < len(used) {
			// Each locked add waits for its line (random ports: cold) and for every older
			// store: the lines are requested for writing ahead.
			k := l.ports[used[j+flushAhead]].key - 1
			prefetch.Write(unsafe.Pointer(&c.Ports[(k>>16)%NumPortKinds][k&0xffff]))
		}
		s := &l.ports[i]
		k := s.key - 1
		c.Ports[k>>16][k&0xffff].Add(s.n)
		*s = portCount{}
	}
	l.nPorts = 0
	for i, n := range l.frames {
		if n != 0 {
			c.Frames[i].Add(n)
			l.frames[i] = 0
		}
	}
	for v := range l.packets {
		for p, n := range l.packets[v] {
			if n != 0 {
				c.Packets[v][p].Add(n)
				c.Bytes[v][p].Add(l.bytes[v][p])
				l.packets[v][p], l.bytes[v][p] = 0, 0
			}
		}
	}
	if l.anyFlags {
		for f, n := range l.flags {
			if n != 0 {
				c.Flags[f].Add(n)
				l.flags[f] = 0
			}
		}
		l.anyFlags = false
	}
	for s := 0; s <= l.maxSlot; s++ {
		if n := l.prefix[s]; n != 0 {
			c.Prefix[s].Add(n)
			l.prefix[s] = 0
		}
	}
	l.maxSlot = 0
	if l.firstTS != 0 {
		if cur := c.FirstTS.Load(); cur == 0 || l.firstTS < cur {
			c.FirstTS.Store(l.firstTS)
		}
		l.firstTS = 0
	}
	if l.lastTS > c.LastTS.Load() {
		c.LastTS.Store(l.lastTS)
	}
}

// Totals is the sum of all shards at one moment (each counter read atomically; the set as
// a whole is not a transaction, which is the usual exporter trade-off).
type Totals struct {
	Frames  [packet.NumResults]uint64
	Packets [2][NumProtos]uint64
	Bytes   [2][NumProtos]uint64
	Flags   [256]uint64
	Ports   [NumPortKinds][65536]uint64
	Prefix  [MaxPrefixSlots]uint64
	FirstTS int64
	LastTS  int64
}

// Add sums one shard into t.
func (t *Totals) Add(c *Counters) {
	for i := range t.Frames {
		t.Frames[i] += c.Frames[i].Load()
	}
	for v := range t.Packets {
		for p := range t.Packets[v] {
			t.Packets[v][p] += c.Packets[v][p].Load()
			t.Bytes[v][p] += c.Bytes[v][p].Load()
		}
	}
	for f := range t.Flags {
		t.Flags[f] += c.Flags[f].Load()
	}
	for k := range t.Ports {
		for p := range t.Ports[k] {
			t.Ports[k][p] += c.Ports[k][p].Load()
		}
	}
	for s := range t.Prefix {
		t.Prefix[s] += c.Prefix[s].Load()
	}
	if f := c.FirstTS.Load(); f != 0 && (t.FirstTS == 0 || f < t.FirstTS) {
		t.FirstTS = f
	}
	if l := c.LastTS.Load(); l > t.LastTS {
		t.LastTS = l
	}
}

// FrameTotal is the number of frames of every result in one shard.
func (c *Counters) FrameTotal() uint64 {
	var n uint64
	for i := range c.Frames {
		n += c.Frames[i].Load()
	}
	return n
}

// PortCount is a destination port and its packets.
type PortCount struct {
	Port    uint16 `json:"port"`
	Packets uint64 `json:"packets"`
}

// TopPorts returns the n busiest ports with packets, by packets descending, ties by port.
// A selection in one pass (each scrape and report takes it over all 65536 counters): a port
// enters the sorted list only when it beats the list's last one.
func TopPorts(counts *[65536]uint64, n int) []PortCount {
	out := make([]PortCount, 0, min(max(n, 0), 128))
	if n <= 0 {
		return out
	}
	for p, c := range counts {
		if c == 0 || len(out) == n && c <= out[n-1].Packets {
			continue // ports come in ascending order: a tie with the last one loses
		}
		// After every port with at least c packets (the earlier ports win ties).
		i, _ := slices.BinarySearchFunc(out, c, func(e PortCount, c uint64) int {
			if e.Packets >= c {
				return -1
			}
			return 1
		})
		if len(out) < n {
			out = append(out, PortCount{})
		}
		copy(out[i+1:], out[i:len(out)-1])
		out[i] = PortCount{Port: uint16(p), Packets: c}
	}
	return out
}
