package configs

import (
	"fmt"
	"reflect"
	"strings"
)

// suggest returns " (did you mean ...?)" for an unknown key name inside a section of struct
// type t, or "" when nothing is close: first a near miss among the section's own keys
// (a typo, Title case, dashes for underscores), else the same key elsewhere in the config
// (a key written at the wrong depth, such as listen_address at the top level).
func suggest(name string, t reflect.Type) string {
	norm := strings.ReplaceAll(strings.ToLower(name), "-", "_")
	best, bestDist := "", maxEdits(norm)+1
	for _, f := range yamlFields(t) {
		if d := editDistance(norm, f.name); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	var elsewhere []string
	for _, k := range keyPaths(reflect.TypeFor[Config](), "") {
		if k == norm || strings.HasSuffix(k, "."+norm) {
			elsewhere = append(elsewhere, fmt.Sprintf("%q", k))
		}
	}
	if len(elsewhere) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(elsewhere, " or ") + "?)"
}

// maxEdits is how many edits still count as a near miss: more for longer names.
func maxEdits(s string) int {
	return max(1, min(3, len(s)/3))
}

// editDistance is the optimal string alignment distance between a and b: insertions,
// deletions, substitutions and transpositions of adjacent bytes each cost one.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
