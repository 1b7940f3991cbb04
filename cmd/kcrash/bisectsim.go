package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/bisect"
)

// runBisectSimulate is `kcrash bisect simulate`: the search code of kcrash bisect
// and the fixed-repeat strategies against simulated ranges, side by side.
func runBisectSimulate(env *cmdEnv, args []string) error {
	c := &command{name: "bisect simulate",
		usage:    "kcrash bisect simulate --candidates N --crash-prob P[,P...]|--rate R --trials K [--strategy kcrash,fixed10,syzkaller,single] [--seed S] [--json]",
		synopsis: "run the bisection search against simulated candidates: accuracy, runs and test time per strategy, calibration of the stated confidence, and the information-theoretic minimum of runs"}
	fs := newFlagSet(env, c)
	n := fs.Int("candidates", 1024, "candidates per bisection (the first bad one uniform among them)")
	probs := fs.String("crash-prob", "0.9,0.5,0.3,0.1", "probability a bad candidate crashes in one run (comma separated for several)")
	rate := fs.Float64("rate", 0, "crash rate per second of a bad candidate instead (runs are --run-length long)")
	runLength := fs.Duration("run-length", time.Minute, "length of one run")
	auto := fs.Bool("auto", false, "let kcrash choose its test lengths (up to 10 runs, --overhead per test) instead of runs of --run-length")
	overhead := fs.Duration("overhead", 0, "with --auto: time per test outside the load (install, reboot)")
	trials := fs.Int("trials", 1000, "bisections per strategy and crash probability")
	strategies := fs.String("strategy", strings.Join(bisect.Strategies, ","), "strategies to compare (kcrash, fixed10, syzkaller, single)")
	seed := fs.Uint64("seed", 1, "seed of the simulated ranges (the same for every strategy)")
	confidence := fs.Float64("confidence", 0.95, "kcrash's --confidence")
	asJSON := fs.Bool("json", false, "print one JSON object per strategy and crash probability")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	var ps []float64
	if *rate > 0 {
		ps = []float64{0}
	} else {
		for _, f := range strings.Split(*probs, ",") {
			p, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || !(p > 0 && p <= 1) {
				return fmt.Errorf("--crash-prob %q: want probabilities in (0, 1]", f)
			}
			ps = append(ps, p)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*asJSON {
		fmt.Fprintf(env.stdout, "%d bisections of %d candidates per row, seed %d; a run is %s of load (a bad candidate crashes in it with the probability shown); runs counts tests\n",
			*trials, *n, *seed, *runLength)
		fmt.Fprintf(env.stdout, "%-10s %6s %9s %10s %9s %9s %8s %10s %9s\n", "strategy", "p", "accuracy", "confidence", "runs", "min_runs", "×min", "test_time", "max_runs")
	}
	for _, p := range ps {
		o := bisect.SimOptions{Candidates: *n, CrashProb: p, Rate: *rate, RunLength: runLength.Seconds(), Auto: *auto,
			Overhead: overhead.Seconds(), Trials: *trials, Seed: *seed, Confidence: *confidence}
		start := time.Now()
		rows, err := bisect.Simulate(ctx, o, strings.Split(*strategies, ","))
		if err != nil {
			return err
		}
		for _, r := range rows {
			if *asJSON {
				line, _ := json.Marshal(r)
				fmt.Fprintf(env.stdout, "%s\n", line)
				continue
			}
			fmt.Fprintf(env.stdout, "%-10s %6.3g %8.1f%% %9.1f%% %9.1f %9.1f %7.2f× %10s %9d\n", r.Strategy, r.CrashProb,
				100*r.Accuracy, 100*r.MeanStatedConfidence, r.MeanRuns, r.MinRuns, r.MeanRuns/r.MinRuns, (time.Duration(r.MeanTestSeconds) * time.Second).String(), r.MaxRuns)
		}
		if !*asJSON {
			fmt.Fprintf(env.stderr, "p=%g: %s\n", p, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}
