package bisect

import (
	"math"
	"testing"
)

// Hand-computed cases: two candidates and "no culprit", priors 1/3 each, λ ~
// Gamma(1, 1) (so E[e^(−λt)] = 1/(1+t) and E[λ·e^(−λt)] = 1/(1+t)²).
func TestPosteriorHandComputed(t *testing.T) {
	type obs struct {
		i       int
		secs    float64
		crashed bool
	}
	cases := []struct {
		name string
		obs  []obs
		want []float64 // P(h=0), P(h=1), P(none)
	}{
		{"prior", nil, []float64{1. / 3, 1. / 3, 1. / 3}},
		// Candidate 0 survives 1 s: bad with probability 1/2 (E[e^−λ]); h=1 and
		// none say it is good: 1/2 : 1 : 1.
		{"survival", []obs{{0, 1, false}}, []float64{0.2, 0.4, 0.4}},
		// Then 1 crashes after 1 s: none is out; h=0 has watched 2 s on bad
		// candidates and one crash: ∫λe^(−3λ) = 1/9; h=1: ∫λe^(−2λ) = 1/4.
		{"survival then crash", []obs{{0, 1, false}, {1, 1, true}}, []float64{4. / 13, 9. / 13, 0}},
		// A crash of candidate 0: it is bad, so h=0.
		{"crash first", []obs{{0, 0.5, true}}, []float64{1, 0, 0}},
		// Survival on the bad end: E[e^(−2λ)] = 1/3 for both h, none unchanged: 1:1:3.
		{"bad end survives", []obs{{1, 2, false}}, []float64{0.2, 0.2, 0.6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewPosterior(2, 1, 1, nil, 1)
			for _, o := range c.obs {
				p.Observe(o.i, o.secs, o.crashed)
			}
			got := p.Probs(nil)
			for h := range c.want {
				if math.Abs(got[h]-c.want[h]) > 1e-12 {
					t.Fatalf("P = %v, want %v", got, c.want)
				}
			}
		})
	}
}

// The closed form against a brute-force integration over λ.
func TestPosteriorMatchesNumericIntegral(t *testing.T) {
	const n = 5
	obs := []struct {
		i       int
		secs    float64
		crashed bool
	}{{2, 3, false}, {4, 1.5, true}, {3, 2, false}, {3, 0.7, true}, {1, 4, false}}
	p := NewPosterior(n, 0.7, 2, map[int]float64{0: 0.2}, 0.3)
	for _, o := range obs {
		p.Observe(o.i, o.secs, o.crashed)
	}
	got := p.Probs(nil)
	// Brute force: P(h) ∝ π(h)·∫ Gamma(λ; 0.7, 2)·Π likelihoods dλ.
	want := make([]float64, n+1)
	sum := 0.0
	for h := 0; h <= n; h++ {
		w := 0.0
		const steps = 400000
		for k := 0; k < steps; k++ {
			lam := (float64(k) + 0.5) / steps * 40
			dens := math.Pow(lam, 0.7-1) * math.Exp(-2*lam)
			l := 1.0
			for _, o := range obs {
				bad := o.i >= h
				switch {
				case o.crashed && !bad:
					l = 0
				case o.crashed:
					l *= lam * math.Exp(-lam*o.secs)
				case bad:
					l *= math.Exp(-lam * o.secs)
				}
			}
			w += dens * l
		}
		want[h] = w * p.Prior[h]
		sum += want[h]
	}
	for h := range want {
		want[h] /= sum
		if math.Abs(got[h]-want[h]) > 1e-4 {
			t.Fatalf("h=%d: closed form %v, integral %v", h, got, want)
		}
	}
}

// The minimum of the issue: ≈31 runs at p=0.5, ≈57 at 0.3, ≈182 at 0.1 for 1024.
func TestMinRuns(t *testing.T) {
	for _, c := range []struct{ p, want float64 }{{0.5, 31.06}, {0.3, 56.50}, {0.1, 182.36}, {0.9, 13.11}} {
		if got := MinRuns(1024, c.p); math.Abs(got-c.want) > 0.01 {
			t.Errorf("MinRuns(1024, %v) = %.2f, want %.2f", c.p, got, c.want)
		}
	}
	// The capacity is the maximum over f of ZInfo(f, p).
	for _, p := range []float64{0.9, 0.5, 0.1} {
		best := 0.0
		for f := 0.0005; f < 1; f += 0.0005 {
			best = math.Max(best, ZInfo(f, p))
		}
		if math.Abs(best-Capacity(p)) > 1e-5 {
			t.Errorf("max ZInfo at p=%v is %v, Capacity %v", p, best, Capacity(p))
		}
	}
}

