// Package filter compiles pcap-filter(7) expressions to classic BPF in pure Go, so the
// static (CGO_ENABLED=0) build can attach capture.filter to AF_PACKET sockets with
// SO_ATTACH_FILTER. The sockets are SOCK_DGRAM: the program sees frames that start at
// the IP header, exactly like libpcap's DLT_RAW, and it is compiled with libpcap's DLT_RAW
// semantics (IPv4 or IPv6 by the version nibble of byte 0).
//
// # Language
//
// The subset a telescope operator needs, with pcap-filter(7) syntax and meaning:
//
//	ip  ip6  tcp  udp  sctp  icmp  icmp6  igmp  igrp  pim  vrrp  carp  ah  esp
//	[ip|ip6] proto N|NAME        ip proto 47, proto \udp, ip proto tcp (no "\" needed here)
//	[ip|ip6] [DIR] host ADDR     IPv4 or IPv6 address
//	[ip|ip6] [DIR] net NET       10.0.0.0/8, 2001:db8::/32, 10.0.0.0 mask 255.0.0.0,
//	                             10 and 192.168 (partial networks)
//	[DIR] ADDR                   src 1.2.3.4 means src host 1.2.3.4
//	[tcp|udp|sctp] [DIR] port N|NAME
//	[tcp|udp|sctp] [DIR] portrange N-M
//	ip multicast, ip6 multicast
//	less N, greater N, len (or length) in arithmetic
//	EXPR RELOP EXPR              arithmetic relation, RELOP one of = == != < <= > >=
//
// where DIR is src, dst, src or dst (the default), or src and dst. Arithmetic has the
// operators + - * / % & | ^ << >> and unary minus, numbers in decimal, 0x hex or
// 0-prefixed octal, len, and packet loads proto[offset] or proto[offset:size] (size 1, 2
// or 4; offset an expression) with proto one of ip, ip6 (offset from the IP header), tcp,
// udp, sctp, icmp, igmp, pim, igrp, vrrp, carp (from the IPv4 transport header, found
// with the IHL: IPv4 only, unfragmented or first fragments only) and icmp6 (from byte 40
// of an IPv6 packet whose next header is 58). Named constants: tcpflags, tcp-fin,
// tcp-syn, tcp-rst, tcp-push, tcp-ack, tcp-urg, tcp-ece, tcp-cwr, icmptype, icmpcode,
// icmp-echoreply, icmp-unreach, icmp-echo, icmp-timxceed, ... and icmp6type, icmp6code,
// icmp6-echo, icmp6-echoreply, ... (the names of pcap-filter(7)).
//
// Primitives combine with and (&&), or (||), not (!) and parentheses. As in libpcap
// (and unlike most languages) "and" and "or" have the same precedence and group from the
// left: "tcp or udp and port 53" is "(tcp or udp) and port 53". A value without
// qualifiers repeats the previous ones: "port 23 or 2323", "tcp and (port 23 or 2323)",
// "host 10.0.0.1 and not 10.0.0.2"; after a parenthesised group, the qualifiers in force
// before the group apply again. A head also takes a list: "host (10.0.0.1 or 10.0.0.2)".
//
// Port and protocol names come from built-in tables that follow Debian's netbase
// /etc/services and /etc/protocols (libpcap reads the files). A name listed for TCP only
// means TCP only: "port ssh" is "tcp port 22" and "udp port ssh" is an error, as with
// libpcap on Debian.
//
// # Semantics
//
// Ports of IPv4 packets are tested in unfragmented packets and first fragments; IPv6
// extension headers are not walked ("port" looks at byte 40), but "tcp", "udp", "ip6
// proto N" also match N behind one fragment header, as in libpcap. A load past the end of
// the packet rejects the packet, whatever operators enclose it ("not tcp[100] = 0" also
// rejects a short TCP segment), and so does a division by zero at run time. Computed
// offsets above 16 MiB reject the packet too (so they never reach the kernel's negative
// offset space).
//
// The result has been compared packet by packet with libpcap 1.10 through tcpdump (see
// TestFilterMatchesTcpdump). Known differences, all from libpcap 1.10 defects that this
// compiler does not reproduce: its optimizer folds unary minus wrongly and, on some
// complex expressions, loses tests; in "A op B" it drops the protocol check of B
// ("len + ip[8] > 0" also accepts IPv6); it reports "division by zero" or "shift by
// more than 31 bits" when the right operand is a load such as ip[0] or ip[40], mistaking
// the constant index for the operand. Where libpcap's optimizer
// deletes a load whose value is unused, a truncated packet may be accepted by libpcap
// and rejected here. This compiler also refuses a few things libpcap accepts silently:
// protocol numbers above 255, and constant divisors that fold to zero.
//
// # Not supported
//
// Valid pcap-filter(7) that needs the link layer, metadata, name resolution or the
// interface netmask fails with an error matching ErrUnsupported that suggests the
// libpcap build (-tags pcap): ether, vlan, mpls, arp, wlan, broadcast, multicast
// without ip/ip6, inbound, gateway, protochain, host names, and the like.
//
// # Code
//
// The expression is parsed into a tree of primitives, lowered to predicates over packet
// loads, translated by short-circuit code generation into a graph of basic blocks, and
// laid out with 8-bit conditional jumps (a "ja" or a copied return serves as a
// trampoline when a target is further than 255 instructions). A small pass removes
// reloads of values already in A or X; there is no other optimisation. Programs longer
// than the kernel's 4096 instructions are refused.
package filter
