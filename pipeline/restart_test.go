package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

const restartConfig = `
dark_prefixes: [203.0.113.0/24]
window: 30s
detect:
  scanner: {min_packets: 10, min_targets: 5}
  telnet: {surge_bucket: 10s, surge_factor: 3, surge_min_sources: 5}
  udp_then_syn: {max_gap: 30s}
  fingerprint: {enabled: false}
limits: {max_sources: 10000}
`

// restartTraffic builds the packets of [from, to) seconds after base: a scanner probing a
// new target every second from 50 s on; a source sending UDP to 203.0.113.99:6881 every 5 s
// from 55 s, and a SYN to it 2 s after each; a second scanner from 40 s to 60 s only; and
// telnet SYNs from 2 new sources per 10 s bucket, 20 per bucket in [60 s, 120 s): a surge.
func restartTraffic(base time.Time, from, to int) []pcaptest.Packet {
	var ps []pcaptest.Packet
	at := func(s int, ms int) time.Time {
		return base.Add(time.Duration(s)*time.Second + time.Duration(ms)*time.Millisecond)
	}
	dark := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	for s := from; s < to; s++ {
		if s >= 50 {
			ps = append(ps, pcaptest.Packet{TS: at(s, 0), Src: addr("198.51.100.1"), Dst: dark(s % 200), SrcPort: 40000, DstPort: 80, Flags: 0x02})
		}
		if s >= 40 && s < 60 {
			ps = append(ps, pcaptest.Packet{TS: at(s, 1), Src: addr("198.51.100.2"), Dst: dark(s % 200), SrcPort: 40000, DstPort: 443, Flags: 0x02})
		}
		if s >= 55 && s%5 == 0 {
			ps = append(ps, pcaptest.Packet{TS: at(s, 2), Proto: "udp", Src: addr("198.51.100.3"), Dst: dark(99), SrcPort: 6881, DstPort: 6881, Payload: []byte("d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe")})
		}
		if s >= 57 && s%5 == 2 {
			ps = append(ps, pcaptest.Packet{TS: at(s, 3), Src: addr("198.51.100.3"), Dst: dark(99), SrcPort: 40001, DstPort: 6881, Flags: 0x02})
		}
		n := 2
		if s >= 60 && s < 120 {
			n = 20
		}
		if s%10 == 5 { // the bucket's telnet sources, all in one second of the bucket
			for i := range n {
				src := netip.AddrFrom4([4]byte{192, 0, 2, byte(s/10*20 + i)})
				ps = append(ps, pcaptest.Packet{TS: at(s, 10+i), Src: src, Dst: dark(i), SrcPort: 50000, DstPort: 23, Flags: 0x02})
			}
		}
	}
	return ps
}

