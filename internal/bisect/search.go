package bisect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// Outcomes of a test.
const (
	Crash      = "crash"      // the target crash: the candidate is bad
	Survived   = "survived"   // watched without the target crash
	Other      = "other"      // another crash ended the test: no information
	Untestable = "untestable" // the candidate could not be installed or booted
)

// Phases of a step.
const (
	PhaseSearch = "search"
	PhaseVerify = "verify"
)

// Test is what the search asks a predicate to do: load Candidate for at most
// Seconds and say what happened.
type Test struct {
	Candidate int     `json:"candidate"`
	Seconds   float64 `json:"seconds"`
	Phase     string  `json:"phase"`
}

// Observation is a predicate's answer.
type Observation struct {
	Outcome string `json:"outcome"`
	// Seconds is the time watched under load: up to the crash, or the whole test.
	Seconds   float64 `json:"seconds"`
	Signature string  `json:"signature,omitempty"`
	Title     string  `json:"title,omitempty"`
	Report    int64   `json:"report,omitempty"` // the crash's id in the crash database
	Note      string  `json:"note,omitempty"`
}

// Predicate runs one test. An error stops the search (the test is run again on
// resume); a candidate that cannot be booted is an Untestable observation.
type Predicate func(ctx context.Context, t Test) (Observation, error)

// Verdicts.
const (
	VerdictCulprit    = "culprit"       // the first bad candidate, at the confidence asked
	VerdictNoCulprit  = "no culprit"    // nothing in the range crashes: the bad end did not reproduce
	VerdictGoodEndBad = "good end bad"  // the good end crashes: the regression is older than the range
	VerdictAmbiguous  = "ambiguous"     // untestable candidates hide the culprit: no test can tell more
	VerdictIncomplete = "incomplete"    // stopped by the step budget
	VerdictNoneBoots  = "nothing boots" // every candidate is untestable
	verdictRunning    = "running"       // not a verdict: the search goes on
	maxOthers         = 3               // other crashes on a candidate before it is untestable
	minInfo           = 1e-4            // bits: below this no test is worth running
	lengthSteps       = 5               // test lengths tried per step in auto mode
	defaultMaxSteps   = 5000            // a runaway guard
	defaultEndDoubt   = 0.1             // prior weight of the presumed endpoints being wrong
	defaultConfidence = 0.95            // --confidence
	defaultShape      = 0.5             // Gamma prior of λ without --rate-from (Jeffreys' shape for a rate)
	rateQuantile      = 0.1             // the lower bound of λ a culprit verdict must hold at
)

// Verdict is how a search ended.
type Verdict struct {
	Status string `json:"status"`
	// Culprit is the first bad candidate (-1: none); Confidence its posterior
	// (for "no culprit", that of no culprit).
	Culprit    int     `json:"culprit"`
	Confidence float64 `json:"confidence"`
	Note       string  `json:"note,omitempty"`
}

// Search is the search's logic over a state: it rebuilds the posterior from the
// state's steps and decides the next test.
type Search struct {
	st         *State
	post       *Posterior
	probs      []float64
	cum        []float64
	others     []int
	crashed    []bool
	untestable []bool
	info       []float64 // scratch of choose
	crash      []float64
	infoH      []float64
}

// NewSearch returns the search of a state (a new one or one read back).
func NewSearch(st *State) (*Search, error) {
	if err := st.Config.check(); err != nil {
		return nil, err
	}
	c := &st.Config
	n := len(c.Candidates)
	doubt := map[int]float64{}
	if c.FirstIsGood {
		doubt[0] = c.EndDoubt
	}
	s := &Search{st: st, post: NewPosterior(n, c.PriorShape, c.PriorRate, doubt, c.EndDoubt),
		others: make([]int, n), crashed: make([]bool, n), untestable: make([]bool, n), cum: make([]float64, n+1)}
	for _, step := range st.Steps {
		s.apply(step)
	}
	s.update()
	return s, nil
}

