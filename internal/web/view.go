package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// chart draws report arrival times as an inline SVG bar chart of 30 buckets
// spanning from the first time to now (at least an hour). Only numbers reach the
// SVG, so it is safe to mark as HTML.
func chart(times []time.Time) template.HTML {
	const buckets, w, h = 30, 150, 24
	now := time.Now()
	if len(times) == 0 {
		return template.HTML(fmt.Sprintf(`<svg class="chart" width="%d" height="%d" role="img" aria-label="no reports"></svg>`, w, h))
	}
	span := max(now.Sub(times[0]), time.Hour)
	start := now.Add(-span)
	var counts [buckets]int
	peak := 1
	for _, t := range times {
		i := int(float64(t.Sub(start)) / float64(span) * buckets)
		i = min(max(i, 0), buckets-1)
		counts[i]++
		peak = max(peak, counts[i])
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" role="img" aria-label="%d reports over %s">`, w, h, len(times), span.Round(time.Minute))
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := max(1, c*h/peak)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="4" height="%d"><title>%d</title></rect>`, i*5, h-bh, bh, c)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
