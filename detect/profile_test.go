package detect

import (
	"fmt"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestProfileSummaries reproduces the study's sentences (and the other forms of the
// grammar) from built traffic through the engine.
func TestProfileSummaries(t *testing.T) {
	cases := []struct {
		name string
		pkts func(src string) []packet.Header
		want string
		prof func(p *Profile) error
	}{
		{"range scan of one host", func(src string) []packet.Header {
			return seq(10000-1025+1, t0, sec/100, func(i int, ts int64) packet.Header {
				return syn(src, "203.0.113.5", uint16(1025+i), ts)
			})
		}, "TCP-SYN to TCP/1025-10000", func(p *Profile) error {
			if p.Ports != 8976 || p.PortMin != 1025 || p.PortMax != 10000 || p.Addresses != 1 {
				return fmt.Errorf("ports %d in %d-%d on %d addresses, want 8976 in 1025-10000 on 1", p.Ports, p.PortMin, p.PortMax, p.Addresses)
			}
			return nil
		}},
		{"one dominant port and 546 others", func(src string) []packet.Header {
			other := 0
			return seq(546*5/2+2, t0, sec/10, func(i int, ts int64) packet.Header {
				port := uint16(3031)
				if i%5 >= 3 && other < 546 {
					port = uint16(20000 + 7*other)
					other++
				}
				return syn(src, ip4("203.0.113.0", i%200), port, ts)
			})
		}, "TCP-SYN to TCP/3031 and 546 other ports", func(p *Profile) error {
			if p.Ports != 547 || p.TopPorts[0].Port != 3031 || p.TopPorts[0].Share < 0.55 || p.TopPorts[0].Share > 0.65 {
				return fmt.Errorf("ports %d, top %+v", p.Ports, p.TopPorts)
			}
			return nil
		}},
		{"telnet sweep", func(src string) []packet.Header {
			return seq(300, t0, sec/10, func(i int, ts int64) packet.Header {
				return syn(src, ip4("203.0.0.0", i), 23, ts)
			})
		}, "TCP-SYN to TCP/23", func(p *Profile) error {
			if p.Ports != 1 || len(p.TopPorts) != 1 || p.TopPorts[0].Share != 1 || p.Addresses < 270 || p.Addresses > 330 || p.AddressesAtLeast { // past 256 a ~3 % sketch
				return fmt.Errorf("ports %d, top %+v, addresses %d", p.Ports, p.TopPorts, p.Addresses)
			}
			return nil
		}},
		{"two UDP ports", func(src string) []packet.Header {
			return seq(200, t0, sec/10, func(i int, ts int64) packet.Header {
				return udp(src, ip4("203.0.0.0", i), []uint16{123, 53}[i%2], ts, nil)
			})
		}, "UDP to UDP/53 and UDP/123", nil},
		{"three ports", func(src string) []packet.Header {
			return seq(300, t0, sec/10, func(i int, ts int64) packet.Header {
				return syn(src, ip4("203.0.0.0", i), []uint16{22, 2222, 80}[i%3], ts)
			})
		}, "TCP-SYN to TCP/22, TCP/80 and TCP/2222", nil},
		{"ping sweep", func(src string) []packet.Header {
			return seq(150, t0, sec/10, func(i int, ts int64) packet.Header {
				return echo(src, ip4("203.0.0.0", i), ts)
			})
		}, "ICMP echo to 150 addresses", nil},
		{"scattered ports with UDP too", func(src string) []packet.Header {
			return seq(400, t0, sec/10, func(i int, ts int64) packet.Header {
				if i%4 == 3 {
					return udp(src, ip4("203.0.0.0", i), 1900, ts, nil)
				}
				return syn(src, ip4("203.0.0.0", i), uint16(100+i*97), ts)
			})
		}, "TCP-SYN to 301 ports in TCP/100-38706 (also UDP)", nil},
		{"SYN and ping", func(src string) []packet.Header {
			return seq(200, t0, sec/10, func(i int, ts int64) packet.Header {
				if i%4 == 0 {
					return echo(src, ip4("203.0.0.0", i), ts)
				}
				return syn(src, ip4("203.0.0.0", i), 22, ts)
			})
		}, "TCP-SYN to TCP/22 (also ICMP)", func(p *Profile) error {
			if p.PortMin != 22 || p.PortMax != 22 || p.Ports != 2 {
				return fmt.Errorf("ports %d in %d-%d", p.Ports, p.PortMin, p.PortMax)
			}
			return nil
		}},
		{"connect scan", func(src string) []packet.Header {
			return seq(150, t0, sec/10, func(i int, ts int64) packet.Header {
				p := syn(src, ip4("203.0.0.0", i), 443, ts)
				p.Opts.Kinds = 1<<2 | 1<<3 | 1<<4
				return p
			})
		}, "TCP connect to TCP/443", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, testConfig(t))
			h.feed(c.pkts("198.51.100.9")...)
			h.finish(h.now + sec)
			var got []*ScannerEntry
			for _, e := range h.sink.take() {
				if x, ok := e.Entry.(*ScannerEntry); ok {
					got = append(got, x)
				}
			}
			if len(got) != 2 {
				t.Fatalf("%d scanner events, want a start and an end", len(got))
			}
			end := got[1]
			if end.Summary != c.want {
				t.Errorf("summary %q, want %q (profile %+v)", end.Summary, c.want, end.Profile)
			}
			if c.prof != nil {
				if err := c.prof(end.Profile); err != nil {
					t.Error(err)
				}
			}
			if end.Profile.Ports != end.Ports {
				t.Errorf("profile ports %d, entry ports %d", end.Profile.Ports, end.Ports)
			}
			if n := h.e.ports.inUse(); n != 0 || h.e.SlabBlocks() != 0 {
				t.Errorf("after the end: %d port maps, %d slab blocks still held", n, h.e.SlabBlocks())
			}
		})
	}
}

