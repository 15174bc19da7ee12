package filter

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

const unsupportedTail = " is not supported by the built-in compiler (%s); build with -tags pcap to use libpcap's compiler"

func unsup(construct, reason string) string {
	return `"` + construct + `"` + strings.Replace(unsupportedTail, "%s", reason, 1)
}

// TestErrorMessages pins every message: one line, naming the problem and its offset.
func TestErrorMessages(t *testing.T) {
	cases := []struct{ expr, want string }{
		// lexer
		{`tcp and \`, `syntax error at offset 8: "\" must be followed by a name`},
		{"tcp # 1", `syntax error at offset 4: unexpected character '#'`},
		{"host 300.1.2.3", `at offset 5: invalid IPv4 address "300.1.2.3"`},
		{"ip[0] = 99999999999", `syntax error at offset 8: number 99999999999 does not fit in 32 bits`},
		{"ip[0] = 08", `syntax error at offset 8: invalid number 08`},
		{"ip[0] = 0xZZ", `syntax error at offset 8: invalid number 0xZZ`},

		// structure
		{"tcp prot 23", `syntax error at offset 4: unknown keyword "prot"`},
		{"tcp udp", `syntax error at offset 4: unexpected "udp"; expected "and", "or" or end of expression`},
		{"tcp and", `syntax error at offset 7: unexpected end of expression`},
		{"(tcp", `syntax error at offset 4: missing ")" to close "(" at offset 0`},
		{"(tcp udp)", `syntax error at offset 5: unexpected "udp"; expected "and", "or" or ")"`},
		{"tcp)", `syntax error at offset 3: unexpected ")"; expected "and", "or" or end of expression`},
		{")", `syntax error at offset 0: unexpected ")"`},
		{"and tcp", `syntax error at offset 0: unexpected "and"`},
		{"mask 255.0.0.0", `syntax error at offset 0: unexpected "mask"`},
		{"less x", `syntax error at offset 5: expected a number after "less", found "x"`},
		{"greater", `syntax error at offset 7: expected a number after "greater", found end of expression`},
		{"src proto 6", `syntax error at offset 4: "proto" cannot follow a direction qualifier`},
		{"host (1.2.3.4 or 5.6.7.8", `syntax error at offset 24: missing ")" to close "(" at offset 5`},
		{"host (1.2.3.4 5.6.7.8)", `syntax error at offset 14: unexpected "5.6.7.8"; expected "and", "or" or ")"`},
		{"tcp multicast", `at offset 4: "multicast" applies to ip or ip6 only, not "tcp"`},

		// values
		{"host port", `syntax error at offset 5: unexpected keyword "port"`},
		{"tcp and 23", `syntax error at offset 8: "23" needs a qualifier such as host, net, port or proto`},
		{"tcp and foo", `syntax error at offset 8: unknown keyword "foo"`},
		{"len-5 > 0", `syntax error at offset 0: unknown keyword "len-5" (write "a - b" with spaces to subtract)`},
		{"port 80 or", `syntax error at offset 10: unexpected end of expression`},
		{"host", `syntax error at offset 4: unexpected end of expression`},
		{"tcp host 1.2.3.4", `at offset 0: "tcp" cannot qualify a host or network; write "tcp and host ..."`},
		{"ip host ::1", `at offset 8: "ip" qualifier with IPv6 address ::1`},
		{"ip6 host 1.2.3.4", `at offset 9: "ip6" qualifier with IPv4 address 1.2.3.4`},
		{"ip6 host 80", `at offset 9: "ip6" qualifier with IPv4 address 0.0.0.80`},
		{"net 10.0.0.0/x", `syntax error at offset 13: expected a prefix length after "/", found "x"`},
		{"host 10.0.0.0/8", `at offset 5: 10.0.0.0/8 needs the "net" qualifier`},
		{"src 10.0.0.0/8", `at offset 4: 10.0.0.0/8 needs the "net" qualifier`},
		{"net 10.0.0.0/33", `at offset 13: prefix length 33 out of range (0-32)`},
		{"net 10.0.0.0 mask 8", `syntax error at offset 18: expected a dotted IPv4 mask after "mask", found "8"`},
		{"host 10.0.0.0 mask 255.0.0.0", `at offset 5: "mask" needs the "net" qualifier`},
		{"net 10.1.2.3/8", `at offset 4: non-network bits set in "10.1.2.3/8"`},
		{"net 10.1.2.0 mask 255.255.0.0", `at offset 4: non-network bits set in "10.1.2.0 mask 255.255.0.0"`},
		{"net 2001:db8::/x", `syntax error at offset 15: expected a prefix length after "/", found "x"`},
		{"host 2001:db8::/32", `at offset 5: 2001:db8::/32 needs the "net" qualifier`},
		{"net ::/129", `at offset 7: prefix length 129 out of range (0-128)`},
		{"net 2001:db8::1/32", `at offset 4: non-network bits set in "2001:db8::1/32"`},
		{"ip port 80", `at offset 0: "ip" cannot qualify a port; use tcp, udp or sctp`},
		{"ip6 portrange 1-2", `at offset 0: "ip6" cannot qualify a port; use tcp, udp or sctp`},
		{"udp port ssh", `at offset 9: port "ssh" is tcp only`},
		{"tcp port ntp", `at offset 9: port "ntp" is udp only`},
		{"udp portrange ssh-telnet", `at offset 14: port "ssh-telnet" is tcp only`},
		{"port 70000", `at offset 5: port 70000 out of range (0-65535)`},
		{"port 20-25", `at offset 5: use portrange for a range of ports`},
		{"port foo", `at offset 5: unknown port name "foo"`},
		{"port 1.2.3.4", `syntax error at offset 5: expected a port number or name, found "1.2.3.4"`},
		{"portrange 1.2.3.4", `syntax error at offset 10: expected a port range such as 1-1023, found "1.2.3.4"`},
		{"portrange foo-bar", `at offset 10: unknown port range "foo-bar"`},
		{"portrange 1-70000", `at offset 12: port 70000 out of range (0-65535)`},
		{"portrange 1abc", `at offset 10: invalid port "1abc"`},
		{"tcp proto 6", `at offset 0: "tcp" cannot qualify proto; use ip, ip6 or neither`},
		{"proto 256", `at offset 6: protocol 256 out of range (0-255)`},
		{"proto foo", `at offset 6: unknown protocol name "foo"`},
		{"proto 1.2.3.4", `syntax error at offset 6: expected a protocol number or name, found "1.2.3.4"`},

		// arithmetic
		{"1 + 2 and tcp", `syntax error at offset 6: expected a comparison (==, !=, <, <=, >, >=) after (1 + 2), found "and"`},
		{"len + 1", `syntax error at offset 7: expected a comparison (==, !=, <, <=, >, >=) after (len + 1), found end of expression`},
		{"len + ) > 1", `syntax error at offset 6: expected a number, len or proto[offset], found ")"`},
		{"len * (1 + 2 > 0", `syntax error at offset 13: expected ")" in arithmetic expression, found ">"`},
		{"len - foo > 1", `syntax error at offset 6: unknown name "foo" in arithmetic expression (write "a - b" with spaces to subtract)`},
		{"ah[0] = 1", `at offset 0: "ah" cannot be indexed; use ip, ip6, tcp, udp, sctp, icmp, icmp6 or igmp`},
		{"ip[0:3] = 1", `at offset 5: size must be 1, 2 or 4, not 3`},
		{"ip[0:x] = 1", `syntax error at offset 5: expected a size (1, 2 or 4) after ":", found "x"`},
		{"ip[0 = 1", `syntax error at offset 5: expected "]", found "="`},
		{"ip[0] / 0 = 1", `at offset 6: division by zero`},
		{"ip[0] % (1 - 1) = 1", `at offset 6: modulus by zero`},
		{"ip[0] << 32 = 1", `at offset 6: shift by more than 31 bits`},
		{"ip[0] = 1 = 1", `syntax error at offset 10: unexpected "="; expected "and", "or" or end of expression`},
		{strings.Repeat("(", 201) + "tcp" + strings.Repeat(")", 201), `syntax error at offset 200: brackets nested more than 200 deep`},

		// valid pcap-filter(7), not supported here
		{"ether host 1:2:3:4:5:6", unsup("ether host", reasonLink)},
		{"tcp and ether src 1:2:3:4:5:6", unsup("ether src", reasonLink)},
		{"vlan", unsup("vlan", reasonLink)},
		{"vlan 100 and tcp", unsup("vlan", reasonLink)},
		{"mpls", unsup("mpls", reasonLink)},
		{"broadcast", unsup("broadcast", reasonLink)},
		{"multicast", unsup("multicast", reasonLink)},
		{"arp", unsup("arp", reasonLink)},
		{"ether[0] = 1", unsup("ether[...]", reasonLink)},
		{"ether proto 0x800", unsup("ether proto", reasonLink)},
		{"ip broadcast", unsup("ip broadcast", reasonNetmask)},
		{"ip protochain 6", unsup("ip protochain", reasonChain)},
		{"protochain 6", unsup("protochain", reasonChain)},
		{"gateway foo", unsup("gateway", reasonNames)},
		{"host foo.example", unsup("host foo.example", reasonNames)},
		{"src foo", unsup("host foo", reasonNames)},
		{"net loopback", unsup("net loopback", reasonNames)},
		{"inbound", unsup("inbound", reasonMeta)},
		{"ifname eth0", unsup("ifname", reasonPlatform)},
		{"byte 0 = 1", unsup("byte", reasonByte)},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			_, err := CompileInstructions(c.expr, 65535)
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			want := "filter " + strconv.Quote(c.expr) + ": " + c.want
			if err.Error() != want {
				t.Errorf("got  %s\nwant %s", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Error("message spans several lines")
			}
			if cerr := Check(c.expr); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check = %v, want the same error", cerr)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Expr != c.expr {
				t.Errorf("error %T does not carry the expression", err)
			}
			if got, want := errors.Is(err, ErrUnsupported), strings.Contains(c.want, "not supported"); got != want {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", got, want)
			}
		})
	}
}

