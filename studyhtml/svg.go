package studyhtml

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart geometry (SVG user units; the SVG scales to the page width).
const (
	chartW  = 760
	chartH  = 250
	marginL = 70
	marginR = 20
	marginT = 28
	marginB = 46
)

// svgBuf builds one SVG element.
type svgBuf struct{ b strings.Builder }

func (s *svgBuf) f(format string, a ...any) { fmt.Fprintf(&s.b, format, a...) }

func esc(s string) string { return html.EscapeString(s) }

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func (s *svgBuf) open(w, h int, label string) {
	s.f(`<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, w, h, esc(label))
}

func (s *svgBuf) close() template.HTML {
	s.b.WriteString("</svg>")
	return template.HTML(s.b.String())
}

// axisLabels draws the x label under the plot and the y label rotated at its left.
func (s *svgBuf) axisLabels(w, h int, x, y string) {
	s.f(`<text class="axlabel" x="%d" y="%d" text-anchor="middle">%s</text>`, marginL+(w-marginL-marginR)/2, h-6, esc(x))
	s.f(`<text class="axlabel" transform="translate(14 %d) rotate(-90)" text-anchor="middle">%s</text>`, marginT+(h-marginT-marginB)/2, esc(y))
}

// legend draws colour keys along the top.
func (s *svgBuf) legend(names []string, classes []int) {
	x := float64(marginL)
	for i, n := range names {
		s.f(`<rect class="c%d fillc" x="%s" y="8" width="12" height="12" rx="2"/>`, classes[i], num(x))
		s.f(`<text class="legend" x="%s" y="18">%s</text>`, num(x+16), esc(n))
		x += 16 + 7.2*float64(len(n)) + 18
	}
}

// niceStep returns a 1-2-5 step giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// human formats a count: 950, 12.3k, 4.5M, 1.2G.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9) + "G"
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	}
	return trim(v)
}

func trim(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

// linearY returns a scale [0, top] with nice ticks for values up to max.
func linearY(max float64) (top float64, ticks []float64) {
	if max <= 0 {
		max = 1
	}
	st := niceStep(max, 5)
	top = math.Ceil(max/st) * st
	for v := 0.0; v <= top+st/2; v += st {
		ticks = append(ticks, v)
	}
	return top, ticks
}

// timeTicks picks tick times over [a, b) ns, about 6 of them, and a label format.
func timeTicks(a, b int64) ([]int64, string) {
	span := time.Duration(b - a)
	steps := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour, 28 * 24 * time.Hour}
	st := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 8 {
			st = s
			break
		}
	}
	format := "15:04"
	if span > 48*time.Hour {
		format = "Jan 2"
	} else if time.Unix(0, a).UTC().YearDay() != time.Unix(0, b-1).UTC().YearDay() {
		format = "Jan 2 15:04"
	}
	var out []int64
	first := (a + int64(st) - 1) / int64(st) * int64(st)
	for t := first; t <= b; t += int64(st) {
		out = append(out, t)
	}
	return out, format
}

// line is one series of a time chart.
type line struct {
	Name  string
	Class int // colour index
	V     []float64
}

// span is a marked interval of a time chart (a telnet surge).
type span struct {
	From, To int64 // ns
	Label    string
}

// timeChart draws lines over time, point i at start + i*step (the step's start).
func timeChart(label, yLabel string, start, step int64, lines []line, marks []span, yFormat func(float64) string) template.HTML {
	n := 0
	maxV := 0.0
	for _, l := range lines {
		n = max(n, len(l.V))
		for _, v := range l.V {
			maxV = math.Max(maxV, v)
		}
	}
	var s svgBuf
	w, h := chartW, chartH
	s.open(w, h, label)
	a, b := start, start+int64(n)*step
	pw, ph := float64(w-marginL-marginR), float64(h-marginT-marginB)
	x := func(t int64) float64 { return float64(marginL) + pw*float64(t-a)/float64(b-a) }
	top, yt := linearY(maxV)
	y := func(v float64) float64 { return float64(marginT) + ph*(1-v/top) }
	for _, m := range marks {
		x0, x1 := x(max(m.From, a)), x(min(m.To, b))
		s.f(`<rect class="mark" x="%s" y="%d" width="%s" height="%s"><title>%s</title></rect>`, num(x0), marginT, num(math.Max(x1-x0, 2)), num(ph), esc(m.Label))
	}
	for _, v := range yt {
		s.f(`<line class="grid" x1="%d" x2="%d" y1="%s" y2="%s"/>`, marginL, w-marginR, num(y(v)), num(y(v)))
		s.f(`<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, marginL-6, num(y(v)+4), esc(yFormat(v)))
	}
	ticks, format := timeTicks(a, b)
	for _, t := range ticks {
		s.f(`<line class="axis" x1="%s" x2="%s" y1="%d" y2="%d"/>`, num(x(t)), num(x(t)), h-marginB, h-marginB+4)
		s.f(`<text class="tick" x="%s" y="%d" text-anchor="middle">%s</text>`, num(x(t)), h-marginB+16, time.Unix(0, t).UTC().Format(format))
	}
	s.f(`<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`, marginL, w-marginR, h-marginB, h-marginB)
	names, classes := []string{}, []int{}
	for _, l := range lines {
		names, classes = append(names, l.Name), append(classes, l.Class)
		if len(l.V) == 1 {
			s.f(`<circle class="c%d fillc" cx="%s" cy="%s" r="3"/>`, l.Class, num(x(a+step/2)), num(y(l.V[0])))
			continue
		}
		s.f(`<polyline class="c%d series" points="`, l.Class)
		for i, v := range l.V {
			s.f("%s,%s ", num(x(a+int64(i)*step+step/2)), num(y(v)))
		}
		s.f(`"><title>%s</title></polyline>`, esc(l.Name))
	}
	if len(lines) > 1 || len(marks) > 0 {
		if len(marks) > 0 {
			names, classes = append(names, "surge"), append(classes, 9)
		}
		s.legend(names, classes)
	}
	s.axisLabels(w, h, "time (UTC), step "+stepName(step), yLabel)
	return s.close()
}

