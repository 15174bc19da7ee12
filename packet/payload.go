package packet

// UDP payload classes (Header.PayloadClass), decided by the decoder from the whole captured
// payload: BitTorrent DHT (bencoded KRPC, BEP 5) or uTP (BEP 29); anything else is other.
const (
	PayloadOther uint8 = iota
	PayloadDHT
	PayloadUTP
)

// ClassifyUDP classifies a UDP payload p, the captured part of a payload of length bytes.
// It does not allocate.
func ClassifyUDP(p []byte, length int) uint8 {
	switch {
	case IsKRPC(p, length):
		return PayloadDHT
	case IsUTP(p, length):
		return PayloadUTP
	}
	return PayloadOther
}

// bencodeMaxDepth bounds the nesting of lists and dictionaries IsKRPC accepts (KRPC
// messages nest three deep).
const bencodeMaxDepth = 16

// IsKRPC reports whether p, the whole payload (len(p) == length), is one strictly valid
// bencoded dictionary holding the KRPC keys "t" (a non-empty string) and "y" ("q", "r" or
// "e"), and nothing after it. Strict bencode: integers without leading zeros or "-0",
// string lengths without leading zeros and within the payload, dictionary keys strings,
// nesting at most bencodeMaxDepth. A payload cut by the capture is never KRPC.
func IsKRPC(p []byte, length int) bool {
	if len(p) != length || len(p) < 2 || p[0] != 'd' {
		return false
	}
	var dict [bencodeMaxDepth]bool // per open container: dictionary (else list)
	depth := 0
	expectKey := false // the next item of the open dictionary is a key
	var key byte       // top-level key whose value comes next: 'y', 't' or 0
	haveY, haveT := false, false
	for i := 0; i < len(p); {
		c := p[i]
		if c == 'e' && depth > 0 {
			if dict[depth-1] && !expectKey {
				return false // a key without a value
			}
			depth--
			i++
			if depth == 0 {
				return i == len(p) && haveY && haveT
			}
			expectKey = dict[depth-1]
			continue
		}
		if depth > 0 && expectKey {
			s, n := bencString(p[i:])
			if n == 0 {
				return false
			}
			i += n
			key = 0
			if depth == 1 && len(s) == 1 && (s[0] == 'y' || s[0] == 't') {
				key = s[0]
			}
			expectKey = false
			continue
		}
		switch {
		case c == 'd' || c == 'l':
			if depth == len(dict) || (depth == 0 && i != 0) {
				return false
			}
			dict[depth] = c == 'd'
			depth++
			i++
			expectKey = c == 'd'
			key = 0
			continue
		case c == 'i':
			n := bencInt(p[i:])
			if n == 0 {
				return false
			}
			i += n
		case c >= '0' && c <= '9':
			s, n := bencString(p[i:])
			if n == 0 {
				return false
			}
			i += n
			if depth == 1 {
				switch {
				case key == 'y' && len(s) == 1 && (s[0] == 'q' || s[0] == 'r' || s[0] == 'e'):
					haveY = true
				case key == 't' && len(s) > 0:
					haveT = true
				}
			}
		default:
			return false
		}
		key = 0
		expectKey = dict[depth-1]
	}
	return false // the payload ends inside the dictionary
}

// bencString parses a bencoded string at the start of b: its bytes and the length of its
// encoding, or n = 0 when it is not one.
func bencString(b []byte) (s []byte, n int) {
	l, i := 0, 0
	for ; i < len(b) && i < 6 && b[i] >= '0' && b[i] <= '9'; i++ {
		l = l*10 + int(b[i]-'0')
	}
	if i == 0 || i == len(b) || b[i] != ':' || (b[0] == '0' && i > 1) {
		return nil, 0
	}
	i++
	if l > len(b)-i {
		return nil, 0
	}
	return b[i : i+l], i + l
}

// bencInt returns the length of the bencoded integer at the start of b, or 0.
func bencInt(b []byte) int {
	i := 1 // 'i'
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for ; i < len(b) && i-start < 20 && b[i] >= '0' && b[i] <= '9'; i++ {
	}
	digits := i - start
	if digits == 0 || i == len(b) || b[i] != 'e' {
		return 0
	}
	if b[start] == '0' && (digits > 1 || start == 2) { // leading zero, or "-0"
		return 0
	}
	return i + 1
}

// uTP packet types (BEP 29).
const (
	utpData  = 0
	utpFin   = 1
	utpState = 2
	utpReset = 3
	utpSyn   = 4
)

// IsUTP reports whether p, the captured part of a payload of length bytes, is a BEP 29
// uTP packet: a 20-byte header of version 1 and type ST_DATA..ST_SYN, then the extension
// chain its second byte starts, each record (next extension, length, data) with a length
// its type allows (selective ack: a multiple of 4, at least 4; extension bits: 8; no other
// type is defined), verifiable within the captured bytes and ending within the payload.
// ST_FIN, ST_STATE, ST_RESET and ST_SYN carry no data: the chain ends exactly at the end
// of the payload. ST_DATA carries data, and a receive window below 16 MiB (real clients
// advertise at most a few MiB) — without that one byte a random payload would pass 1 in
// 65 536 times.
func IsUTP(p []byte, length int) bool {
	if length < 20 || len(p) < 20 {
		return false
	}
	typ, ver := p[0]>>4, p[0]&0x0F
	if ver != 1 || typ > utpSyn {
		return false
	}
	next, off := p[1], 20
	for next != 0 {
		if off+2 > len(p) {
			return false // the chain goes past what was captured: not verifiable
		}
		l := int(p[off+1])
		switch next {
		case 1: // selective ack
			if l < 4 || l%4 != 0 {
				return false
			}
		case 2: // extension bits
			if l != 8 {
				return false
			}
		default:
			return false
		}
		next = p[off]
		off += 2 + l
		if off > length {
			return false
		}
	}
	if typ == utpData {
		return off < length && p[12] == 0
	}
	return off == length
}
