//go:build !linux

package aggregate

// reserveSlots is Linux-only; elsewhere tables allocate their chunks on the heap.
func reserveSlots[T, O any](owner *O, n int) []T { return nil }
