// Package capture reads packets: AF_PACKET TPACKET_V3 rings joined in a source-affine
// fanout group, pcap/pcapng/gzip files, and libpcap (build tag pcap). Frames are decoded
// into packet.Header values by package packet.
package capture
