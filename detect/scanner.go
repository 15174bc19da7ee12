package detect

import "github.com/telescope-dev/telescope/packet"

// Scanner classes, indexes of the scanner descriptor's Classes.
const (
	classHorizontal = iota
	classVertical
	classMixed
)

// scanner counts one probe (SYN probe, UDP datagram, ICMP echo request) of a source.
// A window opens at the first probe and spans the configured window; a probe at or past its
// end opens a new one, unless an episode is active: then the counts keep accumulating until
// the source is quiet for longer than the window. dst is the destination's hash
// (seedDstIP).
func (e *Engine) scanner(h *packet.Header, st *SourceState, port uint16, tech int, dense int32, dst uint64) {
	st.Tech.add(tech)
	e.techPackets[tech]++
	w := &st.Scan
	rec := e.continuing(h.Src, st, epScan, h.TS)
	if rec != nil {
		w = &rec.Scan
	}
	t := h.TS
	if w.Packets > 0 { // the window is open
		t = later(t, w.Last)
		if rec == nil && t-w.Start >= e.window {
			e.clearScan(w)
		}
	}
	if w.Packets == 0 {
		w.Start = t
	}
	switch {
	case tech == TechICMPEcho: // no port
	case !w.HasPorts:
		w.PortLo, w.PortHi, w.HasPorts = port, port, true
	case port < w.PortLo:
		w.PortLo = port
	case port > w.PortHi:
		w.PortHi = port
	}
	w.Last = t
	w.Packets++
	var memoPair, memoAddr []uint64 // memo.go
	if rec != nil && dense >= 0 {
		memoPair, memoAddr = e.memoBits(&rec.Prof, port, dense)
	}
	changed := false
	if memoPair == nil || !hasBit(memoPair, uint32(dense)) {
		changed = w.Targets.Add(&e.slab, packet.Mix64(dst^seedPair^uint64(port)))
		if memoPair != nil {
			setBit(memoPair, uint32(dense), true)
		}
	}
	w.Ports.Add(&e.slab, portHash(port))
	addSmall(&w.IPs, &w.NIPs, uint32(dst))
	if e.watched.has(port) {
		e.watchedProbe(w, port, rec != nil)
	}
	if rec != nil {
		pr := &rec.Prof
		pr.Tech[tech]++
		if memoAddr == nil || !hasBit(memoAddr, uint32(dense)) {
			pr.Addrs.Add(&e.slab, addrValue(uint32(dst)))
			if memoAddr != nil {
				setBit(memoAddr, uint32(dense), true)
			}
		}
		pr.Top.add(profileKey(h.Proto, port))
		if pr.PortMap != 0 {
			e.ports.set(pr.PortMap, port)
		}
		return
	}
	cfg := &e.cfg.Scanner
	if w.Packets >= uint64(max(cfg.MinPackets, 0)) && e.reached(&w.Targets, cfg.MinTargets, changed) {
		rec = e.promote(h.Src, st, epScan)
		rec.Scan, st.Scan = st.Scan, ScanWindow{} // the window's slab blocks move with it
		e.startProfile(&rec.Prof, &rec.Scan, &st.Tech)
		e.watch(rec.Scan.Last)
		entry := e.scannerEntry(h.Src, &rec.Scan, &rec.Prof)
		e.begin(detScanner, scannerClass(entry.Ports, rec.Scan.NIPs), entry)
		e.countWatched(rec.Scan.Watched)
	}
}

// watchedProbe notes a probe of a watched port in a scanner window; in an active episode
// a watched port probed for the first time counts at once.
func (e *Engine) watchedProbe(w *ScanWindow, port uint16, active bool) {
	i := e.watched.index(port)
	if i < 0 || w.Watched&(1<<i) != 0 {
		return
	}
	w.Watched |= 1 << i
	if active {
		e.c.addWatched(port)
	}
}

// countWatched counts a new scanner episode under each watched port its window probed.
func (e *Engine) countWatched(mask uint64) {
	for i, p := range e.watched.ports {
		if mask&(1<<i) != 0 {
			e.c.addWatched(p)
		}
	}
}

