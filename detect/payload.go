package detect

import (
	"github.com/telescope-dev/telescope/capture"
)

// Payload classes, indexes of PayloadKinds.
const (
	payloadDHT = iota
	payloadUTP
	payloadOther
)

// payloadKind is the class the decoder gave the UDP payload (capture.ClassifyUDP: strict
// bencoded KRPC, or a BEP 29 uTP header whose length and extension chain agree).
func payloadKind(h *capture.Header) int {
	switch h.PayloadClass {
	case capture.PayloadDHT:
		return payloadDHT
	case capture.PayloadUTP:
		return payloadUTP
	}
	return payloadOther
}
