package detect

import (
	"math/bits"
	"unsafe"

	"github.com/telescope-dev/telescope/packet"
)

// maxPortMaps bounds, per engine, the scanner episodes whose destination ports are kept
// exactly (a 65 536-bit map, 8 KiB each: at most 8 MiB per worker). Episodes beyond it
// report the window's distinct-port count (exact to 256, then a ~3 % sketch).
const maxPortMaps = 1024

// portMap is one episode's set of destination ports.
type portMap [1024]uint64

// portMaps is an engine's pool of port maps, referenced from episode records by 1 + index
// so that the records stay pointer-free.
type portMaps struct {
	maps []*portMap
	free []int32
}

// get returns a cleared map's reference, or 0 when the pool is exhausted.
func (p *portMaps) get() int32 {
	if n := len(p.free); n > 0 {
		ref := p.free[n-1]
		p.free = p.free[:n-1]
		*p.maps[ref-1] = portMap{}
		return ref
	}
	if len(p.maps) == maxPortMaps {
		return 0
	}
	p.maps = append(p.maps, new(portMap))
	return int32(len(p.maps))
}

func (p *portMaps) put(ref int32) {
	if ref != 0 {
		p.free = append(p.free, ref)
	}
}

func (p *portMaps) at(ref int32) *portMap { return p.maps[ref-1] }

// inUse counts the maps held by episodes (for the leak tests).
func (p *portMaps) inUse() int { return len(p.maps) - len(p.free) }

// set adds port to map ref. Its word is addressed directly: indexing the 8 KiB array
// through its pointer made the compiler check the pointer with a load of the map's first
// line, a cache miss of its own on every probe of a scan across ports.
func (p *portMaps) set(ref int32, port uint16) {
	w := (*uint64)(unsafe.Add(unsafe.Pointer(p.maps[ref-1]), uintptr(port>>6)*8)) // port>>6 < 1024
	*w |= 1 << (port & 63)
}

func (m *portMap) count() uint64 {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// portHash is the value a destination port adds to a scanner window's port set.
func portHash(port uint16) uint64 { return packet.Mix64(seedPort + uint64(port)) }

// portOfHash inverts portHash (Mix64 is a bijection), or reports false for a value no port
// makes.
func portOfHash(x uint64) (uint16, bool) {
	p := unmix64(x) - seedPort
	if p > 0xFFFF {
		return 0, false
	}
	return uint16(p), true
}

// unmix64 inverts packet.Mix64 (the murmur3 finaliser).
func unmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= mixInv2
	x ^= x >> 33
	x *= mixInv1
	x ^= x >> 33
	return x
}

var (
	mixInv1 = inverse64(0xff51afd7ed558ccd)
	mixInv2 = inverse64(0xc4ceb9fe1a85ec53)
)

// inverse64 returns the multiplicative inverse of an odd a modulo 2^64 (Newton's iteration).
func inverse64(a uint64) uint64 {
	x := a // correct to 3 bits for odd a
	for i := 0; i < 5; i++ {
		x *= 2 - a*x
	}
	return x
}
