package studyhtml

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// Overview is what the live landing page shows; the daemon fills it from the same
// snapshot the metrics collector reads.
type Overview struct {
	Sensor  string
	Version string
	Now     time.Time // wall clock of the snapshot
	// LastPacket is the packet time of the newest packet (zero: none yet).
	LastPacket time.Time

	// Totals since start.
	Packets     map[string]uint64 // by protocol: tcp, udp, icmp, icmpv6, other
	TCPFlags    map[string]uint64 // by flag combination name
	TopSYNPorts []PortCount       // busiest first
	TopUDPPorts []PortCount

	// Current is the window being counted (may be partial), Last the last closed one.
	Current, Last Window

	// ActiveDetections by detector (telescope_detections_active).
	ActiveDetections map[string]int64
	// DetectionsTotal by detector since start.
	DetectionsTotal map[string]uint64

	Captures  []Capture
	Tracked   int64
	Evictions uint64
}

// PortCount is a port and its packets.
type PortCount struct {
	Port    uint16
	Packets uint64
}

// Window summarises one detector window.
type Window struct {
	Start, End time.Time
	Packets    uint64
	Sources    uint64 // distinct sources
	TopSources []SourceCount
}

// SourceCount is a source address and its packets.
type SourceCount struct {
	Addr    string
	Packets uint64
}

// Capture is the health of one packet source.
type Capture struct {
	Interface   string
	Up          bool
	Packets     uint64
	KernelDrops uint64
	// QueueFreezes counts the times the kernel found the ring full and froze it.
	QueueFreezes uint64
}