// apply adds a step's observation.
func (s *Search) apply(step Step) {
	i := step.Candidate
	switch step.Outcome {
	case Crash:
		s.post.Observe(i, step.Watched, true)
		s.crashed[i] = true
	case Survived:
		s.post.Observe(i, step.Watched, false)
	case Other:
		s.others[i]++
		if s.others[i] >= maxOthers && !s.crashed[i] {
			s.untestable[i] = true
		}
	case Untestable:
		s.untestable[i] = true
	}
}

func (s *Search) update() {
	s.probs = s.post.Probs(s.probs)
	acc := 0.0
	for h, v := range s.probs {
		acc += v
		s.cum[h] = acc
	}
}

// Probs is the current posterior of the first bad candidate (index N: none).
func (s *Search) Probs() []float64 { return s.probs }

// Rate is the Gamma posterior of the crash rate (shape, rate per second) if the
// top candidate is the first bad one.
func (s *Search) Rate() (float64, float64) {
	k, _ := Top(s.probs)
	return s.post.RateAt(k)
}

// Record adds the observation of test t as a step of the state.
func (s *Search) Record(t Test, o Observation, start time.Time) Step {
	st := s.st
	step := Step{N: len(st.Steps) + 1, Candidate: t.Candidate, Version: st.Config.Candidates[t.Candidate], Phase: t.Phase,
		Asked: t.Seconds, Watched: o.Seconds, Outcome: o.Outcome, Signature: o.Signature, Title: o.Title,
		Report: o.Report, Note: o.Note, Start: start}
	if step.Outcome != Crash && step.Outcome != Survived {
		step.Watched = 0
		if step.Outcome != Other {
			step.Outcome = Untestable
		}
	}
	if !(step.Watched >= 0) || math.IsInf(step.Watched, 0) {
		step.Watched = 0
	}
	if step.Outcome == Crash && step.Watched == 0 {
		step.Watched = 1e-3 // a crash at once: the density needs a positive time
	}
	s.apply(step)
	if v := st.Verify; v != nil && t.Phase == PhaseVerify && t.Candidate == v.Culprit-1 {
		v.Soaked = true
	}
	s.update()
	step.Top, step.TopP = Top(s.probs)
	st.Steps = append(st.Steps, step)
	return step
}

// Next returns the next test, or the verdict when the search is over.
func (s *Search) Next() (Test, *Verdict) {
	c := &s.st.Config
	n := len(c.Candidates)
	testable := 0
	for i, u := range s.untestable {
		if !u && (i > 0 || !c.FirstIsGood) {
			testable++
		}
	}
	k, pk := Top(s.probs)
	if testable == 0 {
		return Test{}, &Verdict{Status: VerdictNoneBoots, Culprit: -1, Note: "no candidate after the good end could be installed and booted: check the install and boot hooks"}
	}
	if pk >= c.Confidence && k < n && !(c.FirstIsGood && k == 0) {
		pk = s.lowRateConfidence(k, pk)
	}
	if pk >= c.Confidence {
		switch {
		case k == n:
			return Test{}, &Verdict{Status: VerdictNoCulprit, Culprit: -1, Confidence: pk,
				Note: "no candidate showed the target crash, the bad end included: check the load and the signature, or the bad end"}
		case c.FirstIsGood && k == 0:
			return Test{}, &Verdict{Status: VerdictGoodEndBad, Culprit: 0, Confidence: pk,
				Note: "the good end " + c.Candidates[0] + " shows the target crash: the regression is older than the range; bisect again from an older good end"}
		}
		if t, ok := s.verify(k); ok {
			return t, nil
		}
		return Test{}, &Verdict{Status: VerdictCulprit, Culprit: k, Confidence: pk}
	}
	if len(s.st.Steps) >= c.MaxSteps {
		return Test{}, s.unsure(VerdictIncomplete, fmt.Sprintf("stopped after %d steps (the budget) below the confidence asked", c.MaxSteps))
	}
	if s.post.Crashes == 0 && s.post.Watched[n-1] >= s.noCrashLimit() {
		return Test{}, &Verdict{Status: VerdictNoCulprit, Culprit: -1, Confidence: s.probs[n],
			Note: fmt.Sprintf("no crash in %.0fs of load on the bad end %s: it does not reproduce; check the load and the signature, or give a rate with --rate-from", s.post.Watched[n-1], c.Candidates[n-1])}
	}
	if lo, hi, m := s.block(); hi > lo && m >= c.Confidence {
		v := s.unsure(VerdictAmbiguous, fmt.Sprintf("the first bad is one of %s..%s (%.1f%%): %s..%s cannot be tested, so nothing can tell them apart",
			c.Candidates[lo], c.Candidates[min(hi, n-1)], 100*m, c.Candidates[lo], c.Candidates[hi-1]))
		v.Confidence = m
		return Test{}, v
	}
	t, info := s.choose()
	if info < minInfo {
		return Test{}, s.unsure(VerdictIncomplete, "no test within the longest test length tells more: raise the longest test")
	}
	return t, nil
}