// Info against its definition computed by brute force over h and λ.
func TestInfo(t *testing.T) {
	p := NewPosterior(4, 1.5, 3, nil, 0.5)
	p.Observe(1, 2, false)
	p.Observe(3, 1, true)
	probs := p.Probs(nil)
	info, crash := make([]float64, 4), make([]float64, 4)
	const secs = 1.7
	infoH := make([]float64, 4)
	p.Info(probs, secs, info, crash, infoH)
	for i := 0; i < 4; i++ {
		// Exact: integrate over λ | h numerically.
		g, hc := 0.0, 0.0
		for h := 0; h <= i; h++ {
			a, b := p.RateAt(h)
			dist := 0.0
			c, e := 0.0, 0.0
			const steps = 200000
			for k := 0; k < steps; k++ {
				lam := (float64(k) + 0.5) / steps * 30
				d := math.Pow(lam, a-1) * math.Exp(-b*lam)
				dist += d
				q := -math.Expm1(-lam * secs)
				c += d * q
				e += d * h2(q)
			}
			g += probs[h] * c / dist
			hc += probs[h] * e / dist
		}
		hh := 0.0
		for h := 0; h <= i; h++ {
			a, b := p.RateAt(h)
			hh += probs[h] * h2(-math.Expm1(a*math.Log(b/(b+secs))))
		}
		if math.Abs(infoH[i]-(h2(g)-hh)) > 1e-4 {
			t.Errorf("candidate %d: info on h %v, want %v", i, infoH[i], h2(g)-hh)
		}
		if math.Abs(crash[i]-g) > 1e-4 || math.Abs(info[i]-(h2(g)-hc)) > 2e-3 {
			t.Errorf("candidate %d: crash %v info %v, want %v %v", i, crash[i], info[i], g, h2(g)-hc)
		}
	}
}

// ProbAtRate is the posterior at a known rate: by hand for two candidates and
// "no culprit", and the integrated posterior's limit as the prior of λ
// concentrates on that rate.
func TestProbAtRate(t *testing.T) {
	// Priors 1/3 each, λ = 1: candidate 0 survives 1 s, so h=0 weighs e^−1, h=1
	// and none 1 each.
	p := NewPosterior(2, 1, 1, nil, 1)
	p.Observe(0, 1, false)
	e := math.Exp(-1)
	for k, want := range []float64{e / (e + 2), 1 / (e + 2), 1 / (e + 2)} {
		if got := p.ProbAtRate(k, 1); math.Abs(got-want) > 1e-12 {
			t.Errorf("k=%d: %v, want %v", k, got, want)
		}
	}
	// Then 1 crashes after 0.5 s: none is out; h=0 has 1.5 s on bad candidates,
	// h=1 0.5 s: e^−1.5 : e^−0.5 at λ = 1, and at λ = 0 the survival says nothing.
	p.Observe(1, 0.5, true)
	if got, want := p.ProbAtRate(1, 1), 1/(1+e); math.Abs(got-want) > 1e-12 {
		t.Errorf("after the crash: %v, want %v", got, want)
	}
	if got := p.ProbAtRate(1, 0); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("λ=0: %v, want 1/2", got)
	}
	if got := p.ProbAtRate(2, 1); got != 0 {
		t.Errorf("no culprit after a crash: %v", got)
	}
	// A Gamma prior of shape 1e6 around λ = 0.3 is that rate known.
	q := NewPosterior(6, 1e6, 1e6/0.3, map[int]float64{0: 0.1}, 0.1)
	for _, o := range []struct {
		i       int
		secs    float64
		crashed bool
	}{{2, 3, false}, {4, 1.5, true}, {3, 2, false}, {1, 4, false}} {
		q.Observe(o.i, o.secs, o.crashed)
		probs := q.Probs(nil)
		for k := range probs {
			if got := q.ProbAtRate(k, 0.3); math.Abs(got-probs[k]) > 1e-4 {
				t.Errorf("k=%d: at the rate %v, integrated %v", k, got, probs[k])
			}
		}
	}
}
