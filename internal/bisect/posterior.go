// Package bisect finds the first bad candidate of an ordered list (packaged
// kernel versions, git commits) when the bad ones crash only now and then: a
// Bayesian posterior over "the first bad candidate" (plus "no culprit in the
// range"), updated from each test with the time-to-crash model of internal/repro
// (a bad candidate survives t seconds of load with probability e^(−λt); a good one
// never shows the target crash), with the crash rate λ unknown and integrated out
// under a Gamma prior. The next test (which candidate, how long) maximises the
// expected information per second; the search stops when the top candidate's
// posterior reaches the confidence asked for, after a verification.
//
// The search is driven through a Predicate so tests and the simulation use fakes
// and kcrash bisect wires the real hooks. Nothing here logs or exits.
package bisect

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Posterior is the joint posterior over the first bad candidate h ∈ [0, N) or
// h = N ("no culprit": every candidate is good), and the crash rate λ of the bad
// ones, Gamma(A, B) a priori (shape A, rate B per second).
//
// Because a good candidate never shows the target crash and every bad one crashes
// at the same rate, the likelihood of all the observations given h and λ is
// λ^C·e^(−λ·T(h)) when h is at or before every crashed candidate (0 otherwise),
// where C is the number of target crashes and T(h) the seconds watched on the
// candidates at or after h (a crash's time counts up to the crash). Integrating
// λ out, P(h | data) ∝ π(h)·(B+T(h))^−(A+C): an O(N) update, exact.
type Posterior struct {
	N     int
	A, B  float64   // Gamma prior of λ
	Prior []float64 // π(h), h = 0..N, normalized
	// Watched[i] is the seconds watched on candidate i; Crashes the target
	// crashes seen; MinCrash the first candidate that crashed (N when none).
	Watched  []float64
	Crashes  int
	MinCrash int
	tab      entTable
}

// NewPosterior returns the prior: prior weight 1 for every candidate, except the
// ones listed in doubt (a weight of their own: the good end "presumed good" has a
// small one) and the weight of "no culprit" none.
func NewPosterior(n int, a, b float64, doubt map[int]float64, none float64) *Posterior {
	p := &Posterior{N: n, A: a, B: b, Prior: make([]float64, n+1), Watched: make([]float64, n), MinCrash: n}
	sum := 0.0
	for h := 0; h < n; h++ {
		w := 1.0
		if d, ok := doubt[h]; ok {
			w = d
		}
		p.Prior[h] = w
		sum += w
	}
	p.Prior[n] = none
	sum += none
	for h := range p.Prior {
		p.Prior[h] /= sum
	}
	return p
}

// Observe adds seconds watched on candidate i, ending in the target crash or not.
func (p *Posterior) Observe(i int, seconds float64, crashed bool) {
	if i < 0 || i >= p.N || !(seconds >= 0) || math.IsInf(seconds, 0) {
		return
	}
	p.Watched[i] += seconds
	if crashed {
		p.Crashes++
		p.MinCrash = min(p.MinCrash, i)
	}
}

// Probs returns P(h | data) for h = 0..N, into out when it is long enough.
func (p *Posterior) Probs(out []float64) []float64 {
	if cap(out) < p.N+1 {
		out = make([]float64, p.N+1)
	}
	out = out[:p.N+1]
	shape := p.A + float64(p.Crashes)
	best := math.Inf(-1)
	// T(h) is the suffix sum of Watched; walk h downwards.
	t := 0.0
	out[p.N] = math.Inf(-1)
	if p.Crashes == 0 && p.Prior[p.N] > 0 {
		// No culprit: every observation is a survival, likelihood 1; in the
		// integrated form that is (B+0)^−A relative to the others.
		out[p.N] = math.Log(p.Prior[p.N]) - p.A*math.Log(p.B)
	}
	best = out[p.N]
	for h := p.N - 1; h >= 0; h-- {
		t += p.Watched[h]
		if h > p.MinCrash || p.Prior[h] == 0 {
			out[h] = math.Inf(-1)
			continue
		}
		out[h] = math.Log(p.Prior[h]) - shape*math.Log(p.B+t)
		best = math.Max(best, out[h])
	}
	sum := 0.0
	for h, v := range out {
		if math.IsInf(v, -1) {
			out[h] = 0
			continue
		}
		out[h] = math.Exp(v - best)
		sum += out[h]
	}
	for h := range out {
		out[h] /= sum
	}
	return out
}

// ProbAtRate returns P(k | data) when the crash rate is known to be λ (a plug-in
// rate rather than integrated out): P(h) ∝ π(h)·e^(−λ·T(h)) for h at or before
// the first crashed candidate, and "no culprit" (h = N) weighs π(N) while no
// crash was seen. O(N), no allocation.
func (p *Posterior) ProbAtRate(k int, lambda float64) float64 {
	if k < 0 || k > p.N || p.Prior[k] == 0 || !(lambda >= 0) {
		return 0
	}
	// logw(h) for the h that have weight; T(h) is a suffix sum, walked downwards.
	each := func(f func(h int, v float64)) {
		if p.Crashes == 0 && p.Prior[p.N] > 0 {
			f(p.N, math.Log(p.Prior[p.N]))
		}
		t := 0.0
		for h := p.N - 1; h >= 0; h-- {
			t += p.Watched[h]
			if h <= p.MinCrash && p.Prior[h] > 0 {
				f(h, math.Log(p.Prior[h])-lambda*t)
			}
		}
	}
	lk, best := math.Inf(-1), math.Inf(-1)
	each(func(h int, v float64) {
		if h == k {
			lk = v
		}
		best = math.Max(best, v)
	})
	if math.IsInf(lk, -1) {
		return 0
	}
	sum := 0.0
	each(func(h int, v float64) { sum += math.Exp(v - best) })
	return math.Exp(lk-best) / sum
}

