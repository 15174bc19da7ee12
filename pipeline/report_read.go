package pipeline

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/telescope-dev/telescope/detect"
)

// reportFields maps each top-level key of a report to its field of Report.
var reportFields = sync.OnceValue(func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[Report]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
})

// DecodeReport reads a report (WriteReport's JSON) from b, as json.Unmarshal would but for
// key names, which must be as written (json.Unmarshal also takes other cases). Read with
// json.Unmarshal, the detections' bytes were scanned four times (validated, skipped to
// hand them to Detections.UnmarshalJSON, read entry by entry, decoded); here twice,
// their entries decoded straight from the one stream: most of a report of many episodes.
func DecodeReport(b []byte) (*Report, error) { return DecodeReportFrom(bytes.NewReader(b)) }

// DecodeReportFrom reads a report as DecodeReport does, from a stream: what it holds is
// the report decoded, not its bytes (a report of a million scanner episodes is a GB of
// JSON).
func DecodeReportFrom(rd io.Reader) (*Report, error) { return decodeReport(rd, false, nil) }

// ReportDecoder reads a report as DecodeReportFrom does, but hands each episode to Sink
// as it is decoded (an End event, as Merger.Add would) instead of keeping it: the report
// returned has empty detection lists. `telescope report` spools the episodes so
// (DetectionSpool.PartAt), holding none of them, its readers decoding reports in
// parallel.
type ReportDecoder struct {
	Sink detect.Sink // not nil (DecodeReportFrom keeps the episodes in the report)
	// Stop, when not nil, is checked before each episode: once it is closed the decoding
	// ends with ErrDecodeStopped.
	Stop <-chan struct{}
	// SkipGroups leaves the report's groups out (made of the episodes: a merge finds its
	// own), read past a group at a time.
	SkipGroups bool
}

// Decode reads a report from rd.
func (d ReportDecoder) Decode(rd io.Reader) (*Report, error) {
	ls, _ := d.Sink.(lineSink)
	return decodeReport(rd, d.SkipGroups, func(desc *detect.Descriptor, e detect.Entry, line []byte) error {
		select {
		case <-d.Stop:
			return ErrDecodeStopped
		default:
		}
		if ls != nil && line != nil {
			ls.detectionLine(detect.DetectorIndex(desc.Name), e, line)
		} else {
			d.Sink.Detection(&detect.Event{Detector: desc.Name, Phase: detect.End, Entry: e})
		}
		return nil
	})
}

// skipList reads past the list (or null) at dec's next value, an element at a time.
func skipList(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil || t == nil {
		return err
	}
	if t != json.Delim('[') {
		return fmt.Errorf("not a list (%v)", t)
	}
	var skip json.RawMessage
	for dec.More() {
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// ErrDecodeStopped ends a ReportDecoder's Decode once its Stop channel is closed.
var ErrDecodeStopped = errors.New("report decoding stopped")

func decodeReport(rd io.Reader, skipGroups bool, emit func(*detect.Descriptor, detect.Entry, []byte) error) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", cmp.Or(err, fmt.Errorf("starts with %v", t)))
	}
	fields := reportFields()
	rv := reflect.ValueOf(&r).Elem()
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		switch i, ok := fields[key]; {
		case key == "detections":
			// Read by a scanner of its own (jsonRun), then a new decoder goes on.
			run := newJSONRun(io.MultiReader(dec.Buffered(), rd))
			if r.Detections, err = run.detections(emit); err != nil {
				return nil, err
			}
			// The new decoder reads the placeholder member that reopens the object
			// (jsonRun.rest): its brace, key and value.
			dec = json.NewDecoder(run.rest())
			var zero int
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if err := dec.Decode(&zero); err != nil {
				return nil, err
			}
		case key == "groups" && skipGroups:
			// A merge finds its own groups from every report's episodes. Skipped a
			// group at a time: as one value, the decoder's buffer held the list whole
			// (128 MiB for a million scanners' report).
			if err := skipList(dec); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		case ok:
			if err := dec.Decode(rv.Field(i).Addr().Interface()); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		default: // a key of a newer version
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	switch _, err := dec.Token(); {
	case err == nil:
		return nil, errors.New("data after the report's object")
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("after the report's object: %w", err)
	}
	return &r, nil
}
