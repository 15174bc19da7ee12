package detect

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDueQueueOrder: pushes mostly in due order (a packet clock + window) with some earlier
// ones (re-pushes) and pops in between; every pop returns the earliest due queued, as a
// sorted reference list does, and the FIFO's memory stays within twice the most entries it
// held at once.
func TestDueQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var q dueQueue[int]
	var ref []int64 // sorted dues queued
	clock, most := int64(0), 0
	for i := range 200000 {
		switch x := r.IntN(10); {
		case x < 6: // in order: clock moves on
			clock += int64(r.IntN(3))
			q.push(clock+100, i)
			ref = insertSorted(ref, clock+100)
		case x < 7: // a re-push: earlier than the newest
			d := clock + int64(r.IntN(100))
			q.push(d, i)
			ref = insertSorted(ref, d)
		default:
			if len(ref) == 0 {
				if _, ok := q.top(); ok || q.len() != 0 {
					t.Fatalf("step %d: queue of %d entries, want empty", i, q.len())
				}
				continue
			}
			d, ok := q.top()
			if !ok || d != ref[0] {
				t.Fatalf("step %d: top %d %v, want %d", i, d, ok, ref[0])
			}
			if it := q.pop(); it.due != ref[0] {
				t.Fatalf("step %d: popped %d, want %d", i, it.due, ref[0])
			}
			ref = ref[1:]
		}
		if q.len() != len(ref) {
			t.Fatalf("step %d: %d entries, want %d", i, q.len(), len(ref))
		}
		most = max(most, len(q.fifo)-q.head)
		if cap(q.fifo) > 2*most+64 {
			t.Fatalf("step %d: FIFO capacity %d, at most %d entries held at once", i, cap(q.fifo), most)
		}
	}
	for len(ref) > 0 {
		if it := q.pop(); it.due != ref[0] {
			t.Fatalf("draining: popped %d, want %d", it.due, ref[0])
		}
		ref = ref[1:]
	}
	q.push(5, 1)
	q.reset()
	if q.len() != 0 {
		t.Fatalf("%d entries after reset", q.len())
	}
}

func insertSorted(s []int64, v int64) []int64 {
	i, _ := slices.BinarySearch(s, v)
	return slices.Insert(s, i, v)
}
