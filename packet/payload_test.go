package packet

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// dhtVector returns the UDP payload of testdata/dht-get-peers.ipv4.hex, a real DHT
// get_peers query seen by a telescope.
func dhtVector(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../testdata/dht-get-peers.ipv4.hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	u := b[int(b[0]&0x0F)*4:]
	return u[8:binary.BigEndian.Uint16(u[4:6])]
}

func TestClassifyDHT(t *testing.T) {
	v := dhtVector(t)
	if got := ClassifyUDP(v, len(v)); got != PayloadDHT {
		t.Fatalf("the real get_peers query: class %d, want dht", got)
	}
	// The decoder classifies the whole captured payload, not the 32 bytes it keeps.
	valid := []string{
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe",
		"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes0:e1:t1:x1:y1:re",
		"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
		"d1:t2:aa1:y1:q1:ai-5ee",
		"d1:ad1:xi0ee1:t1:a1:y1:qe",
	}
	for _, s := range valid {
		if got := ClassifyUDP([]byte(s), len(s)); got != PayloadDHT {
			t.Errorf("%q: class %d, want dht", s, got)
		}
	}
	invalid := []string{
		"",
		"d",
		"de",
		"d1:t2:aa1:y1:xe",            // y not q/r/e
		"d1:t2:aa1:y1:q",             // unterminated
		"d1:t2:aa1:y1:qee",           // trailing byte
		"d1:y1:qe",                   // no t
		"d1:t2:aae",                  // no y
		"d1:t0:1:y1:qe",              // empty t
		"d1:t2:aa1:y1:q1:ai05ee",     // leading zero
		"d1:t2:aa1:y1:q1:ai-0ee",     // -0
		"d1:t2:aa1:y1:q1:aiee",       // empty integer
		"d1:t2:aa1:y1:q1:a05:abcdee", // leading zero length
		"d1:t2:aa1:y1:q1:a9:abce",    // string past the end
		"d1:t2:aa1:y1:qi5ei6ee",      // integer key
		"d1:t2:aa1:y1:q1:ae",         // key without value
		"d1:t2:aa1:y1:qexx",          // data after the dict
		"l1:t2:aa1:y1:qe",            // a list
		"d1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ai1eeeeeeeeeeeeeeeeee1:t1:a1:y1:qe", // too deep
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae", // the 32 bytes a Header keeps
	}
	for _, s := range invalid {
		if got := ClassifyUDP([]byte(s), len(s)); got == PayloadDHT {
			t.Errorf("%q: classed dht", s)
		}
	}
	if got := ClassifyUDP(v[:len(v)-1], len(v)); got == PayloadDHT {
		t.Errorf("a query cut by the capture: classed dht")
	}
}

// utpPacket builds a BEP 29 packet of type typ with the given extension records (type,
// data) and data bytes.
func utpPacket(typ byte, exts [][2]any, data int) []byte {
	b := make([]byte, 20, 64)
	b[0] = typ<<4 | 1
	binary.BigEndian.PutUint16(b[2:], 0x1234)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	binary.BigEndian.PutUint32(b[12:], 1<<20) // 1 MiB window
	binary.BigEndian.PutUint16(b[16:], 7)
	if len(exts) > 0 {
		b[1] = exts[0][0].(byte)
	}
	for i, e := range exts {
		next := byte(0)
		if i+1 < len(exts) {
			next = exts[i+1][0].(byte)
		}
		d := e[1].([]byte)
		b = append(b, next, byte(len(d)))
		b = append(b, d...)
	}
	return append(b, make([]byte, data)...)
}