func stepName(step int64) string {
	d := time.Duration(step)
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return fmt.Sprintf("%d min", d/time.Minute)
}

// bar is one row of a horizontal bar chart.
type bar struct {
	Label string
	V     uint64
	Note  string // shown after the value (a share)
}

// barChart draws one horizontal bar per row, on a log10 scale when logScale.
func barChart(label, xLabel string, rows []bar, logScale bool) template.HTML {
	const rowH, labelW, valueW = 18, 210, 130
	h := marginT + len(rows)*rowH + marginB - 10
	w := chartW
	var s svgBuf
	s.open(w, h, label)
	pw := float64(w - labelW - valueW - marginR)
	maxV := uint64(1)
	for _, r := range rows {
		maxV = max(maxV, r.V)
	}
	var xs func(v float64) float64
	var ticks []float64
	if logScale {
		decades := math.Ceil(math.Log10(float64(maxV)))
		decades = math.Max(decades, 1)
		xs = func(v float64) float64 {
			if v < 1 {
				return 0
			}
			return pw * math.Log10(v) / decades
		}
		for d := 0.0; d <= decades; d++ {
			ticks = append(ticks, math.Pow(10, d))
		}
	} else {
		top, t := linearY(float64(maxV))
		xs = func(v float64) float64 { return pw * v / top }
		ticks = t
	}
	bottom := marginT + len(rows)*rowH
	for _, t := range ticks {
		x := float64(labelW) + xs(t)
		s.f(`<line class="grid" x1="%s" x2="%s" y1="%d" y2="%d"/>`, num(x), num(x), marginT-4, bottom)
		s.f(`<text class="tick" x="%s" y="%d" text-anchor="middle">%s</text>`, num(x), bottom+14, human(t))
	}
	for i, r := range rows {
		y := marginT + i*rowH
		s.f(`<text class="rowlabel" x="%d" y="%d" text-anchor="end">%s</text>`, labelW-6, y+13, esc(r.Label))
		bw := math.Max(xs(float64(r.V)), 1.5)
		s.f(`<rect class="bar" x="%d" y="%d" width="%s" height="%d"><title>%s: %s</title></rect>`, labelW, y+3, num(bw), rowH-5, esc(r.Label), group(r.V))
		val := group(r.V)
		if r.Note != "" {
			val += "  " + r.Note
		}
		s.f(`<text class="value" x="%s" y="%d">%s</text>`, num(float64(labelW)+bw+6), y+13, esc(val))
	}
	scale := ""
	if logScale {
		scale = " (log scale)"
	}
	s.f(`<text class="axlabel" x="%d" y="%d" text-anchor="middle">%s</text>`, labelW+int(pw)/2, h-8, esc(xLabel+scale))
	return s.close()
}

// ccdfLine is one distribution: log2 bucket counts.
type ccdfLine struct {
	Name    string
	Class   int
	Buckets []uint64
}

