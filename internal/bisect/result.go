package bisect

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Result is `kcrash bisect --json` (its final line): the contract is exactly
// these keys. Culprit is null when the search ends without one.
type Result struct {
	Culprit     *string      `json:"culprit"`
	Confidence  float64      `json:"confidence"`
	Runs        int          `json:"runs"`
	TestSeconds float64      `json:"test_seconds"`
	Steps       []ResultStep `json:"steps"`
}

// ResultStep is one step of Result.
type ResultStep struct {
	Candidate string  `json:"candidate"`
	Seconds   float64 `json:"seconds"`
	Outcome   string  `json:"outcome"`
}

// Runs counts the tests that loaded a candidate (untestable ones did not) and
// their watched seconds.
func Runs(steps []Step) (int, float64) {
	n, secs := 0, 0.0
	for _, s := range steps {
		if s.Outcome != Untestable {
			n++
			secs += s.Watched
		}
	}
	return n, secs
}

// Result returns the state's result: its verdict's culprit, or none yet.
func (st *State) Result() Result {
	r := Result{Steps: []ResultStep{}}
	r.Runs, r.TestSeconds = Runs(st.Steps)
	r.TestSeconds = round3(r.TestSeconds)
	for _, s := range st.Steps {
		r.Steps = append(r.Steps, ResultStep{Candidate: s.Version, Seconds: round3(s.Watched), Outcome: s.Outcome})
	}
	if v := st.Verdict; v != nil {
		r.Confidence = round3(v.Confidence)
		if v.Culprit >= 0 && (v.Status == VerdictCulprit || v.Status == VerdictGoodEndBad) {
			c := st.Config.Candidates[v.Culprit]
			r.Culprit = &c
		}
	}
	return r
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// Suspect is a candidate and its posterior of being the first bad one.
type Suspect struct {
	Candidate int     `json:"candidate"`
	Version   string  `json:"version"` // "(none)" for no culprit
	P         float64 `json:"p"`
}

// Suspects returns the n most likely first bad candidates.
func Suspects(cands []string, probs []float64, n int) []Suspect {
	var out []Suspect
	for h, p := range probs {
		v := "(no culprit)"
		if h < len(cands) {
			v = cands[h]
		}
		out = append(out, Suspect{Candidate: h, Version: v, P: p})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].P > out[j].P })
	return out[:min(n, len(out))]
}

// StepLine is a step as the log prints it: candidate, test length, outcome and the
// top suspects after it.
func StepLine(st *State, step Step, probs []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d [%s] %s: ", step.N, step.Phase, step.Version)
	switch step.Outcome {
	case Crash:
		fmt.Fprintf(&b, "crashed after %.1fs (asked %.0fs)", step.Watched, step.Asked)
		if step.Title != "" {
			fmt.Fprintf(&b, ": %s", step.Title)
		}
	case Survived:
		fmt.Fprintf(&b, "survived %.1fs", step.Watched)
	case Other:
		fmt.Fprintf(&b, "another crash (%s), no information", step.Signature)
	default:
		fmt.Fprintf(&b, "untestable")
	}
	if step.Note != "" {
		fmt.Fprintf(&b, " [%s]", step.Note)
	}
	b.WriteString("; top:")
	for _, s := range Suspects(st.Config.Candidates, probs, 3) {
		if s.P < 0.005 {
			break
		}
		fmt.Fprintf(&b, " %s %.1f%%", s.Version, 100*s.P)
	}
	return b.String()
}

// WriteVerdict prints the verdict for people.
func WriteVerdict(w io.Writer, st *State) {
	v := st.Verdict
	if v == nil {
		fmt.Fprintln(w, "no verdict yet")
		return
	}
	runs, secs := Runs(st.Steps)
	c := st.Config.Candidates
	switch v.Status {
	case VerdictCulprit:
		prev := "(the good end)"
		if v.Culprit > 0 {
			prev = c[v.Culprit-1]
		}
		fmt.Fprintf(w, "first bad: %s (after %s), confidence %.1f%%: right %.0f times in 100 on average\n", c[v.Culprit], prev, 100*v.Confidence, 100*v.Confidence)
	case VerdictNoCulprit:
		fmt.Fprintf(w, "no culprit in the range (%.1f%%)\n", 100*v.Confidence)
	default:
		guess := "none"
		if v.Culprit >= 0 {
			guess = c[v.Culprit]
		}
		fmt.Fprintf(w, "%s: most likely first bad %s at %.1f%%\n", v.Status, guess, 100*v.Confidence)
	}
	if v.Note != "" {
		fmt.Fprintf(w, "  %s\n", v.Note)
	}
	fmt.Fprintf(w, "  %d runs, %.0fs under load, %d steps\n", runs, secs, len(st.Steps))
}

// Summary is a bisection as the dashboard shows it (the result of its campaign
// in the crash database): the candidates, every step, the posterior now.
type Summary struct {
	Candidates []string `json:"candidates"`
	Confidence float64  `json:"confidence_asked"`
	Target     string   `json:"target,omitempty"`
	Steps      []Step   `json:"steps"`
	// Posterior is P(first bad = candidate i), the last entry no culprit; left
	// out past maxSummaryPosterior candidates.
	Posterior []float64 `json:"posterior,omitempty"`
	Verdict   *Verdict  `json:"verdict,omitempty"`
	Result    Result    `json:"result"`
}

const maxSummaryPosterior = 4096

// Summarize returns the state's summary.
func Summarize(st *State) (Summary, error) {
	s, err := NewSearch(st)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Candidates: st.Config.Candidates, Confidence: st.Config.Confidence, Target: st.Target,
		Steps: st.Steps, Verdict: st.Verdict, Result: st.Result()}
	if len(st.Config.Candidates) <= maxSummaryPosterior {
		for _, p := range s.Probs() {
			sum.Posterior = append(sum.Posterior, round6(p))
		}
	}
	return sum, nil
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
