package repro

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Result is `kcrash repro --json`: the contract is exactly these keys.
type Result struct {
	Runs     int    `json:"runs"`
	Crashes  int    `json:"crashes"`
	Censored int    `json:"censored"`
	Times    []Num  `json:"times_s"` // every time to crash, in run order
	Rate     Num    `json:"rate_per_s"`
	RateCI   [2]Num `json:"rate_ci95"`
	MTTC     Num    `json:"mttc_s"`
	MTTCCI   [2]Num `json:"mttc_ci95"`
	// Compare is the same measurement for the second load (--compare), and Ratio
	// the first load's rate over the second's.
	Compare *Result `json:"compare,omitempty"`
	Ratio   *Num    `json:"ratio,omitempty"`
	RatioCI *[2]Num `json:"ratio_ci95,omitempty"`
}

// Summarize fits runs and returns the result with the estimate and shape check.
func Summarize(runs []Run) (Result, Estimate, Shape) {
	crashes, censored := Times(runs)
	e := Fit(crashes, censored)
	res := Result{Runs: e.Runs, Crashes: e.Crashes, Censored: e.Censored, Times: []Num{},
		Rate: Num(e.Rate), RateCI: [2]Num{Num(e.RateLo), Num(e.RateHi)},
		MTTC: Num(e.MTTC), MTTCCI: [2]Num{Num(e.MTTCLo), Num(e.MTTCHi)}}
	for _, t := range crashes {
		res.Times = append(res.Times, Num(round3(t)))
	}
	return res, e, CheckShape(crashes, censored)
}

// WithCompare adds the second load's result and the rate ratio.
func (r *Result) WithCompare(second Result, ratio Ratio) {
	r.Compare = &second
	v := Num(ratio.Ratio)
	ci := [2]Num{Num(ratio.Lo), Num(ratio.Hi)}
	r.Ratio, r.RatioCI = &v, &ci
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// Dur formats seconds for people: "46 min", "3.2 s", "2.1 h", "∞".
func Dur(s float64) string {
	switch {
	case math.IsInf(s, 1) || math.IsNaN(s):
		return "∞"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 100:
		return fmt.Sprintf("%.3g s", s)
	case s < 100*60:
		return fmt.Sprintf("%.3g min", s/60)
	case s < 72*3600:
		return fmt.Sprintf("%.3g h", s/3600)
	}
	return fmt.Sprintf("%.3g days", s/86400)
}

// rateUnit picks the unit a rate per second reads best in: the factor and its name.
func rateUnit(r float64) (float64, string) {
	switch {
	case r >= 1:
		return 1, "/s"
	case r*60 >= 1:
		return 60, "/min"
	case r*3600 >= 1:
		return 3600, "/h"
	}
	return 86400, "/day"
}

// WriteText prints runs and their estimate for people: counts, rate, mean time to
// crash with intervals, the shape warning and a histogram of the times to crash.
func WriteText(w io.Writer, label string, runs []Run, e Estimate, s Shape) {
	if label != "" {
		fmt.Fprintf(w, "%s\n", label)
	}
	other, silent := 0, 0
	for _, r := range runs {
		switch r.Outcome {
		case OutcomeOther:
			other++
		case OutcomeSilent:
			silent++
		}
	}
	fmt.Fprintf(w, "  runs %d: %d crashed, %d censored", e.Runs, e.Crashes, e.Censored)
	if other > 0 {
		fmt.Fprintf(w, " (%d of them by another crash)", other)
	}
	if silent > 0 {
		fmt.Fprintf(w, " (%d when the host went silent)", silent)
	}
	fmt.Fprintf(w, "; %s watched\n", Dur(e.Exposure))
	if e.Crashes == 0 {
		k, unit := rateUnit(e.RateHi)
		fmt.Fprintf(w, "  no crash: rate below %.3g%s (95%%), mean time to crash above %s\n", e.RateHi*k, unit, Dur(e.MTTCLo))
	} else {
		k, unit := rateUnit(e.Rate)
		fmt.Fprintf(w, "  rate %.3g%s (95%%: %.3g–%.3g%s)\n", e.Rate*k, unit, e.RateLo*k, e.RateHi*k, unit)
		fmt.Fprintf(w, "  mean time to crash %s (95%%: %s–%s)\n", Dur(e.MTTC), Dur(e.MTTCLo), Dur(e.MTTCHi))
	}
	if warn := s.Warning(); warn != "" {
		fmt.Fprintf(w, "  WARNING: %s\n", warn)
	} else if s.Checked {
		fmt.Fprintf(w, "  memoryless: Weibull shape %.2g is consistent with 1 (p=%.2g)\n", s.K, s.P)
	}
	writeHistogram(w, runs)
}

// writeHistogram draws the times to crash in up to 10 bins, censored runs apart.
func writeHistogram(w io.Writer, runs []Run) {
	crashes, censored := Times(runs)
	if len(crashes) == 0 {
		return
	}
	hi := 0.0
	for _, t := range crashes {
		hi = math.Max(hi, t)
	}
	bins := min(10, max(1, len(crashes)))
	width := hi / float64(bins)
	if width <= 0 {
		width = 1
	}
	counts := make([]int, bins)
	most := 0
	for _, t := range crashes {
		i := min(bins-1, int(t/width))
		counts[i]++
		most = max(most, counts[i])
	}
	scale := 1.0
	if most > 40 {
		scale = 40 / float64(most)
	}
	fmt.Fprintf(w, "  time to crash:\n")
	for i, n := range counts {
		bar := strings.Repeat("#", int(math.Ceil(float64(n)*scale)))
		fmt.Fprintf(w, "  %10s–%-10s %3d %s\n", Dur(float64(i)*width), Dur(float64(i+1)*width), n, bar)
	}
	if len(censored) > 0 {
		fmt.Fprintf(w, "  %21s %3d %s\n", "censored", len(censored), strings.Repeat("-", int(math.Ceil(float64(len(censored))*scale))))
	}
}

// RatioText says how much more often the first load makes the crash than the second.
func RatioText(first, second string, r Ratio) string {
	f := func(v float64) string {
		if math.IsInf(v, 1) {
			return "∞"
		}
		return fmt.Sprintf("%.2g", v)
	}
	switch {
	case math.IsNaN(r.Ratio):
		return fmt.Sprintf("neither %s nor %s crashed: no ratio", first, second)
	case r.Ratio >= 1:
		return fmt.Sprintf("%s makes this crash %s× more frequent than %s (95%%: %s–%s×)", first, f(r.Ratio), second, f(r.Lo), f(r.Hi))
	}
	inv := func(v float64) float64 {
		if v == 0 {
			return math.Inf(1)
		}
		return 1 / v
	}
	return fmt.Sprintf("%s makes this crash %s× more frequent than %s (95%%: %s–%s×)", second, f(inv(r.Ratio)), first, f(inv(r.Hi)), f(inv(r.Lo)))
}
