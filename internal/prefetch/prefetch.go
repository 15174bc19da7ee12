// Package prefetch asks the CPU to load a cache line without waiting for it: a handful of
// loads issued together overlap their misses, where loads the code then depends on would
// wait one after another (the reorder buffer holds only a few packets' work).
package prefetch
