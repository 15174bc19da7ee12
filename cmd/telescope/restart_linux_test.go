package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/telescope-dev/telescope/checkpoint"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/netnstest"
	"github.com/telescope-dev/telescope/internal/pcaptest"
	"github.com/telescope-dev/telescope/pipeline"
)

// restartLiveConfig: a short window so episodes end within seconds of the last packet
// (longer than the kill-to-restart gap, so they continue across it), a 1 s surge bucket and
// a checkpoint every second. Detectors the test does not follow are off. A hotspot needs 3
// sources in a window: every window from the first packet to the last is hot, as the gap of
// the restart (< 4 s) is shorter than a window less 0.6 s of traffic (3 sources). The
// source tables (10 000 slots a worker, 3.4 MiB: reserved) are prefaulted after each
// restore (limits.prefault), which must leave what the checkpoint restored as it was.
const restartLiveConfig = `sensor: restart
dark_prefixes: [203.0.113.0/24]
window: 6s
capture: {interface: %s, workers: 2, ring_mb: 4}
web: {listen_address: "127.0.0.1:9813"}
state: {path: %q, checkpoint_interval: 1s}
detect:
  scanner: {min_packets: 10, min_targets: 5}
  telnet: {surge_bucket: 1s, surge_factor: 3, surge_min_sources: 10}
  udp_then_syn: {max_gap: 6s, log_min_packets: 1}
  fingerprint: {enabled: false}
  hotspot: {min_sources: 3}
  backscatter: {enabled: false}
limits: {max_sources: 20000, prefault: true}
`

// logLine is one parsed JSON log line.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }
func (l logLine) num(k string) float64 {
	f, _ := l[k].(float64)
	return f
}

func parseLog(t *testing.T, text string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// detections returns the event lines of detector det.
func detections(lines []logLine, det string) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.str("event") == det && l.str("phase") != "" {
			out = append(out, l)
		}
	}
	return out
}

func countPhase(lines []logLine, phase string) int {
	n := 0
	for _, l := range lines {
		if l.str("phase") == phase {
			n++
		}
	}
	return n
}

// TestRunRestartContinuesEpisodes kills the live daemon (`telescope run` with state.path, in
// a network namespace) in the middle of a scanner episode and a UDP-then-SYN flow, after it
// has learnt a telnet surge baseline, starts it again with the same config and continues the
// traffic. SIGTERM: the shutdown checkpoint is restored. SIGKILL: the last periodic
// checkpoint (the test waits for one written after the last packet before killing, so no
// episode started after it; an episode that did would start again — documented). Over both
// processes' logs each episode has exactly one start and one end line, the episodes' end
// lines count the packets of both halves, and the surge is detected in the first bucket the
// restarted daemon judges — a fresh daemon only learns its baseline from that bucket — against
// a baseline no higher than the restored one.
func TestRunRestartContinuesEpisodes(t *testing.T) {
	netnstest.Require(t)
	for _, kill := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[kill]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRestart(t, kill)
		})
	}
}

