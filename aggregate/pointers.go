package aggregate

import "reflect"

// hasPointers reports whether values of v's type hold Go pointers (memory the garbage
// collector must see and scan).
func hasPointers(v any) bool { return typeHasPointers(reflect.TypeOf(v)) }

func typeHasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func,
		reflect.Interface, reflect.String, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && typeHasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if typeHasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