// addSmall adds x to a small set whose count saturates one past its capacity: enough to
// tell "at most len(set)" from "more".
func addSmall(set *[5]uint32, n *uint8, x uint32) {
	if int(*n) > len(set) {
		return
	}
	for _, v := range set[:*n] {
		if v == x {
			return
		}
	}
	if int(*n) < len(set) {
		set[*n] = x
	}
	*n++
}

// scannerClass applies the class rule: horizontal (<= 5 ports, > 5 dst IPs), vertical
// (<= 5 dst IPs, > 5 ports), otherwise mixed.
func scannerClass(ports uint64, ips uint8) int {
	switch {
	case ports <= 5 && ips > 5:
		return classHorizontal
	case ips <= 5 && ports > 5:
		return classVertical
	}
	return classMixed
}

func (e *Engine) scannerEntry(src packet.Addr, w *ScanWindow, pr *profileRec) *ScannerEntry {
	// Estimates never exceed the packets (each probe reaches one target, one port).
	prof := e.buildProfile(w, pr, min(w.Ports.Count(&e.slab), w.Packets))
	ports := min(prof.Ports, w.Packets) // exact when the episode has a port map
	tech := techName(dominant(&pr.Tech))
	return &ScannerEntry{
		Technique:        tech,
		Summary:          Summary(tech, prof),
		Profile:          prof,
		Src:              src.String(),
		Class:            descriptors[detScanner].Classes[scannerClass(ports, w.NIPs)],
		Packets:          w.Packets,
		Targets:          min(w.Targets.Count(&e.slab), w.Packets),
		Ports:            ports,
		FirstSeen:        Time(w.Start),
		LastSeen:         Time(w.Last),
		TargetsEstimated: !w.Targets.Exact() || !w.Ports.Exact(),
	}
}

// endScanner emits the End event of src's scanner episode with its final values and
// clears it from the record.
func (e *Engine) endScanner(src packet.Addr, rec *episode) {
	entry := e.scannerEntry(src, &rec.Scan, &rec.Prof)
	rec.Active &^= epScan
	e.clearScan(&rec.Scan)
	e.dropProfile(&rec.Prof)
	e.end(detScanner, descriptors[detScanner].ClassIndex(entry.Class), entry)
}

// clearScan empties a scanner window, returning its slab blocks.
func (e *Engine) clearScan(w *ScanWindow) {
	w.Targets.Reset(&e.slab)
	w.Ports.Reset(&e.slab)
	*w = ScanWindow{}
}

// startProfile seeds a new scanner episode's profile from the window that became the
// episode: the source's technique mix and the window's first (up to five) addresses.
func (e *Engine) startProfile(pr *profileRec, w *ScanWindow, mix *TechCounts) {
	e.dropProfile(pr)
	pr.Memo = e.memoGet(e.densePx())
	if pr.PortMap = e.ports.get(); pr.PortMap != 0 {
		ref := pr.PortMap
		pr.PortsExact = w.Ports.Values(&e.slab, func(x uint64) {
			if p, ok := portOfHash(x); ok {
				e.ports.set(ref, p)
			}
		})
	}
	for i, n := range mix {
		pr.Tech[i] = uint32(n)
	}
	pr.AddrsComplete = int(w.NIPs) <= len(w.IPs)
	for _, ip := range w.IPs[:min(int(w.NIPs), len(w.IPs))] {
		pr.Addrs.Add(&e.slab, addrValue(ip))
	}
}

// stealth counts a TCP packet of a technique that is no probe for the scanner rule (ACK,
// FIN, NULL, XMAS, Maimon, odd flags without SYN): it adds to the source's technique mix,
// the technique counter and an active scanner episode's technique counts, and changes no
// rule's counts.
func (e *Engine) stealth(h *packet.Header, st *SourceState, tech int) {
	st.Tech.add(tech)
	e.techPackets[tech]++
	if st.Moved&epScan != 0 {
		if rec := e.moved(h.Src, st, epScan); rec != nil {
			rec.Prof.Tech[tech]++
		}
	}
}

// dropProfile returns a profile's memory and clears it.
func (e *Engine) dropProfile(pr *profileRec) {
	pr.Addrs.Reset(&e.slab)
	e.ports.put(pr.PortMap)
	e.memoPut(pr.Memo)
	*pr = profileRec{}
}
