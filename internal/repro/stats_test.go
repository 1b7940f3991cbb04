package repro

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func near(got, want, tol float64) bool {
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// TestFit checks the exponential MLE with censoring and its chi-square bounds
// against values from tables (χ²(0.025;10)=3.2470, χ²(0.975;12)=23.337,
// χ²(0.975;2)=7.3778, χ²(0.025;2)=0.050636, χ²(0.975;4)=11.143).
func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name               string
		crashes, censored  []float64
		rate, lo, hi, mttc float64
	}{
		{"five crashes in 1000 s", []float64{100, 200, 300, 150, 50}, []float64{200}, 0.005, 3.2470 / 2000, 23.337 / 2000, 200},
		{"nothing crashed", nil, []float64{60, 40}, 0, 0, 7.3778 / 200, math.Inf(1)},
		{"one crash", []float64{10}, nil, 0.1, 0.050636 / 20, 11.143 / 20, 10},
		{"no runs", nil, nil, 0, 0, math.Inf(1), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Fit(tc.crashes, tc.censored)
			if e.Crashes != len(tc.crashes) || e.Censored != len(tc.censored) || e.Runs != e.Crashes+e.Censored {
				t.Errorf("counts %+v", e)
			}
			if !near(e.Rate, tc.rate, 1e-4) || !near(e.RateLo, tc.lo, 1e-4) || !near(e.RateHi, tc.hi, 1e-4) || !near(e.MTTC, tc.mttc, 1e-4) {
				t.Errorf("rate %g [%g, %g] mttc %g, want %g [%g, %g] %g", e.Rate, e.RateLo, e.RateHi, e.MTTC, tc.rate, tc.lo, tc.hi, tc.mttc)
			}
			if !near(e.MTTCLo, inv(e.RateHi), 1e-12) || !near(e.MTTCHi, inv(e.RateLo), 1e-12) {
				t.Errorf("mttc interval [%g, %g] is not the rate's inverted", e.MTTCLo, e.MTTCHi)
			}
		})
	}
}

func TestSoakFormula(t *testing.T) {
	for _, tc := range []struct{ c, factor float64 }{{0.95, 3.0}, {0.99, 4.6}, {0.9, 2.3}} {
		if got := SoakTime(1, tc.c); math.Abs(got-tc.factor) > 0.05 {
			t.Errorf("SoakTime(1, %g) = %.3f, want %.1f", tc.c, got, tc.factor)
		}
		if got := SoakConfidence(SoakTime(600, tc.c), 600); !near(got, tc.c, 1e-9) {
			t.Errorf("SoakConfidence after the soak time = %g, want %g", got, tc.c)
		}
	}
	// A clean 3·ln(20)·MTTC at the measured rate: the rate dropped at least 3×.
	if got := RateReduction(0.01, 3*math.Log(20)/0.01); !near(got, 3, 1e-9) {
		t.Errorf("RateReduction = %g, want 3", got)
	}
	if RateReduction(0.01, 0) != 0 || SoakConfidence(0, 10) != 0 || SoakConfidence(10, math.Inf(1)) != 0 {
		t.Errorf("degenerate soak values are not 0")
	}
}

func TestRateRatio(t *testing.T) {
	mk := func(d int, T float64) Estimate {
		return Estimate{Crashes: d, Exposure: T, Rate: float64(d) / T}
	}
	for _, tc := range []struct {
		name          string
		a, b          Estimate
		ratio, lo, hi float64
	}{
		// Clopper-Pearson for 10 of 20: [0.27196, 0.72804].
		{"equal", mk(10, 100), mk(10, 100), 1, 0.27196 / 0.72804, 0.72804 / 0.27196},
		{"exposure scales", mk(10, 100), mk(10, 1000), 10, 10 * 0.27196 / 0.72804, 10 * 0.72804 / 0.27196},
		// 5 of 5: lower bound of p is 0.025^(1/5) = 0.47818.
		{"second never crashed", mk(5, 100), mk(0, 100), math.Inf(1), 0.47818 / 0.52182, math.Inf(1)},
		{"first never crashed", mk(0, 100), mk(5, 100), 0, 0, 0.52182 / 0.47818},
		{"neither crashed", mk(0, 100), mk(0, 100), math.NaN(), 0, math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RateRatio(tc.a, tc.b)
			okRatio := near(r.Ratio, tc.ratio, 1e-9) || math.IsNaN(tc.ratio) && math.IsNaN(r.Ratio)
			if !okRatio || !near(r.Lo, tc.lo, 1e-3) || !near(r.Hi, tc.hi, 1e-3) {
				t.Errorf("got %g [%g, %g], want %g [%g, %g]", r.Ratio, r.Lo, r.Hi, tc.ratio, tc.lo, tc.hi)
			}
		})
	}
}

