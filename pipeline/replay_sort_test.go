package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/internal/daygen"
)

// rotatePcap writes the records of the classic pcap file path into n files of dir named as
// tcpdump -C names them (cap, cap1, ... cap<n-1>), about as many records each, and returns
// their names in time order.
func rotatePcap(t *testing.T, path, dir string, n int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr, recs := b[:24], b[24:]
	var offs []int // each record's offset in recs
	for off := 0; off < len(recs); off += 16 + int(binary.LittleEndian.Uint32(recs[off+8:])) {
		offs = append(offs, off)
	}
	offs = append(offs, len(recs))
	var names []string
	for i := range n {
		name := filepath.Join(dir, "cap")
		if i > 0 {
			name += fmt.Sprint(i)
		}
		from, to := offs[i*(len(offs)-1)/n], offs[(i+1)*(len(offs)-1)/n]
		if err := os.WriteFile(name, append(slices.Clip(hdr), recs[from:to]...), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// TestSortInputs: a day rotated into 11 files, given in the order a shell glob gives them
// (cap, cap1, cap10, cap2, ...), is put back in time order, and its sorted replay gives
// the report of the whole file (but its inputs); in glob order the files are out of order
// and the report differs. Files that cannot be read come first, in the order given;
// standard input cannot be sorted.
func TestSortInputs(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "day.pcap")
	if _, err := daygen.WriteFile(whole, daygen.Options{Seed: 5, Scale: 0.1}); err != nil {
		t.Fatal(err)
	}
	inOrder := rotatePcap(t, whole, dir, 11)
	glob := slices.Clone(inOrder)
	slices.Sort(glob)
	if slices.Equal(glob, inOrder) {
		t.Fatal("the glob order is the time order: nothing to sort")
	}
	sorted, moved, err := SortInputs(glob)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted, inOrder) {
		t.Fatalf("sorted %q, want %q", base(sorted), base(inOrder))
	}
	if want := 9; moved != want { // all but cap and cap1
		t.Errorf("moved %d, want %d", moved, want)
	}

	report := func(files []string) (string, ReplayResult) {
		t.Helper()
		p, err := New(Options{Config: configs.Default(), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		res := p.Replay(context.Background(), ReplayOptions{Files: files})
		if len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
		r := p.Report(NewEpisodes())
		r.Inputs = nil
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), res
	}
	want, _ := report([]string{whole})
	if got, res := report(sorted); got != want || res.OutOfOrder != 0 {
		t.Errorf("the sorted files' report differs from the whole file's (%d files out of order)", res.OutOfOrder)
	}
	if got, res := report(glob); got == want || res.OutOfOrder == 0 {
		t.Errorf("in glob order: %d files out of order, the report differs: %v; want both", res.OutOfOrder, got != want)
	}

	missing := filepath.Join(dir, "missing.pcap")
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not a capture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mixed := []string{inOrder[2], missing, inOrder[1], text, inOrder[0]}
	sorted, moved, err = SortInputs(mixed)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{missing, text, inOrder[0], inOrder[1], inOrder[2]}; !slices.Equal(sorted, want) || moved != 5 {
		t.Errorf("sorted %q (%d moved), want %q (5)", base(sorted), moved, base(want))
	}
	if _, _, err := SortInputs([]string{inOrder[0], "-"}); err == nil {
		t.Error("standard input sorted; want an error")
	}
}

func base(paths []string) []string {
	var b []string
	for _, p := range paths {
		b = append(b, filepath.Base(p))
	}
	return b
}
