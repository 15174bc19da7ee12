//go:build !linux

package capture

import (
	"runtime"
	"time"
)

// Ring is an AF_PACKET ring: Linux only. Elsewhere OpenRings says so, and replay (files)
// works as everywhere.
type Ring struct{}

// OpenRings fails: live capture uses AF_PACKET, which only Linux has.
func OpenRings(cfg RingConfig) ([]*Ring, error) {
	return nil, newError(ErrConfig, cfg.Interface, nil,
		"live capture needs Linux (AF_PACKET); on %s, replay capture files with 'telescope replay'", runtime.GOOS)
}

// The methods of a Ring, which never exists here.

func (r *Ring) Index() int                                    { return 0 }
func (r *Ring) Group() uint16                                 { return 0 }
func (r *Ring) Poll(time.Duration, func(*Frame)) (int, error) { return 0, ErrClosed }
func (r *Ring) Blocks() int                                   { return 0 }
func (r *Ring) Bytes() int                                    { return 0 }
func (r *Ring) BlockBytes() int                               { return 0 }
func (r *Ring) Stats() (RingStats, error)                     { return RingStats{}, ErrClosed }
func (r *Ring) Close() error                                  { return nil }
