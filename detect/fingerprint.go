package detect

import (
	"math/bits"

	"github.com/telescope-dev/telescope/packet"
)

// Tool indexes (positions in Tools).
const (
	toolMirai = iota
	toolZMap
	toolMasscan
	toolNmap
)

// toolMinPackets is how many matching probes each tool label needs at least (besides
// matching most of the source's SYN probes): ZMap's and Masscan's fingerprints match one
// random probe in 65536, so one match proves nothing.
var toolMinPackets = [4]uint64{toolMirai: 1, toolZMap: 2, toolMasscan: 2, toolNmap: 1}

// zmapIPID is the IP ID ZMap puts in every probe.
const zmapIPID = 54321

// toolMatches returns the bit set of tools whose fingerprint the SYN probe h carries.
// Mirai, ZMap and Masscan are IPv4 fingerprints (an address, or the IPv4 ID field, which
// IPv6 has only in fragments); Nmap's (window, options, TTL) applies to both.
func toolMatches(h *packet.Header) uint8 {
	var m uint8
	if h.IPVersion == 4 && h.Dst.Is4() {
		dst := h.Dst.V4()
		if h.Seq == dst {
			m |= 1 << toolMirai
		}
		if h.IPID == zmapIPID {
			m |= 1 << toolZMap
		}
		if h.IPID == uint16(dst^uint32(h.DstPort)^h.Seq) {
			m |= 1 << toolMasscan
		}
	}
	o := &h.Opts
	if h.Window == 1024 && o.Count == 1 && o.Kinds == 1<<2 && o.MSS == 1460 && o.Len == 4 && h.TTL <= 59 {
		m |= 1 << toolNmap
	}
	return m
}

// fingerprint counts one SYN probe of a source. A fingerprint episode is a run of SYN
// probes with no gap longer than the window; a tool labels the source for the rest of the
// episode once its matching probes are more than half of the episode's SYN probes (and at
// least toolMinPackets).
func (e *Engine) fingerprint(h *packet.Header, st *SourceState) {
	w := &st.FP
	rec := e.continuing(h.Src, st, epFP, h.TS)
	if rec != nil {
		w = &rec.FP
	}
	t := h.TS
	if w.Probes > 0 { // the window is open
		t = later(t, w.Last)
		if rec == nil && t-w.Last > e.window {
			if w.Labels != 0 { // an episode in place (toolplace.go) that had not ended yet
				e.endToolWindow(h.Src, w)
			}
			*w = ToolWindow{Rec: w.Rec} // a new episode, no label was given in the old one
		}
	}
	if w.Probes == 0 {
		w.First = t
	}
	w.Last = t
	w.Probes++
	m := toolMatches(h)
	e.fpRecent.note(m != 0)
	// Over the matching tools only: most probes match none (a loop over every tool was 1 %
	// of bench-work's day sample).
	for rest := m; rest != 0; rest &= rest - 1 {
		i := bits.TrailingZeros8(rest)
		w.Match[i]++
		e.fpPackets[i]++
		// Only a matching probe can make a tool the majority, so only those check.
		if w.Labels&(1<<i) != 0 || w.Match[i]*2 <= w.Probes || w.Match[i] < toolMinPackets[i] {
			continue
		}
		switch {
		case rec == nil && e.inPlace():
			if w.Labels == 0 { // the window becomes an episode where it is
				e.queueTool(e.slot, w.Last)
			}
		case rec == nil:
			rec = e.promote(h.Src, st, epFP)
			rec.FP, st.FP = st.FP, ToolWindow{Rec: st.FP.Rec}
			w = &rec.FP
			e.watch(rec.FP.Last)
		}
		w.Labels |= 1 << i
		e.begin(detFingerprint, i, e.toolEntry(h.Src, w, i))
	}
}

func (e *Engine) toolEntry(src packet.Addr, w *ToolWindow, tool int) *ToolEntry {
	t := e.toolEntries.get() // zeroed; field by field (no temporary copied in)
	t.Src, t.Tool, t.Packets, t.Probes = IP(src), Tools[tool], w.Match[tool], w.Probes
	t.FirstSeen, t.LastSeen = Time(w.First), Time(w.Last)
	return t
}

// endTools ends the episode of every tool labelling the source and clears it.
func (e *Engine) endTools(src packet.Addr, rec *episode) {
	rec.Active &^= epFP
	e.endToolWindow(src, &rec.FP)
	rec.FP = ToolWindow{}
}

// endToolWindow ends the episode of every tool labelling window w of src and clears w,
// keeping its record hint (Rec).
func (e *Engine) endToolWindow(src packet.Addr, w *ToolWindow) {
	ended := *w
	*w = ToolWindow{Rec: w.Rec}
	for i := range Tools {
		if ended.Labels&(1<<i) != 0 {
			e.end(detFingerprint, i, e.toolEntry(src, &ended, i))
		}
	}
}
