package daygen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// btTarget is a dark ip:port that BitTorrent clients believe is a peer (a leaked or stale
// address in the DHT): it receives DHT queries, uTP SYNs and opaque UDP.
type btTarget struct {
	dst    netip.Addr
	port   uint16
	weight int // percent of the sources
}

var btTargets = []btTarget{
	{netip.MustParseAddr("203.0.113.201"), 6881, 45},
	{netip.MustParseAddr("198.51.100.42"), 51413, 40},
	{netip.MustParseAddr("2001:db8:1::b7"), 6881, 15},
}

// krpc returns a bencoded KRPC query (BEP 5) with random ids.
func (g *gen) krpc() []byte {
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
		return b
	}
	var b []byte
	b = append(b, "d1:ad2:id20:"...)
	b = append(b, rnd(20)...)
	switch g.rng.IntN(3) {
	case 0:
		b = append(b, "9:info_hash20:"...)
		b = append(b, rnd(20)...)
		b = append(b, "e1:q9:get_peers"...)
	case 1:
		b = append(b, "6:target20:"...)
		b = append(b, rnd(20)...)
		b = append(b, "e1:q9:find_node"...)
	default:
		b = append(b, "e1:q4:ping"...)
	}
	b = append(b, "1:t2:"...)
	b = append(b, rnd(2)...)
	b = append(b, "1:v4:LT\x01\x021:y1:qe"...)
	return b
}

// utpSYN returns a BEP 29 ST_SYN packet (type 4, version 1, 20 bytes).
func (g *gen) utpSYN() []byte {
	b := make([]byte, 20)
	b[0] = 0x41
	binary.BigEndian.PutUint16(b[2:], uint16(g.rng.Uint32()))
	binary.BigEndian.PutUint32(b[4:], g.rng.Uint32())
	binary.BigEndian.PutUint32(b[12:], 1<<20)
	binary.BigEndian.PutUint16(b[16:], uint16(g.rng.Uint32()))
	return b
}

// bittorrent plants the UDP-then-SYN pollution: thousands of sources send one to three
// datagrams of one kind (DHT, uTP or opaque) to a BitTorrent target. 20 % then send a SYN to
// the same ip:port within max_gap (sometimes a retransmission too): planted pairs. Decoys
// send the SYN to another port of the same address, or to the same port too late.
func (g *gen) bittorrent() {
	g.bittorrentN(g.count(3000, 60), 20)
}

// bittorrentN plants n BitTorrent sources, pairPct percent of which make a pair (the rest
// are decoys in equal shares and sources that send UDP only).
func (g *gen) bittorrentN(n, pairPct int) {
	for range n {
		r := g.rng.IntN(100)
		tg := btTargets[0]
		for _, c := range btTargets {
			if r < c.weight {
				tg = c
				break
			}
			r -= c.weight
		}
		src := g.src(tg.dst.Is6())
		kind := g.rng.IntN(10) // 0-4 dht, 5-7 utp, 8-9 other
		sport := uint16(1024 + g.rng.IntN(64512))
		at := g.actorStart(20 * time.Minute)
		first, lastUDP := at, at
		nUDP := 1 + g.rng.IntN(3)
		for i := range nUDP {
			if i > 0 {
				at += int64(time.Second) + g.rng.Int64N(int64(time.Minute))
			}
			var body []byte
			switch {
			case kind < 5:
				body = g.krpc()
			case kind < 8:
				body = g.utpSYN()
			default:
				body = g.opaque(20 + g.rng.IntN(80))
			}
			g.emit(g.udp(at, src, tg.dst, sport, tg.port, body))
			lastUDP = at
		}
		role := g.rng.IntN(100)
		synAt := lastUDP + int64(time.Second) + g.rng.Int64N(int64(4*time.Minute))
		switch {
		case role < pairPct:
			g.emit(g.syn(synAt, src, tg.dst, tg.port, plain))
			nSYN, lastSeen := uint64(1), synAt
			if g.rng.IntN(10) < 3 {
				lastSeen = synAt + int64(3*time.Second)
				g.emit(g.syn(lastSeen, src, tg.dst, tg.port, plain))
				nSYN = 2
			}
			payload := []string{"dht", "dht", "dht", "dht", "dht", "utp", "utp", "utp", "other", "other"}[kind]
			g.truth.UDPThenSYN = append(g.truth.UDPThenSYN, Pair{Src: src, Dst: tg.dst, Port: tg.port,
				UDP: uint64(nUDP), SYN: nSYN, Payload: payload, First: tm(first), Last: tm(lastSeen)})
		case role < pairPct+(100-pairPct)/10:
			g.emit(g.syn(synAt, src, tg.dst, tg.port+1, plain))
		case role < pairPct+(100-pairPct)*3/20:
			g.emit(g.syn(lastUDP+int64(maxGap)+int64(10*time.Second)+g.rng.Int64N(int64(time.Minute)), src, tg.dst, tg.port, plain))
		}
	}
}
