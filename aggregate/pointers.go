package aggregate

import "reflect"

// hasPointers reports whether values of v's type hold Go pointers (memory the garbage
// collector must see and scan).
func hasPointers(v any) bool { return HasPointers(reflect.TypeOf(v)) }

// HasPointers reports whether values of type t hold Go pointers. Values stored in the large
// tables must not (the tests of the packages storing them check it).
func HasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func,
		reflect.Interface, reflect.String, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && HasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if HasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
