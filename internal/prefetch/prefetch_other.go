//go:build !amd64 && !arm64

package prefetch

import "unsafe"

// Line does nothing on an architecture without a prefetch here: only time differs.
func Line(p unsafe.Pointer) {}

// Span does nothing here either.
func Span(p unsafe.Pointer, n uintptr) {}

// Write does nothing here either.
func Write(p unsafe.Pointer) {}

// WriteSpan does nothing here either.
func WriteSpan(p unsafe.Pointer, n uintptr) {}
