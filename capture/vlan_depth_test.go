package capture

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/telescope-dev/telescope/packet"
)

// TestDeepVLANStacksLiveEqualsReplay: a frame with n stacked VLAN tags decodes the same
// from a capture file (every tag in place) as live, where the kernel strips the outer tag
// into the ring's metadata: the same result, tag count and outer VLAN at every depth,
// the tag limit included (8 tags are IP, 9 are non_ip, both ways).
func TestDeepVLANStacksLiveEqualsReplay(t *testing.T) {
	ip := []byte{0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 203, 0, 113, 1,
		0x9c, 0x40, 0, 23, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x72, 0x10, 0, 0, 0, 0}
	for n := 1; n <= 10; n++ {
		t.Run(fmt.Sprintf("%d tags", n), func(t *testing.T) {
			frame := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
			for i := 0; i < n; i++ {
				frame = binary.BigEndian.AppendUint16(frame, packet.EtherDot1Q)
				frame = binary.BigEndian.AppendUint16(frame, uint16(100+i))
			}
			frame = binary.BigEndian.AppendUint16(frame, packet.EtherIPv4)
			frame = append(frame, ip...)

			var replay, live packet.Header
			packet.Decode(packet.LinkEthernet, frame, &replay)
			// Live: the kernel took the outer tag (TCI 100) out of the frame.
			proto := binary.BigEndian.Uint16(frame[16:18])
			packet.DecodeNetworkVLAN(proto, frame[18:], 100, &live)

			wantIP := n <= packet.MaxVLANTags
			if got := replay.Result == packet.ResultIP; got != wantIP {
				t.Fatalf("replay: result %v with %d tags", replay.Result, n)
			}
			if live.Result != replay.Result || live.VLANs != replay.VLANs || live.VLAN != replay.VLAN {
				t.Fatalf("live result %v, %d tags, vlan %d; replay %v, %d tags, vlan %d",
					live.Result, live.VLANs, live.VLAN, replay.Result, replay.VLANs, replay.VLAN)
			}
		})
	}
}
