package detect

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestTimeFormat: Time formats exactly as time.RFC3339Nano in UTC, over the whole int64
// range (before and after the epoch, whole seconds, trailing zeros of the fraction).
func TestTimeFormat(t *testing.T) {
	vals := []int64{0, 1, -1, 1e9, -1e9, 1e9 + 1, -1e9 - 1, 100, 120_000_000, 951_782_400e9,
		951_868_799_999_999_999, 1_767_225_599e9, 4_107_542_400e9,
		-86_400e9, -86_400e9 + 1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, math.MaxInt64 - 1}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		v := r.Int64()
		if r.IntN(2) == 0 {
			v = -v
		}
		switch r.IntN(4) {
		case 0:
			v -= v % 1e9 // whole seconds
		case 1:
			v -= v % 1e6
		}
		vals = append(vals, v)
	}
	for _, v := range vals {
		want := time.Unix(0, v).UTC().Format(time.RFC3339Nano)
		if got := Time(v).String(); got != want {
			t.Fatalf("Time(%d).String() = %q, want %q", v, got, want)
		}
		b, err := Time(v).MarshalText()
		if err != nil || string(b) != want {
			t.Fatalf("Time(%d).MarshalText() = %q, %v, want %q", v, b, err, want)
		}
		var back Time
		if err := back.UnmarshalText(b); err != nil || back != Time(v) {
			t.Fatalf("UnmarshalText(%q) = %d, %v, want %d", b, back, err, v)
		}
	}
	j, err := json.Marshal(struct{ T Time }{Time(1_500_000_000_123_400_000)})
	if err != nil || string(j) != `{"T":"2017-07-14T02:40:00.1234Z"}` {
		t.Fatalf("json = %s, %v", j, err)
	}
}

// TestIPText: an entry's IP writes as the address's text in JSON (as the string field did
// before) and reads back to the same address; text that is not an address is an error.
func TestIPText(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "100.64.0.7"} {
		e := ToolEntry{Src: ipOf(s), Tool: "mirai", Packets: 1}
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"src":"` + s + `",`; !strings.HasPrefix(string(b), want) {
			t.Errorf("%s: JSON %s, want it to start with %s", s, b, want)
		}
		var back ToolEntry
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if back.Src != e.Src || back.Src.String() != s {
			t.Errorf("%s: read back as %s", s, back.Src)
		}
	}
	var e ToolEntry
	if err := json.Unmarshal([]byte(`{"src":"not an address"}`), &e); err == nil {
		t.Error("src \"not an address\" read without an error")
	}
}

// BenchmarkAppendTime: one report or log time, nanoseconds within a second varying.
func BenchmarkAppendTime(b *testing.B) {
	buf := make([]byte, 0, maxTimeLen)
	v := int64(1_714_521_610_123_456_789)
	for i := 0; i < b.N; i++ {
		buf = appendTime(buf[:0], v+int64(i)*7919)
	}
}

// TestLogTextFields: addTime and addIP (formatting into pooled buffers) add what AddString
// of the value's String adds, with the map encoder (which keeps the value) and the JSON one,
// for times across the range and addresses of both families and the zero one.
func TestLogTextFields(t *testing.T) {
	times := []Time{0, 1, Time(t0), Time(t0 + 999999999), -1, 1<<62 + 12345, math.MaxInt64, math.MinInt64}
	ips := []IP{{}, IP(addr("192.0.2.1")), IP(addr("2001:db8::1234:5678")), IP(addr("::ffff:10.0.0.1")), IP(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))}
	for _, tm := range times {
		m := zapcore.NewMapObjectEncoder()
		addTime(m, "t", tm)
		addTime(m, "u", tm+1)
		if m.Fields["t"] != tm.String() || m.Fields["u"] != (tm+1).String() {
			t.Errorf("time %d: %q, %q; want %q, %q", tm, m.Fields["t"], m.Fields["u"], tm.String(), (tm + 1).String())
		}
	}
	for _, a := range ips {
		m := zapcore.NewMapObjectEncoder()
		addIP(m, "a", a)
		if m.Fields["a"] != a.String() {
			t.Errorf("address %v: %q, want %q", a, m.Fields["a"], a.String())
		}
	}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	for _, e := range []zapcore.ObjectMarshaler{
		&ToolEntry{Src: ips[2], Tool: "mirai", FirstSeen: times[2], LastSeen: times[3]},
		&UDPThenSYNEntry{Src: ips[1], Dst: ips[4], Port: 6881, FirstSeen: times[1], LastSeen: times[5]},
	} {
		buf, err := enc.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(e)})
		if err != nil {
			t.Fatal(err)
		}
		m := zapcore.NewMapObjectEncoder()
		if err := e.MarshalLogObject(m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m.Fields {
			if s, ok := v.(string); ok && !strings.Contains(buf.String(), `"`+k+`":"`+s+`"`) {
				t.Errorf("%T: the JSON line %s has no %s %q", e, buf.String(), k, s)
			}
		}
	}
}
