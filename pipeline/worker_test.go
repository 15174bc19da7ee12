package pipeline

import (
	"testing"
	"unsafe"

	"github.com/telescope-dev/telescope/aggregate"
	"github.com/telescope-dev/telescope/packet"
)

// TestSourceHeadHoldsTheCounts checks that the part of a source's entry warmed for every
// packet (sourceHead) holds what every packet writes: the key, the links and the worker's
// counts, all before the detectors' state.
func TestSourceHeadHoldsTheCounts(t *testing.T) {
	var e aggregate.TableEntry[packet.Addr, sourceEntry]
	val := unsafe.Offsetof(e.Val)
	for name, end := range map[string]uintptr{
		"key":     unsafe.Offsetof(e.Key) + unsafe.Sizeof(e.Key),
		"links":   unsafe.Offsetof(e.Next) + unsafe.Sizeof(e.Next),
		"win":     val + unsafe.Offsetof(e.Val.win) + unsafe.Sizeof(e.Val.win),
		"telMin":  val + unsafe.Offsetof(e.Val.telMin) + unsafe.Sizeof(e.Val.telMin),
		"winPkts": val + unsafe.Offsetof(e.Val.winPkts) + unsafe.Sizeof(e.Val.winPkts),
		"total":   val + unsafe.Offsetof(e.Val.total) + unsafe.Sizeof(e.Val.total),
	} {
		if end > sourceHead {
			t.Errorf("%s ends at byte %d of the entry, past the warmed head of %d", name, end, sourceHead)
		}
	}
	if sourceHead != val+unsafe.Offsetof(e.Val.det) {
		t.Errorf("the head is %d bytes, the detectors' state starts at %d", sourceHead, val+unsafe.Offsetof(e.Val.det))
	}
}
