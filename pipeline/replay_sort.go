package pipeline

import (
	"cmp"
	"errors"
	"slices"

	"github.com/telescope-dev/telescope/capture"
)

// SortInputs orders capture files by the time of their first packet (capture.FirstTime),
// keeping the order given among equal times (replay --sort). The detectors run on packet
// time, and a shell glob puts a rotated capture's files out of order: tcpdump -C names them
// cap, cap1, ... cap10, and cap10 sorts before cap2. A file whose first packet cannot be
// read (missing, not a capture, damaged at its first record: the replay reports it when it
// comes to it) or has no time comes first, in the order given. Standard input, a FIFO or
// a device cannot be sorted: the error names the first of them. moved counts the files
// not at their given place.
func SortInputs(files []string) (sorted []string, moved int, err error) {
	type input struct {
		name  string
		first int64
	}
	in := make([]input, len(files))
	for i, name := range files {
		t, err := capture.FirstTime(name)
		if errors.Is(err, capture.ErrReadOnce) {
			return nil, 0, err
		}
		in[i] = input{name, t} // an error: 0, first
	}
	slices.SortStableFunc(in, func(a, b input) int { return cmp.Compare(a.first, b.first) })
	sorted = make([]string, len(in))
	for i := range in {
		sorted[i] = in[i].name
		if sorted[i] != files[i] {
			moved++
		}
	}
	return sorted, moved, nil
}
