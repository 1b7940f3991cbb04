package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// PrintScenario writes a scenario's JSON result for people.
func PrintScenario(w io.Writer, name string, raw json.RawMessage) error {
	switch name {
	case "race":
		var r RaceResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s, flood %d pps\n", r.ABI, r.PPS)
		for _, m := range []RaceMeasure{r.Loaded, r.Idle, r.Fixed} {
			mttc := "no crash"
			if m.Crashes > 0 {
				mttc = fmt.Sprintf("mean time to crash %.1fs", m.MTTCS)
			}
			fmt.Fprintf(w, "  %-16s %-12s %d runs, %d crashes in %.1fs watched (%s); times %v\n",
				m.Module, m.Load, m.Runs, m.Crashes, m.WatchedS, mttc, m.TimesS)
		}
		if r.LoadedOverIdle > 0 {
			fmt.Fprintf(w, "  the flood crashes it %.1fx more often than idle\n", r.LoadedOverIdle)
		} else {
			fmt.Fprintf(w, "  idle survived %.1fx the loaded mean time to crash; fixed=1 survived %.1fx\n", r.IdleWatchedOverMTTC, r.FixedWatchedOverMTTC)
		}
	case "regression":
		var r RegressionResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "race gated at %s, flood %d pps, runs of at most %.0fs (%s)\n", r.GatedAt, r.PPS, r.LimitS, r.Note)
		for _, t := range r.Targets {
			fmt.Fprintf(w, "  %-8s %-28s gated=%-5v %d/%d runs crashed, times %v\n", t.Name, t.ABI, t.Gated, t.Crashes, t.Runs, t.TimesS)
		}
	case "hardware":
		var r HardwareResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s\n", r.ABI)
		for _, t := range r.Targets {
			for _, run := range t.Runs {
				what := "no crash"
				if run.Crash != nil {
					what = run.Crash.Title
				}
				fmt.Fprintf(w, "  %-8s %-10s %-9s %5.1fs  mce lines %-3d %s\n", t.Name, t.Role, run.Fault, run.Seconds, run.MCELines, what)
			}
		}
		fmt.Fprintf(w, "  bit flips crashed in %d functions: %s; fatal machine check read as %q\n",
			r.DistinctFunctions, strings.Join(r.Functions, ", "), r.FatalMCEKind)
	case "pstore":
		var r PstoreResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s, %s; the console showed %q\n", r.ABI, r.Trigger, r.SerialTitles)
		for _, p := range r.PstoreRecords {
			fmt.Fprintf(w, "  %-20s %6d bytes  %q  %s\n", p.Name, p.Bytes, p.Titles, p.Path)
		}
		fmt.Fprintf(w, "  %d oops lines of the console found byte for byte in the records: %v\n", r.OopsLines, r.OopsLinesMatched)
	case "repro":
		type est struct {
			Runs     int        `json:"runs"`
			Crashes  int        `json:"crashes"`
			Censored int        `json:"censored"`
			TimesS   []float64  `json:"times_s"`
			Rate     float64    `json:"rate_per_s"`
			RateCI   []*float64 `json:"rate_ci95"`
			MTTC     *float64   `json:"mttc_s"`
			MTTCCI   []*float64 `json:"mttc_ci95"`
		}
		type soak struct {
			Required  float64 `json:"required_s"`
			Watched   float64 `json:"watched_s"`
			Verdict   string  `json:"verdict"`
			Reduction float64 `json:"rate_reduction_at_least"`
		}
		var r struct {
			Repro struct {
				est
				Compare est        `json:"compare"`
				RatioCI []*float64 `json:"ratio_ci95"`
			} `json:"repro"`
			SoakFixed soak `json:"soak_fixed"`
			SoakBuggy soak `json:"soak_buggy"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		bound := func(p []*float64, i int) string {
			if i >= len(p) || p[i] == nil {
				return "∞"
			}
			return fmt.Sprintf("%.3g", *p[i])
		}
		for _, e := range []struct {
			name string
			e    est
		}{{"flood", r.Repro.est}, {"idle", r.Repro.Compare}} {
			fmt.Fprintf(w, "  %-6s %d runs, %d crashes, %d censored; rate %.3g/s (95%%: %s–%s); times %v\n",
				e.name, e.e.Runs, e.e.Crashes, e.e.Censored, e.e.Rate, bound(e.e.RateCI, 0), bound(e.e.RateCI, 1), e.e.TimesS)
		}
		fmt.Fprintf(w, "  the flood makes the crash at least %s× more frequent than idle (95%%)\n", bound(r.Repro.RatioCI, 0))
		for _, s := range []struct {
			name string
			s    soak
		}{{"buggy", r.SoakBuggy}, {"fixed=1", r.SoakFixed}} {
			fmt.Fprintf(w, "  soak %-7s %s after %.1fs of the %.1fs required", s.name, s.s.Verdict, s.s.Watched, s.s.Required)
			if s.s.Verdict == "fixed" {
				fmt.Fprintf(w, "; the rate dropped at least %.2f×", s.s.Reduction)
			}
			fmt.Fprintln(w)
		}
	case "fleet":
		return printFleetScenario(w, raw)
	case "bisect":
		var r struct {
			Candidates []string `json:"candidates"`
			GatedAt    string   `json:"gated_at"`
			Bisect     struct {
				Culprit    *string `json:"culprit"`
				Confidence float64 `json:"confidence"`
				Runs       int     `json:"runs"`
				Seconds    float64 `json:"test_seconds"`
				Steps      []struct {
					Candidate string  `json:"candidate"`
					Seconds   float64 `json:"seconds"`
					Outcome   string  `json:"outcome"`
				} `json:"steps"`
			} `json:"bisect"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "  candidates %s; the race from %s\n", strings.Join(r.Candidates, " "), r.GatedAt)
		for i, s := range r.Bisect.Steps {
			fmt.Fprintf(w, "  step %d: %s %s after %.1fs\n", i+1, s.Candidate, s.Outcome, s.Seconds)
		}
		culprit := "none"
		if r.Bisect.Culprit != nil {
			culprit = *r.Bisect.Culprit
		}
		fmt.Fprintf(w, "  first bad: %s at %.1f%% confidence (%d runs, %.0fs under load); the controller was killed mid-test and resumed\n",
			culprit, 100*r.Bisect.Confidence, r.Bisect.Runs, r.Bisect.Seconds)
	default:
		fmt.Fprintf(w, "%s\n", raw)
	}
	return nil
}
