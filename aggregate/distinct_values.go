package aggregate

// Values calls fn with every value of an exact Distinct and reports true; for a Distinct
// that switched to its sketch it calls nothing and reports false. (The scanner profile uses
// it to carry a window's ports into an episode.)
func (d *Distinct) Values(s *Slab, fn func(x uint64)) bool {
	if d.sketch() || d.tiny() {
		return false
	}
	s.Settle()
	vals := d.vals(s)
	if vals == nil {
		for _, v := range d.Small[:min(int(d.N), distinctInline)] {
			fn(v)
		}
		return true
	}
	if d.zero() {
		fn(0)
	}
	for _, v := range vals {
		if v != 0 {
			fn(v)
		}
	}
	return true
}
