package detect

import (
	"bytes"

	"github.com/telescope-dev/telescope/capture"
)

// Payload classes, indexes of PayloadKinds.
const (
	payloadDHT = iota
	payloadUTP
	payloadOther
)

// krpcKeys are the bencoded keys a KRPC message (BEP 5) starts with after its 'd': the
// dictionary's keys are sorted, so the first is one of these ("a" queries' arguments, "r"
// responses, "e" errors; "ip", "t", "v", "y", "q" when the earlier ones are absent).
var krpcKeys = [][]byte{
	[]byte("1:a"), []byte("1:r"), []byte("1:e"), []byte("1:t"),
	[]byte("1:y"), []byte("1:q"), []byte("1:v"), []byte("2:ip"),
}

// payloadKind classifies a UDP payload from its first captured bytes.
func payloadKind(h *capture.Header) int {
	p := h.Payload[:min(int(h.PayloadCap), capture.PayloadMax)]
	if isKRPC(p) {
		return payloadDHT
	}
	if isUTP(p, h.PayloadLen) {
		return payloadUTP
	}
	return payloadOther
}

// isKRPC reports whether p starts like a bencoded KRPC message: a dictionary whose first key
// is a KRPC key, followed by the start of a bencoded value (dictionary, list, integer, or a
// string's length digit).
func isKRPC(p []byte) bool {
	if len(p) < 2 || p[0] != 'd' {
		return false
	}
	for _, k := range krpcKeys {
		if len(p) >= len(k)+2 && bytes.HasPrefix(p[1:], k) {
			v := p[1+len(k)]
			return v == 'd' || v == 'l' || v == 'i' || (v >= '0' && v <= '9')
		}
	}
	return false
}

// isUTP reports whether p starts with a BEP 29 uTP header: 20 bytes or more, version 1 in
// the low nibble and a type 0..4 (ST_DATA..ST_SYN) in the high nibble of the first byte, and
// an extension type 0..2 in the second.
func isUTP(p []byte, length uint16) bool {
	if length < 20 || len(p) < 2 {
		return false
	}
	return p[0]&0x0F == 1 && p[0]>>4 <= 4 && p[1] <= 2
}
