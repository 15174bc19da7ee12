package filter

// Tables of names the language knows. Port and protocol names are built in (libpcap asks
// /etc/services and /etc/protocols); the entries follow Debian's netbase files so that a
// name means the same with either compiler on a Debian-like host.

// arithConstants are the named numbers of pcap-filter(7) arithmetic.
var arithConstants = map[string]uint32{
	"tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,

	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,

	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137, "icmp6-multicastlistenerreportv2": 143,
}

// family says which IP versions a primitive applies to.
type family int

const (
	famAny family = iota
	famV4
	famV6
)

// protoAbbrev describes a protocol keyword used alone ("tcp") or as a qualifier.
type protoAbbrev struct {
	fam   family // famAny: both IPv4 and IPv6
	proto int    // IP protocol number, -1 for "ip"/"ip6" themselves
}

// protoKeywords are the protocol names that can stand alone as a primitive.
var protoKeywords = map[string]protoAbbrev{
	"ip": {famV4, -1}, "ip6": {famV6, -1},
	"tcp": {famAny, 6}, "udp": {famAny, 17}, "sctp": {famAny, 132},
	"icmp": {famV4, 1}, "icmp6": {famV6, 58}, "igmp": {famV4, 2}, "igrp": {famV4, 9},
	"pim": {famAny, 103}, "vrrp": {famV4, 112}, "carp": {famV4, 112},
	"ah": {famAny, 51}, "esp": {famAny, 50},
}

// protocolNames resolves names after "proto" (libpcap reads /etc/protocols).
var protocolNames = map[string]int{
	"ip": 0, "hopopt": 0, "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "egp": 8, "igp": 9,
	"udp": 17, "dccp": 33, "ipv6": 41, "ipv6-route": 43, "ipv6-frag": 44, "rsvp": 46,
	"gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "icmp6": 58, "ipv6-nonxt": 59,
	"ipv6-opts": 60, "eigrp": 88, "ospf": 89, "ipip": 94, "pim": 103, "vrrp": 112,
	"l2tp": 115, "sctp": 132, "udplite": 136, "igrp": 9, "carp": 112,
}

// portProto restricts a port primitive to transport protocols (a bit set).
type portProto uint8

const (
	ppTCP  portProto = 1 << iota
	ppUDP            // UDP
	ppSCTP           // SCTP
	ppAny  = ppTCP | ppUDP | ppSCTP
)

// service is a named port and the protocols the services file lists it for.
type service struct {
	port  uint16
	proto portProto // ppTCP, ppUDP, or ppAny when listed for both TCP and UDP
}

// services maps port names (and their aliases) to numbers, as Debian's /etc/services does.
// A name listed only for TCP means TCP only, exactly as libpcap treats it.
var services = map[string]service{
	"echo": {7, ppAny}, "discard": {9, ppAny}, "daytime": {13, ppAny},
	"ftp-data": {20, ppTCP}, "ftp": {21, ppTCP}, "ssh": {22, ppTCP}, "telnet": {23, ppTCP},
	"smtp": {25, ppTCP}, "mail": {25, ppTCP}, "time": {37, ppAny}, "whois": {43, ppTCP},
	"tacacs": {49, ppAny}, "domain": {53, ppAny}, "bootps": {67, ppUDP},
	"bootpc": {68, ppUDP}, "tftp": {69, ppUDP}, "gopher": {70, ppTCP}, "finger": {79, ppTCP},
	"http": {80, ppTCP}, "www": {80, ppTCP}, "kerberos": {88, ppAny}, "pop3": {110, ppTCP},
	"sunrpc": {111, ppAny}, "portmapper": {111, ppAny}, "auth": {113, ppTCP},
	"ident": {113, ppTCP}, "nntp": {119, ppTCP}, "ntp": {123, ppUDP}, "epmap": {135, ppTCP},
	"netbios-ns": {137, ppUDP}, "netbios-dgm": {138, ppUDP}, "netbios-ssn": {139, ppTCP},
	"imap2": {143, ppTCP}, "imap": {143, ppTCP}, "snmp": {161, ppAny},
	"snmp-trap": {162, ppAny}, "bgp": {179, ppTCP}, "ldap": {389, ppAny},
	"https": {443, ppAny}, "microsoft-ds": {445, ppTCP}, "isakmp": {500, ppUDP},
	"exec": {512, ppTCP}, "login": {513, ppTCP}, "printer": {515, ppTCP}, "rtsp": {554, ppAny},
	"submission": {587, ppTCP}, "ipp": {631, ppTCP}, "ldaps": {636, ppAny},
	"rsync": {873, ppTCP}, "telnets": {992, ppTCP}, "imaps": {993, ppTCP},
	"pop3s": {995, ppTCP}, "socks": {1080, ppTCP}, "openvpn": {1194, ppAny},
	"ms-sql-s": {1433, ppTCP}, "ms-sql-m": {1434, ppUDP}, "radius": {1812, ppAny},
	"nfs": {2049, ppAny}, "mysql": {3306, ppTCP}, "ms-wbt-server": {3389, ppTCP},
	"sip": {5060, ppAny}, "mdns": {5353, ppUDP}, "postgresql": {5432, ppTCP},
	"postgres": {5432, ppTCP}, "x11": {6000, ppTCP}, "redis": {6379, ppTCP},
	"http-alt": {8080, ppTCP}, "webcache": {8080, ppTCP},
}

