package bisect

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Strategies the simulation compares; kcrash@C is kcrash at --confidence C.
var Strategies = []string{"kcrash", "kcrash@0.99", "kcrash@0.999", "fixed10", "syzkaller", "single"}

// SimOptions configure a simulation: Trials bisections of Candidates candidates,
// the first bad one uniform among them (the implicit good end before the first),
// a bad candidate crashing at rate −ln(1−CrashProb)/RunLength under load, so a
// run of RunLength seconds crashes it with probability CrashProb.
type SimOptions struct {
	Candidates int
	CrashProb  float64
	// Rate, when set, is the crash rate per second instead (CrashProb is then
	// that of one run).
	Rate      float64
	RunLength float64 // seconds (default 60)
	// Auto lets kcrash choose its test lengths (up to MaxTest, Overhead seconds
	// per test) instead of runs of RunLength.
	Auto              bool
	MaxTest, Overhead float64
	Trials            int
	Seed              uint64
	Confidence        float64
	Parallel          int
}

// SimRow is one strategy at one crash probability: `kcrash bisect simulate
// --json` prints one per line. The contract is these keys.
type SimRow struct {
	Strategy             string  `json:"strategy"`
	CrashProb            float64 `json:"crash_prob"`
	Candidates           int     `json:"candidates"`
	Trials               int     `json:"trials"`
	Accuracy             float64 `json:"accuracy"`
	MeanRuns             float64 `json:"mean_runs"`
	MeanStatedConfidence float64 `json:"mean_stated_confidence"`
	MinRuns              float64 `json:"min_runs"`
	MeanTestSeconds      float64 `json:"mean_test_seconds"`
	// MaxRuns is the most runs one bisection took.
	MaxRuns int `json:"max_runs"`
}

// fake is a simulated range: candidates at or after culprit crash at rate.
type fake struct {
	culprit int
	rate    float64
	rng     *rand.Rand
}

func (f *fake) test(i int, secs float64) Observation {
	if i >= f.culprit {
		if tc := f.rng.ExpFloat64() / f.rate; tc < secs {
			return Observation{Outcome: Crash, Seconds: tc, Signature: "sim"}
		}
	}
	return Observation{Outcome: Survived, Seconds: secs}
}

func (f *fake) predicate(ctx context.Context, t Test) (Observation, error) {
	return f.test(t.Candidate, t.Seconds), nil
}

// trialOutcome is one simulated bisection.
type trialOutcome struct {
	culprit    int
	confidence float64
	runs       int
	seconds    float64
}

// Simulate runs Trials bisections per strategy, the same ranges (culprit and
// random stream seeds) for every strategy, and returns one row per strategy.
func Simulate(ctx context.Context, o SimOptions, strategies []string) ([]SimRow, error) {
	if o.Candidates < 2 || o.Trials <= 0 {
		return nil, fmt.Errorf("simulate: need 2 candidates or more and trials > 0")
	}
	if o.RunLength <= 0 {
		o.RunLength = 60
	}
	if o.Rate > 0 {
		o.CrashProb = -math.Expm1(-o.Rate * o.RunLength)
	} else if o.CrashProb > 0 && o.CrashProb < 1 {
		o.Rate = -math.Log1p(-o.CrashProb) / o.RunLength
	} else if o.CrashProb == 1 {
		o.Rate = 50 / o.RunLength
	} else {
		return nil, fmt.Errorf("simulate: crash probability %v is not in (0, 1]", o.CrashProb)
	}
	if o.Confidence == 0 {
		o.Confidence = defaultConfidence
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.GOMAXPROCS(0)
	}
	names := make([]string, o.Candidates)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	var rows []SimRow
	for _, strat := range strategies {
		run, err := strategy(strat, o, names)
		if err != nil {
			return nil, err
		}
		outs := make([]trialOutcome, o.Trials)
		culprits := make([]int, o.Trials)
		errs := make([]error, o.Trials)
		var wg sync.WaitGroup
		next := make(chan int)
		for range o.Parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range next {
					rng := rand.New(rand.NewPCG(o.Seed, uint64(t)))
					f := &fake{culprit: rng.IntN(o.Candidates), rate: o.Rate, rng: rng}
					culprits[t] = f.culprit
					outs[t], errs[t] = run(ctx, f)
				}
			}()
		}
		for t := range o.Trials {
			if ctx.Err() != nil {
				break
			}
			next <- t
		}
		close(next)
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		row := SimRow{Strategy: strat, CrashProb: o.CrashProb, Candidates: o.Candidates, Trials: o.Trials,
			MinRuns: round3(MinRuns(o.Candidates, o.CrashProb))}
		for t, out := range outs {
			if errs[t] != nil {
				return nil, errs[t]
			}
			if out.culprit == culprits[t] {
				row.Accuracy++
			}
			row.MeanRuns += float64(out.runs)
			row.MeanTestSeconds += out.seconds
			row.MeanStatedConfidence += out.confidence
			row.MaxRuns = max(row.MaxRuns, out.runs)
		}
		n := float64(o.Trials)
		row.Accuracy = round3(row.Accuracy / n)
		row.MeanRuns = round3(row.MeanRuns / n)
		row.MeanTestSeconds = round3(row.MeanTestSeconds / n)
		row.MeanStatedConfidence = round3(row.MeanStatedConfidence / n)
		rows = append(rows, row)
	}
	return rows, nil
}

