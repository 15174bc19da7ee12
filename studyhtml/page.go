// Package studyhtml renders a replay report as one self-contained HTML page (the study's
// charts as inline SVG, inline CSS for light, dark and print, and one inline script that
// sorts and pages tables), and serves a live overview page for the daemon.
package studyhtml

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/telescope-dev/telescope/detect"
	"github.com/telescope-dev/telescope/pipeline"
)

// Options tune the rendered page.
type Options struct {
	// Title of the page; empty: "Telescope study".
	Title string
	// Inputs names what the report covers (capture or report files), shown under the title.
	Inputs []string
	// MaxEpisodeRows bounds the rows of each detector's table written into the page (the
	// largest episodes by packets); zero: 500. The JSON report has them all.
	MaxEpisodeRows int
	// Episodes, when set, calls fn with every detection episode, each detector's in report
	// order (a replay's spool read back: pipeline.DetectionSpool.Each); the page then reads
	// them from there, not from the report's detections, and holds only what it shows.
	Episodes func(fn func(detect.Entry) error) error
}

// Render writes the page for r to w.
func Render(w io.Writer, r *pipeline.Report, o Options) error {
	if o.Title == "" {
		o.Title = "Telescope study"
	}
	if o.MaxEpisodeRows <= 0 {
		o.MaxEpisodeRows = 500
	}
	pe, err := gatherEpisodes(r, o)
	if err != nil {
		return fmt.Errorf("reading the episodes: %w", err)
	}
	return pageTmpl.Execute(w, build(r, o, pe))
}

// figure is one chart with its reading; SVG empty means no data (NoData says what).
type figure struct {
	ID, Title string
	SVG       template.HTML
	Reading   template.HTML
	NoData    string
}

type card struct{ Value, Label string }

type cell struct {
	Text string
	Sort string // data-v; empty: the text
}

type table struct {
	ID, Title string
	Cols      []col
	Rows      [][]cell
	Total     int // entries in the report
	Page      int // rows per page (0: no paging)
	Note      string
}

type col struct {
	Name    string
	Numeric bool
}

type page struct {
	Title, Span string
	Inputs      []string
	InputsMore  string // what follows the inputs named (shortInputs)
	Files       table  // the report's capture files (Report.Inputs), in a closed <details>
	CSS         template.CSS
	JS          template.JS
	Cards       []card
	Traffic     []figure
	Flags       figure
	Ports       []figure
	Dist        figure
	Heavy       table
	Telnet      figure
	Timeline    figure
	Episodes    []table
	Pollution   []figure
	PollCards   []card
	Notes       []string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{.Title}}</title>
<style>{{.CSS}}</style></head>
<body><main>
<h1>{{.Title}}</h1>
<p class="sub">{{.Span}}{{range .Inputs}}<br><code>{{.}}</code>{{end}}{{with .InputsMore}}<br>{{.}}{{end}}</p>
{{if .Files.Rows}}<details><summary>{{.Files.Title}}</summary>{{template "table" .Files}}</details>{{end}}
<div class="cards">{{range .Cards}}<div class="card"><b>{{.Value}}</b><span>{{.Label}}</span></div>{{end}}</div>

<h2>What arrives</h2>
{{range .Traffic}}{{template "fig" .}}{{end}}
{{template "fig" .Flags}}
{{range .Ports}}{{template "fig" .}}{{end}}

<h2>Who sends</h2>
{{template "fig" .Dist}}
{{template "table" .Heavy}}

<h2>Telnet (Mirai-like) sweeps</h2>
{{template "fig" .Telnet}}

<h2>Detections</h2>
{{template "fig" .Timeline}}
{{range .Episodes}}<details id="{{.ID}}-details"{{if and .Rows (le .Total 50)}} open{{end}}><summary><b>{{.Title}}</b>: {{.Total}} episodes{{if .Note}} ({{.Note}}){{end}}</summary>
{{template "table" .}}</details>
{{end}}

