package capture

import (
	"time"

	"golang.org/x/net/bpf"
)

// The rings' configuration and frames, on every platform: the pipeline and the command
// build everywhere (replay works anywhere), and only Linux opens rings (OpenRings).

// Defaults for zero RingConfig fields.
const (
	DefaultSnapLen      = 256
	DefaultRingBytes    = 64 << 20
	DefaultBlockTimeout = 50 * time.Millisecond
	maxSnapLen          = 262144
	maxLinkHeader       = 64 // link-layer bytes a SOCK_RAW ring keeps in front of the network header
	maxBlockSize        = 1 << 20
	minBlocks           = 8 // per ring: fewer blocks make the ring freeze while one is read
)

// RingConfig describes a set of AF_PACKET rings joined in one fanout group.
type RingConfig struct {
	Interface    string               // "any" or an interface name
	Workers      int                  // number of sockets (>= 1); socket i receives fanout index i
	SnapLen      int                  // bytes kept per packet from the network header (0 = 256, >= MinSnapLen)
	RingBytes    int                  // ring memory for all sockets together, split evenly (0 = 64 MiB)
	Filter       []bpf.RawInstruction // optional kernel filter; it sees packets from the network header on (see OpenRings)
	FanoutGroup  uint16               // fanout group id (see joinFanout); 0 = let the kernel pick an unused one
	BlockTimeout time.Duration        // tp_retire_blk_tov (0 = 50ms)
}

// Frame is one received packet. Data is valid until the callback returns.
type Frame struct {
	Data      []byte // starts at the network header, at most SnapLen bytes
	Protocol  uint16 // EtherType from sockaddr_ll (0x0800, 0x86DD, 0x8100 for an inner in-band tag, ...)
	TS        int64  // ns since the epoch (kernel timestamp)
	WireLen   uint32 // length from the network header on, as received
	VLAN      uint16 // VLAN ID (TCI & 0x0FFF) of the tag the NIC/kernel stripped, from tp_vlan_tci
	VLANValid bool   // TP_STATUS_VLAN_VALID: a tag was stripped
	IfIndex   int    // receiving interface (useful with "any")
	// Behind is how many blocks the kernel had handed over and the reader had not read yet
	// when the frame's block was read, that block included (AF_PACKET rings only): with
	// Ring.Blocks, how full the ring was, so a reader that falls behind can lighten its work
	// before the kernel has to drop packets.
	Behind int
	// BehindBytes is the bytes those blocks hold (their blk_len, headers included): with
	// Ring.Bytes, how much work is waiting. Blocks alone overstate it when blocks retire on
	// their timer nearly empty (light traffic, a reader paused for a moment).
	BehindBytes int
}

// RingStats are cumulative kernel counters since the ring was opened. Packets counts every
// packet that passed the filter, Drops included (the kernel's tp_packets).
type RingStats struct {
	Packets, Drops, QueueFreezes uint64
}
