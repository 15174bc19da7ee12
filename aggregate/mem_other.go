//go:build !linux

package aggregate

import "unsafe"

// Reserve is Linux-only; elsewhere callers allocate on the heap.
func Reserve[T, O any](owner *O, n int) []T { return nil }

// populate is Linux-only (nothing is reserved elsewhere).
func populate(p unsafe.Pointer, n int) error { return nil }
