//go:build amd64 || arm64

package prefetch

import "unsafe"

// Line starts loading the cache line that holds p. It never faults (the CPU ignores an
// address it cannot load) and changes nothing a program can observe but time.
//
//go:noescape
func Line(p unsafe.Pointer)

// Span starts loading every cache line of the n bytes at p (n > 0).
//
//go:noescape
func Span(p unsafe.Pointer, n uintptr)

// Write is Line for a line about to be written (PREFETCHW, PRFM PSTL1KEEP): it is fetched
// for ownership, so that the store or locked add that follows need not ask for it again.
// An x86 without PREFETCHW gets Line.
func Write(p unsafe.Pointer) {
	if canWrite {
		write(p)
	} else {
		Line(p)
	}
}

// WriteSpan is Write for every cache line of the n bytes at p (n > 0).
func WriteSpan(p unsafe.Pointer, n uintptr) {
	if canWrite {
		writeSpan(p, n)
	} else {
		Span(p, n)
	}
}

var canWrite = hasWrite()

//go:noescape
func write(p unsafe.Pointer)

//go:noescape
func writeSpan(p unsafe.Pointer, n uintptr)
