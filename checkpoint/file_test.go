package checkpoint

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type rec struct {
	A int64
	B [3]uint16
	C bool
}

func writeSample(t *testing.T, path string) {
	t.Helper()
	w, err := Create(path, Header{Config: "workers=2", Written: 11, Clock: 22})
	if err != nil {
		t.Fatal(err)
	}
	var e Encoder
	e.U64(7)
	e.F64(2.5)
	e.Bool(true)
	Slice(&e, []rec{{A: -1, B: [3]uint16{1, 2, 3}, C: true}, {A: 5}})
	if err := w.Section("alpha", e.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := w.Section("beta", []byte("xy"), []byte("z")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	writeSample(t, path)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Header.Config != "workers=2" || f.Header.Written != 11 || f.Header.Clock != 22 || f.Header.Version != Version {
		t.Errorf("header %+v", f.Header)
	}
	d, err := f.Section("alpha")
	if err != nil {
		t.Fatal(err)
	}
	if v := d.U64(); v != 7 {
		t.Errorf("U64 = %d", v)
	}
	if v := d.F64(); v != 2.5 {
		t.Errorf("F64 = %v", v)
	}
	if !d.Bool() {
		t.Error("Bool = false")
	}
	got := ReadSlice[rec](d, 10)
	want := []rec{{A: -1, B: [3]uint16{1, 2, 3}, C: true}, {A: 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slice %+v, want %+v", got, want)
	}
	if err := d.Done(); err != nil {
		t.Error(err)
	}
	d, _ = f.Section("beta")
	var b [3]byte
	ElemsInto(d, b[:])
	if string(b[:]) != "xyz" || d.Done() != nil {
		t.Errorf("beta = %q, %v", b, d.Err())
	}
	// Reading past the section is an error, not a read of the next one.
	d.U64()
	if KindOf(d.Err()) != Corrupt {
		t.Errorf("read past the end: %v", d.Err())
	}
	if _, err := f.Section("gamma"); KindOf(err) != Corrupt {
		t.Errorf("missing section: %v", err)
	}
	// No temporary file is left next to it.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries", len(ents))
	}
}

// Every damaged file gives one line naming its kind of damage.
func TestDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeSample(t, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	version := func(v uint32) []byte {
		b := bytes.Clone(data)
		binary.LittleEndian.PutUint32(b[8:], v)
		return b
	}
	flip := func(i int) []byte {
		b := bytes.Clone(data)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		data []byte
		kind Kind
		msg  string
	}{
		{"foreign", []byte("# a YAML file, not a checkpoint\nwindow: 5m\n"), Foreign, "not a telescope state checkpoint"},
		{"foreign-short", []byte("PK"), Foreign, "not a telescope state checkpoint"},
		{"empty", nil, Truncated, "truncated: empty file"},
		{"future", version(Version + 1), Future, "newer state format version"},
		{"old", version(Version - 1), Old, "older state format version"},
		{"payload-flip", flip(len(data) - 8), Corrupt, `checksum mismatch in section "beta"`},
		{"header-flip", flip(20), Corrupt, "header checksum mismatch"},
		{"trailing", append(bytes.Clone(data), 0), Corrupt, "data after the end marker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(put(tc.name, tc.data))
			if err == nil {
				t.Fatal("opened")
			}
			if KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v (kind %v), want kind %v with %q on one line", err, KindOf(err), tc.kind, tc.msg)
			}
		})
	}
	// Cut at every length: truncated, never opened, never another kind.
	for n := 1; n < len(data); n++ {
		_, err := Open(put("cut", data[:n]))
		if KindOf(err) != Truncated {
			t.Fatalf("cut at %d of %d: %v (kind %v)", n, len(data), err, KindOf(err))
		}
	}
	if _, err := Open(filepath.Join(dir, "nothing")); KindOf(err) != Missing {
		t.Errorf("missing: %v", err)
	}
}

func TestLayoutFingerprint(t *testing.T) {
	// Each type is named rec in its own scope, so only its layout tells them apart.
	v1 := func() reflect.Type {
		type rec struct {
			A int64
			B uint32
		}
		return reflect.TypeFor[rec]()
	}
	changed := map[string]reflect.Type{
		"field added": func() reflect.Type {
			type rec struct {
				A int64
				B uint32
				C uint32
			}
			return reflect.TypeFor[rec]()
		}(),
		"fields swapped": func() reflect.Type {
			type rec struct {
				B uint32
				A int64
			}
			return reflect.TypeFor[rec]()
		}(),
		"array grew": func() reflect.Type {
			type rec struct {
				A int64
				B [2]uint32
			}
			return reflect.TypeFor[rec]()
		}(),
		"type changed, same size": func() reflect.Type {
			type rec struct {
				A int64
				B float32
			}
			return reflect.TypeFor[rec]()
		}(),
	}
	l1, err := LayoutOf(v1())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := LayoutOf(v1()); l1 != again {
		t.Error("fingerprint not deterministic")
	}
	for name, typ := range changed {
		if typ.String() != v1().String() {
			t.Fatalf("%s: type named %s, want %s", name, typ, v1())
		}
		l, err := LayoutOf(typ)
		if err != nil {
			t.Fatal(err)
		}
		if l == l1 {
			t.Errorf("%s: same fingerprint as the original:\n%s", name, Describe(typ))
		}
	}
	if _, err := LayoutOf(reflect.TypeFor[struct{ P *int }]()); err == nil {
		t.Error("a type with a pointer was accepted")
	}
}
