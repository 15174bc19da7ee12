package configs

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checker walks the YAML node tree against the Config struct's yaml tags before anything is
// decoded. yaml.v3 alone cannot give the messages we want: KnownFields reports an unknown key
// without its dotted path (and does not apply inside custom unmarshalers), and type errors
// carry a line but no key. The checker reports every mistake with both, and records the line
// of each key so that validation errors can point into the file too.
type checker struct {
	errs  []*lineError
	lines map[string]int // dotted key, or key[i] for list items → line
}

var (
	durationType = reflect.TypeFor[Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

func (c *checker) errorf(line int, format string, args ...any) {
	c.errs = append(c.errs, &lineError{line: line, msg: fmt.Sprintf(format, args...)})
}

// err returns every mistake found, in file order, one per line.
func (c *checker) err(name string) error {
	slices.SortStableFunc(c.errs, func(a, b *lineError) int { return a.line - b.line })
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = &fileError{name: name, line: e.line, msg: e.msg}
	}
	return errors.Join(errs...)
}

// check checks node n, found at key, against the Go type t it will be decoded into.
func (c *checker) check(n *yaml.Node, t reflect.Type, key string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		// Descending follows the finite Config type, so aliases cannot make this blow up.
		n = n.Alias
	}
	switch {
	case t == durationType || t == prefixType:
		c.scalar(n, t, key)
	case t.Kind() == reflect.Struct:
		c.mapping(n, t, key)
	case t.Kind() == reflect.Slice:
		c.list(n, t, key)
	default:
		c.scalar(n, t, key)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// mapping checks a section: known keys, each once, each with a value of the right type.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, key string) {
	if isNull(n) {
		return // a section with nothing under it ("detect:") keeps every default
	}
	if n.Kind != yaml.MappingNode {
		if key == "" {
			c.errorf(n.Line, "expected a mapping of config keys (such as \"window: 5m\"), got %s", describe(n))
		} else {
			c.errorf(n.Line, "%s: expected a mapping of keys, got %s", key, describe(n))
		}
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := joinKey(key, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			c.errorf(k.Line, "expected a key name, got %s", describe(k))
			continue
		case k.ShortTag() == "!!merge":
			c.errorf(k.Line, "%s: merge keys are not supported; write the keys out", full)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			c.errorf(k.Line, "duplicate key %q (first on line %d)", full, first)
			continue
		}
		seen[k.Value] = k.Line
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if i < 0 {
			c.errorf(k.Line, "unknown key %q%s", full, suggest(k.Value, t))
			continue
		}
		c.lines[full] = k.Line
		c.check(v, fields[i].typ, full)
	}
}

// list checks a list; a list with nothing in it ("watch_ports:") is empty.
func (c *checker) list(n *yaml.Node, t reflect.Type, key string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf(" (write [%s])", n.Value)
		}
		c.errorf(n.Line, "%s: expected a list, got %s%s", key, describe(n), hint)
		return
	}
	for i, item := range n.Content {
		sub := fmt.Sprintf("%s[%d]", key, i)
		c.lines[sub] = item.Line
		c.check(item, t.Elem(), sub)
	}
}

// scalar checks a single value by decoding it into a throwaway t, so that what the checker
// accepts is exactly what yaml.v3 will decode (yes/no booleans, 0x10 integers and so on).
func (c *checker) scalar(n *yaml.Node, t reflect.Type, key string) {
	switch {
	case isNull(n):
		c.errorf(n.Line, "%s: no value (leave the key out to keep the default)", key)
	case n.Kind != yaml.ScalarNode:
		c.errorf(n.Line, "%s: expected %s, got %s", key, expected(t), describe(n))
	case t == durationType:
		if _, err := parseDuration(n.Value); err != nil {
			c.errorf(n.Line, "%s: %v", key, err)
		}
	case t == prefixType:
		if msg := badPrefix(n.Value); msg != "" {
			c.errorf(n.Line, "%s: %s", key, msg)
		}
	case (t.Kind() == reflect.Int || t.Kind() == reflect.Uint16) && n.ShortTag() == "!!float":
		// yaml.v3 would truncate it (1.5 -> 1) without a word.
		c.errorf(n.Line, "%s: must be an integer, got %s", key, n.Value)
	default:
		if n.Decode(reflect.New(t).Interface()) == nil {
			return
		}
		if t.Kind() == reflect.Uint16 && n.ShortTag() == "!!int" {
			c.errorf(n.Line, "%s: must be a port number 1..65535, got %s", key, n.Value)
			return
		}
		c.errorf(n.Line, "%s: expected %s, got %s", key, expected(t), describe(n))
	}
}

// badPrefix says what is wrong with a CIDR prefix that does not parse, or returns "".
// (Host bits, duplicates and overlaps are Validate's job: those prefixes do parse.)
func badPrefix(s string) string {
	_, err := netip.ParsePrefix(s)
	if err == nil {
		return ""
	}
	if a, aerr := netip.ParseAddr(s); aerr == nil {
		a = a.WithZone("")
		return fmt.Sprintf("%q is an address, not a CIDR prefix (did you mean %s?)", s, netip.PrefixFrom(a, a.BitLen()))
	}
	// netip writes `netip.ParsePrefix("s"): reason`; the value is already quoted in front.
	reason := err.Error()
	if _, r, ok := strings.Cut(reason, "): "); ok {
		reason = r
	}
	return fmt.Sprintf("%q is not a valid CIDR prefix: %s", s, reason)
}

// expected names what a value of type t looks like, for error messages.
func expected(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "5m" or "90s"`
	case t == prefixType:
		return "a CIDR prefix such as 192.0.2.0/24"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "an integer"
	case reflect.Uint16:
		return "a port number 1..65535"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// describe names what a node is, for error messages: a scalar by its (quoted) text.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

// field is one config key of a struct: its yaml name and Go type.
type field struct {
	name string
	typ  reflect.Type
}

// yamlFields lists the keys of struct type t in declaration order.
func yamlFields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fs = append(fs, field{name: name, typ: f.Type})
	}
	return fs
}

// keyPaths lists every dotted key under struct type t, sections included, in declaration order.
func keyPaths(t reflect.Type, prefix string) []string {
	var keys []string
	for _, f := range yamlFields(t) {
		key := joinKey(prefix, f.name)
		keys = append(keys, key)
		if f.typ.Kind() == reflect.Struct && f.typ != durationType && f.typ != prefixType {
			keys = append(keys, keyPaths(f.typ, key)...)
		}
	}
	return keys
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
