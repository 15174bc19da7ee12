//go:build !linux

package aggregate

// Reserve is Linux-only; elsewhere callers allocate on the heap.
func Reserve[T, O any](owner *O, n int) []T { return nil }