// strategy returns a strategy's bisection of one simulated range.
func strategy(name string, o SimOptions, names []string) (func(context.Context, *fake) (trialOutcome, error), error) {
	n := len(names)
	// runs tests candidate i k times (stopping at the first crash when stop):
	// crashed, runs and seconds spent.
	repeat := func(f *fake, i, k int, stop bool, out *trialOutcome) int {
		crashes := 0
		for range k {
			obs := f.test(i, o.RunLength)
			out.runs++
			out.seconds += obs.Seconds
			if obs.Outcome == Crash {
				crashes++
				if stop {
					break
				}
			}
		}
		return crashes
	}
	// bisect is the classic bisection over (lo, hi], hi presumed bad, lo good;
	// bad says whether a candidate is bad.
	bisect := func(bad func(int) bool) int {
		lo, hi := -1, n-1
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if bad(mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi
	}
	conf := o.Confidence
	if v, ok := strings.CutPrefix(name, "kcrash@"); ok {
		c, err := strconv.ParseFloat(v, 64)
		if err != nil || !(c > 0 && c < 1) {
			return nil, fmt.Errorf("strategy %q: want kcrash@CONFIDENCE, 0 < CONFIDENCE < 1", name)
		}
		name, conf = "kcrash", c
	}
	switch name {
	case "kcrash":
		return func(ctx context.Context, f *fake) (trialOutcome, error) {
			c := Config{Candidates: names, Confidence: conf, Verify: true}
			if o.Auto {
				c.MaxTest, c.Overhead = o.MaxTest, o.Overhead
				if c.MaxTest <= 0 {
					c.MaxTest = 10 * o.RunLength
				}
			} else {
				c.RunLength = o.RunLength
			}
			st, err := NewState(c)
			if err != nil {
				return trialOutcome{}, err
			}
			v, err := Run(ctx, st, f.predicate, Hooks{})
			if err != nil {
				return trialOutcome{}, err
			}
			out := trialOutcome{culprit: -1, confidence: v.Confidence}
			if v.Status != VerdictNoCulprit {
				out.culprit = v.Culprit
			}
			if v.Culprit < 0 {
				out.confidence = 0 // a verdict of no culprit says the true culprit is nowhere
			}
			out.runs, out.seconds = Runs(st.Steps)
			return out, nil
		}, nil
	case "single", "fixed10":
		k := 1
		if name == "fixed10" {
			k = 10
		}
		return func(ctx context.Context, f *fake) (trialOutcome, error) {
			out := trialOutcome{confidence: 1}
			out.culprit = bisect(func(i int) bool { return repeat(f, i, k, true, &out) > 0 })
			return out, nil
		}, nil
	case "syzkaller":
		// syzbot: reproduce on the bad end with 10 VMs; flaky (not every VM
		// crashed) means 20 per commit; every commit tested on all of them; each
		// good verdict multiplies the confidence by the chance a bad commit
		// would have crashed; published at 0.66.
		return func(ctx context.Context, f *fake) (trialOutcome, error) {
			out := trialOutcome{culprit: -1}
			c := repeat(f, n-1, 10, false, &out)
			if c == 0 {
				return out, nil
			}
			r, k := float64(c)/10, 10
			if c < 10 {
				k = 20
			}
			out.confidence = 1
			out.culprit = bisect(func(i int) bool {
				if repeat(f, i, k, false, &out) > 0 {
					return true
				}
				out.confidence *= 1 - math.Pow(1-r, float64(k))
				return false
			})
			return out, nil
		}, nil
	}
	return nil, fmt.Errorf("no strategy %q (%v)", name, Strategies)
}

// SyzkallerPublish is the confidence at which syzbot publishes a bisection.
const SyzkallerPublish = 0.66