<h2>BitTorrent-like pollution (UDP, then SYN to the same ip:port)</h2>
<div class="cards">{{range .PollCards}}<div class="card"><b>{{.Value}}</b><span>{{.Label}}</span></div>{{end}}</div>
{{range .Pollution}}{{template "fig" .}}{{end}}

<h2>About these numbers</h2>
<ul class="note">{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
</main>
<script>{{.JS}}</script>
</body></html>
{{define "fig"}}<figure id="{{.ID}}"><h3>{{.Title}}</h3>
{{if .SVG}}{{.SVG}}{{else}}<div class="nodata">No data: {{.NoData}}</div>{{end}}
<figcaption>{{.Reading}}</figcaption></figure>{{end}}
{{define "table"}}<div class="tablewrap" id="{{.ID}}">{{if .Rows}}
<table class="sortable" data-page="{{.Page}}"><thead><tr>{{range .Cols}}<th{{if .Numeric}} class="n"{{end}}>{{.Name}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if $c.Sort}} data-v="{{$c.Sort}}" class="n"{{end}}>{{$c.Text}}</td>{{end}}</tr>
{{end}}</tbody></table>{{if .Page}}<div class="pager"><button type="button">◀ previous</button><button type="button">next ▶</button><span></span></div>{{end}}
{{else}}<div class="nodata">No data: no {{.Title}} in this input.</div>{{end}}</div>{{end}}
`))

func pct(a, b uint64) string {
	if b == 0 {
		return "0 %"
	}
	p := 100 * float64(a) / float64(b)
	switch {
	case p == 0:
		return "0 %"
	case p < 0.01:
		return "<0.01 %"
	case p < 10:
		return strconv.FormatFloat(p, 'f', 2, 64) + " %"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + " %"
}

func fmtTime(t detect.Time) string {
	return time.Unix(0, int64(t)).UTC().Format("2006-01-02 15:04:05")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return d.Round(time.Millisecond).String()
}

func reading(format string, a ...any) template.HTML {
	for i, v := range a {
		if s, ok := v.(string); ok {
			a[i] = template.HTMLEscapeString(s)
		}
	}
	return template.HTML(fmt.Sprintf(format, a...))
}

func ipPackets(r *pipeline.Report) (tcp, udp, icmp, other, total uint64) {
	p := &r.Packets
	tcp = p.IPv4.TCP + p.IPv6.TCP
	udp = p.IPv4.UDP + p.IPv6.UDP
	icmp = p.IPv4.ICMP + p.IPv6.ICMPv6
	other = p.IPv4.Other + p.IPv6.Other
	return tcp, udp, icmp, other, tcp + udp + icmp + other
}

func build(r *pipeline.Report, o Options, pe *pageEpisodes) *page {
	pg := &page{Title: o.Title, CSS: styleTag, JS: scriptTag}
	pg.Inputs, pg.InputsMore = shortInputs(o.Inputs, len(r.Inputs) > 0)
	pg.Files = filesTable(r)
	tcp, udp, icmp, other, total := ipPackets(r)
	if r.FirstPacket != nil && r.LastPacket != nil {
		pg.Span = fmt.Sprintf("%s to %s UTC (%s of packet time)", fmtTime(*r.FirstPacket), fmtTime(*r.LastPacket),
			fmtDur(time.Duration(*r.LastPacket-*r.FirstPacket)))
	} else {
		pg.Span = "no packets"
	}
	if r.Merged != nil {
		pg.Span += fmt.Sprintf(" · merged from %d reports", r.Merged.Reports)
	}
	if c := r.ContinuedFrom; c != nil {
		pg.Span += " · " + continuedText(c)
	}
	episodes := pe.episodes()
	pg.Cards = []card{
		{human(float64(r.Frames)), "frames read"},
		{human(float64(total)), "IP packets"},
		{pct(tcp, total), "TCP"},
		{synShare(r, total), "TCP-SYN probes"},
		{"≈" + human(float64(r.Sources.Unique)), "unique sources (estimate)"},
		{"≈" + human(float64(r.Destinations.Unique)), "unique destinations"},
		{human(float64(episodes)), "detection episodes"},
	}
	if e := r.DecodeErrors.Truncated + r.DecodeErrors.Malformed + r.NonIPFrames; e > 0 {
		pg.Cards = append(pg.Cards, card{human(float64(e)), "non-IP or undecodable frames"})
	}
	pg.Traffic = trafficFigures(r, tcp, udp, icmp, other, total)
	pg.Flags = flagsFigure(r)
	pg.Ports = portFigures(r)
	pg.Dist = distFigure(r, total)
	pg.Heavy = heavyTable(r, total, pe)
	pg.Telnet = telnetFigure(r, pe)
	pg.Timeline = timelineFigure(r, pe)
	pg.Episodes = episodeTables(pe)
	pg.PollCards, pg.Pollution = pollution(&pe.poll)
	pg.Notes = notes(r)
	return pg
}

// inputsShown is how many inputs the page names under its title: a day of hourly files
// listed there pushed the page's first chart below a screen.
const inputsShown = 4

// shortInputs returns the inputs to name under the title and what to say of the others
// (files: the page has the table of the capture files).
func shortInputs(in []string, files bool) ([]string, string) {
	if len(in) <= inputsShown {
		return in, ""
	}
	more := fmt.Sprintf("and %d more", len(in)-(inputsShown-1))
	if files {
		more += " (capture files below)"
	}
	return in[:inputsShown-1], more
}

// filesTable is the report's capture files: each one's records, time span, and the error
// that ended it early.
func filesTable(r *pipeline.Report) table {
	var records uint64
	for _, in := range r.Inputs {
		records += in.Records
	}
	t := table{ID: "files", Title: fmt.Sprintf("Capture files (%s, %s records)", group(uint64(len(r.Inputs))), group(records)),
		Page: 25, Total: len(r.Inputs),
		Cols: []col{{"#", true}, {"file", false}, {"records", true}, {"first packet (UTC)", false}, {"last packet (UTC)", false}, {"error", false}}}
	for i, in := range r.Inputs {
		first, last := "—", "—"
		if in.FirstPacket != nil && in.LastPacket != nil {
			first, last = fmtTime(*in.FirstPacket), fmtTime(*in.LastPacket)
		}
		e := in.Error
		if e == "" {
			e = "—"
		}
		t.Rows = append(t.Rows, []cell{{strconv.Itoa(i + 1), strconv.Itoa(i + 1)}, {in.File, ""},
			{group(in.Records), strconv.FormatUint(in.Records, 10)}, {first, ""}, {last, ""}, {e, ""}})
	}
	return t
}

func synShare(r *pipeline.Report, total uint64) string {
	var syn uint64
	for _, p := range r.DstPorts.TCPSYN {
		syn += p.Packets
	}
	if r.Series != nil {
		syn = 0
		for _, v := range r.Series.TCPSYN {
			syn += v
		}
	}
	return pct(syn, total)
}

var protoOrder = []string{"tcp", "udp", "icmp", "icmpv6", "other"}

func trafficFigures(r *pipeline.Report, tcp, udp, icmp, other, total uint64) []figure {
	f1 := figure{ID: "packets-over-time", Title: "Packets over time, by protocol"}
	f2 := figure{ID: "syn-share", Title: "TCP-SYN probes: share of all packets over time"}
	s := r.Series
	if s == nil || s.Len() == 0 || total == 0 {
		f1.NoData, f2.NoData = "the report has no time series (no packets, or a report written before series existed).", "no time series."
		return []figure{f1, f2}
	}
	step := s.Step()
	perMin := float64(step) / 60e9
	var lines []line
	busiest, bi := 0.0, 0
	sums := make([]float64, s.Len())
	for i, name := range protoOrder {
		v := s.Packets[name]
		var any bool
		fl := make([]float64, len(v))
		for j, n := range v {
			fl[j] = float64(n) / perMin
			sums[j] += fl[j]
			any = any || n > 0
		}
		if any {
			lines = append(lines, line{Name: name, Class: i, V: fl})
		}
	}
	for j, v := range sums {
		if v > busiest {
			busiest, bi = v, j
		}
	}
	f1.SVG = timeChart(f1.Title, "packets per minute", int64(s.Start), step, lines, nil, human)
	at := time.Unix(0, int64(s.Start)+int64(bi)*step).UTC().Format("Jan 2 15:04")
	busy := fmt.Sprintf("the busiest minute had %s packets (%s UTC)", group(uint64(busiest)), at)
	if perMin > 1 {
		busy = fmt.Sprintf("the busiest %s step averaged %s packets per minute (%s UTC)", stepName(step), human(busiest), at)
	}
	f1.Reading = reading("<b>TCP is %s</b> of %s IP packets (UDP %s, ICMP %s, other %s); %s.",
		pct(tcp, total), group(total), pct(udp, total), pct(icmp, total), pct(other, total), busy)
	share := make([]float64, s.Len())
	lo, hi := 101.0, -1.0
	for j := range share {
		var all uint64
		for _, name := range protoOrder {
			if v := s.Packets[name]; j < len(v) {
				all += v[j]
			}
		}
		if all > 0 {
			share[j] = 100 * float64(s.TCPSYN[j]) / float64(all)
			lo, hi = math.Min(lo, share[j]), math.Max(hi, share[j])
		}
	}
	var syn uint64
	for _, v := range s.TCPSYN {
		syn += v
	}
	f2.SVG = timeChart(f2.Title, "SYN probes, % of packets", int64(s.Start), step, []line{{Name: "SYN share", Class: 0, V: share}}, nil,
		func(v float64) string { return trim(v) + " %" })
	f2.Reading = reading("<b>SYN probes are %s</b> of all packets (%s); per step the share ranges from %.1f %% to %.1f %%.",
		pct(syn, total), group(syn), lo, hi)
	return []figure{f1, f2}
}

func plural(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

func flagsFigure(r *pipeline.Report) figure {
	f := figure{ID: "tcp-flags", Title: "TCP flag combinations (every combination seen)"}
	type kv struct {
		k string
		v uint64
	}
	var all []kv
	var tcp uint64
	for k, v := range r.TCPFlags {
		all = append(all, kv{k, v})
		tcp += v
	}
	if len(all) == 0 {
		f.NoData = "no TCP headers in this input."
		return f
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	rows := make([]bar, len(all))
	rare := 0
	for i, e := range all {
		rows[i] = bar{Label: e.k, V: e.v, Note: "(" + pct(e.v, tcp) + ")"}
		if e.v < 10 {
			rare++
		}
	}
	f.SVG = barChart(f.Title, "TCP headers", rows, true)
	f.Reading = reading("<b>%s alone is %s</b> of %s TCP headers; %d combinations seen, %d of them fewer than 10 times.",
		all[0].k, pct(all[0].v, tcp), group(tcp), len(all), rare)
	return f
}

func portFigures(r *pipeline.Report) []figure {
	mk := func(id, title, what string, ports []pipeline.PortCount) figure {
		f := figure{ID: id, Title: title}
		if len(ports) == 0 {
			f.NoData = "no " + what + " in this input."
			return f
		}
		n := min(len(ports), 20)
		var listed uint64
		for _, p := range ports {
			listed += p.Packets
		}
		rows := make([]bar, n)
		var top5 uint64
		for i, p := range ports[:n] {
			rows[i] = bar{Label: strconv.Itoa(int(p.Port)), V: p.Packets}
			if i < 5 {
				top5 += p.Packets
			}
		}
		f.SVG = barChart(title, what+" (packets)", rows, false)
		f.Reading = reading("<b>Port %d leads</b> with %s %s; the top 5 ports take %s of the top %d ports' packets.",
			ports[0].Port, group(ports[0].Packets), what, pct(top5, listed), len(ports))
		return f
	}
	return []figure{
		mk("tcp-syn-ports", "Top TCP-SYN destination ports", "SYN probes", r.DstPorts.TCPSYN),
		mk("udp-ports", "Top UDP destination ports", "UDP datagrams", r.DstPorts.UDP),
	}
}

func distFigure(r *pipeline.Report, total uint64) figure {
	f := figure{ID: "ccdf", Title: "Packets per source and per receiver (CCDF, log-log)"}
	if r.Distributions == nil || (len(r.Distributions.PacketsPerSource) == 0 && len(r.Distributions.PacketsPerDestination) == 0) {
		f.NoData = "the report has no packets-per-address distributions."
		return f
	}
	d := r.Distributions
	f.SVG = ccdfChart(f.Title, "packets per address, x", []ccdfLine{
		{Name: "sources", Class: 0, Buckets: d.PacketsPerSource},
		{Name: "receivers (destinations)", Class: 1, Buckets: d.PacketsPerDestination},
	})
	med := func(b []uint64) (uint64, uint64) {
		var n, c uint64
		for _, v := range b {
			n += v
		}
		for i, v := range b {
			c += v
			if 2*c >= n {
				return 1 << (i + 1), n
			}
		}
		return 0, n
	}
	ms, ns := med(d.PacketsPerSource)
	md, nd := med(d.PacketsPerDestination)
	var top10 uint64
	for i, s := range r.Sources.Top {
		if i < 10 {
			top10 += s.Packets
		}
	}
	f.Reading = reading("<b>A few hosts send a lot, many send a few:</b> half of %s sources sent fewer than %s packets, yet the top 10 sources sent %s of all packets; half of %s receivers got fewer than %s.",
		group(ns), group(ms), pct(top10, total), group(nd), group(md))
	return f
}

// profiles maps each top source to what the detectors said about it.
func profiles(pe *pageEpisodes) map[string][]string {
	out := map[string][]string{}
	for a, set := range pe.prof {
		var l []string
		for k, n := range set {
			if n > 1 {
				k += fmt.Sprintf(" ×%d", n)
			}
			l = append(l, k)
		}
		sort.Strings(l)
		out[a] = l
	}
	return out
}

func heavyTable(r *pipeline.Report, total uint64, pe *pageEpisodes) table {
	t := table{ID: "heavy-hitters", Title: "heavy hitters (top sources)", Page: 25, Total: len(r.Sources.Top),
		Cols: []col{{"rank", true}, {"source", false}, {"packets", true}, {"share", true}, {"profile (detections)", false}}}
	prof := profiles(pe)
	for i, s := range r.Sources.Top {
		share := 0.0
		if total > 0 {
			share = float64(s.Packets) / float64(total)
		}
		p := strings.Join(prof[s.Addr], ", ")
		if p == "" {
			p = "—"
		}
		t.Rows = append(t.Rows, []cell{
			{strconv.Itoa(i + 1), strconv.Itoa(i + 1)}, {s.Addr, ""},
			{group(s.Packets), strconv.FormatUint(s.Packets, 10)},
			{pct(s.Packets, total), strconv.FormatFloat(share, 'g', 6, 64)}, {p, ""},
		})
	}
	return t
}

func telnetFigure(r *pipeline.Report, pe *pageEpisodes) figure {
	f := figure{ID: "telnet", Title: "Telnet (TCP/23, 2323) sources over time, surges marked"}
	s := r.Series
	var any bool
	if s != nil {
		for _, v := range s.TelnetSourceMinutes {
			any = any || v > 0
		}
	}
	if !any {
		f.NoData = "no SYN probes to the telnet ports in this input."
		return f
	}
	perMin := float64(s.Step()) / 60e9
	v := make([]float64, s.Len())
	peak, pi := 0.0, 0
	for i, n := range s.TelnetSourceMinutes {
		v[i] = float64(n) / perMin
		if v[i] > peak {
			peak, pi = v[i], i
		}
	}
	var marks []span
	for _, e := range pe.surges {
		marks = append(marks, span{From: int64(e.Start), To: int64(e.End), Label: fmt.Sprintf("surge: peak %d sources, baseline %.1f", e.PeakSources, e.Baseline)})
	}
	ylabel := "distinct sources per minute"
	if perMin > 1 {
		ylabel = "mean distinct sources per minute"
	}
	f.SVG = timeChart(f.Title, ylabel, int64(s.Start), s.Step(), []line{{Name: "telnet sources", Class: 2, V: v}}, marks, human)
	at := time.Unix(0, int64(s.Start)+int64(pi)*s.Step()).UTC().Format("Jan 2 15:04")
	f.Reading = reading("<b>Up to %s distinct telnet sources</b> in a minute (%s UTC); %d surge%s marked; %d telnet sweep episodes, %d of them Mirai-like.",
		trim(peak), at, len(marks), plural(len(marks) != 1, "s"), pe.counts[rowTelnetSweep], pe.mirai)
	return f
}

// detectorRows returns each detector's episodes as time intervals (the longest past
// maxTimelineBars).
func detectorRows(pe *pageEpisodes) []episodeRow {
	rows := []episodeRow{{Name: "scanner", Class: 0}, {Name: "telnet_sweep", Class: 1}, {Name: "telnet_surge", Class: 6},
		{Name: "udp_then_syn", Class: 2}, {Name: "backscatter", Class: 3}, {Name: "fingerprint", Class: 4}}
	for i := range rows {
		rows[i].Episodes = pe.bars[i].episodes()
		rows[i].Total = pe.bars[i].total
	}
	return rows
}

// maxTimelineBars bounds the bars drawn per detector row (the page stays small).
const maxTimelineBars = 2000

func timelineFigure(r *pipeline.Report, pe *pageEpisodes) figure {
	f := figure{ID: "timeline", Title: "Detections over time, by detector"}
	rows := detectorRows(pe)
	var a, b int64
	n := 0
	for i := range rows {
		if bs := &pe.bars[i]; bs.total > 0 {
			if n == 0 || bs.from < a {
				a = bs.from
			}
			if n == 0 || bs.to > b {
				b = bs.to
			}
			n += bs.total
		}
	}
	if n == 0 {
		f.NoData = "no detection episodes in this input."
		return f
	}
	if r.FirstPacket != nil && r.LastPacket != nil {
		a, b = min(a, int64(*r.FirstPacket)), max(b, int64(*r.LastPacket))
	}
	var parts []string
	thinned := false
	for i := range rows {
		// Past maxTimelineBars a row keeps the longest: the others are slivers at this
		// scale anyway.
		thinned = thinned || rows[i].Total > maxTimelineBars
		if rows[i].Total > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", group(uint64(rows[i].Total)), rows[i].Name))
		}
	}
	f.SVG = timelineChart(f.Title, a, b, rows)
	extra := ""
	if thinned {
		extra = fmt.Sprintf(" (rows with more than %d episodes show the %d longest)", maxTimelineBars, maxTimelineBars)
	}
	f.Reading = reading("<b>%s episodes:</b> %s%s.", group(uint64(n)), strings.Join(parts, ", "), extra)
	return f
}

func num64(v uint64) cell { return cell{group(v), strconv.FormatUint(v, 10)} }
func tcell(t detect.Time) cell {
	return cell{fmtTime(t), strconv.FormatInt(int64(t), 10)}
}
func durCell(a, b detect.Time) cell {
	d := time.Duration(b - a)
	return cell{fmtDur(d), strconv.FormatInt(int64(d), 10)}
}

// episodeTables builds one sortable, paged table per detector with at most maxRows rows:
// the largest episodes by packets, in time order.
func episodeTables(pe *pageEpisodes) []table {
	type spec struct {
		id, title string
		cols      []col
		cells     func(e detect.Entry) []cell
	}
	specs := [nRows]spec{
		rowScanner: {"ep-scanner", "scanner", []col{{"source", false}, {"class", false}, {"packets", true}, {"targets", true}, {"ports", true}, {"first seen (UTC)", true}, {"duration", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.ScannerEntry)
				return []cell{{e.Src, ""}, {e.Class, ""}, num64(e.Packets), num64(e.Targets), num64(e.Ports), tcell(e.FirstSeen), durCell(e.FirstSeen, e.LastSeen)}
			}},
		rowTelnetSweep: {"ep-telnet-sweep", "telnet_sweep", []col{{"source", false}, {"mirai", false}, {"packets", true}, {"targets", true}, {"first seen (UTC)", true}, {"duration", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.TelnetSweepEntry)
				m := "no"
				if e.Mirai {
					m = "yes"
				}
				return []cell{{e.Src, ""}, {m, ""}, num64(e.Packets), num64(e.Targets), tcell(e.FirstSeen), durCell(e.FirstSeen, e.LastSeen)}
			}},
		rowTelnetSurge: {"ep-telnet-surge", "telnet_surge", []col{{"start (UTC)", true}, {"duration", true}, {"peak sources", true}, {"baseline", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.TelnetSurgeEntry)
				return []cell{tcell(e.Start), durCell(e.Start, e.End), num64(e.PeakSources), {strconv.FormatFloat(e.Baseline, 'f', 1, 64), strconv.FormatFloat(e.Baseline, 'g', 6, 64)}}
			}},
		rowUDPThenSYN: {"ep-udp-then-syn", "udp_then_syn", []col{{"source", false}, {"receiver", false}, {"port", true}, {"payload", false}, {"UDP", true}, {"SYN", true}, {"first seen (UTC)", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.UDPThenSYNEntry)
				return []cell{{e.Src.String(), ""}, {e.Dst.String(), ""}, num64(uint64(e.Port)), {e.Payload, ""}, num64(e.UDPPackets), num64(e.SYNPackets), tcell(e.FirstSeen)}
			}},
		rowBackscatter: {"ep-backscatter", "backscatter", []col{{"victim", false}, {"kind", false}, {"packets", true}, {"targets", true}, {"peak / min", true}, {"first seen (UTC)", true}, {"duration", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.BackscatterEntry)
				return []cell{{e.Victim, ""}, {e.Kind, ""}, num64(e.Packets), num64(e.Targets), num64(e.PeakRate), tcell(e.FirstSeen), durCell(e.FirstSeen, e.LastSeen)}
			}},
		rowFingerprint: {"ep-fingerprint", "fingerprint (tools)", []col{{"source", false}, {"tool", false}, {"packets", true}, {"SYN probes", true}, {"first seen (UTC)", true}, {"duration", true}},
			func(x detect.Entry) []cell {
				e := x.(*detect.ToolEntry)
				return []cell{{e.Src.String(), ""}, {e.Tool, ""}, num64(e.Packets), num64(e.Probes), tcell(e.FirstSeen), durCell(e.FirstSeen, e.LastSeen)}
			}},
	}
	var out []table
	for i, sp := range specs {
		sel := &pe.tables[i]
		t := table{ID: sp.id, Title: sp.title, Cols: sp.cols, Total: sel.total, Page: 25}
		if sel.total > pe.maxRows {
			t.Note = fmt.Sprintf("the %d largest by packets listed; the JSON report has all", pe.maxRows)
		}
		for _, e := range sel.entries(pe.maxRows) {
			t.Rows = append(t.Rows, sp.cells(e.e))
		}
		out = append(out, t)
	}
	return out
}

func pollution(p *pollPairs) ([]card, []figure) {
	f1 := figure{ID: "pollution-receivers", Title: "Receivers (dark ip:port) by distinct senders"}
	f2 := figure{ID: "pollution-payload", Title: "UDP payload classes of the pairs"}
	if p.n == 0 {
		f1.NoData, f2.NoData = "no UDP-then-SYN pairs in this input.", "no UDP-then-SYN pairs in this input."
		return nil, []figure{f1, f2}
	}
	payload := p.payload
	exact := p.pairs.exact()
	scale := p.pairs.scale()
	type kv struct {
		k string
		n int
	}
	var rs []kv
	for k, n := range p.recv {
		rs = append(rs, kv{joinHostPort(k.dst.String(), k.port), n})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || rs[i].n == rs[j].n && rs[i].k < rs[j].k })
	var rows []bar
	var top10, pairs int
	for i, e := range rs {
		if i < 15 {
			rows = append(rows, bar{Label: e.k, V: uint64(e.n) * scale})
		}
		if i < 10 {
			top10 += e.n
		}
		pairs += e.n
	}
	f1.SVG = barChart(f1.Title, "distinct senders", rows, false)
	f1.Reading = reading("<b>%s receivers</b> (ip:port) on %s dark hosts; the top 10 receivers have %s of the sender–receiver pairs.",
		approx(p.receivers.count(), p.receivers.exact()), approx(p.hosts.count(), p.hosts.exact()), pct(uint64(top10), uint64(pairs)))
	if !exact {
		f1.Reading += reading(" More than %s distinct pairs: the senders counted are those of a uniform sample of 1 pair in %s (estimates).",
			group(uint64(p.pairs.max)), group(scale))
	}
	var prow []bar
	for _, c := range []string{"dht", "utp", "other"} {
		if payload[c] > 0 {
			prow = append(prow, bar{Label: c, V: payload[c],
				Note: classSenders(p.payN[c], &p.paySenders)})
		}
	}
	for c, n := range payload {
		if c != "dht" && c != "utp" && c != "other" {
			prow = append(prow, bar{Label: c, V: n})
		}
	}
	f2.SVG = barChart(f2.Title, "episodes (pairs)", prow, false)
	f2.Reading = reading("<b>%s pairs</b>: DHT (bencoded KRPC) %s, uTP %s, other %s.", group(uint64(p.n)),
		group(payload["dht"]), group(payload["utp"]), group(payload["other"]))
	cards := []card{
		{group(uint64(p.n)), "UDP-then-SYN episodes"},
		{approx(p.senders.count(), p.senders.exact()), "distinct senders"},
		{approx(p.receivers.count(), p.receivers.exact()), "receivers (ip:port)"},
		{approx(p.hosts.count(), p.hosts.exact()), "receiving dark hosts"},
	}
	return cards, []figure{f1, f2}
}

func joinHostPort(h string, p uint16) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + strconv.Itoa(int(p))
	}
	return h + ":" + strconv.Itoa(int(p))
}

func notes(r *pipeline.Report) []string {
	n := []string{
		"Counters (frames, packets, flags, ports, series) are exact. Unique sources and destinations are HyperLogLog estimates (p = 16, ~0.4 % standard error; dark IPv4 destinations are counted exactly in a single report).",
		"Top sources and destinations are exact while every source stayed in the per-source table (below limits.max_sources) and a worker saw at most 65 536 destinations; past that the Space-Saving summaries bound the error.",
		"Series are in packet time, per step (one minute, doubling past 2 880 points). Telnet sources are the distinct sources of SYN probes to the telnet ports per minute, to dark destinations; at a longer step, their mean per minute.",
		"Distributions are in log2 buckets (a point at x counts the addresses with at least x packets, x a power of two).",
	}
	if r.Merged != nil {
		for _, s := range r.Merged.Notes {
			n = append(n, "Merged report: "+s+".")
		}
	}
	if c := r.ContinuedFrom; c != nil {
		n = append(n, "This report "+continuedText(c)+": its top lists, distributions and unique counts hold the packets of the runs before it too, its counters and series only its own (merged with those runs' reports, it gives the whole).")
	}
	if f := r.Filter; f != nil {
		n = append(n, fmt.Sprintf("capture.filter %q was applied: the %s packets it rejected are in no count of this page.", f.Expression, group(f.FilteredOut)))
	}
	for _, in := range r.Inputs {
		if in.Error != "" {
			n = append(n, fmt.Sprintf("Input %s was not read to its end (%d records counted): %s.", in.File, in.Records, in.Error))
		}
	}
	return n
}

// continuedText says what a continued report continued from.
func continuedText(c *pipeline.Continuation) string {
	switch len(c.Inputs) {
	case 0:
		return "continues from a saved state"
	case 1:
		return "continues from the state of " + filepath.Base(c.Inputs[0].File)
	}
	return fmt.Sprintf("continues from the state of %d earlier files", len(c.Inputs))
}
