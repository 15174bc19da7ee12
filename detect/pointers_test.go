package detect

import (
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/capture"
)

// hasPointers reports whether values of type t contain Go pointers (which the garbage
// collector must scan, and which cost write barriers when copied).
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func,
		reflect.Interface, reflect.String, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// TestTablesHoldNoPointers: the per-source tables can hold millions of entries; their
// values must be plain so the GC never scans them and growth copies them without barriers.
func TestTablesHoldNoPointers(t *testing.T) {
	for _, v := range []any{
		SourceState{},
		aggregate.TableEntry[capture.Addr, episode]{},
		aggregate.TableEntry[capture.Addr, victim]{},
		aggregate.TableEntry[flowKey, flow]{},
	} {
		if typ := reflect.TypeOf(v); hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
	if typ := reflect.TypeOf(pointered{}); !hasPointers(typ) {
		t.Fatal("hasPointers misses a slice field")
	}
}

type pointered struct {
	_ [2]uint64
	_ []byte
}
