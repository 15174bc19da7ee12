package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/telescope-dev/telescope/detect"
)

// jsonRun reads a report's detections object from a stream without encoding/json's
// scanner: it finds each entry's end by its brackets (outside strings) and drops the
// whitespace around the structural characters, so that an entry written by a report
// (indented) comes out as json.Marshal writes it, which most entries parse without
// reflection (detect.JSONParser). The rest go to json.Unmarshal, which validates them.
// Read through json.Decoder, the entries were two thirds of a merge's CPU.
type jsonRun struct {
	r   io.Reader
	buf []byte
	pos int
	err error // the reader's, once buf is used up
}

func newJSONRun(r io.Reader) *jsonRun { return &jsonRun{r: r, buf: make([]byte, 0, 1<<20)} }

// fill reads more input into buf (keeping nothing before pos); false at the end or an error.
func (s *jsonRun) fill() bool {
	if s.err != nil {
		return false
	}
	n := copy(s.buf[:cap(s.buf)], s.buf[s.pos:])
	s.buf, s.pos = s.buf[:n], 0
	m, err := s.r.Read(s.buf[n:cap(s.buf)])
	s.buf = s.buf[:n+m]
	if err != nil {
		s.err = err
	}
	return m > 0 || err == nil
}

// peek returns the next byte that is not whitespace, without taking it.
func (s *jsonRun) peek() (byte, error) {
	for {
		for s.pos < len(s.buf) {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, nil
			}
		}
		if !s.fill() {
			return 0, s.eof()
		}
	}
}

// eof is the error of input that ended where more was due.
func (s *jsonRun) eof() error {
	if s.err != nil && s.err != io.EOF {
		return s.err
	}
	return io.ErrUnexpectedEOF
}

// expect takes the next byte that is not whitespace, which must be c.
func (s *jsonRun) expect(c byte) error {
	got, err := s.peek()
	if err != nil {
		return err
	}
	if got != c {
		return fmt.Errorf("invalid character %q, want %q", got, c)
	}
	s.pos++
	return nil
}

// structural: JSON allows whitespace around these only, so dropping it there keeps the
// meaning (between two other tokens it is kept: the text is invalid either way).
func structural(c byte) bool {
	return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':'
}

// value appends the next value compacted to dst. It checks brackets and strings only:
// the caller parses what it returns.
func (s *jsonRun) value(dst []byte) ([]byte, error) {
	if _, err := s.peek(); err != nil {
		return dst, err
	}
	start, depth, inStr, esc, space := len(dst), 0, false, false, false
	for {
		if s.pos == len(s.buf) && !s.fill() {
			return dst, s.eof()
		}
		c := s.buf[s.pos]
		if inStr {
			// The string's bytes up to its closing quote, at once.
			i := s.pos
			for ; i < len(s.buf); i++ {
				if b := s.buf[i]; esc {
					esc = false
				} else if b == '\\' {
					esc = true
				} else if b == '"' {
					inStr = false
					i++
					break
				}
			}
			dst = append(dst, s.buf[s.pos:i]...)
			s.pos = i
			if !inStr && depth == 0 {
				return dst, nil
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			space = true
			s.pos++
			continue
		}
		if depth == 0 && len(dst) > start && (c == ',' || c == ']' || c == '}') {
			return dst, nil // the end of a scalar (not taken)
		}
		if space && len(dst) > start && !structural(dst[len(dst)-1]) && !structural(c) {
			dst = append(dst, ' ')
		}
		space = false
		dst = append(dst, c)
		s.pos++
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth < 0 {
				return dst, fmt.Errorf("invalid character %q", c)
			}
			if depth == 0 {
				return dst, nil
			}
		}
	}
}

// more reports whether the list or object being read has another element: it takes the
// comma before one, or leaves the closing bracket end (']' or '}').
func (s *jsonRun) more(first bool, end byte) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c == end {
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' {
		return false, fmt.Errorf("invalid character %q after an element", c)
	}
	s.pos++
	return true, nil
}