// LiveHandler serves the live overview page from provider, which is called once per
// request; the page reloads itself every refresh (at least one second).
func LiveHandler(provider func() Overview, refresh time.Duration) http.Handler {
	secs := max(int(refresh/time.Second), 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		if err := RenderLive(&buf, provider(), secs); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
}

type livePage struct {
	Title, Sub string
	Refresh    int
	CSS        template.CSS
	Cards      []card
	Figures    []figure
	Captures   table
	Windows    table
}

var liveTmpl = template.Must(template.Must(pageTmpl.Clone()).New("live").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>{{.Title}}</title>
<style>{{.CSS}}</style></head>
<body><main>
<h1>{{.Title}}</h1>
<p class="sub">{{.Sub}} · refreshes every {{.Refresh}} s · <a href="/metrics">/metrics</a></p>
<div class="cards">{{range .Cards}}<div class="card"><b>{{.Value}}</b><span>{{.Label}}</span></div>{{end}}</div>
<h2>Capture health</h2>
{{template "table" .Captures}}
<h2>Windows</h2>
{{template "table" .Windows}}
{{range .Figures}}{{template "fig" .}}{{end}}
</main></body></html>`))

// RenderLive writes the live overview page.
func RenderLive(w interface{ Write([]byte) (int, error) }, o Overview, refresh int) error {
	title := "telescope"
	if o.Sensor != "" {
		title += " · " + o.Sensor
	}
	pg := livePage{Title: title, Refresh: refresh, CSS: styleTag}
	pg.Sub = "at " + o.Now.UTC().Format("2006-01-02 15:04:05") + " UTC"
	if !o.LastPacket.IsZero() {
		pg.Sub += " · last packet " + o.LastPacket.UTC().Format("15:04:05")
	}
	if o.Version != "" {
		pg.Sub += " · " + o.Version
	}
	var total uint64
	for _, n := range o.Packets {
		total += n
	}
	var active int64
	for _, n := range o.ActiveDetections {
		active += n
	}
	var drops uint64
	up := 0
	for _, c := range o.Captures {
		drops += c.KernelDrops
		if c.Up {
			up++
		}
	}
	pg.Cards = []card{
		{human(float64(total)), "IP packets since start"},
		{pct(o.Packets["tcp"], total), "TCP"},
		{strconv.FormatInt(active, 10), "active detections"},
		{fmt.Sprintf("%d / %d", up, len(o.Captures)), "captures up"},
		{human(float64(drops)), "packets dropped"},
		{human(float64(o.Tracked)), "tracked sources"},
	}
	pg.Captures = table{ID: "captures", Title: "capture sources", Total: len(o.Captures),
		Cols: []col{{"interface", false}, {"state", false}, {"packets", true}, {"kernel drops", true}, {"queue freezes", true}}}
	for _, c := range o.Captures {
		st := "up"
		if !c.Up {
			st = "DOWN"
		}
		pg.Captures.Rows = append(pg.Captures.Rows, []cell{{c.Interface, ""}, {st, ""}, num64(c.Packets), num64(c.KernelDrops), num64(c.QueueFreezes)})
	}
	pg.Windows = table{ID: "windows", Title: "closed windows", Cols: []col{{"window", false}, {"span (UTC)", false}, {"packets", true}, {"sources", true}, {"top sources", false}}}
	for _, wv := range []struct {
		name string
		w    Window
	}{{"current (partial)", o.Current}, {"last closed", o.Last}} {
		if wv.w.Start.IsZero() {
			continue
		}
		top := ""
		for i, s := range wv.w.TopSources {
			if i == 5 {
				break
			}
			if i > 0 {
				top += ", "
			}
			top += s.Addr + " (" + group(s.Packets) + ")"
		}
		pg.Windows.Rows = append(pg.Windows.Rows, []cell{{wv.name, ""},
			{wv.w.Start.UTC().Format("15:04:05") + "–" + wv.w.End.UTC().Format("15:04:05"), ""},
			num64(wv.w.Packets), num64(wv.w.Sources), {top, ""}})
	}
	pg.Windows.Total = len(pg.Windows.Rows)

	// Active detections.
	fa := figure{ID: "live-active", Title: "Active detections, by detector"}
	var arows []bar
	for _, d := range []string{"scanner", "telnet_sweep", "telnet_surge", "udp_then_syn", "backscatter", "fingerprint"} {
		arows = append(arows, bar{Label: d, V: uint64(max(o.ActiveDetections[d], 0)), Note: fmt.Sprintf("(%s since start)", group(o.DetectionsTotal[d]))})
	}
	if len(o.ActiveDetections) == 0 && len(o.DetectionsTotal) == 0 {
		fa.NoData = "no detector state yet."
	} else {
		fa.SVG = barChart(fa.Title, "episodes open now", arows, false)
		fa.Reading = reading("<b>%d episodes open</b> now.", active)
	}
	// Flags.
	ff := figure{ID: "live-flags", Title: "TCP flag mix since start"}
	type kv struct {
		k string
		v uint64
	}
	var fl []kv
	var tcp uint64
	for k, v := range o.TCPFlags {
		fl = append(fl, kv{k, v})
		tcp += v
	}
	sort.Slice(fl, func(i, j int) bool { return fl[i].v > fl[j].v || fl[i].v == fl[j].v && fl[i].k < fl[j].k })
	if len(fl) == 0 {
		ff.NoData = "no TCP headers yet."
	} else {
		var rows []bar
		for _, e := range fl {
			rows = append(rows, bar{Label: e.k, V: e.v, Note: "(" + pct(e.v, tcp) + ")"})
		}
		ff.SVG = barChart(ff.Title, "TCP headers", rows, true)
		ff.Reading = reading("<b>%s is %s</b> of %s TCP headers.", fl[0].k, pct(fl[0].v, tcp), group(tcp))
	}
	ports := func(id, title, what string, ps []PortCount) figure {
		f := figure{ID: id, Title: title}
		if len(ps) == 0 {
			f.NoData = "no " + what + " yet."
			return f
		}
		var rows []bar
		for i, p := range ps {
			if i == 15 {
				break
			}
			rows = append(rows, bar{Label: strconv.Itoa(int(p.Port)), V: p.Packets})
		}
		f.SVG = barChart(title, what+" (packets)", rows, false)
		f.Reading = reading("<b>Port %d leads</b> with %s %s since start.", ps[0].Port, group(ps[0].Packets), what)
		return f
	}
	pg.Figures = []figure{fa,
		ports("live-syn-ports", "Top TCP-SYN destination ports since start", "SYN probes", o.TopSYNPorts),
		ports("live-udp-ports", "Top UDP destination ports since start", "UDP datagrams", o.TopUDPPorts),
		ff}
	return liveTmpl.ExecuteTemplate(w, "live", pg)
}
