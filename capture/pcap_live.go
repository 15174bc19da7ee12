//go:build pcap && cgo

package capture

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gopacket/gopacket/pcap"
	"github.com/telescope-dev/telescope/packet"
)

// PcapSource captures through libpcap (build tag pcap, cgo): the capture.method: pcap
// alternative to AF_PACKET rings, with libpcap's own filter compiler. One handle feeds
// every worker through the user-space dispatcher.
type PcapSource struct {
	iface string
	h     *pcap.Handle
	link  packet.LinkType
}

// ErrPcapTimeout is returned by Next when no packet arrived within the read timeout.
var ErrPcapTimeout = errors.New("pcap: read timeout")

// OpenPcap opens iface for inbound packets with the given snap length, buffer size and
// pcap-filter expression (may be empty).
func OpenPcap(iface string, snaplen, bufferBytes int, filter string, timeout time.Duration) (*PcapSource, error) {
	in, err := pcap.NewInactiveHandle(iface)
	if err != nil {
		return nil, pcapError(iface, err)
	}
	defer in.CleanUp()
	for _, set := range []error{
		in.SetSnapLen(snaplen), in.SetPromisc(true), in.SetTimeout(timeout),
		in.SetBufferSize(bufferBytes), in.SetImmediateMode(false),
	} {
		if set != nil {
			return nil, pcapError(iface, set)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, pcapError(iface, err)
	}
	if err := h.SetDirection(pcap.DirectionIn); err != nil {
		h.Close()
		return nil, pcapError(iface, err)
	}
	if filter != "" {
		if err := h.SetBPFFilter(filter); err != nil {
			h.Close()
			return nil, &CaptureError{Kind: ErrConfig, Interface: iface, Msg: fmt.Sprintf("capture.filter %q: %v", filter, err)}
		}
	}
	return &PcapSource{iface: iface, h: h, link: packet.LinkType(h.LinkType())}, nil
}

// pcapError maps libpcap's messages onto the capture error kinds, so the daemon tells a
// missing privilege or interface from a passing failure the same way for both methods.
func pcapError(iface string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "ermission") || strings.Contains(msg, "not permitted"):
		return &CaptureError{Kind: ErrPermission, Interface: iface, Msg: "opening a libpcap capture needs CAP_NET_RAW: run as root, or grant it once with: sudo setcap cap_net_raw,cap_net_admin+ep $(command -v telescope)", Err: err}
	case strings.Contains(msg, "No such device") || strings.Contains(msg, "doesn't exist"):
		return &CaptureError{Kind: ErrInterfaceNotFound, Interface: iface, Msg: fmt.Sprintf("interface %q not found (ip link shows the available ones)", iface), Err: err}
	case strings.Contains(msg, "went down") || strings.Contains(msg, "Network is down"):
		return &CaptureError{Kind: ErrInterfaceGone, Interface: iface, Msg: fmt.Sprintf("interface %q went away or down", iface), Err: err}
	}
	return &CaptureError{Kind: ErrSystem, Interface: iface, Msg: "libpcap: " + msg, Err: err}
}

// Next returns the next packet (Data valid until the next call), ErrPcapTimeout when the
// read timeout passed without one, or a *CaptureError.
func (s *PcapSource) Next() (Record, error) {
	data, ci, err := s.h.ZeroCopyReadPacketData()
	if err != nil {
		if errors.Is(err, pcap.NextErrorTimeoutExpired) {
			return Record{}, ErrPcapTimeout
		}
		return Record{}, pcapError(s.iface, err)
	}
	// Kept within [0, packet.MaxTS] as the file readers keep theirs (a device clock can be wrong).
	return Record{Data: data, TS: packet.ClampTS(ci.Timestamp.UnixNano()), WireLen: uint32(ci.Length), Link: s.link}, nil
}

// Stats returns packets received and dropped (by the kernel and by the interface).
func (s *PcapSource) Stats() (received, dropped uint64, err error) {
	st, err := s.h.Stats()
	if err != nil {
		return 0, 0, err
	}
	return uint64(st.PacketsReceived), uint64(st.PacketsDropped) + uint64(st.PacketsIfDropped), nil
}

// Close closes the handle.
func (s *PcapSource) Close() { s.h.Close() }
