package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

var palette = []string{"#c33", "#36c", "#e90", "#393", "#93c", "#0aa", "#a63", "#666"}

// releaseChart draws reports over time as stacked bars, one colour per release,
// with an axis and a legend. Release names come from kernels: they are escaped.
func releaseChart(series []releaseSeries, start time.Time) template.HTML {
	const buckets, w, h, left, top, bottom = 48, 720, 160, 40, 10, 20
	now := time.Now()
	span := now.Sub(start)
	if span <= 0 {
		span = time.Hour
	}
	counts := make([][]int, len(series))
	totals := make([]int, buckets)
	n := 0
	for i, s := range series {
		counts[i] = make([]int, buckets)
		for _, t := range s.Times {
			b := int(float64(t.Sub(start)) / float64(span) * buckets)
			b = min(max(b, 0), buckets-1)
			counts[i][b]++
			totals[b]++
			n++
		}
	}
	peak := 1
	for _, c := range totals {
		peak = max(peak, c)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="fleetchart" width="%d" height="%d" role="img" aria-label="%d reports over %s by release">`,
		w+left+10, h+top+bottom+16*((len(series)+3)/4), n, span.Round(time.Minute))
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, left, top+h, left+w, top+h)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%d</text><text x="%d" y="%d" text-anchor="end">0</text>`, left-4, top+8, peak, left-4, top+h)
	fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text><text x="%d" y="%d" text-anchor="end">now</text>`,
		left, top+h+14, template.HTMLEscapeString(start.UTC().Format("2006-01-02 15:04")), left+w, top+h+14)
	bw := w / buckets
	for k := 0; k < buckets; k++ {
		y := top + h
		for i := range series {
			c := counts[i][k]
			if c == 0 {
				continue
			}
			bh := max(1, c*h/peak)
			y -= bh
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %d</title></rect>`,
				left+k*bw+1, y, bw-2, bh, palette[i%len(palette)], template.HTMLEscapeString(series[i].Release), c)
		}
	}
	for i, s := range series {
		x, y := left+(i%4)*(w/4), top+h+bottom+16*(i/4)+10
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s (%d)</text>`,
			x, y-9, palette[i%len(palette)], x+14, y, template.HTMLEscapeString(s.Release), len(s.Times))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func hours(h float64) string {
	switch {
	case h == 0:
		return "—"
	case h < 1.0/60:
		return fmt.Sprintf("%.0f s", h*3600)
	case h < 1:
		return fmt.Sprintf("%.0f min", h*60)
	}
	return fmt.Sprintf("%.1f h", h)
}