func TestPortTop(t *testing.T) {
	var p portTop
	for i := 0; i < 1000; i++ {
		p.add(profileKey(packet.ProtoTCP, 3031))
		p.add(profileKey(packet.ProtoTCP, uint16(i)))
	}
	for _, s := range p.Slots[:p.N] {
		if uint16(s.Key) == 3031 {
			if s.Err != 0 || s.Count != 1000 {
				t.Fatalf("3031: count %d err %d, want 1000 exactly", s.Count, s.Err)
			}
			return
		}
	}
	t.Fatal("the port with half the probes left the summary")
}

// TestPortTopReplacesFirstLeast: a key without a slot in full slots takes the first slot
// with the least count, counting from it (Err: that count); the others stay as they were.
func TestPortTopReplacesFirstLeast(t *testing.T) {
	var p portTop
	counts := []uint32{5, 3, 7, 2, 9, 2, 4, 6} // least: 2, first at slot 3
	for i, c := range counts {
		for range c {
			p.add(uint32(100 + i))
		}
	}
	p.add(999)
	for i, s := range p.Slots {
		want := portSlot{Key: uint32(100 + i), Count: counts[i]}
		if i == 3 {
			want = portSlot{Key: 999, Count: 3, Err: 2}
		}
		if s != want {
			t.Errorf("slot %d: %+v, want %+v", i, s, want)
		}
	}
	if p.N != profileTop || p.Total != 5+3+7+2+9+2+4+6+1 {
		t.Errorf("N %d, Total %d", p.N, p.Total)
	}
}

func TestPortHashInverse(t *testing.T) {
	for p := 0; p < 65536; p++ {
		got, ok := portOfHash(portHash(uint16(p)))
		if !ok || got != uint16(p) {
			t.Fatalf("port %d: inverse %d %v", p, got, ok)
		}
	}
	if _, ok := portOfHash(packet.Mix64(12345)); ok {
		t.Error("a hash no port makes inverts to a port")
	}
}
