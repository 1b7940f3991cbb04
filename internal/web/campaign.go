package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
)

// Campaign pages: kcrash repro and soak record their campaigns in the crash
// database (store.Campaigns); the dashboard lists them, shows each with its runs,
// the time-to-crash chart, the rate and mean time to crash with their 95%
// intervals (fitted again from the runs) and a soak's verdict, and links a crash
// group to the campaigns that measured its crash.

// campaigns returns the store's campaign interfaces (nil when it has none).
func (s *Server) campaignStore() (store.Campaigns, store.CampaignLister) {
	cs, _ := s.o.Store.(store.Campaigns)
	cl, _ := s.o.Store.(store.CampaignLister)
	return cs, cl
}

// listCampaigns lists campaigns (of a signature when sig is set); none when the
// store keeps none.
func (s *Server) listCampaigns(ctx context.Context, sig string) ([]store.Campaign, error) {
	_, cl := s.campaignStore()
	if cl == nil {
		return nil, nil
	}
	return cl.ListCampaigns(ctx, store.CampaignQuery{Signature: sig, Limit: 200})
}

func (s *Server) campaignsPage(w http.ResponseWriter, r *http.Request) {
	cs, err := s.listCampaigns(r.Context(), "")
	if err != nil {
		fail(w, err)
		return
	}
	s.render(w, "campaigns.html", map[string]any{"Campaigns": cs})
}

// campaignView is a campaign as its page shows it.
type campaignView struct {
	store.Campaign
	Runs []store.CampaignRun
	// Fit is the exponential fit of the runs (rate and mean time to crash with
	// their 95% intervals); Soak the soak's result (nil for a repro).
	Fit  repro.Estimate
	Soak *repro.SoakResult
}

func (s *Server) campaign(r *http.Request) (*campaignView, error) {
	cs, _ := s.campaignStore()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if cs == nil || err != nil {
		return nil, store.ErrNotFound
	}
	c, runs, err := cs.Campaign(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := &campaignView{Campaign: *c, Runs: runs}
	var crashes, censored []float64
	for _, run := range runs {
		if run.Outcome == repro.OutcomeCrash {
			crashes = append(crashes, run.Seconds)
		} else {
			censored = append(censored, run.Seconds)
		}
	}
	v.Fit = repro.Fit(crashes, censored)
	if c.Kind == "soak" {
		var sr repro.SoakResult
		if json.Unmarshal(c.Result, &sr) == nil && sr.Verdict != "" {
			v.Soak = &sr
		}
	}
	return v, nil
}

func (s *Server) campaignPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.campaign(r)
	if err != nil {
		fail(w, err)
		return
	}
	if v.Kind == "bisect" {
		s.render(w, "bisect.html", newBisectView(v))
		return
	}
	s.render(w, "campaign.html", v)
}

func (s *Server) apiCampaigns(w http.ResponseWriter, r *http.Request) {
	cs, err := s.listCampaigns(r.Context(), r.URL.Query().Get("signature"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"campaigns": nonNil(cs)})
}

func (s *Server) apiCampaign(w http.ResponseWriter, r *http.Request) {
	v, err := s.campaign(r)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"campaign": v.Campaign, "runs": nonNil(v.Runs), "result": json.RawMessage(orEmpty(v.Result))})
}

func orEmpty(b []byte) []byte {
	if !json.Valid(b) || len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// seconds formats a duration in seconds (float64 or repro.Num) for people ("∞"
// when unbounded).
func seconds(v any) string { return repro.Dur(toFloat(v)) }

func toFloat(v any) float64 {
	switch v := v.(type) {
	case float64:
		return v
	case repro.Num:
		return float64(v)
	}
	return math.NaN()
}

// ratePer formats a crash rate per second with a readable unit.
func ratePer(v float64) string {
	switch {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return "∞"
	case v == 0:
		return "0"
	case v >= 1:
		return fmt.Sprintf("%.3g/s", v)
	case v*60 >= 1:
		return fmt.Sprintf("%.3g/min", v*60)
	case v*3600 >= 1:
		return fmt.Sprintf("%.3g/h", v*3600)
	}
	return fmt.Sprintf("%.3g/day", v*86400)
}

// percent formats a fraction as a percentage.
func percent(v repro.Num) string { return fmt.Sprintf("%.4g%%", 100*float64(v)) }

// times formats a factor ("3.4×").
func times(v repro.Num) string { return fmt.Sprintf("%.3g×", float64(v)) }

// ttcChart draws a campaign's runs as an SVG bar chart: one bar per run, its
// height the time to crash (red) or the time watched without the crash (grey,
// open at the top: censored), with the mean time to crash as a line and its 95%
// interval as a band. Only numbers reach the SVG, so it is safe to mark as HTML.
func ttcChart(runs []store.CampaignRun, fit repro.Estimate) template.HTML {
	const w, h, left, bottom, top = 600, 220, 48, 22, 10
	if len(runs) == 0 {
		return template.HTML(fmt.Sprintf(`<svg class="ttc" width="%d" height="%d" role="img" aria-label="no runs"></svg>`, w, h))
	}
	hi := 0.0
	for _, r := range runs {
		hi = math.Max(hi, r.Seconds)
	}
	if fit.Crashes > 0 && !math.IsInf(fit.MTTCHi, 0) {
		hi = math.Max(hi, math.Min(fit.MTTCHi, 2*hi))
	}
	if hi <= 0 {
		hi = 1
	}
	plotH := float64(h - bottom - top)
	y := func(v float64) float64 { return float64(top) + plotH - math.Min(v, hi)/hi*plotH }
	slot := float64(w-left-8) / float64(len(runs))
	bw := math.Max(1, math.Min(40, slot*0.7))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="ttc" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="time to crash of %d runs: %d crashed, %d censored">`,
		w, h, w, h, fit.Runs, fit.Crashes, fit.Censored)
	if fit.Crashes > 0 {
		lo, up := y(fit.MTTCLo), y(math.Min(fit.MTTCHi, hi))
		fmt.Fprintf(&b, `<rect class="band" x="%d" y="%.1f" width="%d" height="%.1f"><title>mean time to crash, 95%%: %s–%s</title></rect>`,
			left, up, w-left-8, lo-up, seconds(fit.MTTCLo), seconds(fit.MTTCHi))
	}
	for i, r := range runs {
		x := float64(left) + float64(i)*slot + (slot-bw)/2
		yt := y(r.Seconds)
		class := "crash"
		if r.Outcome != repro.OutcomeCrash {
			class = "censored"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>run %d: %s %s</title></rect>`,
			class, x, yt, bw, float64(top)+plotH-yt, r.N, strings.ReplaceAll(class, "crash", "crash after"), seconds(r.Seconds))
		if class == "censored" {
			// An arrow up: the crash, if any, comes later than the bar.
			fmt.Fprintf(&b, `<path class="arrow" d="M%.1f %.1f l%.1f -8 l%.1f 8"/>`, x, yt, bw/2, bw/2)
		}
		if len(runs) <= 30 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`, x+bw/2, h-6, r.N)
		}
	}
	if fit.Crashes > 0 {
		fmt.Fprintf(&b, `<line class="mttc" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>mean time to crash %s</title></line>`,
			left, w-8, y(fit.MTTC), y(fit.MTTC), seconds(fit.MTTC))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, left, w-8, float64(top)+plotH, float64(top)+plotH)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%.1f"/>`, left, left, top, float64(top)+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text><text x="%d" y="%.1f" text-anchor="end">0</text>`,
		left-4, top+10, seconds(hi), left-4, float64(top)+plotH)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