// campaign simulates n runs of a crash with the given rate, each censored at timeout.
func campaign(rng *rand.Rand, n int, rate, timeout float64, shape float64) (crashes, censored []float64) {
	for range n {
		// Weibull with mean-free scale 1/rate; shape 1 is the exponential.
		t := math.Pow(rng.ExpFloat64(), 1/shape) / rate
		if t < timeout {
			crashes = append(crashes, t)
		} else {
			censored = append(censored, timeout)
		}
	}
	return crashes, censored
}

// TestSimulatedCoverage runs 10,000 simulated campaigns: the stated 95% interval
// must cover the true rate 93–97% of the time, and a soak sized from the
// campaign's pessimistic bound must say "fixed" of a bug still there at most 1−C
// of the time.
func TestSimulatedCoverage(t *testing.T) {
	const campaigns = 10000
	for _, tc := range []struct {
		name       string
		runs       int
		rate       float64
		timeoutMT  float64 // timeout in mean times to crash
		confidence float64
	}{
		{"20 runs, timeout 2 MTTC, 95%", 20, 0.01, 2, 0.95},
		{"10 runs, timeout 1 MTTC, 99%", 10, 1, 1, 0.99},
		{"40 runs, timeout 0.5 MTTC, 95%", 40, 0.2, 0.5, 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			covered, falseFixed, sized := 0, 0, 0
			for range campaigns {
				cr, ce := campaign(rng, tc.runs, tc.rate, tc.timeoutMT/tc.rate, 1)
				e := Fit(cr, ce)
				if e.RateLo <= tc.rate && tc.rate <= e.RateHi {
					covered++
				}
				if e.Crashes == 0 {
					continue // nothing to size a soak on
				}
				sized++
				soak := SoakTime(e.MTTCHi, tc.confidence)
				if rng.ExpFloat64()/tc.rate > soak { // the unfixed bug stayed quiet
					falseFixed++
				}
			}
			cov := float64(covered) / campaigns
			ff := float64(falseFixed) / float64(sized)
			t.Logf("coverage %.4f, false fixed %.4f (of %d soaks at C=%g)", cov, ff, sized, tc.confidence)
			if cov < 0.93 || cov > 0.97 {
				t.Errorf("95%% interval covered the true rate %.2f%% of the time", 100*cov)
			}
			if ff > 1-tc.confidence {
				t.Errorf("false fixed %.4f > %.2f", ff, 1-tc.confidence)
			}
		})
	}
}

func TestCheckShape(t *testing.T) {
	for _, tc := range []struct {
		name       string
		shape      float64
		memoryless bool
	}{
		{"exponential", 1, true},
		{"wear-out (leak)", 3, false},
		{"early (boot-time)", 0.4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			cr, ce := campaign(rng, 60, 1, 3, tc.shape)
			s := CheckShape(cr, ce)
			t.Logf("k=%.3f p=%.3g %s", s.K, s.P, s.Warning())
			if !s.Checked || s.Memoryless != tc.memoryless || math.Abs(s.K-tc.shape) > 0.35*tc.shape {
				t.Errorf("shape %+v, want k≈%g memoryless=%v", s, tc.shape, tc.memoryless)
			}
			if (s.Warning() == "") != tc.memoryless {
				t.Errorf("warning %q", s.Warning())
			}
		})
	}
	if s := CheckShape([]float64{1, 2}, nil); s.Checked || !s.Memoryless {
		t.Errorf("two crashes were checked: %+v", s)
	}
}

// TestShapeFalseAlarms: on exponential data the check warns about 5% of the time.
func TestShapeFalseAlarms(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alarms := 0
	const n = 2000
	for range n {
		cr, ce := campaign(rng, 20, 1, 2, 1)
		if !CheckShape(cr, ce).Memoryless {
			alarms++
		}
	}
	if f := float64(alarms) / n; f > 0.09 {
		t.Errorf("false alarms %.3f", f)
	}
}

func TestNumJSON(t *testing.T) {
	b, _ := json.Marshal([]Num{1.5, Num(math.Inf(1)), Num(math.NaN())})
	if string(b) != "[1.5,null,null]" {
		t.Errorf("got %s", b)
	}
	var v []Num
	if err := json.Unmarshal(b, &v); err != nil || v[0] != 1.5 || !math.IsInf(float64(v[1]), 1) {
		t.Errorf("read back %v %v", v, err)
	}
}

// TestSimulatedRatioCoverage: the rate ratio's exact interval covers the true ratio
// at least 95% of the time (it is conservative) over 10,000 simulated pairs of
// campaigns (a flood 20× worse than idle).
func TestSimulatedRatioCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 10000
	covered := 0
	for range n {
		a := Fit(campaign(rng, 20, 1, 3, 1))
		b := Fit(campaign(rng, 20, 0.05, 3, 1))
		if r := RateRatio(a, b); r.Lo <= 20 && 20 <= r.Hi {
			covered++
		}
	}
	cov := float64(covered) / n
	t.Logf("ratio coverage %.4f", cov)
	if cov < 0.945 {
		t.Errorf("the ratio's 95%% interval covered the true ratio %.2f%% of the time", 100*cov)
	}
}