// detections reads the detections object (the colon after its key first) as
// decodeDetections does, with the same errors. emit, when not nil, takes each entry
// instead of the lists, with its line (valid until emit returns) when ParseJSON read it:
// the form json.Marshal or its AppendJSON writes (numbers and times as they were written:
// ParseJSON takes "1.0" for 1).
func (s *jsonRun) detections(emit func(*detect.Descriptor, detect.Entry, []byte) error) (Detections, error) {
	if err := s.expect(':'); err != nil {
		return nil, fmt.Errorf("detections: %w", err)
	}
	byKey := map[string]*detect.Descriptor{}
	for _, desc := range detect.Descriptors() {
		byKey[desc.ReportKey] = desc
	}
	out := Detections{}
	var raw []byte
	if c, err := s.peek(); err != nil || c != '{' {
		if err == nil {
			raw, err = s.value(raw[:0])
			var v any
			if err == nil && json.Unmarshal(raw, &v) == nil {
				err = fmt.Errorf("%v", v)
			}
		}
		return nil, fmt.Errorf("detections: not an object (%v)", err)
	}
	s.pos++
	for first := true; ; first = false {
		ok, err := s.more(first, '}')
		if err != nil {
			return nil, fmt.Errorf("detections: %w", err)
		}
		if !ok {
			break
		}
		if raw, err = s.value(raw[:0]); err != nil {
			return nil, fmt.Errorf("detections: %w", err)
		}
		var key string
		if err := json.Unmarshal(raw, &key); err != nil {
			return nil, fmt.Errorf("detections: a key: %w", err)
		}
		if err := s.expect(':'); err != nil {
			return nil, fmt.Errorf("detections.%s: %w", key, err)
		}
		desc := byKey[key]
		if desc == nil { // a detector of a newer version
			if raw, err = s.value(raw[:0]); err == nil && !json.Valid(raw) {
				err = fmt.Errorf("not JSON: %.40q", raw)
			}
			if err != nil {
				return nil, fmt.Errorf("detections.%s: %w", key, err)
			}
			continue
		}
		list := []detect.Entry{}
		switch c, err := s.peek(); {
		case err != nil:
			return nil, fmt.Errorf("detections.%s: %w", key, err)
		case c == 'n':
			if raw, err = s.value(raw[:0]); err != nil || string(raw) != "null" {
				return nil, fmt.Errorf("detections.%s: not a list (%s)", key, raw)
			}
		case c != '[':
			return nil, fmt.Errorf("detections.%s: not a list (%q)", key, c)
		default:
			s.pos++
			for i := 0; ; i++ {
				ok, err := s.more(i == 0, ']')
				if err != nil {
					return nil, fmt.Errorf("detections.%s[%d]: %w", key, i, err)
				}
				if !ok {
					break
				}
				if raw, err = s.value(raw[:0]); err != nil {
					return nil, fmt.Errorf("detections.%s[%d]: %w", key, i, err)
				}
				e, line := desc.NewEntry(), raw
				if p, ok := e.(detect.JSONParser); !ok || !p.ParseJSON(raw) {
					if err := json.Unmarshal(raw, e); err != nil {
						return nil, fmt.Errorf("detections.%s[%d]: %w", key, i, err)
					}
					line = nil
				}
				if emit == nil {
					list = append(list, e)
				} else if err := emit(desc, e, line); err != nil {
					return nil, err
				}
			}
			s.pos++ // the ']'
		}
		out[key] = list
	}
	s.pos++ // the '}'
	for _, desc := range detect.Descriptors() {
		if out[desc.ReportKey] == nil {
			out[desc.ReportKey] = []detect.Entry{}
		}
	}
	return out, nil
}

// rest returns what follows the bytes read, for a json.Decoder to go on with the report's
// object: a placeholder member opens it again ({"":0, then the members that follow).
func (s *jsonRun) rest() io.Reader {
	return io.MultiReader(bytes.NewReader([]byte(`{"":0`)), bytes.NewReader(s.buf[s.pos:]), errReader{s})
}

// errReader reads the rest of s's reader, then its error.
type errReader struct{ s *jsonRun }

func (e errReader) Read(p []byte) (int, error) {
	if e.s.err != nil {
		return 0, e.s.err
	}
	return e.s.r.Read(p)
}
