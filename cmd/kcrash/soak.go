package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/repro"
)

func init() {
	register(&command{
		name:     "soak",
		synopsis: "prove a fix: run the load for the clean time a confidence needs (sized on the measured crash rate), watching for the crash; resumable",
		usage:    "kcrash soak --host H --load CMD --rate-from REPRO.json|--mttc DUR [--confidence C] [--for DUR] [--signature SIG|--any] [--state FILE] [--server URL | --udp ADDR --db PATH] [--json]",
		run:      runSoak,
	})
}

// soakRate reads the rate a soak is sized on: a `kcrash repro --json` result
// (its rate's lower 95% bound, pessimistic for a soak, and its estimate) or a
// mean time to crash given as is.
func soakRate(path string, mttc time.Duration) (upperMTTC, rate float64, err error) {
	if path == "" {
		if mttc <= 0 {
			return 0, 0, errors.New("need --rate-from REPRO.json or --mttc DUR")
		}
		return mttc.Seconds(), 1 / mttc.Seconds(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var res repro.Result
	if err := json.Unmarshal(data, &res); err != nil {
		return 0, 0, fmt.Errorf("%s: not a kcrash repro --json result: %w", path, err)
	}
	lo := float64(res.RateCI[0])
	if res.Crashes == 0 || !(lo > 0) || math.IsInf(lo, 0) {
		return 0, 0, fmt.Errorf("%s: the repro saw no crash (%d runs), so there is no rate to size a soak on; give --mttc", path, res.Runs)
	}
	return 1 / lo, float64(res.Rate), nil
}

func runSoak(env *cmdEnv, args []string) error {
	c := commands["soak"]
	fs := newFlagSet(env, c)
	host := fs.String("host", "", "the host to watch: its collector id (ADDR:PORT), its address (any port) or its name")
	load := fs.String("load", "", "shell `command` that loads the host (started again if it ends cleanly)")
	rateFrom := fs.String("rate-from", "", "`file` holding kcrash repro --json's result: the soak is sized on its rate's lower 95% bound")
	mttc := fs.Duration("mttc", 0, "size the soak on this mean time to crash instead (taken as already pessimistic)")
	confidence := fs.Float64("confidence", 0.95, "confidence `C` (0<C<1) that the crash is gone")
	forDur := fs.Duration("for", 0, "soak this long instead of the time the confidence needs")
	sig := fs.String("signature", "", "the crash's `signature` (a prefix is enough; default: any crash)")
	anyCrash := fs.Bool("any", false, "count any report of the host as the crash")
	state := fs.String("state", "", "state `file` (default kcrash-soak-HOST.json): a soak that stopped continues from it")
	maxSilence := fs.Duration("max-silence", 0, "void time after this long without a netconsole line from the host (0: off; needs a host that prints, e.g. a heartbeat)")
	server := fs.String("server", "", "`URL` of a running kcrash serve to watch")
	udp := fs.String("udp", ":6666", "without --server: netconsole `address` of the collector soak runs itself")
	db := fs.String("db", filepath.Join(dataDir(), "kcrash.db"), "crash database (SQLite `file` or postgres:// URL): the embedded collector's, where campaigns are recorded; with --server, recorded only when given")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, ok := env.stderr.(*os.File); !ok {
		env = &cmdEnv{stdin: env.stdin, stdout: env.stdout, stderr: &lockedWriter{w: env.stderr}}
	}
	if *host == "" || *load == "" || fs.NArg() > 0 || *sig != "" && *anyCrash || (*rateFrom == "") == (*mttc == 0) {
		fs.Usage()
		return errUsage
	}
	if !(*confidence > 0 && *confidence < 1) {
		return fmt.Errorf("--confidence %g is not between 0 and 1", *confidence)
	}
	upper, rate, err := soakRate(*rateFrom, *mttc)
	if err != nil {
		return err
	}
	required := repro.SoakTime(upper, *confidence)
	if *forDur > 0 {
		required = forDur.Seconds()
	}
	if *state == "" {
		*state = "kcrash-soak-" + strings.NewReplacer("/", "_", ":", "_").Replace(*host) + ".json"
	}
	st, err := repro.LoadState(*state)
	if err != nil {
		return err
	}
	switch {
	case st == nil:
		st = &repro.SoakState{Version: repro.StateVersion, Host: *host, Signature: *sig, Any: *anyCrash,
			MTTC: upper, Rate: rate, Confidence: *confidence, Required: required, Verdict: repro.VerdictIncomplete}
	case st.Host != *host || st.Signature != *sig || st.Any != *anyCrash:
		return fmt.Errorf("%s is the state of another soak (host %s, signature %q); remove it or pass another --state", *state, st.Host, st.Signature)
	case st.Verdict != repro.VerdictIncomplete:
		return soakReport(env, st, *asJSON, "")
	default:
		fmt.Fprintf(env.stderr, "resuming the soak of %s from %s: %s watched of %s\n", *host, *state, repro.Dur(st.Watched), repro.Dur(st.Required))
	}
	if !*asJSON {
		how := "at most %s (95%%) as measured"
		if *rateFrom == "" {
			how = "of %s as given"
		}
		fmt.Fprintf(env.stdout, "%s of load without this crash gives %.4g%% confidence (mean time to crash "+how+")\n",
			repro.Dur(st.Required), 100*repro.SoakConfidence(st.Required, st.MTTC), repro.Dur(st.MTTC))
		if st.Signature == "" && !st.Any {
			fmt.Fprintf(env.stdout, "watching %s for any crash (no --signature)\n", *host)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	watch, campaigns, closeWatch, err := openWatcher(ctx, env, *server, *udp, *db, flagGiven(fs, "db"), *host)
	if err != nil {
		return err
	}
	defer closeWatch()
	rec := newRecorder(campaigns, env.stderr, "soak", *host, *load, st.Signature, st.Campaign)
	rec.save("running", "", st.Result())
	st.Campaign = rec.id()
	s := &repro.Soak{
		Load:  &repro.ShellLoad{Cmd: *load, Env: []string{"KCRASH_HOST=" + *host}, Output: env.stderr},
		Watch: watch, Match: &repro.Matcher{Signature: st.Signature, Any: st.Any || st.Signature == ""},
		State: st, MaxSilence: *maxSilence,
		Save: func(st *repro.SoakState) error {
			rec.save("running", "", st.Result())
			return st.Save(*state)
		},
		Progress: soakProgress(env.stderr),
	}
	st, err = s.Execute(ctx)
	status := st.Verdict
	if err != nil {
		status = err.Error()
	}
	if rec != nil {
		run := repro.Run{N: 1, Start: st.Started, Seconds: st.Watched, Outcome: repro.OutcomeCensored, Crash: st.Crash}
		if st.Crash != nil {
			run.Outcome = repro.OutcomeCrash
		}
		rec.run(run)
		rec.save(status, "", st.Result())
	}
	if isTerminal(env.stderr) {
		fmt.Fprintln(env.stderr)
	}
	note := ""
	if err != nil {
		note = err.Error()
		if errors.Is(err, context.Canceled) {
			note = "interrupted"
		}
		note += fmt.Sprintf("; run the same command again to continue from %s", *state)
	}
	if rerr := soakReport(env, st, *asJSON, note); rerr != nil {
		return rerr
	}
	if err != nil {
		return exitError{1}
	}
	return nil
}

// soakReport prints the verdict; "not fixed" exits with status 3.
func soakReport(env *cmdEnv, st *repro.SoakState, asJSON bool, note string) error {
	res := st.Result()
	if asJSON {
		if err := printJSON(env, res); err != nil {
			return err
		}
	} else {
		w := env.stdout
		switch st.Verdict {
		case repro.VerdictNotFixed:
			fmt.Fprintf(w, "not fixed: the crash came back after %s of clean load: report %d, %s (%s)\n",
				repro.Dur(st.Watched), st.Crash.ID, st.Crash.Title, st.Crash.Signature)
		case repro.VerdictFixed:
			if c := float64(res.Confidence); c >= st.Confidence {
				fmt.Fprintf(w, "fixed with %.4g%% confidence: %s of load watched without the crash\n", 100*st.Confidence, repro.Dur(st.Watched))
			} else {
				fmt.Fprintf(w, "fixed with only %.3g%% confidence: %s of load watched without the crash (--for is shorter than the %s %.4g%% needs)\n",
					100*c, repro.Dur(st.Watched), repro.Dur(repro.SoakTime(st.MTTC, st.Confidence)), 100*st.Confidence)
			}
			if r := float64(res.Reduction); r >= 1 {
				fmt.Fprintf(w, "if the bug is still there, its rate dropped at least %.3g× (95%%)\n", r)
			} else {
				fmt.Fprintf(w, "too short to say at 95%% that the rate dropped at all, if the bug is still there\n")
			}
		default:
			fmt.Fprintf(w, "incomplete: %s of %s watched without the crash (confidence so far %.3g%%)\n",
				repro.Dur(st.Watched), repro.Dur(st.Required), 100*float64(res.Confidence))
		}
		if st.Voided > 0 {
			fmt.Fprintf(w, "not counted: %s in %d stretches that were not watched:\n", repro.Dur(st.Voided), len(st.Gaps))
			for _, g := range st.Gaps {
				fmt.Fprintf(w, "  %s–%s: %s\n", g.From.Format(time.TimeOnly), g.To.Format(time.TimeOnly), g.Reason)
			}
		}
		for _, o := range st.Others {
			fmt.Fprintf(w, "another report during the soak: %d, %s (%s)\n", o.ID, o.Title, o.Signature)
		}
	}
	if note != "" {
		fmt.Fprintf(env.stderr, "kcrash soak: %s\n", note)
	}
	if st.Verdict == repro.VerdictNotFixed {
		return exitError{3}
	}
	return nil
}

// soakProgress prints elapsed, remaining and the confidence so far: on a terminal
// a line rewritten every second, elsewhere a line a minute.
func soakProgress(w io.Writer) func(*repro.SoakState) {
	tty := isTerminal(w)
	every := time.Minute
	if tty {
		every = time.Second
	}
	var last time.Time
	return func(st *repro.SoakState) {
		if time.Since(last) < every {
			return
		}
		last = time.Now()
		line := fmt.Sprintf("soak %s: %s watched, %s left, confidence %.3g%%", st.Host, repro.Dur(st.Watched),
			repro.Dur(max(0, st.Required-st.Watched)), 100*repro.SoakConfidence(st.Watched, st.MTTC))
		if st.Voided > 0 {
			line += fmt.Sprintf(", %s not counted", repro.Dur(st.Voided))
		}
		if tty {
			fmt.Fprintf(w, "\r%s\033[K", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}
