package lab

import (
	"context"
	"fmt"
	"time"
)

// RaceRun is one boot of a target with the netrace module: watched from the load's
// start until the crash or the limit.
type RaceRun struct {
	Crashed bool    `json:"crashed"`
	Seconds float64 `json:"seconds"` // time to crash, or the time watched without one
	Crash   *Crash  `json:"crash,omitempty"`
	Packets int64   `json:"packets,omitempty"`
	Serial  string  `json:"serial"`
}

// RaceMeasure sums up runs under one load.
type RaceMeasure struct {
	Load     string    `json:"load"` // "udp 20000 pps" or "idle"
	Module   string    `json:"module"`
	Runs     int       `json:"runs"`
	Crashes  int       `json:"crashes"`
	TimesS   []float64 `json:"times_s"`   // time to crash of each crashed run
	WatchedS float64   `json:"watched_s"` // all the time watched, crashed runs and censored ones
	// RatePerS is crashes per second watched (the exponential model's estimate with
	// censoring: crashes / total time on test).
	RatePerS float64 `json:"rate_per_s"`
	// MTTCS is 1/RatePerS; absent without crashes.
	MTTCS   float64   `json:"mttc_s,omitempty"`
	Details []RaceRun `json:"details"`
}

func (m *RaceMeasure) add(r RaceRun) {
	m.Runs++
	m.WatchedS = round3(m.WatchedS + r.Seconds)
	if r.Crashed {
		m.Crashes++
		m.TimesS = append(m.TimesS, r.Seconds)
	}
	if m.WatchedS > 0 {
		m.RatePerS = float64(m.Crashes) / m.WatchedS
	}
	if m.Crashes > 0 {
		m.MTTCS = round3(m.WatchedS / float64(m.Crashes))
	}
	m.Details = append(m.Details, r)
}

// raceRun boots a guest with netrace, floods it at pps (0: idle) and watches it for
// at most limit.
func raceRun(ctx context.Context, spec bootSpec, pps int, limit time.Duration) (RaceRun, error) {
	spec.UDP = true
	g, err := bootScenarioGuest(ctx, spec)
	if err != nil {
		return RaceRun{}, err
	}
	defer g.Quit()
	run := RaceRun{Serial: g.Serial}
	start := time.Now()
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan LoadResult, 1)
	loadErr := make(chan error, 1)
	if pps > 0 {
		go func() {
			res, err := Flood(lctx, LoadOptions{To: fmt.Sprintf("127.0.0.1:%d", g.UDPPort), PPS: pps})
			loadDone <- res
			loadErr <- err
		}()
	}
	outcome, err := g.Wait(ctx, limit)
	stopLoad()
	if pps > 0 {
		run.Packets = (<-loadDone).Packets
		if lerr := <-loadErr; lerr != nil && err == nil {
			err = lerr
		}
	}
	if err != nil {
		return run, err
	}
	w, err := g.endOf(outcome, start)
	run.Crashed, run.Seconds, run.Crash = w.Crashed, w.Seconds, w.Crash
	if err != nil {
		return run, err
	}
	return run, nil
}

// RaceResult is the race scenario's result: the race module crashed under a UDP
// flood, left idle, and the fixed module under the same flood.
type RaceResult struct {
	ABI    string      `json:"abi"`
	PPS    int         `json:"pps"`
	Loaded RaceMeasure `json:"loaded"`
	Idle   RaceMeasure `json:"idle"`
	Fixed  RaceMeasure `json:"fixed"`
	// LoadedOverIdle is the ratio of the crash rates (absent when idle never crashed:
	// then IdleWatchedOverMTTC says how many loaded mean times to crash the idle
	// guest survived).
	LoadedOverIdle       float64 `json:"loaded_over_idle,omitempty"`
	IdleWatchedOverMTTC  float64 `json:"idle_watched_over_loaded_mttc"`
	FixedWatchedOverMTTC float64 `json:"fixed_watched_over_loaded_mttc"`
}

