package studyhtml

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/packet"
)

// pollEpisodes is 40 receivers (dark ip:port), receiver i reached by senders 0 .. 50(i+1)-1
// (41 000 pairs, 2 000 distinct senders), each pair twice, DHT from even senders and uTP
// from odd ones.
func pollEpisodes() []*detect.UDPThenSYNEntry {
	var es []*detect.UDPThenSYNEntry
	for i := range 40 {
		dst := detect.IP(packet.AddrFromNetip(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})))
		for j := range 50 * (i + 1) {
			src := detect.IP(packet.AddrFromNetip(netip.AddrFrom4([4]byte{100, 64, byte(j >> 8), byte(j)})))
			pay := "dht"
			if j%2 == 1 {
				pay = "utp"
			}
			for range 2 {
				es = append(es, &detect.UDPThenSYNEntry{Src: src, Dst: dst, Port: 6881, Payload: pay})
			}
		}
	}
	return es
}

// within reports whether got is within frac of want.
func within(got, want uint64, frac float64) bool {
	d := float64(got) - float64(want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

// TestPollutionSampleBounded: the pollution section's distinct senders, hosts, receivers
// and pairs are exact below the bound and a bounded uniform sample above it: the samples
// never hold more than the bound, the estimates stay near the truth, the page marks them
// "≈" and says so, and the same input gives the same page.
func TestPollutionSampleBounded(t *testing.T) {
	es := pollEpisodes()
	var exact pollPairs
	exact.init(1 << 20)
	for _, e := range es {
		exact.add(e)
	}
	if !exact.pairs.exact() || exact.pairs.count() != 41000 || exact.senders.count() != 2000 ||
		exact.receivers.count() != 40 || exact.hosts.count() != 40 || exact.payN["dht"] != 1000 || exact.payN["utp"] != 1000 {
		t.Fatalf("below the bound: %d pairs, %d senders, %d receivers, %d hosts, payload senders %v; want 41000, 2000, 40, 40, 1000 each",
			exact.pairs.count(), exact.senders.count(), exact.receivers.count(), exact.hosts.count(), exact.payN)
	}
	for i := range 40 {
		r := pollRecv{detect.IP(packet.AddrFromNetip(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))), 6881}
		if exact.recv[r] != 50*(i+1) {
			t.Fatalf("receiver %d: %d senders, want %d", i, exact.recv[r], 50*(i+1))
		}
	}
	cards, figs := pollution(&exact)
	if s := fmt.Sprint(cards, figs[0].Reading, figs[1].SVG); strings.Contains(s, "≈") || strings.Contains(s, "sample") {
		t.Errorf("exact counts marked as estimates: %v %s", cards, figs[0].Reading)
	}

	const limit = 512
	page := func() ([]card, string) {
		var p pollPairs
		p.init(limit)
		for k, e := range es {
			p.add(e)
			for name, n := range map[string]int{"senders": len(p.senders.keys), "hosts": len(p.hosts.keys),
				"receivers": len(p.receivers.keys), "pairs": len(p.pairs.keys), "payload senders": len(p.paySenders.keys),
				"receivers' senders": len(p.recv)} {
				if n > limit {
					t.Fatalf("episode %d: %d %s kept, more than %d", k, n, name, limit)
				}
			}
		}
		if p.pairs.exact() || p.senders.exact() || !p.receivers.exact() || !p.hosts.exact() {
			t.Fatalf("exact: pairs %v senders %v receivers %v hosts %v; want false, false, true, true",
				p.pairs.exact(), p.senders.exact(), p.receivers.exact(), p.hosts.exact())
		}
		// The counts by receiver and by class are those of the pairs and senders kept.
		byRecv, byPay := map[pollRecv]int{}, map[string]int{}
		for k := range p.pairs.keys {
			byRecv[k.pollRecv]++
		}
		for k := range p.paySenders.keys {
			byPay[k.payload]++
		}
		if !reflect.DeepEqual(byRecv, p.recv) || !reflect.DeepEqual(byPay, p.payN) {
			t.Fatalf("senders by receiver %v and by class %v, but the samples hold %v and %v", p.recv, p.payN, byRecv, byPay)
		}
		var sum, topEst, topTrue uint64
		for r, n := range p.recv {
			est := uint64(n) * p.pairs.scale()
			sum += est
			if est > topEst {
				topEst, topTrue = est, 50*(uint64(r.dst[15])+1)
			}
		}
		if !within(p.pairs.count(), 41000, 0.2) || !within(sum, 41000, 0.2) || !within(p.senders.count(), 2000, 0.2) || topTrue < 1500 {
			t.Errorf("past the bound: %d pairs (%d by receiver), %d senders, the busiest receiver estimated has %d; want 41000, 41000 and 2000 within 20 %%, 1500 or more",
				p.pairs.count(), sum, p.senders.count(), topTrue)
		}
		cards, figs := pollution(&p)
		return cards, string(figs[0].Reading) + string(figs[1].SVG)
	}
	cards, text := page()
	if !strings.HasPrefix(cards[1].Value, "≈ ") || strings.HasPrefix(cards[2].Value, "≈") || cards[2].Value != "40" ||
		!strings.Contains(text, "uniform sample of 1 pair in") || !strings.Contains(text, "(≈ ") {
		t.Errorf("past the bound the page says %v, %s", cards, text)
	}
	if cards2, text2 := page(); !reflect.DeepEqual(cards, cards2) || text != text2 {
		t.Errorf("the same input gave another page: %v against %v", cards2, cards)
	}
}

// TestPayloadClassNoneSampled: past the bound, a payload class with a few senders may
// have none of them in the sample; its bar says so, never "≈ 0 senders" (it has packets,
// so at least one sender).
func TestPayloadClassNoneSampled(t *testing.T) {
	es := pollEpisodes()
	var p pollPairs
	p.init(64)
	for _, e := range es {
		p.add(e)
	}
	// One sender of class "other", tried from address to address until the sample
	// leaves it out (the hash decides).
	found := false
	for i := range 64 {
		src := detect.IP(packet.AddrFromNetip(netip.AddrFrom4([4]byte{100, 65, 0, byte(i)})))
		p.add(&detect.UDPThenSYNEntry{Src: src, Dst: es[0].Dst, Port: 6881, Payload: "other"})
		if p.payN["other"] == 0 {
			found = true
			break
		}
		// kept: start over with a fresh sample for the next address
		p = pollPairs{}
		p.init(64)
		for _, e := range es {
			p.add(e)
		}
	}
	if !found || p.paySenders.exact() {
		t.Fatalf("no one-sender class left out of the sample (exact %v)", p.paySenders.exact())
	}
	_, figs := pollution(&p)
	svg := string(figs[1].SVG)
	if strings.Contains(svg, "≈ 0 ") || !strings.Contains(svg, "(senders: none in the sample of 1 in ") {
		t.Errorf("the class without sampled senders: %s", svg)
	}
}
