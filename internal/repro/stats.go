// Package repro measures how often a kernel crash happens under a load and proves
// a fix: the statistics of time-to-crash with censored runs (exponential MLE,
// chi-square intervals, rate ratios, a Weibull check of the memoryless assumption,
// the soak time a confidence needs), and the run loops of `kcrash repro` and
// `kcrash soak`, driven through small interfaces (Load, Hook, Watcher) so tests
// use fakes and the lab can plug its targets in.
//
// Nothing here logs or exits; every loop returns what it recorded with its error.
package repro

import (
	"encoding/json"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Num is a float64 whose JSON form is null when it is not finite (an interval
// with no upper bound, a mean time to crash when nothing crashed).
type Num float64

// MarshalJSON writes a finite number, or null.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads a number; null reads as +Inf (an unbounded upper end).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.Inf(1))
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// Estimate is the exponential model fitted to runs: each run either crashed after
// its time or was censored (watched that long without the crash).
type Estimate struct {
	Runs, Crashes, Censored int
	// Exposure is the total watched time in seconds, crashed and censored runs alike.
	Exposure float64
	// Rate is the maximum-likelihood crash rate per second (Crashes/Exposure);
	// RateLo and RateHi its two-sided 95% interval (chi-square bounds).
	Rate, RateLo, RateHi float64
	// MTTC is the mean time to crash, 1/Rate (+Inf without crashes); MTTCLo and
	// MTTCHi its interval (1/RateHi, 1/RateLo).
	MTTC, MTTCLo, MTTCHi float64
}

// Level is the confidence of every interval this package states.
const Level = 0.95

// chi2q is the p quantile of the chi-square distribution with k degrees of freedom.
func chi2q(p float64, k int) float64 {
	return distuv.ChiSquared{K: float64(k)}.Quantile(p)
}

// RateInterval returns the two-sided interval at level for a Poisson rate from d
// events in exposure t (time-censored data): χ²(α/2; 2d)/2t and χ²(1−α/2; 2d+2)/2t,
// the exact (Garwood) bounds. The lower bound is 0 when d is 0; both are +Inf when
// t is 0.
func RateInterval(d int, t, level float64) (lo, hi float64) {
	if t <= 0 {
		return 0, math.Inf(1)
	}
	a := 1 - level
	if d > 0 {
		lo = chi2q(a/2, 2*d) / (2 * t)
	}
	hi = chi2q(1-a/2, 2*d+2) / (2 * t)
	return lo, hi
}

// Fit estimates the crash rate from crash times and censored times (seconds).
func Fit(crashes, censored []float64) Estimate {
	e := Estimate{Runs: len(crashes) + len(censored), Crashes: len(crashes), Censored: len(censored)}
	for _, t := range crashes {
		e.Exposure += t
	}
	for _, t := range censored {
		e.Exposure += t
	}
	if e.Exposure > 0 {
		e.Rate = float64(e.Crashes) / e.Exposure
	}
	e.RateLo, e.RateHi = RateInterval(e.Crashes, e.Exposure, Level)
	e.MTTC, e.MTTCLo, e.MTTCHi = inv(e.Rate), inv(e.RateHi), inv(e.RateLo)
	return e
}

func inv(r float64) float64 {
	if r <= 0 {
		return math.Inf(1)
	}
	return 1 / r
}

// Ratio is the ratio of two crash rates with its 95% interval.
type Ratio struct {
	Ratio, Lo, Hi float64
}

// RateRatio compares the rates of a and b (a's over b's). The interval is the
// exact conditional one: given n = d_a + d_b crashes, d_a is binomial with
// p = λa·Ta/(λa·Ta + λb·Tb); the Clopper-Pearson bounds on p become bounds on
// λa/λb. A side without crashes leaves that end at 0 or +Inf.
func RateRatio(a, b Estimate) Ratio {
	r := Ratio{Ratio: math.NaN(), Lo: 0, Hi: math.Inf(1)}
	if a.Exposure <= 0 || b.Exposure <= 0 {
		return r
	}
	da, db := a.Crashes, b.Crashes
	switch {
	case da > 0 && db > 0:
		r.Ratio = a.Rate / b.Rate
	case da > 0:
		r.Ratio = math.Inf(1)
	case db > 0:
		r.Ratio = 0
	}
	n := da + db
	if n == 0 {
		return r
	}
	alpha := 1 - Level
	scale := b.Exposure / a.Exposure
	odds := func(p float64) float64 {
		if p >= 1 {
			return math.Inf(1)
		}
		return p / (1 - p) * scale
	}
	if da > 0 {
		r.Lo = odds(distuv.Beta{Alpha: float64(da), Beta: float64(n - da + 1)}.Quantile(alpha / 2))
	}
	if db > 0 {
		r.Hi = odds(distuv.Beta{Alpha: float64(da + 1), Beta: float64(n - da)}.Quantile(1 - alpha/2))
	}
	return r
}

// SoakTime is how long the load must run without the crash to say, with
// confidence c, that a bug with mean time to crash mttc is gone:
// T = mttc·ln(1/(1−c)) (3.0× at 95%, 4.6× at 99%). Pass the pessimistic (upper)
// bound of the mean time to crash.
func SoakTime(mttc, c float64) float64 {
	return mttc * math.Log(1/(1-c))
}

// SoakConfidence is the confidence that a clean stretch of watched seconds gives
// against a bug with mean time to crash mttc: 1 − exp(−watched/mttc).
func SoakConfidence(watched, mttc float64) float64 {
	if watched <= 0 || mttc <= 0 || math.IsInf(mttc, 0) {
		return 0
	}
	return 1 - math.Exp(-watched/mttc)
}

// RateReduction is the least factor by which a bug's rate must have dropped, at
// 95%, if it is still there after watched clean seconds: a remaining rate above
// ln(20)/watched would have shown a crash with more than 95% probability, so the
// rate fell from rate to at most that. 0 when nothing was watched.
func RateReduction(rate, watched float64) float64 {
	if watched <= 0 || rate <= 0 {
		return 0
	}
	return rate * watched / math.Log(1/(1-Level))
}