// lowRateConfidence is the confidence in culprit k that the verdict states: its
// posterior pk, or less when the crash rate is lower than its posterior mean
// says. With few crashes seen the rate is uncertain, and a search that happened
// to see quick crashes believes the survivals of bad candidates too much (a fixed
// true rate is not the vague prior the posterior averages over). So the culprit
// must also reach the confidence when λ is at its lower bound, the rateQuantile
// quantile of its posterior given k: then survivals count for as little as the
// data allow. Once many crashes are seen the bound is close to the mean and this
// changes nothing.
func (s *Search) lowRateConfidence(k int, pk float64) float64 {
	a, b := s.post.RateAt(k)
	lo := distuv.Gamma{Alpha: a, Beta: b}.Quantile(rateQuantile)
	if r := s.post.ProbAtRate(k, lo); r < pk {
		return r
	}
	return pk
}

// block returns the most probable block of first-bad hypotheses no test can
// tell apart (h and h+1 differ only by whether candidate h is bad, so an
// untestable h joins them) and its probability.
func (s *Search) block() (lo, hi int, mass float64) {
	start, m := 0, 0.0
	for h, p := range s.probs {
		m += p
		if h < len(s.untestable) && s.untestable[h] {
			continue
		}
		if m > mass {
			lo, hi, mass = start, h, m
		}
		start, m = h+1, 0
	}
	return lo, hi, mass
}

// noCrashLimit is how long the bad end is loaded without any crash before the
// search says it does not reproduce: 100 runs (a bad end that crashes in one run
// of ten survives them with probability 3·10⁻⁵), or 20 tests of the longest
// length.
func (s *Search) noCrashLimit() float64 {
	c := &s.st.Config
	if c.RunLength > 0 {
		return 100 * c.RunLength
	}
	return 20 * c.MaxTest
}

// unsure is a verdict below the confidence: the top candidate and the range of
// the likely ones.
func (s *Search) unsure(status, note string) *Verdict {
	k, pk := Top(s.probs)
	v := &Verdict{Status: status, Culprit: k, Confidence: pk, Note: note}
	if k == len(s.st.Config.Candidates) {
		v.Culprit = -1
	}
	return v
}

// verify returns the verification test still due for culprit k: the culprit must
// have crashed, and its predecessor must have survived under load at least the
// soak that halves the remaining doubt on it (the time a bad predecessor would
// survive with probability 1/2 at the rate the culprit shows). A predecessor
// watched that long already needs no more.
func (s *Search) verify(k int) (Test, bool) {
	c := &s.st.Config
	if !c.Verify {
		return Test{}, false
	}
	if s.st.Verify == nil || s.st.Verify.Culprit != k {
		s.st.Verify = &VerifyState{Culprit: k}
	}
	a, b := s.Rate()
	if !s.crashed[k] && !s.untestable[k] {
		return Test{Candidate: k, Seconds: s.length(math.Max(1, 3*b/a)), Phase: PhaseVerify}, true
	}
	goodEnd := k == 1 && c.FirstIsGood
	if k == 0 || s.untestable[k-1] || s.st.Verify.Soaked && !goodEnd {
		return Test{}, false
	}
	// The soak halves the doubt left on an interior predecessor (one the search
	// weighed like any other); the good end, presumed good rather than observed,
	// is soaked until a bad one would have crashed with the confidence asked.
	half := s.length(b * (math.Pow(2, 1/a) - 1))
	if goodEnd {
		half = b * (math.Pow(1/(1-c.Confidence), 1/a) - 1)
	}
	if s.post.Watched[k-1] >= half*(1-1e-6) { // the test's end is timed to the microsecond
		return Test{}, false
	}
	if c.RunLength <= 0 {
		half = s.length(half - s.post.Watched[k-1])
	} else {
		half = c.RunLength
	}
	return Test{Candidate: k - 1, Seconds: half, Phase: PhaseVerify}, true
}

