package detect

import (
	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// SourceState is the per-source detector state. It lives inline in the worker's per-source
// LRU table (the pipeline owns that table, so its size is paid once per table slot: keep it
// compact). The fields are exported plain values so a table can be checkpointed; treat them
// as read-only outside this package.
//
// It holds each detector's counting window until the detector's rule holds. Then the window
// becomes an active episode and moves into the engine's episode table (Moved says which),
// where Advance can find and end it: the engine never keeps pointers into the pipeline's
// table, whose entries move when it grows.
//
// Field order follows use: every probe reads Moved and the scanner window, every SYN probe
// the tool window, only telnet SYNs the telnet window, so a probe touches few cache lines.
type SourceState struct {
	// SurgeSeq is the engine's bucket sequence number in which this source was last
	// counted as a telnet source (0: never).
	SurgeSeq uint32
	// Moved has a bit (epScan, epTel, epFP) set while that window is an active episode kept
	// in the engine's episode table. A bit whose episode has ended there is cleared on the
	// source's next packet.
	Moved uint8
	// Tech is the source's technique mix (technique.go): it fills the padding after Moved.
	Tech TechCounts
	// FlowSec is the latest packet time of this source's udp_then_syn flows while its entry
	// lives, in whole seconds rounded up (0: none; see flowSec): a SYN probe looks its
	// flows up only within the flows' horizon of it (mayHaveFlows). In the padding after Tech.
	FlowSec uint32
	Scan    ScanWindow
	FP      ToolWindow
	Tel     TelnetWindow
}

// A window is open once it has counted a packet (Packets or Probes > 0); the zero value is
// a closed window.

// ScanWindow counts a source's probes for the scanner rule.
type ScanWindow struct {
	Start, Last int64 // first and last probe of the window
	Packets     uint64
	// IPs holds the first distinct dst IPs (32-bit hashes): the class only needs to know
	// whether there are more than five, so NIPs saturates at len(IPs)+1.
	IPs  [5]uint32
	NIPs uint8
	// PortLo and PortHi are the lowest and highest TCP/UDP dst port probed, once HasPorts.
	PortLo, PortHi uint16
	HasPorts       bool
	// Watched has bit i set when a probe reached the engine's i-th watched port.
	Watched uint64
	Targets aggregate.Distinct // (dst IP, dst port) pairs
	Ports   aggregate.Distinct // dst ports
}

// TelnetWindow counts a source's SYN probes to the telnet ports.
type TelnetWindow struct {
	Start, Last int64
	Packets     uint64
	Mirai       uint64 // of which seq == dst IPv4
	Targets     aggregate.Distinct
}

// ToolWindow counts a source's SYN probes and those matching each tool's fingerprint, over
// a fingerprint episode (SYN probes with no gap longer than the window).
type ToolWindow struct {
	First, Last int64
	Probes      uint64
	Match       [4]uint64 // by index of Tools
	Labels      uint8     // bit i: Tools[i] labels the source in this episode
	// Rec, in a SourceState, is 1 + the slot of the source's record in the engine's
	// episode table, set when a window of the source became an episode: a hint, checked
	// against the slot's key, that spares the packets of a source with active episodes a
	// hash lookup. 0: none. (It fills the window's padding; a record's copy means nothing.)
	Rec int32
}

// Episode bits (SourceState.Moved, episode.Active).
const (
	epScan uint8 = 1 << iota
	epTel
	epFP
	epAll = epScan | epTel | epFP
)

// episode is the engine's record of a source with at least one active episode: the windows
// that became episodes (Active says which), moved out of its SourceState.
//
// Field order follows use: the many one-tool sources (tens of thousands of Mirai bots, a
// handful of SYNs each) read Active and FP right after the table entry's key, on the same
// or the next cache line; the few scanners' large windows come last.
type episode struct {
	Active uint8
	Seq    uint64 // the engine's sequence number at the record's last promotion (due.go)
	FP     ToolWindow
	Tel    TelnetWindow
	Scan   ScanWindow
	Prof   profileRec // the scanner episode's profile (profile.go)
}

// moved returns the record holding src's active episode `bit`, or nil when there is none
// (clearing a bit whose episode ended in the engine: Advance, eviction, reload).
func (e *Engine) moved(src packet.Addr, st *SourceState, bit uint8) *episode {
	if st.Moved&bit == 0 {
		return nil
	}
	if rec := e.record(src, st); rec != nil && rec.Active&bit != 0 {
		return rec
	}
	st.Moved &^= bit
	return nil
}

// record returns src's record, nil when there is none. It looks the table up once per
// packet (the scanner, telnet and fingerprint detectors of one probe share the answer):
// PacketAt forgets the answer before each packet, and promote and release, the packet
// path's only changes to the table, replace it. For the packet path only.
func (e *Engine) record(src packet.Addr, st *SourceState) *episode {
	if !e.recOK {
		e.rec, e.recOK = e.findRecord(src, st), true
	}
	return e.rec
}

// findRecord returns src's record: from the slot st.FP.Rec names when that slot holds a
// live record of src (one with an active episode: a record leaves the table, by deletion
// or eviction, only with none), else by a lookup.
func (e *Engine) findRecord(src packet.Addr, st *SourceState) *episode {
	if i := e.recordSlot(src, st); i >= 0 {
		_, rec := e.eps.At(i)
		return rec
	}
	return nil
}

// recordSlot is findRecord's slot (-1: src has no record).
func (e *Engine) recordSlot(src packet.Addr, st *SourceState) int32 {
	if i := st.FP.Rec - 1; i >= 0 && int(i) < e.eps.Slots() {
		if k, rec := e.eps.At(i); *k == src && rec.Active != 0 {
			return i
		}
	}
	return e.eps.Find(src)
}

// continuing returns src's active episode `bit` when a packet at t continues it (a gap of
// at most the window), else nil. An episode the packet does not continue ends first; the
// source's own window was emptied when the episode moved, so the packet opens a new one.
func (e *Engine) continuing(src packet.Addr, st *SourceState, bit uint8, t int64) *episode {
	rec := e.moved(src, st, bit)
	if rec == nil {
		return nil
	}
	last := rec.last(bit)
	if later(t, last)-last <= e.window {
		return rec
	}
	e.endRecord(src, rec, bit)
	e.release(src, rec)
	st.Moved &^= bit
	return nil
}

// last returns the last packet time of episode `bit`.
func (r *episode) last(bit uint8) int64 {
	switch bit {
	case epScan:
		return r.Scan.Last
	case epTel:
		return r.Tel.Last
	}
	return r.FP.Last
}

// promote returns src's record (created if needed) for a window that becomes an episode.
// The caller moves the window into it. It may grow the table: no other record pointer may
// be held across the call.
func (e *Engine) promote(src packet.Addr, st *SourceState, bit uint8) *episode {
	slot, _ := e.eps.TouchSlot(src)
	_, rec := e.eps.At(slot)
	e.rec, e.recOK = rec, true // the touch may have changed the table (growth, eviction)
	st.FP.Rec = slot + 1
	if rec.Active&bit != 0 {
		// Only if the pipeline dropped the source without Evicted while its episode was
		// active: close that episode rather than lose it.
		e.endRecord(src, rec, bit)
	}
	due := st.lastOf(bit) + e.window
	if d, ok := e.recordDue(rec); ok && d < due {
		due = d
	}
	rec.Active |= bit
	st.Moved |= bit
	e.seq++
	rec.Seq = e.seq
	e.queueSource(src, rec, slot, due) // due.go
	return rec
}

// endRecord ends the selected active episodes of a record (End events, final values).
func (e *Engine) endRecord(src packet.Addr, rec *episode, bits uint8) {
	if bits&rec.Active&epScan != 0 {
		e.endScanner(src, rec)
	}
	if bits&rec.Active&epTel != 0 {
		e.endTelnet(src, rec)
	}
	if bits&rec.Active&epFP != 0 {
		e.endTools(src, rec)
	}
}

// release drops src's record once it holds no active episode.
func (e *Engine) release(src packet.Addr, rec *episode) {
	if rec.Active == 0 {
		e.eps.Delete(src)
		e.rec, e.recOK = nil, false
	}
}

// endSources ends episodes of every record: with all, those selected by bits; otherwise
// those quiet for longer than the window at now. Records left empty are dropped.
func (e *Engine) endSources(bits uint8, now int64, all bool) {
	e.keys = e.keys[:0]
	e.eps.Range(func(k *packet.Addr, rec *episode) bool {
		b := bits
		if !all {
			b = 0
			for _, bit := range episodeBits {
				if now-rec.last(bit) > e.window {
					b |= bit
				}
			}
		}
		e.endRecord(*k, rec, b)
		if rec.Active == 0 {
			e.keys = append(e.keys, *k)
		}
		e.watchRecord(rec)
		return true
	})
	for _, k := range e.keys {
		e.eps.Delete(k)
	}
}

// watchRecord notes when the record's remaining active episodes can end.
func (e *Engine) watchRecord(rec *episode) {
	for _, bit := range episodeBits {
		if rec.Active&bit != 0 {
			e.watch(rec.last(bit))
		}
	}
}

var episodeBits = [...]uint8{epScan, epTel, epFP}

// evictEpisode is the episode table's eviction callback (only when more sources have active
// episodes than the table holds).
func (e *Engine) evictEpisode(k *packet.Addr, rec *episode) {
	e.c.Evictions.Add(1)
	e.endRecord(*k, rec, epAll)
}
