package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
		name:     "repro",
		synopsis: "summon a crash on demand: run a load until the host crashes, restart it, repeat; time to crash with censoring, rate and mean with 95% intervals, load comparison",
		usage:    "kcrash repro --host H --load CMD [--restart CMD] [--ready CMD] [--runs N] [--timeout DUR] [--signature SIG|--any] [--compare LOAD2] [--server URL | --udp ADDR --db PATH] [--out FILE] [--json]",
		run:      runRepro,
	})
}

// reproFile is --out: the result and every run, rewritten after each run.
type reproFile struct {
	Host      string       `json:"host"`
	Signature string       `json:"signature,omitempty"`
	Load      string       `json:"load"`
	Result    repro.Result `json:"result"`
	Runs      []repro.Run  `json:"runs"`
	Compare   *reproFile   `json:"compare,omitempty"`
	Error     string       `json:"error,omitempty"`
}

func runRepro(env *cmdEnv, args []string) error {
	c := commands["repro"]
	fs := newFlagSet(env, c)
	host := fs.String("host", "", "the host to watch: its collector id (ADDR:PORT), its address (any port) or its name")
	load := fs.String("load", "", "shell `command` that loads the host until stopped (SIGTERM to its process group)")
	compare := fs.String("compare", "", "a second load `command` to measure the same way and compare with the first")
	restart := fs.String("restart", "", "shell `command` run after every run to restart the host (default: it reboots by itself after a crash)")
	ready := fs.String("ready", "", "shell `command` that succeeds once the host is back (default: its netconsole stream resumes)")
	runs := fs.Int("runs", 10, "runs per load")
	timeout := fs.Duration("timeout", 10*time.Minute, "a run without the crash this long is censored")
	restartTimeout := fs.Duration("restart-timeout", 5*time.Minute, "longest the restart hook may take")
	readyTimeout := fs.Duration("ready-timeout", 10*time.Minute, "longest to wait for the host to be back")
	maxSilence := fs.Duration("max-silence", 0, "end a run whose host printed nothing this long, censored when last heard (0: off; for hosts that print a heartbeat)")
	sig := fs.String("signature", "", "the crash's `signature` (a prefix is enough; default: the first crash's)")
	anyCrash := fs.Bool("any", false, "count any report of the host as the crash")
	server := fs.String("server", "", "`URL` of a running kcrash serve to watch")
	udp := fs.String("udp", ":6666", "without --server: netconsole `address` of the collector repro runs itself")
	db := fs.String("db", filepath.Join(dataDir(), "kcrash.db"), "crash database (SQLite `file` or postgres:// URL): the embedded collector's, where campaigns are recorded; with --server, recorded only when given")
	out := fs.String("out", "", "write the result and every run to this JSON `file` after each run")
	asJSON := fs.Bool("json", false, "print the numbers as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, ok := env.stderr.(*os.File); !ok {
		env = &cmdEnv{stdin: env.stdin, stdout: env.stdout, stderr: &lockedWriter{w: env.stderr}}
	}
	if *host == "" || *load == "" || fs.NArg() > 0 || *sig != "" && *anyCrash {
		fs.Usage()
		return errUsage
	}
	if *runs <= 0 || *timeout <= 0 {
		return fmt.Errorf("--runs and --timeout must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	watch, campaigns, closeWatch, err := openWatcher(ctx, env, *server, *udp, *db, flagGiven(fs, "db"), *host)
	if err != nil {
		return err
	}
	defer closeWatch()

	hookEnv := []string{"KCRASH_HOST=" + *host}
	match := &repro.Matcher{Signature: *sig, Any: *anyCrash}
	file := &reproFile{Host: *host, Load: *load}
	save := func() {
		if *out == "" {
			return
		}
		file.Signature = match.Signature
		if data, err := json.MarshalIndent(file, "", "  "); err == nil {
			os.WriteFile(*out, append(data, '\n'), 0o644)
		}
	}
	measure := func(cmd, name string, into *reproFile) ([]repro.Run, error) {
		camp := &repro.Campaign{
			Load:  &repro.ShellLoad{Cmd: cmd, Env: hookEnv, Output: env.stderr},
			Watch: watch, Match: match,
			Restart: repro.ShellHook(*restart, hookEnv, env.stderr), Ready: repro.ShellHook(*ready, hookEnv, env.stderr),
			Runs: *runs, Timeout: *timeout, RestartTimeout: *restartTimeout, ReadyTimeout: *readyTimeout, MaxSilence: *maxSilence,
		}
		camp.Note = func(s string) { fmt.Fprintf(env.stderr, "%s\n", strings.TrimSpace(s+name)) }
		rec := newRecorder(campaigns, env.stderr, "repro", *host, cmd, match.Signature, 0)
		rec.save("running", "", nil)
		camp.OnRun = func(rs []repro.Run) {
			r := rs[len(rs)-1]
			into.Runs = rs
			into.Result, _, _ = repro.Summarize(rs)
			save()
			rec.run(r)
			rec.save("running", match.Signature, into.Result)
			fmt.Fprintf(env.stderr, "run %d/%d%s: %s\n", r.N, *runs, name, reproRunLine(r))
		}
		rs, err := camp.Execute(ctx)
		into.Result, _, _ = repro.Summarize(rs)
		status := "done"
		if err != nil {
			into.Error, status = err.Error(), err.Error()
			save()
		}
		rec.save(status, match.Signature, into.Result)
		if id := rec.id(); id > 0 {
			fmt.Fprintf(env.stderr, "recorded as campaign %d in the crash database\n", id)
		}
		return rs, err
	}

	first, err := measure(*load, "", file)
	res, e1, s1 := repro.Summarize(first)
	var second []repro.Run
	var e2 repro.Estimate
	var s2 repro.Shape
	if err == nil && *compare != "" {
		file.Compare = &reproFile{Host: *host, Load: *compare}
		second, err = measure(*compare, " (compare)", file.Compare)
		var res2 repro.Result
		res2, e2, s2 = repro.Summarize(second)
		res.WithCompare(res2, repro.RateRatio(e1, e2))
	}
	file.Result = res
	save()
	if *asJSON {
		if jerr := printJSON(env, res); jerr != nil {
			return jerr
		}
	} else {
		label := "load: " + *load
		if match.Signature != "" && !match.Any {
			label += "\ncrash: " + match.Signature
		}
		repro.WriteText(env.stdout, label, first, e1, s1)
		if *compare != "" && (second != nil || err == nil) {
			repro.WriteText(env.stdout, "compare: "+*compare, second, e2, s2)
			fmt.Fprintln(env.stdout, repro.RatioText("--load", "--compare", repro.RateRatio(e1, e2)))
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; the runs above were recorded")
		}
		return fmt.Errorf("%w (the runs before it are in the result)", err)
	}
	return nil
}

func reproRunLine(r repro.Run) string {
	switch r.Outcome {
	case repro.OutcomeCrash:
		return fmt.Sprintf("crash after %s: %s (%s), seen %.0f ms after its first line", repro.Dur(r.Seconds), r.Crash.Title, r.Crash.Signature, r.Overhead*1000)
	case repro.OutcomeSilent:
		return fmt.Sprintf("the host went silent after %s, censored", repro.Dur(r.Seconds))
	case repro.OutcomeOther:
		return fmt.Sprintf("another crash after %s: %s (%s), censored", repro.Dur(r.Seconds), r.Crash.Title, r.Crash.Signature)
	}
	return fmt.Sprintf("no crash in %s, censored", repro.Dur(r.Seconds))
}