// TestProgramTooLong: the kernel refuses more than 4096 instructions; so must we.
func TestProgramTooLong(t *testing.T) {
	var terms []string
	for p := 1; p <= 200; p++ {
		terms = append(terms, "port "+strconv.Itoa(p))
	}
	expr := strings.Join(terms, " or ")
	_, err := CompileInstructions(expr, 65535)
	if err == nil {
		t.Fatal("200 ports compiled; want a length error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "instructions, more than the kernel's limit of 4096") || strings.Contains(msg, "\n") {
		t.Errorf("unexpected message: %s", msg)
	}
	if Check(expr) == nil {
		t.Error("Check accepted a program the kernel would refuse")
	}
}

// TestTooManyScratchRegisters: each non-constant right operand needs a scratch word.
func TestTooManyScratchRegisters(t *testing.T) {
	deep := func(n int) string {
		s := "ip[0]"
		for i := 1; i <= n; i++ {
			s = "ip[" + strconv.Itoa(i) + "] + (" + s + ")"
		}
		return s + " > 0"
	}
	if _, err := CompileInstructions(deep(14), 65535); err != nil {
		t.Errorf("14 levels: %v", err)
	}
	_, err := CompileInstructions(deep(20), 65535)
	if err == nil || !strings.Contains(err.Error(), "arithmetic expression too complex (needs more than 16 scratch registers)") {
		t.Errorf("20 levels: got %v", err)
	}
}
