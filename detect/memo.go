package detect

import (
	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// A scanner episode probing a small dark space probes the same targets over and over (a
// horizontal scan of two /24s: 512 targets, tens of thousands of probes), and each probe
// looked its target and its address up in the episode's exact sets, kilobytes apart: a
// cache miss or two per probe. The memo answers most of those lookups from bitmaps over
// the dense indexes of the dark IPv4 addresses (64 bytes each for 512 addresses):
//
//   - the Addr bitmap, bit d: the address of dense index d is in the profile's address set;
//   - one Pair bitmap per port (up to maxMemoPorts; a port takes one of the memoProbe
//     slots from the one its hash names, if one is free when it is first probed), bit d:
//     the target (address d, that port) is in the episode's target set.
//
// A bit is set only after its value was added to its set, and sets never lose values, so a
// probe whose bit is set skips an Add that would change nothing: the counts stay exact.
// Memos are an accelerator only: an episode without one (pool spent, dark space too large
// or without dense indexes, after a checkpoint restore), or a port without a bitmap, adds
// to the sets as before.

// maxMemoDsts bounds the dense dark space memos are kept for (1 KiB per bitmap),
// maxMemoWords the words of a memo's Pair bitmaps (4 KiB), and maxMemos the episodes
// holding a memo per engine: a memo has at most 5.1 KiB, an engine at most 5.1 MiB.
const (
	maxMemoDsts  = 1 << 13
	maxMemoWords = 1 << 9
	maxMemoPorts = 64
	maxMemos     = 1024
	// memoProbe is how many Pair slots a port is looked for in: a probe of a port without
	// a bitmap read every port's slot (64 over two /24s): 3 % of the instructions of
	// bench-work's day sample, whose scanners probe hundreds of ports.
	memoProbe = 4
)

// memoPool is an engine's pool of memos, referenced from profiles by 1 + index (records
// stay pointer-free). A memo is words + ports + ports*words words: the Addr bitmap, the
// ports that have a Pair bitmap (1 + port a word, 0: free), then their Pair bitmaps.
type memoPool struct {
	px    *aggregate.Prefixes // the dense numbering the memos use (nil: none yet)
	n     int32               // dense indexes (bits per bitmap)
	words int                 // words per bitmap
	ports int                 // Pair bitmaps per memo
	memos [][]uint64
	free  []int32
}

// get returns a cleared memo's reference for dark space px, or 0 (no dense indexes, too
// many, or the pool is spent). A new dark space forgets every memo first (forget).
func (e *Engine) memoGet(px *aggregate.Prefixes) int32 {
	p := &e.memos
	if px == nil || px.ExactSize() == 0 || px.ExactSize() > maxMemoDsts {
		return 0
	}
	if px != p.px {
		e.memoForget()
		p.px, p.n, p.words = px, int32(px.ExactSize()), (px.ExactSize()+63)/64
		p.ports = min(maxMemoPorts, maxMemoWords/p.words)
	}
	if k := len(p.free); k > 0 {
		ref := p.free[k-1]
		p.free = p.free[:k-1]
		clear(p.memos[ref-1])
		return ref
	}
	if len(p.memos) == maxMemos {
		return 0
	}
	p.memos = append(p.memos, make([]uint64, p.words+p.ports+p.ports*p.words))
	return int32(len(p.memos))
}

// densePx is the dark space numbering the dense indexes PacketAt receives (SetDenseDsts).
func (e *Engine) densePx() *aggregate.Prefixes { return e.hot.px }

// memoPut returns a memo to the pool.
func (e *Engine) memoPut(ref int32) {
	if ref != 0 {
		e.memos.free = append(e.memos.free, ref)
	}
}

// memoBits returns the bitmaps of profile pr for a probe of dense index dense (known
// >= 0) to port: its Pair bitmap for the port (nil when all are taken by other ports) and
// its Addr bitmap; both nil when pr has no memo, dense is out of its range, or the dark
// space numbering changed since it was made (then every memo is dropped).
func (e *Engine) memoBits(pr *profileRec, port uint16, dense int32) (pair, addr []uint64) {
	p := &e.memos
	if pr.Memo == 0 {
		return nil, nil
	}
	if e.densePx() != p.px {
		e.memoForget() // the dense indexes number other addresses now
		return nil, nil
	}
	if dense >= p.n {
		return nil, nil
	}
	m := p.memos[pr.Memo-1]
	addr = m[:p.words]
	ports := m[p.words : p.words+p.ports]
	i := int(uint64(uint32(port)*0x9e3779b1) * uint64(p.ports) >> 32)
	for range min(memoProbe, p.ports) {
		if v := ports[i]; v == 0 {
			ports[i] = uint64(port) + 1 // a new Pair bitmap, empty
		} else if v != uint64(port)+1 {
			if i++; i == p.ports {
				i = 0
			}
			continue
		}
		off := p.words + p.ports + i*p.words
		return m[off : off+p.words], addr
	}
	return nil, addr
}

// memoForget drops every memo (a new dark space, or a restored checkpoint, whose records'
// references mean nothing): the records' references are cleared, the pool emptied.
func (e *Engine) memoForget() {
	if len(e.memos.memos) > 0 {
		e.eps.Range(func(_ *packet.Addr, rec *episode) bool {
			rec.Prof.Memo = 0
			return true
		})
	}
	e.memos = memoPool{}
}
