package detect

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestDueQueueOrder: pushes mostly in due order (a packet clock + window) with some earlier
// ones (re-pushes) and pops in between; every pop returns the earliest due queued, as a
// sorted reference list does, and the FIFO's memory stays within twice the most entries it
// held at once.
func TestDueQueueOrder(t *testing.T) {
	var q dueQueue[int]
	checkDueQueue(t, &q, func(most int) int { return cap(q.fifo) - 2*most - 64 })
}

// TestDueQueueReserved: the same with the queue's memory reserved outside the heap, after
// entries were queued: they are kept, in order, and the FIFO uses (writes) no more than
// twice the most entries it held at once, plus the length under which it moves none,
// rather than walking through its whole reservation.
func TestDueQueueReserved(t *testing.T) {
	var q dueQueue[int]
	q.push(1, -1)
	q.heap.push(0, -2)
	const n = 1 << 20
	reserveQueue(&q, n)
	if runtime.GOOS == "linux" && (cap(q.fifo) < n || cap(q.heap) < n) {
		t.Fatalf("reserved FIFO and heap for %d and %d entries, want %d", cap(q.fifo), cap(q.heap), n)
	}
	for want := range 2 {
		if it := q.pop(); it.due != int64(want) || it.ref != -2+want {
			t.Fatalf("popped %+v after the reservation, want due %d ref %d", it, want, -2+want)
		}
	}
	checkDueQueue(t, &q, func(most int) int { return len(q.fifo) - 2*most - dueCompactMin })

	// A steady flood: as many pops as pushes, 1 000 entries queued.
	q.reset()
	const live = 1000
	for i := range int64(300000) {
		q.push(i+live, 0)
		if i < live {
			continue
		}
		if it := q.pop(); it.due != i {
			t.Fatalf("steady flood: popped %d, want %d", it.due, i)
		}
		if len(q.fifo) > 2*(live+1)+dueCompactMin {
			t.Fatalf("steady flood: the FIFO wrote %d entries for %d queued", len(q.fifo), q.len())
		}
	}
}

// checkDueQueue runs a random workload on q, checking every pop against a sorted list;
// over(most) > 0 fails it, most being the most entries the FIFO held at once so far.
func checkDueQueue(t *testing.T, q *dueQueue[int], over func(most int) int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
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
		if x := over(most); x > 0 {
			t.Fatalf("step %d: FIFO of %d (capacity %d) is %d entries over its bound, at most %d entries held at once",
				i, len(q.fifo), cap(q.fifo), x, most)
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
