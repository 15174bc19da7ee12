package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses the config file at path; every error message starts with the path.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, MaxFileSize)
	if err != nil {
		if pe, ok := errors.AsType[*os.PathError](err); ok {
			err = pe.Err // the path goes in front, once
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(data, path)
}

// MaxFileSize bounds a config file (a few thousand prefixes take well under 1 MiB).
const MaxFileSize = 1 << 20

// readLimited reads at most limit bytes of path, and fails when there are more.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes; a config file is at most 1 MiB", limit)
	}
	return data, nil
}

// Parse reads a config from YAML: strict syntax and key checks, the values present over the
// defaults, then Validate. name (usually the file path) starts every error line, followed by
// the line number where the mistake is; all mistakes are reported, one per line.
func Parse(data []byte, name string) (*Config, error) {
	c, err := defaults()
	if err != nil {
		return nil, err
	}
	lines, err := decode(data, name, c)
	if err != nil {
		return nil, err
	}
	if probs := c.problems(); len(probs) > 0 {
		errs := make([]error, len(probs))
		for i, p := range probs {
			errs[i] = &fileError{name: name, line: lines[p.key], msg: p.key + ": " + p.msg}
		}
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// decode applies the YAML document in data over the values already in c. It returns the
// line of every key present (dotted key → line) so that validation errors can point at it.
func decode(data []byte, name string, c *Config) (map[string]int, error) {
	root, err := document(data)
	if err != nil {
		return nil, yamlError(name, data, err)
	}
	lines := map[string]int{}
	if root == nil {
		return lines, nil // empty file, or only comments: the defaults
	}
	ck := checker{lines: lines}
	ck.check(root, reflect.TypeFor[Config](), "")
	if err := ck.err(name); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a safety net: the checker has already rejected unknown keys
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(name, data, err)
	}
	// An empty list and a missing one mean the same; keep one form so configs compare equal.
	c.DarkPrefixes = nilIfEmpty(c.DarkPrefixes)
	c.Detect.Telnet.Ports = nilIfEmpty(c.Detect.Telnet.Ports)
	c.Metrics.WatchPorts = nilIfEmpty(c.Metrics.WatchPorts)
	return lines, nil
}

// document returns the one YAML document in data, or nil when there is none.
func document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, &lineError{line: next.Line, msg: `a second YAML document starts here; a config file holds one document (remove the "---")`}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
