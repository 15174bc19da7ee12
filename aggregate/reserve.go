package aggregate

// ReserveOrMake returns n zeroed values of T, reserved outside the Go heap with huge pages
// requested where it can be (Reserve: the memory is used only as it is first written, and
// owner's cleanup unmaps it, so the slice must not outlive owner), else made on the heap.
func ReserveOrMake[T, O any](owner *O, n int) []T {
	if r := Reserve[T](owner, n); r != nil {
		return r
	}
	return make([]T, n)
}
