package web

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"

	"github.com/kcrash/kcrash/internal/bisect"
)

// Bisection pages: kcrash bisect records each bisection as a campaign of kind
// "bisect" whose result is its summary (bisect.Summary: candidates, steps, the
// posterior now); its page shows the verdict, a timeline of the steps and the
// posterior over the first bad candidate, both drawn server-side as SVG.

// bisectView is a bisection as its page shows it.
type bisectView struct {
	*campaignView
	Sum     bisect.Summary
	Culprit string // "" without a verdict naming one
	Top     []bisect.Suspect
}

func newBisectView(v *campaignView) *bisectView {
	b := &bisectView{campaignView: v}
	if json.Unmarshal(v.Result, &b.Sum) != nil {
		return b
	}
	if c := b.Sum.Result.Culprit; c != nil {
		b.Culprit = *c
	}
	if len(b.Sum.Posterior) == len(b.Sum.Candidates)+1 {
		b.Top = bisect.Suspects(b.Sum.Candidates, b.Sum.Posterior, 5)
	}
	return b
}

// esc escapes text for the SVG (candidate names come from the user).
func esc(s string) string { return html.EscapeString(s) }

// bisectTimeline draws the steps in order: one bar per step, its height the time
// under load, red for the target crash, grey for a survival, hatched outline for
// another crash or an untestable candidate; the candidate under each bar.
func bisectTimeline(s bisect.Summary) template.HTML {
	const w, h, left, bottom, top = 640, 220, 48, 60, 10
	if len(s.Steps) == 0 {
		return template.HTML(fmt.Sprintf(`<svg class="bisect-timeline" width="%d" height="%d" role="img" aria-label="no steps"></svg>`, w, h))
	}
	hi := 1.0
	for _, st := range s.Steps {
		hi = math.Max(hi, st.Watched)
	}
	plotH := float64(h - bottom - top)
	slot := float64(w-left-8) / float64(len(s.Steps))
	bw := math.Max(1, math.Min(36, slot*0.75))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bisect-timeline" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%d steps">`, w, h, w, h, len(s.Steps))
	for i, st := range s.Steps {
		x := float64(left) + float64(i)*slot + (slot-bw)/2
		bh := math.Max(2, st.Watched/hi*plotH)
		y := float64(top) + plotH - bh
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>step %d [%s] %s: %s after %.1fs; top %s %.1f%%</title></rect>`,
			st.Outcome, x, y, bw, bh, st.N, esc(st.Phase), esc(st.Version), esc(st.Outcome), st.Watched, esc(topName(s, st.Top)), 100*st.TopP)
		if len(s.Steps) <= 40 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end" transform="rotate(-35 %.1f %d)">%s</text>`,
				x+bw/2, h-bottom+14, x+bw/2, h-bottom+14, esc(shorten(st.Version, 14)))
		}
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, left, w-8, float64(top)+plotH, float64(top)+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text><text x="%d" y="%.1f" text-anchor="end">0</text></svg>`,
		left-4, top+10, seconds(hi), left-4, float64(top)+plotH)
	return template.HTML(b.String())
}

func topName(s bisect.Summary, top int) string {
	if top >= 0 && top < len(s.Candidates) {
		return s.Candidates[top]
	}
	return "no culprit"
}

// posteriorChart draws P(first bad = candidate) for every candidate (the last
// bar: no culprit), the culprit's bar marked, the confidence asked as a line.
func posteriorChart(s bisect.Summary, culprit string) template.HTML {
	const w, h, left, bottom, top = 640, 180, 48, 22, 10
	n := len(s.Posterior)
	if n == 0 || n != len(s.Candidates)+1 {
		return template.HTML(fmt.Sprintf(`<svg class="posterior" width="%d" height="%d" role="img" aria-label="no posterior"></svg>`, w, h))
	}
	plotH := float64(h - bottom - top)
	slot := float64(w-left-8) / float64(n)
	bw := math.Max(0.5, slot*0.8)
	y := func(p float64) float64 { return float64(top) + plotH - p*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="posterior" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="posterior over %d candidates">`, w, h, w, h, len(s.Candidates))
	for i, p := range s.Posterior {
		name := topName(s, i)
		class := "p"
		if name == culprit && i < len(s.Candidates) {
			class = "p culprit"
		} else if i == len(s.Candidates) {
			class = "p none"
		}
		x := float64(left) + float64(i)*slot + (slot-bw)/2
		fmt.Fprintf(&b, `<rect class="%s" x="%.2f" y="%.1f" width="%.2f" height="%.1f"><title>%s: %.2f%%</title></rect>`,
			class, x, y(p), bw, float64(top)+plotH-y(p), esc(name), 100*p)
	}
	fmt.Fprintf(&b, `<line class="conf" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>confidence asked %.0f%%</title></line>`,
		left, w-8, y(s.Confidence), y(s.Confidence), 100*s.Confidence)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, left, w-8, float64(top)+plotH, float64(top)+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">100%%</text><text x="%d" y="%.1f" text-anchor="end">0</text>`, left-4, top+10, left-4, float64(top)+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text><text x="%d" y="%d" text-anchor="end">%s · no culprit</text></svg>`,
		left, h-6, esc(shorten(s.Candidates[0], 24)), w-8, h-6, esc(shorten(s.Candidates[len(s.Candidates)-1], 24)))
	return template.HTML(b.String())
}