// length clamps a test length: the fixed run length when there is one.
func (s *Search) length(t float64) float64 {
	c := &s.st.Config
	if c.RunLength > 0 {
		return c.RunLength
	}
	return math.Min(c.MaxTest, math.Max(c.MinTest, t))
}

// choose picks the test with the most expected information per second, and says
// how much information on the culprit the most telling test gives (bits).
func (s *Search) choose() (Test, float64) {
	c := &s.st.Config
	a, b := s.Rate()
	mean := b / a // the mean time to crash the posterior expects (1/E[λ])
	var lengths []float64
	if c.RunLength > 0 {
		lengths = []float64{c.RunLength}
	} else {
		for j := range lengthSteps {
			lengths = append(lengths, s.length(mean*math.Pow(2, float64(j-2))))
		}
	}
	best, bestRate, bestInfo := Test{Candidate: -1}, -1.0, 0.0
	rate := a / b
	n := len(c.Candidates)
	if len(s.info) < n {
		s.info, s.crash, s.infoH = make([]float64, n), make([]float64, n), make([]float64, n)
	}
	bestH := 0.0
	for _, t := range lengths {
		s.post.Info(s.probs, t, s.info, s.crash, s.infoH)
		spentBad := t
		if rate > 0 {
			spentBad = -math.Expm1(-rate*t) / rate
		}
		for i := range n {
			if s.untestable[i] {
				continue
			}
			info, f := s.info[i], s.cum[i]
			bestH = math.Max(bestH, s.infoH[i])
			cost := 1.0
			if c.RunLength <= 0 {
				cost = c.Overhead + f*spentBad + (1-f)*t
			}
			if r := info / cost; r > bestRate {
				best, bestRate, bestInfo = Test{Candidate: i, Seconds: t, Phase: PhaseSearch}, r, info
			}
		}
	}
	_ = bestInfo
	return best, bestH
}

// Hooks are the callbacks of Run.
type Hooks struct {
	// Save persists the state; it is called before every test (with the test
	// pending) and after every observation. An error stops the search.
	Save func(*State) error
	// Step is told of every step recorded, with the posterior after it.
	Step func(s *Search, step Step)
	// Start is told of every test about to run.
	Start func(t Test)
}

// ErrDone is returned by Run for a state whose search is already over.
var ErrDone = errors.New("this bisection is already over")

// Run runs the search of st to its verdict: a pending test (one a killed
// controller was running) is run again first. It returns the verdict, or the
// error that stopped it with the state saved.
func Run(ctx context.Context, st *State, pred Predicate, h Hooks) (*Verdict, error) {
	if st.Verdict != nil {
		return st.Verdict, ErrDone
	}
	s, err := NewSearch(st)
	if err != nil {
		return nil, err
	}
	save := func() error {
		st.Updated = time.Now()
		if h.Save != nil {
			return h.Save(st)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := Test{}
		if st.Pending != nil {
			t = st.Pending.Test
		} else {
			var v *Verdict
			t, v = s.Next()
			if v != nil {
				st.Verdict = v
				return v, save()
			}
			st.Pending = &Pending{Test: t, Start: time.Now()}
		}
		if err := save(); err != nil {
			return nil, err
		}
		if h.Start != nil {
			h.Start(t)
		}
		start := time.Now()
		o, err := pred(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("step %d (%s): %w", len(st.Steps)+1, st.Config.Candidates[t.Candidate], err)
		}
		step := s.Record(t, o, start)
		st.Pending = nil
		if err := save(); err != nil {
			return nil, err
		}
		if h.Step != nil {
			h.Step(s, step)
		}
	}
}