func testRestart(t *testing.T, kill syscall.Signal) {
	pair := netnstest.NewPair(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "telescope.yaml")
	writeConfig(t, cfgPath, fmt.Sprintf(restartLiveConfig, pair.IfA, state))
	const addr = "127.0.0.1:9813"
	snd := netnstest.NewSender(t, pair.NsB, pair.IfB)
	sent := 0
	send := func(p pcaptest.Packet) {
		t.Helper()
		b, err := p.EthernetBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(b); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	dark := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	scanner := netip.MustParseAddr("198.51.100.1")
	flowSrc := netip.MustParseAddr("198.51.100.3")
	dht := []byte("d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe")
	waitCounted := func(d *daemonProc, want int) {
		t.Helper()
		d.waitFor(t, fmt.Sprintf("%d frames counted", want), 10*time.Second, func() bool {
			return value(d.metrics(t), "telescope_frames_total", "result", "ip") >= float64(want)
		})
	}

	// First half: 5 s, a tick every 200 ms. Each tick a new telnet source to 203.0.113.200
	// (5 per 1 s bucket: the surge baseline; a hotspot episode) and a scanner probe to a new
	// target (20 probes: an episode);
	// a DHT datagram then a SYN to 203.0.113.99:6881 (a flow), at the start and again at the
	// end (so the flow is not quiet for a window by the time the restarted daemon resumes).
	// The 25 hotspot packets take 4.8 s: they all fall in one 6 s window (windows are
	// aligned to multiples of it in Unix time) when sending starts in its first 1.2 s, so
	// the daemon starts just after a window boundary (it is up within a few hundred ms).
	// Otherwise a window holding only the first one or two of them (below min_sources) is not
	// hot, and their packets are not the episode's (85 packets expected, 83 or 84 seen).
	if off := time.Duration(time.Now().UnixNano() % int64(6*time.Second)); off > 200*time.Millisecond {
		time.Sleep(6*time.Second - off + 20*time.Millisecond)
	}
	d1 := startDaemon(t, pair.NsA, addr, cfgPath)
	if off := time.Duration(time.Now().UnixNano() % int64(6*time.Second)); off > 1100*time.Millisecond {
		t.Fatalf("the daemon took until %v into the window to start: the hotspot's packets would span two windows", off)
	}
	for i := range 25 {
		send(pcaptest.Packet{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}), Dst: dark(200), SrcPort: 50000, DstPort: 23, Flags: 0x02})
		if i < 20 {
			send(pcaptest.Packet{Src: scanner, Dst: dark(i), SrcPort: 40000, DstPort: 80, Flags: 0x02})
		}
		switch i {
		case 0, 23:
			send(pcaptest.Packet{Proto: "udp", Src: flowSrc, Dst: dark(99), SrcPort: 6881, DstPort: 6881, Payload: dht})
		case 1, 24:
			send(pcaptest.Packet{Src: flowSrc, Dst: dark(99), SrcPort: 40001, DstPort: 6881, Flags: 0x02})
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitCounted(d1, sent)
	d1.waitLog(t, `"event":"scanner","phase":"start"`)
	d1.waitLog(t, `"event":"udp_then_syn","phase":"start"`)
	switch kill {
	case syscall.SIGTERM:
		if code := d1.stop(t, kill); code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
		if !strings.Contains(d1.logs.String(), `"msg":"state checkpoint written at shutdown"`) {
			t.Fatalf("no shutdown checkpoint:\n%s", d1.logs.String())
		}
	case syscall.SIGKILL:
		// Every packet is counted: the next periodic checkpoint holds them all.
		counted := time.Now()
		d1.waitFor(t, "a checkpoint after the last packet", 10*time.Second, func() bool {
			fi, err := os.Stat(state)
			return err == nil && fi.ModTime().After(counted)
		})
		d1.stop(t, kill)
	}
	first := parseLog(t, d1.logs.String())
	for det, want := range map[string]int{"scanner": 1, "udp_then_syn": 1} {
		if ev := detections(first, det); countPhase(ev, "start") != want || countPhase(ev, "end") != 0 {
			t.Fatalf("%s before the restart: %d starts, %d ends; want %d start and no end", det,
				countPhase(ev, "start"), countPhase(ev, "end"), want)
		}
	}
	if ev := detections(first, "hotspot"); countPhase(ev, "end") != 0 {
		t.Fatalf("the hotspot ended before the restart: %v", ev)
	}
	if ev := detections(first, "telnet_surge"); len(ev) != 0 {
		t.Fatalf("a surge before the restart (the baseline traffic is steady): %v", ev)
	}

	// Restart with the same config: the state is restored.
	d2 := startDaemon(t, pair.NsA, addr, cfgPath)
	d2.waitLog(t, `"msg":"state restored"`)
	// Prefaulted after the restore: 2 workers × 10 000 slots × 360 bytes (the indexes, 256
	// KiB, are on the heap).
	d2.waitLog(t, `"msg":"source tables' memory committed","bytes":7200000`)
	if l := d2.logs.String(); strings.Index(l, `"msg":"source tables' memory committed"`) < strings.Index(l, `"msg":"state restored"`) {
		t.Fatalf("the source tables were prefaulted before the restore:\n%s", l)
	}
	var restored logLine
	for _, l := range parseLog(t, d2.logs.String()) {
		if l.str("msg") == "state restored" {
			restored = l
		}
	}
	base := restored.num("surge_baseline")
	if restored["surge_baseline_restored"] != true || restored["hotspot_restored"] != true || base < 2 || base > 8 || restored.num("active_episodes") < 2 {
		t.Fatalf("restored %v: want the surge baseline (about 5 sources a bucket) and 2 active episodes", restored)
	}

	// Second half, from the next whole surge bucket (the first the restarted workers
	// count): 60 new telnet sources at once (a surge against a baseline of ~5, judged in
	// the first bucket), 10 more scanner probes, another DHT datagram and SYN.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	for i := range 60 {
		send(pcaptest.Packet{Src: netip.AddrFrom4([4]byte{192, 0, 3, byte(1 + i)}), Dst: dark(200), SrcPort: 50000, DstPort: 23, Flags: 0x02})
	}
	send(pcaptest.Packet{Proto: "udp", Src: flowSrc, Dst: dark(99), SrcPort: 6881, DstPort: 6881, Payload: dht})
	for i := range 10 {
		send(pcaptest.Packet{Src: scanner, Dst: dark(20 + i), SrcPort: 40000, DstPort: 80, Flags: 0x02})
		if i == 1 {
			send(pcaptest.Packet{Src: flowSrc, Dst: dark(99), SrcPort: 40001, DstPort: 6881, Flags: 0x02})
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Quiet for longer than the window: every episode ends.
	d2.waitFor(t, "every episode ended", 20*time.Second, func() bool {
		s := d2.logs.String()
		return strings.Contains(s, `"event":"scanner","phase":"end"`) && strings.Contains(s, `"event":"udp_then_syn","phase":"end"`) &&
			strings.Contains(s, `"event":"telnet_surge","phase":"end"`) && strings.Contains(s, `"event":"hotspot","phase":"end"`)
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would show by now
	second := parseLog(t, d2.logs.String())
	all := append(append([]logLine(nil), first...), second...)
	for _, det := range []string{"scanner", "udp_then_syn", "telnet_surge", "hotspot"} {
		ev := detections(all, det)
		if countPhase(ev, "start") != 1 || countPhase(ev, "end") != 1 {
			t.Errorf("%s: %d starts and %d ends over both processes, want 1 and 1", det, countPhase(ev, "start"), countPhase(ev, "end"))
		}
	}
	for _, l := range detections(second, "scanner") {
		if l.str("phase") == "end" && (l.str("src") != scanner.String() || l.num("packets") != 30) {
			t.Errorf("scanner end %v: want %v with 20 + 10 packets", l, scanner)
		}
	}
	for _, l := range detections(second, "udp_then_syn") {
		if l.str("phase") == "end" && (l.num("udp_packets") != 3 || l.num("syn_packets") != 3) {
			t.Errorf("flow end %v: want 2+1 UDP datagrams and 2+1 SYNs over both halves", l)
		}
	}
	for _, l := range detections(second, "hotspot") {
		// The telnet sources' 25 + 60 SYNs to 203.0.113.200:23, over both processes.
		if l.str("phase") == "end" && (l.str("dst") != "203.0.113.200" || l.num("port") != 23 || l.num("packets") != 85) {
			t.Errorf("hotspot end %v: want 203.0.113.200 port 23 with 25 + 60 packets", l)
		}
	}
	for _, l := range detections(second, "telnet_surge") {
		// Judged in the restarted daemon's first bucket against the restored baseline
		// (or, if an empty bucket slipped in before it, that baseline decayed once: 0.8x).
		if l.str("phase") == "start" && (l.num("peak_sources") != 60 || l.num("baseline") > base+1e-9 || l.num("baseline") < 0.75*base) {
			t.Errorf("surge start %v: want 60 sources against the restored baseline %v", l, base)
		}
	}
	if t.Failed() {
		t.Logf("first daemon:\n%s\nsecond daemon:\n%s", d1.logs.String(), d2.logs.String())
	}
}

// TestRunBadCheckpoint starts `telescope run` (in a namespace) on a state.path holding a
// damaged or unusable checkpoint, one case each: the daemon logs one warning line naming the
// reason, starts fresh, keeps running (ready, scraped) and its next periodic checkpoint
// replaces the bad file with a good one.
func TestRunBadCheckpoint(t *testing.T) {
	pair := netnstest.NewPair(t)
	dir := t.TempDir()
	cfgText := func(workers int, port int) string {
		return fmt.Sprintf("dark_prefixes: [203.0.113.0/24]\ncapture: {interface: %s, workers: %d, ring_mb: 1}\n"+
			"web: {listen_address: \"127.0.0.1:%d\"}\nstate: {path: STATE, checkpoint_interval: 1s}\nlimits: {max_sources: 10000}\n", pair.IfA, workers, port)
	}
	// A good checkpoint of an idle two-worker pipeline under the config the cases run with.
	good := filepath.Join(dir, "good")
	cfg, err := configs.Parse([]byte(strings.Replace(cfgText(2, 1), "STATE", good, 1)), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 2, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Checkpoint(good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint32(data[12:]))
	edit := func(fn func(b []byte)) []byte {
		b := bytes.Clone(data)
		fn(b)
		return b
	}
	// rehead rewrites the header's checksum after an edit of the header.
	rehead := func(b []byte) {
		binary.LittleEndian.PutUint32(b[16+hlen:], crc32.Checksum(b[16:16+hlen], crc32.MakeTable(crc32.Castagnoli)))
	}
	// The first section (worker/0) filled with 0xff under a valid checksum: framing intact,
	// state inconsistent (restore fails after it began filling the pipeline).
	garbleFirst := func(b []byte) {
		off := 20 + hlen
		nlen := int(b[off])
		plen := int(binary.LittleEndian.Uint64(b[off+1+nlen:]))
		payload := b[off+1+nlen+8 : off+1+nlen+8+plen]
		for i := range payload {
			payload[i] = 0xff
		}
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		h.Write(b[off+1 : off+1+nlen])
		h.Write(payload)
		binary.LittleEndian.PutUint32(b[off+1+nlen+8+plen:], h.Sum32())
	}
	tests := []struct {
		name    string
		data    []byte
		workers int
		reason  string
		msg     string
	}{
		{"foreign", []byte("# a YAML file\nwindow: 5m\n"), 2, "foreign", "not a telescope state checkpoint"},
		{"empty", []byte{}, 2, "truncated", "truncated"},
		{"truncated", data[:len(data)/2], 2, "truncated", "truncated"},
		{"checksum", edit(func(b []byte) { b[len(b)-10] ^= 0x40 }), 2, "corrupt", "checksum mismatch"},
		{"inconsistent", edit(garbleFirst), 2, "corrupt", ""},
		{"old version", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[8:], checkpoint.Version-1) }), 2, "old version", "older state format version"},
		{"future version", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[8:], checkpoint.Version+1) }), 2, "future version", "newer state format version"},
		{"layout", edit(func(b []byte) { b[16] ^= 1; rehead(b) }), 2, "layout", "another layout"},
		{"other worker count", data, 1, "config", "workers=2"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := t.TempDir()
			state := filepath.Join(sub, "state")
			if err := os.WriteFile(state, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			port := 9830 + i
			cfgPath := filepath.Join(sub, "telescope.yaml")
			writeConfig(t, cfgPath, strings.Replace(cfgText(tc.workers, port), "STATE", strconv.Quote(state), 1))
			start := time.Now()
			d := startDaemon(t, pair.NsA, fmt.Sprintf("127.0.0.1:%d", port), cfgPath)
			d.waitLog(t, `"msg":"telescope started"`)
			var warns []logLine
			for _, l := range parseLog(t, d.logs.String()) {
				if l.str("level") != "info" {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 || warns[0].str("level") != "warn" || warns[0].str("reason") != tc.reason ||
				!strings.HasSuffix(warns[0].str("msg"), "; starting fresh") || !strings.Contains(warns[0].str("msg"), tc.msg) ||
				!strings.Contains(warns[0].str("msg"), state) {
				t.Fatalf("want one warning with reason %q naming %s and %q; got %v", tc.reason, state, tc.msg, warns)
			}
			t.Logf("%s: %s", tc.name, warns[0].str("msg"))
			if code, _, err := d.get("/metrics"); err != nil || code != 200 {
				t.Fatalf("scrape after the bad checkpoint: %d %v", code, err)
			}
			// Still running, and the bad file is replaced by a good checkpoint.
			d.waitFor(t, "a good checkpoint over the bad one", 10*time.Second, func() bool {
				fi, err := os.Stat(state)
				if err != nil || !fi.ModTime().After(start) {
					return false
				}
				f, err := checkpoint.Open(state)
				if err == nil {
					f.Close()
				}
				return err == nil
			})
			if code := d.stop(t, syscall.SIGTERM); code != 0 {
				t.Errorf("exit %d after SIGTERM", code)
			}
		})
	}
}
