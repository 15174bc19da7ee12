package detect

import "github.com/telescope-dev/telescope/packet"

// Payload classes, indexes of PayloadKinds.
const (
	payloadDHT = iota
	payloadUTP
	payloadOther
)

// payloadKind is the class the decoder gave the UDP payload (packet.ClassifyUDP: strict
// bencoded KRPC, or a BEP 29 uTP header whose length and extension chain agree).
func payloadKind(h *packet.Header) int {
	switch h.PayloadClass {
	case packet.PayloadDHT:
		return payloadDHT
	case packet.PayloadUTP:
		return payloadUTP
	}
	return payloadOther
}
