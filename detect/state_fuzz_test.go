package detect

import (
	"testing"

	"github.com/telescope-dev/telescope/checkpoint"
)

// FuzzLoadHotspotState: whatever a checkpoint's hotspot state holds (a worker's open
// window, or the shared side's pending windows and episodes), loading it fails with an
// error or gives a detector that counts on and ends its episodes; it never panics. The
// seeds are a real state: two workers' windows handed over in parts over a dark /23, a
// hot destination among one-packet noise, its episode active and its next window pending. Light enough (no pipeline) to fuzz at speed:
//
//	go test -run '^$' -fuzz FuzzLoadHotspotState -fuzztime 5m ./detect/
func FuzzLoadHotspotState(f *testing.F) {
	px := darkSpace(f, "198.51.0.0/23", "2001:db8:1::/48")
	hs, engines, sink := hotOnly(f, px, 20)
	ts := t0
	send := func(w, src int, dst string, port uint16) {
		ts += sec / 1000
		p := syn(ip4([]string{"10.0.0.0", "10.1.0.0"}[w], src), dst, port, ts)
		engines[w].packetTo(&p, px)
	}
	for part := range 3 {
		for w := range engines {
			for i := range 30 { // a hot address and port, and noise
				send(w, 100*part+i, "198.51.0.9", 23)
				send(w, 5000+i, ip4("198.51.0.0", 16+i*7%400), uint16(1000+i))
			}
			send(w, 9000+part, "2001:db8:1::7", 80)
			engines[w].e.hotFlush()
		}
	}
	// The next window: the first closes (its episode starts), the second is pending.
	ts = t0 + int64(engines[0].e.cfg.Window) + sec
	for w := range engines {
		for i := range 30 {
			send(w, 700+i, "198.51.0.9", 23)
		}
		engines[w].e.hotFlush()
	}
	var worker, shared checkpoint.Encoder
	engines[0].e.SaveHotState(&worker)
	hs.SaveState(&shared, nil)
	f.Add(uint8(0), worker.Bytes())
	f.Add(uint8(1), shared.Bytes())
	f.Add(uint8(0), worker.Bytes()[:worker.Size()/2])
	f.Add(uint8(1), shared.Bytes()[:shared.Size()/2])
	cfg := engines[0].e.cfg
	// The seeds load: the fuzzing starts from states that are accepted.
	hs2, fresh := sharedHot(f, cfg, sink, px)
	d := checkpoint.NewDecoder(worker.Bytes())
	if fresh[0].e.LoadHotState(d); d.Done() != nil {
		f.Fatalf("the worker's state does not load: %v", d.Done())
	}
	d = checkpoint.NewDecoder(shared.Bytes())
	if !hs2.LoadState(d) || d.Done() != nil || hs2.Active() == 0 {
		f.Fatalf("the shared state does not load with its episode: %v, %d active", d.Done(), hs2.Active())
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		hs2, fresh := sharedHot(t, cfg, sink, px)
		d := checkpoint.NewDecoder(b)
		if which%2 == 0 {
			if fresh[0].e.LoadHotState(d); d.Done() != nil {
				return // refused
			}
		} else if hs2.LoadState(d); d.Done() != nil {
			return
		}
		// Accepted: it counts on and ends.
		for w := range fresh {
			for i := range 30 {
				ts := ts + int64(i)*sec/100
				p := syn(ip4("10.2.0.0", i), "198.51.0.9", 23, ts)
				fresh[w].packetTo(&p, px)
			}
		}
		finishHot(hs2, fresh, sink, ts+10*60*sec)
	})
}