func TestClassifyUTP(t *testing.T) {
	sack := [2]any{byte(1), []byte{0xff, 0, 0, 1}}
	bits := [2]any{byte(2), make([]byte, 8)}
	valid := map[string][]byte{
		"ST_SYN":                     utpPacket(utpSyn, nil, 0),
		"ST_SYN with extension bits": utpPacket(utpSyn, [][2]any{bits}, 0),
		"ST_STATE":                   utpPacket(utpState, nil, 0),
		"ST_STATE with sack":         utpPacket(utpState, [][2]any{sack}, 0),
		"ST_STATE sack and bits":     utpPacket(utpState, [][2]any{sack, bits}, 0),
		"ST_FIN":                     utpPacket(utpFin, nil, 0),
		"ST_RESET":                   utpPacket(utpReset, nil, 0),
		"ST_DATA":                    utpPacket(utpData, nil, 100),
		"ST_DATA with sack":          utpPacket(utpData, [][2]any{sack}, 1),
	}
	for name, p := range valid {
		if got := ClassifyUDP(p, len(p)); got != PayloadUTP {
			t.Errorf("%s (% x): class %d, want utp", name, p, got)
		}
		// The decoder sees it whole when the capture is long enough (the Header keeps 32
		// bytes; classification uses what the frame holds).
		if len(p) > 32 {
			if got := ClassifyUDP(p[:32], len(p)); got != PayloadUTP && name != "ST_STATE sack and bits" {
				t.Errorf("%s cut to 32 bytes: class %d, want utp", name, got)
			}
		}
	}
	invalid := map[string][]byte{
		"ST_SYN with data":     utpPacket(utpSyn, nil, 478-20),
		"ST_STATE with data":   utpPacket(utpState, nil, 1),
		"ST_DATA without data": utpPacket(utpData, nil, 0),
		"version 2":            func() []byte { p := utpPacket(utpSyn, nil, 0); p[0] = 0x42; return p }(),
		"type 5":               func() []byte { p := utpPacket(utpSyn, nil, 0); p[0] = 0x51; return p }(),
		"unknown extension":    utpPacket(utpSyn, [][2]any{{byte(3), []byte{1, 2}}}, 0),
		"sack of 3 bytes":      utpPacket(utpState, [][2]any{{byte(1), []byte{1, 2, 3}}}, 0),
		"chain past the end":   func() []byte { p := utpPacket(utpState, [][2]any{sack}, 0); return p[:len(p)-1] }(),
		"19 bytes":             utpPacket(utpSyn, nil, 0)[:19],
		"ST_DATA, window 16 MiB": func() []byte {
			p := utpPacket(utpData, nil, 10)
			binary.BigEndian.PutUint32(p[12:], 1<<24)
			return p
		}(),
	}
	for name, p := range invalid {
		if got := ClassifyUDP(p, len(p)); got == PayloadUTP {
			t.Errorf("%s (% x): classed utp", name, p)
		}
	}
}

// TestClassifyRandom: no class for random payloads of every length 0-1500 (1 M of them;
// 100 k with -short), whole or cut to a 214-byte capture.
func TestClassifyRandom(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	rng := rand.NewChaCha8([32]byte{10})
	buf := make([]byte, 1500)
	var dht, utp int
	for i := range n {
		p := buf[:i%1501]
		_, _ = rng.Read(p)
		switch {
		case i%7 == 3 && len(p) > 0:
			p[0] = 'd' // give the bencode parser work too
		case i%7 == 5 && len(p) > 0:
			p[0] = byte(i%5)<<4 | 1 // and the uTP header check
		}
		for _, c := range []uint8{ClassifyUDP(p, len(p)), ClassifyUDP(p[:min(len(p), 214)], len(p))} {
			switch c {
			case PayloadDHT:
				dht++
			case PayloadUTP:
				utp++
				if utp <= 3 {
					t.Logf("false utp: % x", p[:min(len(p), 24)])
				}
			}
		}
	}
	if dht != 0 || utp != 0 {
		t.Errorf("%d random payloads: %d classed dht, %d classed utp", n, dht, utp)
	}
}

func TestClassifyNoAlloc(t *testing.T) {
	v := dhtVector(t)
	u := utpPacket(utpState, [][2]any{{byte(1), []byte{1, 2, 3, 4}}}, 0)
	if a := testing.AllocsPerRun(100, func() { ClassifyUDP(v, len(v)); ClassifyUDP(u, len(u)) }); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