// RateAt returns the Gamma posterior of λ (shape, rate per second) given that h
// is the first bad candidate.
func (p *Posterior) RateAt(h int) (shape, rate float64) {
	t := 0.0
	for i := max(h, 0); i < p.N; i++ {
		t += p.Watched[i]
	}
	return p.A + float64(p.Crashes), p.B + t
}

// Info returns, for a test of length t of each candidate i, the information it
// gives on (h, λ) in bits, and in crash[i] the probability it ends in the target
// crash. Given h, λ has the posterior Gamma(A+C, B+T(h)); a bad candidate crashes
// within t with probability c_h = 1 − ((B+T(h))/(B+T(h)+t))^(A+C); the outcome is
// a crash with probability G(i) = Σ_{h≤i} P(h)·c_h, and the information is
// H2(G(i)) − Σ_{h≤i} P(h)·E[H2(1−e^(−λt)) | h]. Counting what a test tells of λ
// too makes the search crash bad candidates early, when the rate is unknown and
// survivals say little. O(N) for all the candidates.
// infoH, when not nil, receives the information on h alone,
// H2(G(i)) − Σ_{h≤i} P(h)·H2(c_h): what tells whether any test is still worth
// running for the culprit.
func (p *Posterior) Info(probs []float64, t float64, info, crash, infoH []float64) {
	shape := p.A + float64(p.Crashes)
	p.tab.build(shape)
	suffix := 0.0
	for h := p.N - 1; h >= 0; h-- {
		suffix += p.Watched[h]
		b := p.B + suffix
		crash[h] = -math.Expm1(shape * math.Log(b/(b+t))) // c_h, kept for the prefix pass
		info[h] = p.tab.at(t / b)                         // E[H2(1−e^(−λt)) | h]
	}
	g, hc, hh := 0.0, 0.0, 0.0
	for i := 0; i < p.N; i++ {
		g += probs[i] * crash[i]
		hc += probs[i] * info[i]
		if infoH != nil {
			hh += probs[i] * h2(crash[i])
			infoH[i] = math.Max(0, h2(g)-hh)
		}
		crash[i], info[i] = g, math.Max(0, h2(g)-hc)
	}
}

// entTable tabulates e(u) = E[H2(1−e^(−x·u))] for x ~ Gamma(shape, 1), over u
// log-spaced, so E[H2(1−e^(−λt))] for λ ~ Gamma(shape, b) is e(t/b).
type entTable struct {
	shape float64
	v     []float64
}

const (
	entLo, entHi = -12.0, 8.0 // log u
	entPoints    = 161
	entNodes     = 64
)

func (e *entTable) build(shape float64) {
	if e.v != nil && e.shape == shape {
		return
	}
	e.shape, e.v = shape, make([]float64, entPoints)
	g := distuv.Gamma{Alpha: shape, Beta: 1}
	xs := make([]float64, entNodes)
	for j := range xs {
		xs[j] = g.Quantile((float64(j) + 0.5) / entNodes)
	}
	for k := range e.v {
		u := math.Exp(entLo + (entHi-entLo)*float64(k)/(entPoints-1))
		sum := 0.0
		for _, x := range xs {
			sum += h2(-math.Expm1(-x * u))
		}
		e.v[k] = sum / entNodes
	}
}

func (e *entTable) at(u float64) float64 {
	if !(u > 0) {
		return 0
	}
	f := (math.Log(u) - entLo) / (entHi - entLo) * (entPoints - 1)
	switch {
	case f <= 0:
		return e.v[0]
	case f >= entPoints-1:
		return e.v[entPoints-1]
	}
	k := int(f)
	return e.v[k] + (f-float64(k))*(e.v[k+1]-e.v[k])
}

// Top returns the most probable h and its probability.
func Top(probs []float64) (int, float64) {
	best, pb := 0, -1.0
	for h, v := range probs {
		if v > pb {
			best, pb = h, v
		}
	}
	return best, pb
}

// h2 is the binary entropy in bits.
func h2(x float64) float64 {
	if x <= 0 || x >= 1 {
		return 0
	}
	return -(x*math.Log2(x) + (1-x)*math.Log2(1-x))
}

// ZInfo is the information (bits) a test gives on h when the candidate is bad with
// probability f and a bad candidate crashes during it with probability c: the
// mutual information of a Z-channel.
func ZInfo(f, c float64) float64 { return h2(f*c) - f*h2(c) }

// Capacity is the capacity (bits per run) of the Z-channel of a run that a bad
// candidate survives with probability 1−p: log2(1 + (1−q)·q^(q/(1−q))), q = 1−p.
func Capacity(p float64) float64 {
	if p >= 1 {
		return 1
	}
	if p <= 0 {
		return 0
	}
	q := 1 - p
	return math.Log2(1 + (1-q)*math.Pow(q, q/(1-q)))
}

// MinRuns is the information-theoretic minimum expected number of runs to find
// the first bad of n candidates when a bad one crashes in a run with probability
// p: log2(n) bits at Capacity(p) bits per run.
func MinRuns(n int, p float64) float64 {
	if n < 2 {
		return 0
	}
	return math.Log2(float64(n)) / Capacity(p)
}
