package studyhtml

import "fmt"

// distinctSample holds the distinct keys of a stream: all of them up to max, then a uniform
// sample of them (Gibbons' distinct sampling): a key is kept while the low `level` bits of
// its hash are zero, and the level rises, dropping the keys it no longer keeps, whenever
// more than max are kept. A page of months of episodes takes the memory of max keys, not
// of every sender and pair, and its counts are exact until the first rise, estimates
// (kept × 2^level) after it. The hashes must be fixed, not seeded per process: the same
// input gives the same page.
type distinctSample[K comparable] struct {
	max   int
	level uint
	keys  map[K]uint64 // the keys kept, with their hashes
	// dropped, if set, is told each key kept before that a rise of the level drops.
	dropped func(K)
}

// maxPollKeys bounds each of the pollution section's samples: ~60 MiB of heap for the five
// at the bound (4 M distinct pairs took 1.26 GiB kept whole).
const maxPollKeys = 1 << 17

func newDistinctSample[K comparable](limit int, dropped func(K)) distinctSample[K] {
	return distinctSample[K]{max: max(limit, 1), keys: map[K]uint64{}, dropped: dropped}
}

// add adds k, whose hash is h, and reports whether it is a new key that the sample keeps.
func (s *distinctSample[K]) add(k K, h uint64) bool {
	if h&(1<<s.level-1) != 0 {
		return false
	}
	if _, ok := s.keys[k]; ok {
		return false
	}
	s.keys[k] = h
	for len(s.keys) > s.max && s.level < 63 {
		s.level++
		for kk, hh := range s.keys {
			if hh&(1<<s.level-1) != 0 {
				delete(s.keys, kk)
				if s.dropped != nil && kk != k { // k was not counted yet
					s.dropped(kk)
				}
			}
		}
	}
	_, kept := s.keys[k]
	return kept
}

// scale is what one key kept stands for: 1 while the sample holds every key.
func (s *distinctSample[K]) scale() uint64 { return 1 << s.level }

// count is the number of distinct keys added: exact while exact().
func (s *distinctSample[K]) count() uint64 { return uint64(len(s.keys)) << s.level }

func (s *distinctSample[K]) exact() bool { return s.level == 0 }

// approx formats n as group does, marked as an estimate unless exact.
func approx(n uint64, exact bool) string {
	if exact {
		return group(n)
	}
	return "≈ " + group(n)
}

// classSenders is the note of a payload class's bar: its senders, n of them in the
// sample s. A class whose senders the sample kept none of had at least one (it has
// packets): not "≈ 0", but how sparse the sample is.
func classSenders(n int, s *distinctSample[paySender]) string {
	if n == 0 && !s.exact() {
		return fmt.Sprintf("(senders: none in the sample of 1 in %s)", group(s.scale()))
	}
	return fmt.Sprintf("(%s senders)", approx(uint64(n)*s.scale(), s.exact()))
}
