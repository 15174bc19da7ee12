// Package floodgen writes pcap files of hostile traffic for tests and scripts/abuse.sh:
// floods whose every packet comes from a fresh random (spoofed) source.
package floodgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Start is the usual packet time of the first packet.
var Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteMirai writes a pcap of n TCP SYN probes to port 23 of 203.0.113.0/24, each from a
// fresh random source and carrying Mirai's fingerprint (seq == dst IP): every packet is a
// one-packet fingerprint episode. The packets are spread evenly over span of packet time
// from start.
func WriteMirai(w io.Writer, start time.Time, n int, span time.Duration, seed uint64) error {
	return Write(w, Flood{Start: start, N: n, Span: span, Seed: seed, Mirai: true})
}

// Flood describes a flood of SYN probes to 203.0.113.0/24, each from a fresh random source.
type Flood struct {
	Start time.Time
	N     int
	Span  time.Duration // the packets are spread evenly over it
	Seed  uint64
	// Mirai: to port 23 with seq == dst IP (each a one-packet fingerprint episode);
	// otherwise to random ports with no tool's fingerprint (plain spoofed scanning).
	Mirai bool
}

// WriteHeader writes the header of a nanosecond pcap of Ethernet frames.
func WriteHeader(w io.Writer) error {
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d) // nanosecond pcap
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1) // Ethernet
	_, err := w.Write(hdr)
	return err
}

// synRecord is a pcap record of an Ethernet frame holding an IPv4 TCP segment of 40 bytes.
type synRecord struct{ b []byte }

func newSYNRecord() synRecord {
	b := make([]byte, 16+54)
	copy(b[16:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 40})
	return synRecord{b}
}

// at stamps the record with time ts (ns) and a random IP ID, and returns its IPv4 header
// (TTL 64, TCP) for the caller to address.
func (r synRecord) at(ts int64, rng *rand.Rand) []byte {
	binary.LittleEndian.PutUint32(r.b[0:], uint32(ts/1e9))
	binary.LittleEndian.PutUint32(r.b[4:], uint32(ts%1e9))
	binary.LittleEndian.PutUint32(r.b[8:], 54)
	binary.LittleEndian.PutUint32(r.b[12:], 54)
	ip := r.b[16+14:]
	binary.BigEndian.PutUint16(ip[4:], uint16(rng.Uint32N(54321))) // never ZMap's IP ID
	ip[8], ip[9] = 64, 6
	return ip
}

// Write writes the flood as a nanosecond pcap.
func Write(w io.Writer, fl Flood) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := WriteHeader(bw); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(fl.Seed, fl.Seed))
	rec := newSYNRecord()
	t0 := fl.Start.UnixNano()
	step := int64(fl.Span) / int64(max(fl.N, 1))
	for i := 0; i < fl.N; i++ {
		ip := rec.at(t0+int64(i)*step, rng)
		binary.BigEndian.PutUint32(ip[12:], rng.Uint32())
		dst := 0xcb007100 | rng.Uint32N(256)
		binary.BigEndian.PutUint32(ip[16:], dst)
		tcp := ip[20:]
		if fl.Mirai {
			binary.BigEndian.PutUint16(tcp[0:], uint16(1024+rng.Uint32N(60000)))
			binary.BigEndian.PutUint16(tcp[2:], 23)
			binary.BigEndian.PutUint32(tcp[4:], dst) // Mirai: seq == dst IP
		} else {
			binary.BigEndian.PutUint16(tcp[0:], uint16(rng.Uint32()))
			binary.BigEndian.PutUint16(tcp[2:], uint16(1+rng.Uint32N(65535)))
			binary.BigEndian.PutUint32(tcp[4:], dst+1) // never Mirai's seq == dst
		}
		tcp[12], tcp[13] = 5<<4, 0x02
		binary.BigEndian.PutUint16(tcp[14:], 29200)
		if _, err := bw.Write(rec.b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Swarm describes a botnet's scan of a dark IPv4 prefix (Dark, default 203.0.0.0/16): Bots
// sources (not spoofed: each sends many probes) take turns, each probe a SYN to a random
// address of the prefix,
// every other one to TCP/23 and the others to random ports, none with a tool's
// fingerprint. At a busy telescope's rate every dark address gets several probes of
// several bots in each of a worker's hotspot parts (the shape that once grew the
// hotspot's pending summaries without bound).
type Swarm struct {
	Start time.Time
	N     int // packets
	Bots  int
	Span  time.Duration // the packets are spread evenly over it
	Seed  uint64
	Dark  netip.Prefix // IPv4; the zero value: 203.0.0.0/16
}

// WriteSwarm writes the swarm as a nanosecond pcap.
func WriteSwarm(w io.Writer, sw Swarm) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := WriteHeader(bw); err != nil {
		return err
	}
	dark := sw.Dark
	if !dark.IsValid() {
		dark = netip.MustParsePrefix("203.0.0.0/16")
	}
	if !dark.Addr().Is4() {
		return fmt.Errorf("swarm: dark prefix %v is not IPv4", dark)
	}
	b4 := dark.Masked().Addr().As4()
	base, size := binary.BigEndian.Uint32(b4[:]), uint64(1)<<(32-dark.Bits())
	rng := rand.New(rand.NewPCG(sw.Seed, sw.Seed))
	bots := make([]uint32, max(sw.Bots, 1))
	for i := range bots {
		bots[i] = 0x0b000000 | rng.Uint32N(1<<24) // 11.0.0.0/8: never a dark prefix here
	}
	rec := newSYNRecord()
	t0 := sw.Start.UnixNano()
	step := int64(sw.Span) / int64(max(sw.N, 1))
	for i := 0; i < sw.N; i++ {
		ip := rec.at(t0+int64(i)*step, rng)
		binary.BigEndian.PutUint32(ip[12:], bots[i%len(bots)])
		dst := base + uint32(rng.Uint64N(size))
		binary.BigEndian.PutUint32(ip[16:], dst)
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], uint16(1024+rng.Uint32N(60000)))
		port := uint16(23)
		if i%2 == 1 {
			port = uint16(1 + rng.Uint32N(65535))
		}
		binary.BigEndian.PutUint16(tcp[2:], port)
		binary.BigEndian.PutUint32(tcp[4:], dst+1) // never Mirai's seq == dst
		tcp[12], tcp[13] = 5<<4, 0x02
		binary.BigEndian.PutUint16(tcp[14:], 29200)
		if _, err := bw.Write(rec.b); err != nil {
			return err
		}
	}
	return bw.Flush()
}