// keptPipeline returns a 2-worker pipeline whose replays keep their state (no Finish: a
// daemon killed or checkpointed mid-episode) and the recorder of its events.
func keptPipeline(t *testing.T, cfg *configs.Config) (*Pipeline, *recorder) {
	t.Helper()
	rec := &recorder{next: NewEpisodes()}
	p, err := New(Options{Config: cfg, Workers: 2, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	p.SetKeepState(true)
	return p, rec
}

func writeTraffic(t *testing.T, path string, ps []pcaptest.Packet) string {
	t.Helper()
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	return path
}

// phases counts Start and End events per detector.
func phases(evs []*detect.Event) map[string][2]int {
	m := map[string][2]int{}
	for _, ev := range evs {
		c := m[ev.Detector]
		c[ev.Phase]++
		m[ev.Detector] = c
	}
	return m
}

// TestRestartContinuesEpisodes is the fast equivalent of killing the daemon in the middle
// of a scanner episode, a telnet surge and a UDP-then-SYN flow and starting it again: run
// one pipeline up to the checkpoint (SIGTERM: the checkpoint is the last state; SIGKILL:
// the last periodic checkpoint, a few seconds older than the kill), restore it into a new
// pipeline after a downtime and continue the traffic. Every episode has one start and one
// end over both runs, the surge is judged against the restored baseline, and the episode
// that went quiet during the downtime ends at restore, at its last packet.
func TestRestartContinuesEpisodes(t *testing.T) {
	cfg, err := configs.Parse([]byte(restartConfig), "restart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, kill := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(kill, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			p1, before := keptPipeline(t, cfg)
			// Up to 75 s. SIGKILL: the last checkpoint was at 72 s; what came after is lost.
			ckAt := 75
			if kill == "SIGKILL" {
				ckAt = 72
			}
			p1.Replay(context.Background(), ReplayOptions{Files: []string{writeTraffic(t, filepath.Join(dir, "a.pcap"), restartTraffic(base, 0, ckAt))}})
			if _, err := p1.Checkpoint(state); err != nil {
				t.Fatal(err)
			}
			if kill == "SIGKILL" {
				p1.Replay(context.Background(), ReplayOptions{Files: []string{writeTraffic(t, filepath.Join(dir, "a2.pcap"), restartTraffic(base, ckAt, 75))}})
			}
			baseBefore, _ := p1.surge.Baseline()
			if got := phases(before.events); got["scanner"] != [2]int{2, 0} || got["udp_then_syn"] != [2]int{1, 0} || got["telnet_surge"] != [2]int{1, 0} {
				t.Fatalf("before the kill: %v, want 2 scanners, a flow and a surge started, none ended", got)
			}

			// Down from 75 s to 100 s: longer than the window for the second scanner (last
			// packet at 59 s), shorter for the others.
			after := &recorder{next: NewEpisodes()}
			p2, err := New(Options{Config: cfg, Workers: 2, Sink: after})
			if err != nil {
				t.Fatal(err)
			}
			info, err := p2.RestoreState(state, RestoreOptions{Resume: true, Now: base.Add(100 * time.Second).UnixNano()})
			if err != nil {
				t.Fatal(err)
			}
			if got := phases(after.events); got["scanner"] != [2]int{0, 1} || len(got) != 1 {
				t.Fatalf("at restore: %v, want the quiet scanner's end only", got)
			}
			var quiet detect.ScannerEntry
			b, _ := json.Marshal(after.events[0].Entry)
			if err := json.Unmarshal(b, &quiet); err != nil || quiet.Src != "198.51.100.2" || !time.Unix(0, int64(quiet.LastSeen)).Equal(base.Add(59*time.Second+time.Millisecond)) {
				t.Errorf("quiet scanner ended with %s, want 198.51.100.2 last seen at 59.001 s", b)
			}
			if restored, ok := p2.surge.Baseline(); !ok || restored != baseBefore && kill == "SIGTERM" || restored < 1 {
				t.Errorf("surge baseline %v after restore, %v before the kill", restored, baseBefore)
			}
			p2.Replay(context.Background(), ReplayOptions{Files: []string{writeTraffic(t, filepath.Join(dir, "b.pcap"), restartTraffic(base, 100, 130))}})

			all := append(append([]*detect.Event(nil), before.events...), after.events...)
			for det, want := range map[string][2]int{"scanner": {2, 2}, "udp_then_syn": {1, 1}, "telnet_surge": {1, 1}} {
				if got := phases(all)[det]; got != want {
					t.Errorf("%s: %d starts and %d ends over both runs, want %v", det, got[0], got[1], want)
				}
			}
			for _, ev := range all {
				switch e := ev.Entry.(type) {
				case *detect.TelnetSurgeEntry:
					if ev.Phase == detect.End {
						// Judged against the baseline learnt before the kill (2 sources per bucket).
						if e.Baseline < 1.5 || e.Baseline > 2.5 || e.PeakSources != 20 {
							t.Errorf("surge %+v, want peak 20 against a baseline of about 2", e)
						}
						if !time.Unix(0, int64(e.Start)).Equal(base.Add(60*time.Second)) || !time.Unix(0, int64(e.End)).Equal(base.Add(120*time.Second)) {
							t.Errorf("surge from %v to %v", time.Unix(0, int64(e.Start)), time.Unix(0, int64(e.End)))
						}
					}
				case *detect.ScannerEntry:
					// 1 probe a second in [50 s, 75 s) and [100 s, 130 s); SIGKILL lost [72 s, 75 s).
					want := uint64(25 + 30)
					if kill == "SIGKILL" {
						want -= 3
					}
					if ev.Phase == detect.End && e.Src == "198.51.100.1" && e.Packets != want {
						t.Errorf("scanner ended with %d packets, want %d", e.Packets, want)
					}
				case *detect.UDPThenSYNEntry:
					if ev.Phase == detect.End && time.Unix(0, int64(e.LastSeen)).Before(base.Add(100*time.Second)) {
						t.Errorf("flow ended at %v: not continued after the restart", time.Unix(0, int64(e.LastSeen)))
					}
				}
			}
			if t.Failed() {
				for _, ev := range all {
					b, _ := json.Marshal(ev.Entry)
					t.Logf("%s %s %s", ev.Detector, ev.Phase, b)
				}
			}
			t.Logf("%s: restored %d sources, %d active episodes; %s", kill, info.Sources, info.Episodes,
				fmt.Sprint(slices.Sorted(func(yield func(string) bool) {
					for k, v := range phases(all) {
						if !yield(fmt.Sprintf("%s=%v", k, v)) {
							return
						}
					}
				})))
		})
	}
}