// ccdfChart draws P(X >= x) against x on log-log axes, one point per log2 bucket.
func ccdfChart(label, xLabel string, lines []ccdfLine) template.HTML {
	var s svgBuf
	w, h := chartW, chartH+40
	s.open(w, h, label)
	pw, ph := float64(w-marginL-marginR), float64(h-marginT-marginB)
	maxB := 1
	minP := 1.0
	type pt struct{ x, p float64 }
	pts := make([][]pt, len(lines))
	for i, l := range lines {
		var total uint64
		for _, c := range l.Buckets {
			total += c
		}
		if total == 0 {
			continue
		}
		rest := total
		for b, c := range l.Buckets {
			if c == 0 {
				rest -= c
				continue
			}
			p := float64(rest) / float64(total)
			pts[i] = append(pts[i], pt{float64(b), p})
			minP = math.Min(minP, p)
			maxB = max(maxB, b+1)
			rest -= c
		}
	}
	decP := math.Max(1, math.Ceil(-math.Log10(minP)))
	x := func(b float64) float64 { return float64(marginL) + pw*b/float64(maxB) }
	y := func(p float64) float64 { return float64(marginT) + ph*(-math.Log10(p))/decP }
	for d := 0.0; d <= decP; d++ {
		yy := y(math.Pow(10, -d))
		s.f(`<line class="grid" x1="%d" x2="%d" y1="%s" y2="%s"/>`, marginL, w-marginR, num(yy), num(yy))
		lbl := "1"
		if d > 0 {
			lbl = "10⁻" + superscript(int(d))
		}
		s.f(`<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, marginL-6, num(yy+4), lbl)
	}
	stepB := max(1, maxB/10)
	for b := 0; b <= maxB; b += stepB {
		s.f(`<line class="grid" x1="%s" x2="%s" y1="%d" y2="%d"/>`, num(x(float64(b))), num(x(float64(b))), marginT, h-marginB)
		s.f(`<text class="tick" x="%s" y="%d" text-anchor="middle">%s</text>`, num(x(float64(b))), h-marginB+16, human(math.Pow(2, float64(b))))
	}
	names, classes := []string{}, []int{}
	for i, l := range lines {
		if len(pts[i]) == 0 {
			continue
		}
		names, classes = append(names, l.Name), append(classes, l.Class)
		s.f(`<polyline class="c%d series" points="`, l.Class)
		for _, p := range pts[i] {
			s.f("%s,%s ", num(x(p.x)), num(y(p.p)))
		}
		s.b.WriteString(`"/>`)
		for _, p := range pts[i] {
			s.f(`<circle class="c%d fillc" cx="%s" cy="%s" r="3"><title>%s: P(X ≥ %s) = %.3g</title></circle>`,
				l.Class, num(x(p.x)), num(y(p.p)), esc(l.Name), human(math.Pow(2, p.x)), p.p)
		}
	}
	s.legend(names, classes)
	s.axisLabels(w, h, xLabel+" (log scale)", "share of addresses with ≥ x (log)")
	return s.close()
}

func superscript(n int) string {
	const sup = "⁰¹²³⁴⁵⁶⁷⁸⁹"
	digits := []rune(sup)
	var b strings.Builder
	for _, c := range strconv.Itoa(n) {
		b.WriteRune(digits[c-'0'])
	}
	return b.String()
}

// episodeRow is one detector's row of the detection timeline.
type episodeRow struct {
	Name     string
	Class    int
	Episodes [][2]int64 // [first, last] ns
	Total    int        // episodes in the report (Episodes may hold fewer)
}

// timelineChart draws each episode as a bar from its first to its last packet, one row per
// detector.
func timelineChart(label string, a, b int64, rows []episodeRow) template.HTML {
	const rowH, labelW = 34, 110
	h := marginT + len(rows)*rowH + marginB - 6
	w := chartW
	var s svgBuf
	s.open(w, h, label)
	if b <= a {
		b = a + 1
	}
	pw := float64(w - labelW - marginR)
	x := func(t int64) float64 { return float64(labelW) + pw*float64(t-a)/float64(b-a) }
	bottom := marginT + len(rows)*rowH
	ticks, format := timeTicks(a, b)
	for _, t := range ticks {
		s.f(`<line class="grid" x1="%s" x2="%s" y1="%d" y2="%d"/>`, num(x(t)), num(x(t)), marginT, bottom)
		s.f(`<text class="tick" x="%s" y="%d" text-anchor="middle">%s</text>`, num(x(t)), bottom+14, time.Unix(0, t).UTC().Format(format))
	}
	for i, r := range rows {
		y := marginT + i*rowH
		s.f(`<text class="rowlabel" x="%d" y="%d" text-anchor="end">%s</text>`, labelW-6, y+rowH/2+4, esc(r.Name))
		s.f(`<line class="grid" x1="%d" x2="%d" y1="%d" y2="%d"/>`, labelW, w-marginR, y+rowH, y+rowH)
		// Overlapping episodes stack in 4 lanes so short ones stay visible.
		lanes := [4]float64{}
		for _, e := range r.Episodes {
			x0, x1 := x(e[0]), math.Max(x(e[1]), x(e[0])+1.5)
			lane := 0
			for l := range lanes {
				if lanes[l] <= x0 {
					lane = l
					break
				}
				if lanes[l] < lanes[lane] {
					lane = l
				}
			}
			lanes[lane] = x1 + 0.5
			s.f(`<rect class="c%d fillc ep" x="%s" y="%d" width="%s" height="6"/>`, r.Class, num(x0), y+3+lane*7, num(x1-x0))
		}
		if r.Total == 0 {
			s.f(`<text class="tick" x="%d" y="%d">none</text>`, labelW+6, y+rowH/2+4)
		}
	}
	s.f(`<text class="axlabel" x="%d" y="%d" text-anchor="middle">time (UTC): each bar an episode, first to last packet</text>`, labelW+int(pw)/2, h-6)
	return s.close()
}

// group formats n with thin spaces between thousands: 12 345 678.
func group(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 4 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteString("\u202f")
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
