package detect

import (
	"reflect"
	"testing"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// TestTablesHoldNoPointers: the per-source tables can hold millions of entries; their
// values must be plain so the GC never scans them and growth copies them without barriers.
func TestTablesHoldNoPointers(t *testing.T) {
	for _, v := range []any{
		SourceState{},
		aggregate.TableEntry[packet.Addr, episode]{},
		aggregate.TableEntry[packet.Addr, victim]{},
		aggregate.TableEntry[flowKey, flow]{},
	} {
		if typ := reflect.TypeOf(v); aggregate.HasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
	if typ := reflect.TypeOf(pointered{}); !aggregate.HasPointers(typ) {
		t.Fatal("hasPointers misses a slice field")
	}
}

type pointered struct {
	_ [2]uint64
	_ []byte
}
