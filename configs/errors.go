package configs

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileError is one mistake in a config file: "name:line: msg", or "name: msg" when the line
// is unknown (0).
type fileError struct {
	name string
	line int
	msg  string
}

func (e *fileError) Error() string {
	if e.line > 0 {
		return e.name + ":" + strconv.Itoa(e.line) + ": " + e.msg
	}
	return e.name + ": " + e.msg
}

// lineError is a mistake found before the file name is known to attach.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return "line " + strconv.Itoa(e.line) + ": " + e.msg }

// yamlError turns an error from yaml.v3 (or our own lineError) into fileErrors, one per
// mistake: yaml.v3 writes "yaml: line 4: msg", and a TypeError holds one "line 4: msg" each.
func yamlError(name string, data []byte, err error) error {
	if le, ok := errors.AsType[*lineError](err); ok {
		return &fileError{name: name, line: le.line, msg: le.msg}
	}
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		errs := make([]error, len(te.Errors))
		for i, e := range te.Errors {
			errs[i] = located(name, data, e)
		}
		return errors.Join(errs...)
	}
	return located(name, data, strings.TrimPrefix(err.Error(), "yaml: "))
}

// located splits yaml.v3's "line N: msg" into a fileError. A syntax error on or just before a
// line indented with a tab is almost always that tab (yaml.v3 may report the line where the
// value before it started), so such an error points at the tab.
func located(name string, data []byte, s string) *fileError {
	rest, ok := strings.CutPrefix(s, "line ")
	num, msg, ok2 := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil {
		return &fileError{name: name, msg: s}
	}
	if tab := tabIndented(data, line); tab > 0 {
		return &fileError{name: name, line: tab, msg: msg + " (YAML indentation must be spaces, not tabs)"}
	}
	return &fileError{name: name, line: line, msg: msg}
}

// tabIndented returns line n or n+1 (1-based) if its indentation holds a tab, else 0.
// Blank and comment lines do not count.
func tabIndented(data []byte, n int) int {
	lines := bytes.Split(data, []byte("\n"))
	for i := max(n-1, 0); i <= n && i < len(lines); i++ {
		text := bytes.TrimLeft(lines[i], " \t")
		indent := lines[i][:len(lines[i])-len(text)]
		if len(bytes.TrimSpace(text)) > 0 && text[0] != '#' && bytes.IndexByte(indent, '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}
