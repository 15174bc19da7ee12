// Package procmaps reads the process's own memory mappings (/proc/self/smaps), for tests
// that check where a structure's memory lives: in a reserved mapping with huge pages
// requested, or in the Go heap.
package procmaps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Flags returns the VmFlags of the mapping holding addr (e.g. "rd wr mr mw me ac hg": hg
// is MADV_HUGEPAGE).
func Flags(addr uintptr) (string, error) {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && len(f[1]) == 4 && strings.Contains(f[0], "-") {
			lo, hi, _ := strings.Cut(f[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= a && uint64(addr) < b
		} else if in && len(f) > 0 && f[0] == "VmFlags:" {
			return strings.Join(f[1:], " "), nil
		}
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

// HugePages reports whether addr is in a mapping with huge pages requested (MADV_HUGEPAGE):
// one that aggregate.Reserve made, not the Go heap's.
func HugePages(addr uintptr) (bool, error) {
	f, err := Flags(addr)
	if err != nil {
		return false, err
	}
	return strings.Contains(" "+f+" ", " hg "), nil
}
