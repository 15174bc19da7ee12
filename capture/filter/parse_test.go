package filter

import (
	"reflect"
	"testing"
)

// TestParseCanonical checks the tree the parser builds, rendered fully parenthesised.
// The expected forms are written from pcap-filter(7) and libpcap's grammar (and checked
// against tcpdump where noted in TestFilterMatchesTcpdump).
func TestParseCanonical(t *testing.T) {
	cases := []struct{ expr, want string }{
		// protocol abbreviations
		{"tcp", "proto 6"}, {"udp", "proto 17"}, {"sctp", "proto 132"}, {"ip", "ip"}, {"ip6", "ip6"},
		{"icmp", "ip proto 1"}, {"icmp6", "ip6 proto 58"}, {"igmp", "ip proto 2"}, {"pim", "proto 103"},
		{"ip proto tcp", "ip proto 6"}, {`ip proto \tcp`, "ip proto 6"}, {"ip6 proto 17", "ip6 proto 17"},
		{`proto \ipv6-icmp`, "proto 58"}, {"proto 0x11", "proto 17"},

		// precedence: and/or equal and left-associative; not binds tightest
		{"tcp or udp and port 53", "((proto 6 or proto 17) and port 53)"},
		{"tcp and udp or icmp", "((proto 6 and proto 17) or ip proto 1)"},
		{"tcp or udp or icmp and ip", "(((proto 6 or proto 17) or ip proto 1) and ip)"},
		{"not tcp and udp", "(not proto 6 and proto 17)"},
		{"tcp and not udp or icmp", "((proto 6 and not proto 17) or ip proto 1)"},
		{"not not ip", "not not ip"},
		{"ip && tcp || !udp", "((ip and proto 6) or not proto 17)"},
		{"tcp or (udp and icmp)", "(proto 6 or (proto 17 and ip proto 1))"},

		// qualifier inheritance
		{"port 23 or 2323", "(port 23 or port 2323)"},
		{"tcp port 23 or 2323", "(tcp port 23 or tcp port 2323)"},
		{"tcp and (port 23 or 2323)", "(proto 6 and (port 23 or port 2323))"},
		{"src 1.2.3.4 or 5.6.7.8", "(src host 1.2.3.4 or src host 5.6.7.8)"},
		{"src host 1.2.3.4 and not 5.6.7.8", "(src host 1.2.3.4 and not src host 5.6.7.8)"},
		{"port 80 and (tcp) or 81", "((port 80 and proto 6) or port 81)"},
		{"host 1.2.3.4 or (5.6.7.8)", "(host 1.2.3.4 or host 5.6.7.8)"},
		{"host (1.2.3.4 or 5.6.7.8)", "(host 1.2.3.4 or host 5.6.7.8)"},
		{"port (80 or 81 and 82)", "((port 80 or port 81) and port 82)"},
		{"dst host not 10.0.0.1", "not dst host 10.0.0.1"},
		{"ip proto 6 or 17", "(ip proto 6 or ip proto 17)"},
		{"port 80 or http-alt", "(port 80 or tcp port 8080)"},

		// directions
		{"src or dst host 10.0.0.1", "host 10.0.0.1"},
		{"dst or src host 10.0.0.1", "host 10.0.0.1"},
		{"dst and src port 80", "src and dst port 80"},
		{"src and dst net 10.0.0.0/8", "src and dst net 10.0.0.0/8"},
		{"ip src 10.0.0.1", "src host 10.0.0.1"},
		{"ip6 dst ::1", "dst host ::1"},

		// addresses and networks, with libpcap's promotion rules
		{"net 10", "net 10.0.0.0/8"}, {"net 192.168", "net 192.168.0.0/16"},
		{"host 10.1", "net 10.1.0.0/16"}, {"host 80", "host 0.0.0.80"}, {"net 0", "host 0.0.0.0"},
		{"net 10.0.0.0 mask 255.0.255.0", "net 10.0.0.0 mask 255.0.255.0"},
		{"net 10.1.0.0 mask 255.255.0.0", "net 10.1.0.0/16"},
		{"net 172.16.0.0/12", "net 172.16.0.0/12"}, {"net 0.0.0.0/0", "net 0.0.0.0/0"},
		{"net 2001:db8::/32", "net 2001:db8::/32"}, {"ip6 host ::1", "host ::1"},
		{"host ::ffff:1.2.3.4", "host ::ffff:1.2.3.4"}, {"net fe80::/10", "net fe80::/10"},

		// ports
		{"tcp dst portrange 1000-2000", "tcp dst portrange 1000-2000"},
		{"portrange 30-20", "portrange 20-30"}, {"portrange 20", "port 20"},
		{"portrange ssh-telnet", "tcp portrange 22-23"},
		{"portrange ftp-data-ftp", "tcp portrange 20-21"},
		{"portrange 20-ftp", "portrange 20-21"},
		{"port ssh", "tcp port 22"}, {"port domain", "port 53"}, {"udp port domain", "udp port 53"},
		{"port ntp", "udp port 123"}, {"sctp port 80", "sctp port 80"}, {"port 0x50", "port 80"},

		// lengths and arithmetic
		{"less 100", "len <= 100"}, {"greater 100", "len >= 100"},
		{"len - 5 > 3", "(len - 5) > 3"}, {"length = 40", "len == 40"},
		{"5 < len", "5 < len"},
		{"tcp[13] & 2 != 0", "(tcp[13:1] & 2) != 0"},
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "(tcp[13:1] & (2 | 16)) == 2"},
		{"icmp[icmptype] == icmp-echo", "icmp[0:1] == 8"},
		{"icmp6[icmp6type] = icmp6-echo", "icmp6[0:1] == 128"},
		{"udp[8:2] = 0x4100", "udp[8:2] == 16640"},
		{"ip[0] = 010", "ip[0:1] == 8"},
		{"1 + 2 * 3 = 7", "(1 + (2 * 3)) == 7"},
		{"1 << 2 + 1 = 8", "(1 << (2 + 1)) == 8"},
		{"4 | 6 & 3 = 6", "(4 | (6 & 3)) == 6"},
		{"8 - 2 - 1 = 5", "((8 - 2) - 1) == 5"},
		{"16 / 4 / 2 = 2", "((16 / 4) / 2) == 2"},
		{"2 ^ 3 * 2 = 4", "(2 ^ (3 * 2)) == 4"},
		{"6 & 3 ^ 1 = 2", "(6 & (3 ^ 1)) == 2"},
		{"7 % 4 % 3 = 0", "(7 % (4 % 3)) == 0"},
		{"10 - 2 ^ 1 = 7", "(10 - (2 ^ 1)) == 7"},
		{"-ip[0] * 2 = 0", "(-ip[0:1] * 2) == 0"},
		{"-ip[0] ^ 1 = 0", "-(ip[0:1] ^ 1) == 0"},
		{"1 - -1 = 2", "(1 - -1) == 2"},
		{"(ip[0] & 0xf) > 5", "(ip[0:1] & 15) > 5"},
		{"(tcp[13] & 2) != 0 and port 80", "((tcp[13:1] & 2) != 0 and port 80)"},
		{"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "tcp[((tcp[12:1] & 240) >> 2):4] == 1195725856"},
		{"ip[2:2] >= 100 and ip6[6] != 58", "(ip[2:2] >= 100 and ip6[6:1] != 58)"},
		{"ip multicast or ip6 multicast", "(ip multicast or ip6 multicast)"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			n, err := parse(c.expr)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := n.String(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestEquivalentSpellings: pairs that pcap-filter(7) defines as the same filter must
// compile to the same program.
func TestEquivalentSpellings(t *testing.T) {
	pairs := [][2]string{
		{"tcp or udp and port 53", "(tcp or udp) and port 53"},
		{"tcp and not udp or icmp", "(tcp and (not udp)) or icmp"},
		{"ip proto tcp", `ip proto \tcp`}, {"ip proto tcp", "ip proto 6"}, {"tcp", "proto 6"},
		{"icmp", "ip proto 1"}, {"icmp6", "ip6 proto 58"},
		{"port 23 or 2323", "port 23 or port 2323"},
		{"tcp and (port 23 or 2323)", "tcp and (port 23 or port 2323)"},
		{"src 1.2.3.4", "src host 1.2.3.4"},
		{"src 1.2.3.4 or 5.6.7.8", "src host 1.2.3.4 or src host 5.6.7.8"},
		{"host 1.2.3.4", "src or dst host 1.2.3.4"},
		{"ip host 1.2.3.4", "host 1.2.3.4"},
		{"net 10", "net 10.0.0.0/8"}, {"net 10.0.0.0 mask 255.0.0.0", "net 10.0.0.0/8"},
		{"less 100", "len <= 100"}, {"greater 100", "len >= 100"},
		{"tcp[tcpflags] & tcp-syn != 0", "tcp[13] & 2 != 0"},
		{"tcp && udp", "tcp and udp"},
		{"!tcp || udp", "not tcp or udp"},
		{"tcp[13] == 2", "tcp[13] = 2"},
		{"5 < len", "len > 5"},
		{"port http", "tcp port 80"},
		{"portrange 20-25", "portrange 25-20"},
	}
	for _, p := range pairs {
		a, errA := CompileInstructions(p[0], 65535)
		b, errB := CompileInstructions(p[1], 65535)
		if errA != nil || errB != nil {
			t.Errorf("%q: %v; %q: %v", p[0], errA, p[1], errB)
			continue
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q and %q compile differently:\n%s\n---\n%s", p[0], p[1], listing(a), listing(b))
		}
	}
}

func TestLexer(t *testing.T) {
	cases := []struct {
		in   string
		want []string // kind:text
	}{
		{"tcp[13]&2!=0", []string{"w:tcp", "o:[", "n:13", "o:]", "o:&", "n:2", "o:!=", "n:0"}},
		{"ip6[24:4]", []string{"w:ip6", "o:[", "n:24", "o::", "n:4", "o:]"}},
		{"host ::1", []string{"w:host", "6:::1"}},
		{"net 2001:db8::/32", []string{"w:net", "6:2001:db8::", "o:/", "n:32"}},
		{"host fe80::1", []string{"w:host", "6:fe80::1"}},
		{"net 10.0.0.0/8", []string{"w:net", "h:10.0.0.0", "o:/", "n:8"}},
		{"portrange 20-25", []string{"w:portrange", "n:20", "o:-", "n:25"}},
		{"portrange ssh-telnet", []string{"w:portrange", "w:ssh-telnet"}},
		{"tcp-syn|tcp-ack", []string{"n:tcp-syn", "o:|", "n:tcp-ack"}},
		{`proto \tcp`, []string{"w:proto", "w:tcp"}},
		{"a&&b||!c", []string{"w:a", "o:&&", "w:b", "o:||", "o:!", "w:c"}},
		{"x<<2>>1<=3>=4==5", []string{"w:x", "o:<<", "n:2", "o:>>", "n:1", "o:<=", "n:3", "o:>=", "n:4", "o:==", "n:5"}},
		{"tcp-", []string{"w:tcp", "o:-"}},
	}
	kinds := map[tokKind]string{tNum: "n", tHID: "h", tHID6: "6", tWord: "w", tOp: "o"}
	for _, c := range cases {
		toks, err := lex(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		for _, tk := range toks[:len(toks)-1] {
			got = append(got, kinds[tk.kind]+":"+tk.text)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.in, got, c.want)
		}
	}
	toks, _ := lex("0x1f 017 tcp-syn")
	if toks[0].num != 31 || toks[1].num != 15 || toks[2].num != 2 {
		t.Errorf("values: got %d %d %d, want 31 15 2", toks[0].num, toks[1].num, toks[2].num)
	}
}