// Reasons given with "not supported" errors.
const (
	reasonLink     = "frames start at the IP header"
	reasonMeta     = "needs capture metadata that a socket filter on the IP header does not see"
	reasonNames    = "host and network names need resolution at compile time"
	reasonNetmask  = "needs the interface netmask"
	reasonChain    = "walking IPv6 extension headers is not implemented"
	reasonByte     = "old syntax; write ip[N] or ip6[N] instead"
	reasonPlatform = "applies to other link types or platforms only"
)

// unsupportedKeywords are valid pcap-filter(7) words that this compiler rejects, with
// the reason given to the operator.
var unsupportedKeywords = map[string]string{
	"ether": reasonLink, "link": reasonLink, "ppp": reasonLink, "slip": reasonLink,
	"fddi": reasonLink, "tr": reasonLink, "wlan": reasonLink, "radio": reasonLink,
	"arp": reasonLink, "rarp": reasonLink, "atalk": reasonLink, "aarp": reasonLink,
	"decnet": reasonLink, "lat": reasonLink, "sca": reasonLink, "moprc": reasonLink,
	"mopdl": reasonLink, "iso": reasonLink, "esis": reasonLink, "es-is": reasonLink,
	"isis": reasonLink, "is-is": reasonLink, "l1": reasonLink, "l2": reasonLink,
	"iih": reasonLink, "lsp": reasonLink, "snp": reasonLink, "csnp": reasonLink,
	"psnp": reasonLink, "clnp": reasonLink, "stp": reasonLink, "ipx": reasonLink,
	"netbeui": reasonLink, "vlan": reasonLink, "mpls": reasonLink, "pppoed": reasonLink,
	"pppoes": reasonLink, "geneve": reasonLink, "vxlan": reasonLink, "llc": reasonLink,
	"broadcast": reasonLink, "multicast": reasonLink, "type": reasonLink,
	"subtype": reasonLink, "dir": reasonLink, "direction": reasonLink, "ra": reasonLink,
	"ta": reasonLink, "addr1": reasonLink, "addr2": reasonLink, "addr3": reasonLink,
	"addr4": reasonLink, "address1": reasonLink, "address2": reasonLink,
	"address3": reasonLink, "address4": reasonLink,
	"lane": reasonPlatform, "metac": reasonPlatform, "bcc": reasonPlatform,
	"oam": reasonPlatform, "oamf4": reasonPlatform, "oamf4ec": reasonPlatform,
	"oamf4sc": reasonPlatform, "sc": reasonPlatform, "ilmic": reasonPlatform,
	"vpi": reasonPlatform, "vci": reasonPlatform, "connectmsg": reasonPlatform,
	"metaconnect": reasonPlatform, "on": reasonPlatform, "ifname": reasonPlatform,
	"rnr": reasonPlatform, "rulenum": reasonPlatform, "srnr": reasonPlatform,
	"subrulenum": reasonPlatform, "reason": reasonPlatform, "rset": reasonPlatform,
	"ruleset": reasonPlatform, "action": reasonPlatform, "fisu": reasonPlatform,
	"lssu": reasonPlatform, "lsu": reasonPlatform, "msu": reasonPlatform,
	"hfisu": reasonPlatform, "hlssu": reasonPlatform, "hmsu": reasonPlatform,
	"sio": reasonPlatform, "opc": reasonPlatform, "dpc": reasonPlatform,
	"sls": reasonPlatform, "hsio": reasonPlatform, "hopc": reasonPlatform,
	"hdpc": reasonPlatform, "hsls": reasonPlatform,
	"inbound": reasonMeta, "outbound": reasonMeta, "ifindex": reasonMeta,
	"gateway": reasonNames, "protochain": reasonChain, "byte": reasonByte,
}

// qualifierWords extend an unsupported keyword into the construct named in the error
// ("ether host" rather than "ether").
var qualifierWords = map[string]bool{
	"src": true, "dst": true, "host": true, "net": true, "port": true, "portrange": true,
	"proto": true, "protochain": true, "broadcast": true, "multicast": true, "gateway": true,
}

// reservedWords are keywords of the supported language; a name that collides with one
// must be written with a backslash, as in libpcap.
var reservedWords = map[string]bool{
	"src": true, "dst": true, "host": true, "net": true, "mask": true, "port": true,
	"portrange": true, "proto": true, "less": true, "greater": true, "len": true,
	"length": true, "and": true, "or": true, "not": true,
}

// isKeyword reports whether an unescaped word is any pcap-filter keyword.
func isKeyword(w string) bool {
	if reservedWords[w] {
		return true
	}
	if _, ok := protoKeywords[w]; ok {
		return true
	}
	_, ok := unsupportedKeywords[w]
	return ok
}
