package pipeline

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/pcaptest"
)

// roundPrefix is the i-th of the 1 000 fresh prefixes of reload round r.
func roundPrefix(r, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(r), byte(i >> 8), byte(i)})
}

// roundConfig keeps 203.0.113.0/24 and adds the 1 000 fresh prefixes of round r.
func roundConfig(t *testing.T, r int) *configs.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("window: 1m\ndark_prefixes:\n  - 203.0.113.0/24\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "  - %s/32\n", roundPrefix(r, i))
	}
	cfg, err := configs.Parse([]byte(b.String()), fmt.Sprintf("round%d.yaml", r))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// adopted checks that every worker counts under the published configuration once Reload
// has returned: only then may the slots of the removed prefixes be reused.
func adopted(t *testing.T, p *Pipeline, when string) {
	t.Helper()
	rc := p.rc.Load()
	for _, w := range p.workers {
		w.stateMu.Lock()
		same := w.rc == rc
		w.stateMu.Unlock()
		if !same {
			t.Fatalf("%s: worker %d still counts under an earlier configuration", when, w.id)
		}
	}
}

// TestReloadPrefixesReuseSlots reloads a pipeline 10 times with 1 000 new dark prefixes
// each (one kept), replaying packets to all of them after each reload. Every reload
// succeeds (the limit is of prefixes configured at once), each new prefix counts exactly
// its own packets though its slot counted another prefix before, the removed prefixes'
// series are gone and the kept prefix's count continues.
func TestReloadPrefixesReuseSlots(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("192.0.2.1")
	p, err := New(Options{Config: roundConfig(t, 0), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for r := 0; r < 10; r++ {
		if r > 0 {
			if err := p.Reload(roundConfig(t, r)); err != nil {
				t.Fatalf("reload %d: %v", r, err)
			}
			adopted(t, p, fmt.Sprintf("reload %d", r))
		}
		ts := t0.Add(time.Duration(r) * time.Hour)
		var ps []pcaptest.Packet
		for k := 0; k < 3; k++ {
			ps = append(ps, pcaptest.Packet{TS: ts, Proto: "udp", Src: src, Dst: netip.MustParseAddr("203.0.113.7"), SrcPort: 5000, DstPort: 53})
		}
		for i := 0; i < 1000; i++ {
			// The i-th prefix of the round gets 1 + i%3 packets.
			for k := 0; k <= i%3; k++ {
				ps = append(ps, pcaptest.Packet{TS: ts.Add(time.Millisecond), Proto: "udp", Src: src, Dst: roundPrefix(r, i), SrcPort: 5000, DstPort: 53})
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("r%d.pcap", r))
		if err := pcaptest.WriteFile(path, ps); err != nil {
			t.Fatal(err)
		}
		if res := p.Replay(context.Background(), ReplayOptions{Files: []string{path}}); len(res.Errors) != 0 {
			t.Fatal(res.Errors)
		}
		s := p.Snapshot()
		if len(s.Prefixes) != 1001 {
			t.Fatalf("round %d: %d prefixes exposed, want 1001", r, len(s.Prefixes))
		}
		if s.Prefixes[0].Name != "203.0.113.0/24" || s.Prefixes[0].Count != uint64(3*(r+1)) {
			t.Errorf("round %d: kept prefix %+v, want count %d", r, s.Prefixes[0], 3*(r+1))
		}
		for i, pf := range s.Prefixes[1:] {
			want := uint64(1 + i%3)
			if pf.Name != roundPrefix(r, i).String()+"/32" || pf.Count != want {
				t.Fatalf("round %d: prefix %d is %+v, want %s/32 counting %d", r, i, pf, roundPrefix(r, i), want)
			}
		}
		if s.NotDark != 0 {
			t.Errorf("round %d: %d packets not dark", r, s.NotDark)
		}
	}
}

// TestReloadPrefixesWhileCounting reloads while the workers count: packets go to the
// prefixes of all rounds (each counted only while its round is configured), so a slot
// reused before every worker stopped counting into it, or a wrong base, would show as a
// prefix counting more packets than were sent to it, or a count going back.
func TestReloadPrefixesWhileCounting(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("192.0.2.1")
	const reps = 30
	var cfgs []*configs.Config
	for r := 0; r < 10; r++ {
		cfgs = append(cfgs, roundConfig(t, r))
	}
	var ps []pcaptest.Packet
	kept := 0
	for k := 0; k < reps; k++ {
		for r := 0; r < 10; r++ {
			for i := 0; i < 1000; i += 3 {
				ts := t0.Add(time.Duration(len(ps)) * time.Microsecond)
				ps = append(ps, pcaptest.Packet{TS: ts, Proto: "udp", Src: src, Dst: roundPrefix(r, i), SrcPort: 5000, DstPort: 53})
				if i%30 == 0 {
					ps = append(ps, pcaptest.Packet{TS: ts, Proto: "udp", Src: src, Dst: netip.MustParseAddr("203.0.113.7"), SrcPort: 5000, DstPort: 53})
					kept++
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "all.pcap")
	if err := pcaptest.WriteFile(path, ps); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Config: cfgs[0], Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan ReplayResult, 1)
	go func() { done <- p.Replay(context.Background(), ReplayOptions{Files: []string{path}}) }()
	var mu sync.Mutex
	last := map[string]uint64{}
	check := func(when string) {
		mu.Lock()
		defer mu.Unlock()
		s := p.Snapshot()
		seen := map[string]uint64{}
		for _, pf := range s.Prefixes {
			seen[pf.Name] = pf.Count
			limit := uint64(reps)
			if pf.Name == "203.0.113.0/24" {
				limit = uint64(kept)
			}
			if pf.Count > limit || pf.Count < last[pf.Name] {
				t.Errorf("%s: %s counts %d (before %d, %d sent)", when, pf.Name, pf.Count, last[pf.Name], limit)
			}
		}
		// A removed prefix's series ends (re-added, it may start again at 0).
		last = seen
	}
	var res ReplayResult
	during := 0 // reloads while the replay ran
	for r := 1; r < 30; r++ {
		if err := p.Reload(cfgs[r%10]); err != nil {
			t.Fatalf("reload %d: %v", r, err)
		}
		adopted(t, p, fmt.Sprintf("reload %d", r))
		check(fmt.Sprintf("reload %d", r))
		select {
		case res = <-done:
			done = nil
		default:
			if done != nil {
				during++
			}
		}
	}
	if done != nil {
		res = <-done
	}
	if len(res.Errors) != 0 {
		t.Fatal(res.Errors)
	}
	t.Logf("%d of 29 reloads while the workers counted", during)
	check("end")
	if got := last["203.0.113.0/24"]; got != uint64(kept) {
		t.Errorf("kept prefix counts %d, want %d", got, kept)
	}
}

// TestPrefixLimitsAgree: the validation's limit is the one the counter slots are sized for.
func TestPrefixLimitsAgree(t *testing.T) {
	if configs.MaxDarkPrefixes != aggregate.MaxPrefixes {
		t.Errorf("configs.MaxDarkPrefixes %d, aggregate.MaxPrefixes %d", configs.MaxDarkPrefixes, aggregate.MaxPrefixes)
	}
}
