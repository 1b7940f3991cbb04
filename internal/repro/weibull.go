package repro

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Shape is the check of the exponential (memoryless) assumption: a Weibull model
// fitted to the same censored runs, and a likelihood-ratio test of its shape
// against 1 (the exponential). A shape above 1 means the crash gets likelier the
// longer the load runs (a leak, a slow build-up); below 1, crashes bunch early
// (a boot-time or warm-up bug). Either way rates, intervals and soak times that
// assume a constant rate are off.
type Shape struct {
	// Checked is false with fewer than MinCrashesForShape crashes.
	Checked bool
	// K is the Weibull shape's maximum-likelihood estimate.
	K float64
	// P is the likelihood-ratio test's p-value for K = 1.
	P float64
	// Memoryless is false when the test rejects K = 1 at 5%.
	Memoryless bool
}

// MinCrashesForShape is the fewest crashes the shape check needs.
const MinCrashesForShape = 4

// minTime replaces a time of 0 (a crash seen at the load's start) in logarithms.
const minTime = 1e-3

// CheckShape fits a Weibull model to crash and censored times (seconds).
func CheckShape(crashes, censored []float64) Shape {
	s := Shape{Memoryless: true, K: math.NaN(), P: math.NaN()}
	if len(crashes) < MinCrashesForShape {
		return s
	}
	all := make([]float64, 0, len(crashes)+len(censored))
	var sumLog float64
	for _, t := range crashes {
		t = math.Max(t, minTime)
		all = append(all, t)
		sumLog += math.Log(t)
	}
	for _, t := range censored {
		all = append(all, math.Max(t, minTime))
	}
	d := float64(len(crashes))
	// The profile score in k, 1/k + mean(ln t_crash) − Σt^k·ln t / Σt^k, falls as k
	// grows; bisect for its root on ln k.
	score := func(k float64) float64 {
		var a, b float64
		for _, t := range all {
			tk := math.Pow(t, k)
			a += tk * math.Log(t)
			b += tk
		}
		return 1/k + sumLog/d - a/b
	}
	lo, hi := math.Log(0.01), math.Log(100.0)
	if score(math.Exp(hi)) > 0 {
		lo = hi
	} else if score(math.Exp(lo)) < 0 {
		hi = lo
	}
	for range 100 {
		m := (lo + hi) / 2
		if score(math.Exp(m)) > 0 {
			lo = m
		} else {
			hi = m
		}
	}
	k := math.Exp((lo + hi) / 2)
	// Profile log-likelihood with the scale at its maximum for k.
	ll := func(k float64) float64 {
		var sum float64
		for _, t := range all {
			sum += math.Pow(t, k)
		}
		return d*math.Log(k) + (k-1)*sumLog - d*math.Log(sum/d) - d
	}
	stat := math.Max(0, 2*(ll(k)-ll(1)))
	s.Checked, s.K = true, k
	s.P = 1 - distuv.ChiSquared{K: 1}.CDF(stat)
	s.Memoryless = s.P >= 0.05
	return s
}

// Warning says in a sentence why the crash does not look memoryless, or "".
func (s Shape) Warning() string {
	if !s.Checked || s.Memoryless {
		return ""
	}
	p := fmt.Sprintf("p=%.2g", s.P)
	if s.P < 1e-4 {
		p = "p<0.0001"
	}
	if s.K > 1 {
		return fmt.Sprintf("the crash is not memoryless: it gets likelier the longer the load runs (Weibull shape %.2g, %s), like a leak or a slow build-up; rates, intervals and soak times assume a constant rate", s.K, p)
	}
	return fmt.Sprintf("the crash is not memoryless: crashes bunch early in a run (Weibull shape %.2g, %s), like a boot-time or warm-up bug; rates, intervals and soak times assume a constant rate", s.K, p)
}