// runRaceScenario measures the receive-path race on one kernel: o.Runs loaded
// runs (default 5), then, two at a time, an idle guest and a fixed=1 guest under
// the same flood, each watched for 12× the loaded mean time to crash (at least
// 60 s, at most 240 s).
func runRaceScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	k, err := kernelFor(ctx, cfg, o.Kernel, true)
	if err != nil {
		return nil, err
	}
	runs := o.Runs
	if runs <= 0 {
		runs = 5
	}
	res := &RaceResult{ABI: k.Release, PPS: o.PPS}
	load := fmt.Sprintf("udp %d pps", o.PPS)
	res.Loaded = RaceMeasure{Load: load, Module: "netrace"}
	res.Idle = RaceMeasure{Load: "idle", Module: "netrace"}
	res.Fixed = RaceMeasure{Load: load, Module: "netrace fixed=1"}
	results := make([]RaceRun, runs)
	var jobs []func(context.Context) error
	for i := range runs {
		jobs = append(jobs, func(ctx context.Context) error {
			r, err := raceRun(ctx, bootSpec{Name: fmt.Sprintf("loaded-%d", i+1), Kernel: k, Dir: dir, Args: "lab_load=netrace"}, o.PPS, 120*time.Second)
			results[i] = r
			cfg.progress("scenario race: loaded-%d crashed=%v after %.1fs", i+1, r.Crashed, r.Seconds)
			return err
		})
	}
	if err := runJobs(ctx, o.Parallel, jobs); err != nil {
		return nil, err
	}
	for _, r := range results {
		res.Loaded.add(r)
	}
	if res.Loaded.Crashes == 0 {
		return nil, fmt.Errorf("the race never crashed under %s in %d runs of 120 s", load, runs)
	}
	watch := time.Duration(min(max(12*res.Loaded.MTTCS, 60), 240) * float64(time.Second))
	var idle, fixed RaceRun
	err = runJobs(ctx, o.Parallel, []func(context.Context) error{
		func(ctx context.Context) error {
			var err error
			idle, err = raceRun(ctx, bootSpec{Name: "idle", Kernel: k, Dir: dir, Args: "lab_load=netrace"}, 0, watch)
			cfg.progress("scenario race: idle crashed=%v after %.1fs", idle.Crashed, idle.Seconds)
			return err
		},
		func(ctx context.Context) error {
			var err error
			fixed, err = raceRun(ctx, bootSpec{Name: "fixed", Kernel: k, Dir: dir, Args: "lab_load=netrace netrace.fixed=1"}, o.PPS, watch)
			cfg.progress("scenario race: fixed crashed=%v after %.1fs", fixed.Crashed, fixed.Seconds)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	res.Idle.add(idle)
	res.Fixed.add(fixed)
	if res.Idle.RatePerS > 0 {
		res.LoadedOverIdle = round3(res.Loaded.RatePerS / res.Idle.RatePerS)
	}
	res.IdleWatchedOverMTTC = round3(res.Idle.WatchedS / res.Loaded.MTTCS)
	res.FixedWatchedOverMTTC = round3(res.Fixed.WatchedS / res.Loaded.MTTCS)
	return res, nil
}

// RegressionTarget is one target of the regression scenario (the JSON contract of
// kcrash lab scenario regression --json).
type RegressionTarget struct {
	Name    string    `json:"name"`
	ABI     string    `json:"abi"`
	Gated   bool      `json:"gated"` // at or after the gate: the race exists
	Load    string    `json:"load"`
	Runs    int       `json:"runs"`
	Crashes int       `json:"crashes"`
	TimesS  []float64 `json:"times_s"`   // time to crash of each crashed run
	Watched []float64 `json:"watched_s"` // every run's watched time, crashed or not
	Crash   *Crash    `json:"crash,omitempty"`
}

// RegressionResult is the regression scenario's result.
type RegressionResult struct {
	GatedAt string             `json:"gated_at"`
	PPS     int                `json:"pps"`
	LimitS  float64            `json:"limit_s"`
	Targets []RegressionTarget `json:"targets"`
	Note    string             `json:"note"`
}

// regressionKernels picks the scenario's ABIs (default: the three newest of the
// default kernel's series and flavour) and the gate (default: the middle one).
func regressionKernels(ctx context.Context, o ScenarioOptions) ([]string, string, error) {
	abis := o.Kernels
	if len(abis) == 0 {
		def, err := ResolveKernel(ctx, o.Kernel)
		if err != nil {
			return nil, "", err
		}
		list, err := ListKernels(ctx, "", FlavorOf(def))
		if err != nil {
			return nil, "", err
		}
		for _, ki := range list {
			if Series(ki.ABI) == Series(def) && CompareABIs(ki.ABI, def) <= 0 {
				abis = append(abis, ki.ABI)
			}
		}
		if len(abis) > 3 {
			abis = abis[len(abis)-3:]
		}
	} else {
		var err error
		if abis, err = resolveAll(ctx, abis); err != nil {
			return nil, "", err
		}
	}
	if len(abis) < 2 {
		return nil, "", fmt.Errorf("the regression scenario needs two kernels or more, has %q", abis)
	}
	gate := o.Gate
	if gate == "" {
		gate = abis[len(abis)/2]
	}
	return abis, gate, nil
}

// runRegressionScenario boots one target per ABI with netrace gated at o.Gate,
// floods each for o.Runs runs (default 2) of at most 60 s.
func runRegressionScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	runs := o.Runs
	if runs <= 0 {
		runs = 2
	}
	const limit = 60 * time.Second
	res := &RegressionResult{GatedAt: o.Gate, PPS: o.PPS, LimitS: limit.Seconds(),
		Note: "the regression is simulated by netrace's buggy_from gate; kernels, boots, loads and crashes are real"}
	kernels := make([]*Kernel, len(o.Kernels))
	for i, abi := range o.Kernels {
		k, err := kernelFor(ctx, cfg, abi, true)
		if err != nil {
			return nil, err
		}
		kernels[i] = k
	}
	res.Targets = make([]RegressionTarget, len(kernels))
	details := make([][]RaceRun, len(kernels))
	var jobs []func(context.Context) error
	for i, k := range kernels {
		res.Targets[i] = RegressionTarget{Name: fmt.Sprintf("host-%d", i+1), ABI: k.Release,
			Gated: CompareABIs(k.Release, o.Gate) >= 0, Load: fmt.Sprintf("udp %d pps", o.PPS), TimesS: []float64{}}
		details[i] = make([]RaceRun, runs)
		for r := range runs {
			jobs = append(jobs, func(ctx context.Context) error {
				name := fmt.Sprintf("host-%d-run-%d", i+1, r+1)
				run, err := raceRun(ctx, bootSpec{Name: name, Kernel: k, Dir: dir,
					Args: "lab_load=netrace netrace.buggy_from=" + o.Gate}, o.PPS, limit)
				details[i][r] = run
				cfg.progress("scenario regression: %s (%s) crashed=%v after %.1fs", name, k.Release, run.Crashed, run.Seconds)
				return err
			})
		}
	}
	if err := runJobs(ctx, o.Parallel, jobs); err != nil {
		return nil, err
	}
	for i := range res.Targets {
		t := &res.Targets[i]
		for _, r := range details[i] {
			t.Runs++
			t.Watched = append(t.Watched, r.Seconds)
			if r.Crashed {
				t.Crashes++
				t.TimesS = append(t.TimesS, r.Seconds)
				if t.Crash == nil {
					t.Crash = r.Crash
				}
			}
		}
	}
	return res, nil
}
