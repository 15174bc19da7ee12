package studyhtml

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/internal/daygen"
	"github.com/telescope-dev/telescope/pipeline"
)

var (
	dayOnce   sync.Once
	dayReport *pipeline.Report
	dayErr    error
)

// generatedDay replays a generated telescope day (scale 0.3, ~90k packets) once per test
// binary and returns its report, read back from JSON as `telescope report` reads it.
func generatedDay(t testing.TB) *pipeline.Report {
	t.Helper()
	dayOnce.Do(func() { dayReport, dayErr = replayDay(0.3) })
	if dayErr != nil {
		t.Fatal(dayErr)
	}
	return dayReport
}

func replayDay(scale float64) (*pipeline.Report, error) {
	dir, err := os.MkdirTemp("", "studyhtml-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "day.pcap")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if _, err := daygen.Generate(f, daygen.Options{Seed: 3, Scale: scale}); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cfg, err := configs.Parse(nil, "default")
	if err != nil {
		return nil, err
	}
	c := pipeline.NewEpisodes()
	p, err := pipeline.New(pipeline.Options{Config: cfg, Workers: 2, Sink: c})
	if err != nil {
		return nil, err
	}
	if res := p.Replay(context.Background(), pipeline.ReplayOptions{Files: []string{path}}); len(res.Errors) > 0 {
		return nil, res.Errors[0]
	}
	b, err := json.Marshal(p.Report(c))
	if err != nil {
		return nil, err
	}
	var r pipeline.Report
	return &r, json.Unmarshal(b, &r)
}

// artifactDir is where tests keep what a person may want to look at: $TELESCOPE_ARTIFACTS
// when set, else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("TELESCOPE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// figureHTML returns the HTML of the element with the given id, up to its closing tag.
func figureHTML(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no element with id %q", id)
	}
	rest := page[i:]
	end := strings.Index(rest, "</figure>")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

var (
	remoteRef = regexp.MustCompile(`(?i)(src|href|action|xlink:href)\s*=\s*["']?\s*(https?:)?//|@import|url\(\s*["']?\s*(https?:)?//`)
	svgMark   = regexp.MustCompile(`<(polyline|rect class="bar"|rect class="c\d fillc ep"|circle)`)
)

// TestRenderDay renders the generated day and checks every chart has data marks and axis
// labels, every detector's table has rows, and nothing is loaded from elsewhere.
func TestRenderDay(t *testing.T) {
	r := generatedDay(t)
	var buf bytes.Buffer
	if err := Render(&buf, r, Options{Inputs: []string{"day.pcap"}}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if err := os.WriteFile(filepath.Join(artifactDir(t), "study.html"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if m := remoteRef.FindString(page); m != "" {
		t.Errorf("page refers to something remote: %q", m)
	}
	if strings.Contains(page, "<link") || strings.Contains(page, "<img") || strings.Contains(page, "<iframe") {
		t.Error("page has a link, img or iframe element")
	}
	charts := []struct{ id, xLabel, yLabel string }{
		{"packets-over-time", "time (UTC)", "packets per minute"},
		{"syn-share", "time (UTC)", "SYN probes, % of packets"},
		{"tcp-flags", "TCP headers (log scale)", ""},
		{"tcp-syn-ports", "SYN probes (packets)", ""},
		{"udp-ports", "UDP datagrams (packets)", ""},
		{"ccdf", "packets per address, x (log scale)", "share of addresses with ≥ x (log)"},
		{"telnet", "time (UTC)", "distinct sources per minute"},
		{"timeline", "time (UTC)", ""},
		{"pollution-receivers", "distinct senders", ""},
		{"pollution-payload", "episodes (pairs)", ""},
	}
	for _, c := range charts {
		f := figureHTML(t, page, c.id)
		if strings.Contains(f, "No data") {
			t.Errorf("%s: no data", c.id)
			continue
		}
		if n := len(svgMark.FindAllString(f, -1)); n == 0 {
			t.Errorf("%s: no data marks in the SVG", c.id)
		}
		for _, l := range []string{c.xLabel, c.yLabel} {
			if !strings.Contains(f, `class="axlabel"`) || !strings.Contains(f, escapeText(l)) {
				t.Errorf("%s: axis label %q missing", c.id, l)
			}
		}
		if !regexp.MustCompile(`<figcaption>\s*\S`).MatchString(f) {
			t.Errorf("%s: no reading under the chart", c.id)
		}
	}
	if n := strings.Count(figureHTML(t, page, "telnet"), `class="mark"`); n != len(typed(r.Detections).TelnetSurge) || n == 0 {
		t.Errorf("telnet chart marks %d surges, the report has %d", n, len(typed(r.Detections).TelnetSurge))
	}
	// Every flag combination is a bar.
	if n := strings.Count(figureHTML(t, page, "tcp-flags"), `<rect class="bar"`); n != len(r.TCPFlags) {
		t.Errorf("flag chart has %d bars, the report %d combinations", n, len(r.TCPFlags))
	}
	for _, id := range []string{"heavy-hitters", "ep-scanner", "ep-telnet-sweep", "ep-telnet-surge", "ep-udp-then-syn", "ep-backscatter", "ep-fingerprint"} {
		i := strings.Index(page, `<div class="tablewrap" id="`+id+`"`)
		if i < 0 {
			t.Errorf("%s: no table", id)
			continue
		}
		tb := page[i:]
		tb = tb[:strings.Index(tb, "</table>")+1]
		if strings.Count(tb, "<tr>") < 2 {
			t.Errorf("%s: no rows", id)
		}
	}
	t.Logf("page: %d bytes", len(page))
}

func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestRenderEmpty renders a report of no packets: every chart says it has no data.
func TestRenderEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, &pipeline.Report{}, Options{}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<polyline") || strings.Contains(page, `<rect class="bar"`) {
		t.Error("an empty report drew data marks")
	}
	if n := strings.Count(page, `class="nodata"`); n < 10 {
		t.Errorf("%d no-data notices, want one per chart and table", n)
	}
}

// TestRenderInputErrors: an input not read to its end is a note of the page, the others
// are not; so is a capture.filter the replay applied.
func TestRenderInputErrors(t *testing.T) {
	var buf bytes.Buffer
	r := &pipeline.Report{Inputs: []pipeline.InputFile{{File: "a.pcap", Records: 10}, {File: "b.pcap", Records: 9, Error: "b.pcap: byte offset 708: truncated record"}}}
	if err := Render(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.Contains(page, "Input b.pcap was not read to its end (9 records counted): b.pcap: byte offset 708: truncated record.") {
		t.Error("no note for the input read in part")
	}
	if strings.Contains(page, "Input a.pcap") {
		t.Error("a note for an input read to its end")
	}
	r.Filter = &pipeline.ReportFilter{Expression: "not port 22", FilteredOut: 12345}
	buf.Reset()
	if err := Render(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if want := "capture.filter &#34;not port 22&#34; was applied: the 12\u202f345 packets it rejected are in no count of this page."; !strings.Contains(buf.String(), want) {
		t.Errorf("no note of the filter %q", want)
	}
}

// TestRenderContinued: a report of a run continued from a saved state says so under the
// title and in a note (its lists hold the earlier runs' packets), naming the one earlier
// file, counting several, or a state of files unknown; a fresh run's says nothing of it.
func TestRenderContinued(t *testing.T) {
	render := func(c *pipeline.Continuation) string {
		var buf bytes.Buffer
		if err := Render(&buf, &pipeline.Report{ContinuedFrom: c}, Options{}); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	for _, tc := range []struct {
		c    *pipeline.Continuation
		want string
	}{
		{&pipeline.Continuation{Inputs: []pipeline.InputFile{{File: "/data/day-1.pcap", Records: 10}}}, "continues from the state of day-1.pcap"},
		{&pipeline.Continuation{Inputs: []pipeline.InputFile{{File: "a.pcap"}, {File: "b.pcap"}}}, "continues from the state of 2 earlier files"},
		{&pipeline.Continuation{Inputs: []pipeline.InputFile{}}, "continues from a saved state"},
	} {
		page := render(tc.c)
		sub := page[strings.Index(page, `<p class="sub">`):]
		sub = sub[:strings.Index(sub, "</p>")]
		if !strings.HasSuffix(sub, " · "+tc.want) || !strings.Contains(page, "This report "+tc.want+": its top lists, distributions and unique counts hold the packets of the runs before it too") {
			t.Errorf("continued from %d files: under the title %q, want %q and a note", len(tc.c.Inputs), sub, tc.want)
		}
	}
	if page := render(nil); strings.Contains(page, "continues from") {
		t.Error("a fresh run's page says it continues")
	}
}

// TestRenderInputs: up to four inputs are named under the title, more are three and a
// count; the report's capture files are a table (records, times, errors) in a closed
// details element, absent without them.
func TestRenderInputs(t *testing.T) {
	t0 := detect.Time(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	var names []string
	r := &pipeline.Report{}
	for i := range 10 {
		name := fmt.Sprintf("cap%d.pcap", i)
		names = append(names, name)
		first, last := t0+detect.Time(i)*3600e9, t0+detect.Time(i+1)*3600e9-1e9
		r.Inputs = append(r.Inputs, pipeline.InputFile{File: name, Records: uint64(1000 + i), FirstPacket: &first, LastPacket: &last})
	}
	r.Inputs[9].Error = "cap9.pcap: byte offset 99: truncated record"
	render := func(r *pipeline.Report, inputs []string) string {
		var buf bytes.Buffer
		if err := Render(&buf, r, Options{Inputs: inputs}); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	page := render(r, names)
	sub := page[strings.Index(page, `<p class="sub">`):]
	sub = sub[:strings.Index(sub, "</p>")]
	if want := "<br><code>cap0.pcap</code><br><code>cap1.pcap</code><br><code>cap2.pcap</code><br>and 7 more (capture files below)"; !strings.HasSuffix(sub, want) {
		t.Errorf("under the title %q, want it to end with %q", sub, want)
	}
	if !strings.Contains(page, "<details><summary>Capture files (10, 10\u202f045 records)</summary>") {
		t.Error("no closed details of the capture files with their count and records")
	}
	for _, row := range []string{
		`<tr><td data-v="1" class="n">1</td><td>cap0.pcap</td><td data-v="1000" class="n">1000</td><td>2024-05-01 00:00:00</td><td>2024-05-01 00:59:59</td><td>—</td></tr>`,
		`<tr><td data-v="10" class="n">10</td><td>cap9.pcap</td><td data-v="1009" class="n">1009</td><td>2024-05-01 09:00:00</td><td>2024-05-01 09:59:59</td><td>cap9.pcap: byte offset 99: truncated record</td></tr>`,
	} {
		if !strings.Contains(page, row) {
			t.Errorf("no row %s", row)
		}
	}
	page = render(&pipeline.Report{}, names[:4])
	if !strings.Contains(page, "<br><code>cap3.pcap</code></p>") || strings.Contains(page, "more") || strings.Contains(page, "Capture files") {
		t.Error("four inputs: not all named, or a count or a table of files without the report's inputs")
	}
}

// TestRenderManyEpisodes keeps the page small when a detector has many episodes.
func TestRenderManyEpisodes(t *testing.T) {
	r := *generatedDay(t)
	big := pipeline.Detections{}
	for k, v := range r.Detections {
		big[k] = v
	}
	for len(big["scanner"]) < 20000 {
		big["scanner"] = append(big["scanner"], big["scanner"]...)
	}
	r.Detections = big
	var buf bytes.Buffer
	if err := Render(&buf, &r, Options{MaxEpisodeRows: 300}); err != nil {
		t.Fatal(err)
	}
	i := strings.Index(buf.String(), `id="ep-scanner"`)
	tb := buf.String()[i:]
	tb = tb[:strings.Index(tb, "</table>")]
	if n := strings.Count(tb, "<tr>") - 1; n != 300 {
		t.Errorf("scanner table has %d rows, want 300", n)
	}
	if buf.Len() > 4<<20 {
		t.Errorf("page of %d bytes with %d scanner episodes", buf.Len(), len(big["scanner"]))
	}
	t.Logf("%d scanner episodes: %d bytes", len(big["scanner"]), buf.Len())
}

// BenchmarkRender measures rendering the generated day's report.
//
//	go test -run '^$' -bench Render ./studyhtml/
func BenchmarkRender(b *testing.B) {
	r := generatedDay(b)
	var n int
	for b.Loop() {
		var buf bytes.Buffer
		if err := Render(&buf, r, Options{}); err != nil {
			b.Fatal(err)
		}
		n = buf.Len()
	}
	b.ReportMetric(float64(n), "bytes")
}

// episodes is the report's detections with each detector's entries as their own type.
type episodes struct {
	Scanner     []*detect.ScannerEntry
	TelnetSweep []*detect.TelnetSweepEntry
	TelnetSurge []*detect.TelnetSurgeEntry
	UDPThenSYN  []*detect.UDPThenSYNEntry
	Backscatter []*detect.BackscatterEntry
	Tools       []*detect.ToolEntry
}

func typed(d pipeline.Detections) *episodes {
	return &episodes{
		Scanner:     pipeline.EntriesOf[*detect.ScannerEntry](d, "scanner"),
		TelnetSweep: pipeline.EntriesOf[*detect.TelnetSweepEntry](d, "telnet_sweep"),
		TelnetSurge: pipeline.EntriesOf[*detect.TelnetSurgeEntry](d, "telnet_surge"),
		UDPThenSYN:  pipeline.EntriesOf[*detect.UDPThenSYNEntry](d, "udp_then_syn"),
		Backscatter: pipeline.EntriesOf[*detect.BackscatterEntry](d, "backscatter"),
		Tools:       pipeline.EntriesOf[*detect.ToolEntry](d, "tools"),
	}
}
