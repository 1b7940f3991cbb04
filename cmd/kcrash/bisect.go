package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/bisect"
	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/repro"
)

func init() {
	register(&command{
		name:     "bisect",
		synopsis: "find the first bad kernel version or commit of a flaky crash across reboots: a Bayesian search with stated confidence, resumable from its state file (bisect simulate: the search against simulated candidates)",
		usage:    "kcrash bisect (--versions FILE|a,b,c | --git DIR --good REV --bad REV) --host H --load CMD [--install CMD] [--boot CMD] [--ready CMD] [--signature SIG|--any] [--confidence C] [--rate-from FILE] [--state FILE | --resume STATE] [--server URL | --udp ADDR | --lab-target NAME] [--json]",
		run:      runBisect,
	})
}

// bisectSettings are the flags a bisection keeps in its state, so --resume needs
// none of them (a flag given again replaces the kept one: a hook fixed).
var bisectSettings = []string{"host", "install", "boot", "ready", "load", "server", "udp", "db", "lab-target", "lab-dir",
	"hook-timeout", "ready-timeout", "max-silence"}

func runBisect(env *cmdEnv, args []string) error {
	if len(args) > 0 && args[0] == "simulate" {
		return runBisectSimulate(env, args[1:])
	}
	c := commands["bisect"]
	fs := newFlagSet(env, c)
	versions := fs.String("versions", "", "candidates oldest first, the good end first and the bad end last: a `file` (one a line) or a comma-separated list")
	gitDir := fs.String("git", "", "bisect the commits of this git `directory` between --good and --bad")
	good := fs.String("good", "", "with --git: the good `revision`")
	bad := fs.String("bad", "", "with --git: the bad `revision`")
	firstParent := fs.Bool("first-parent", false, "with --git: only the first-parent history")
	skip := fs.String("skip", "", "with --git: comma-separated `revisions` that cannot be tested")
	fs.String("host", "", "the host to watch: its collector id, address or name")
	fs.String("install", "", "shell `command` that installs the candidate ({version}, {commit} substituted)")
	fs.String("boot", "", "shell `command` that reboots the host into the candidate and returns once it booted")
	fs.String("ready", "", "shell `command` that succeeds once the host is ready for load")
	fs.String("load", "", "shell `command` that loads the host until stopped")
	fs.String("server", "", "`URL` of a running kcrash serve to watch")
	fs.String("udp", ":6666", "without --server: netconsole `address` of the collector bisect runs itself")
	fs.String("db", filepath.Join(dataDir(), "kcrash.db"), "crash database where reports and the bisection are recorded")
	fs.String("lab-target", "", "watch this kcrash lab target's serial console instead of a collector (an oops netconsole cannot deliver)")
	fs.String("lab-dir", lab.DefaultDir(), "with --lab-target: the lab's cache directory")
	fs.String("hook-timeout", "10m", "longest an install or boot hook may take")
	fs.String("ready-timeout", "5m", "longest to wait for the host to be ready")
	fs.String("max-silence", "0s", "end a test whose host printed nothing this long (0: off)")
	sig := fs.String("signature", "", "the target crash's `signature` (a prefix is enough; default: the first crash's)")
	anyCrash := fs.Bool("any", false, "count any crash of the host as the target crash")
	confidence := fs.Float64("confidence", 0.95, "stop when the top candidate's posterior reaches `C`")
	rateFrom := fs.String("rate-from", "", "kcrash repro --json result `file`: the crash rate's prior")
	fixed := fs.Duration("test", 0, "test every candidate this long (default: chosen per test between --min-test and --max-test)")
	minTest := fs.Duration("min-test", 10*time.Second, "shortest test")
	maxTest := fs.Duration("max-test", 10*time.Minute, "longest test")
	overhead := fs.Duration("overhead", time.Minute, "time a test costs besides the load (install, reboot): weighs short tests against long ones")
	noVerify := fs.Bool("no-verify", false, "skip the verification of the culprit and its predecessor")
	state := fs.String("state", "kcrash-bisect.json", "state `file` written after every event")
	resume := fs.String("resume", "", "continue the bisection of this state `file`")
	asJSON := fs.Bool("json", false, "end with the result as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, ok := env.stderr.(*os.File); !ok {
		env = &cmdEnv{stdin: env.stdin, stdout: env.stdout, stderr: &lockedWriter{w: env.stderr}}
	}
	if fs.NArg() > 0 || *sig != "" && *anyCrash || (*versions != "") == (*gitDir != "") && *resume == "" {
		fs.Usage()
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var st *bisect.State
	path := *state
	if *resume != "" {
		path = *resume
		var err error
		if st, err = bisect.LoadState(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("--resume %s: no such state file", path)
			}
			prev := ""
			if _, perr := bisect.LoadState(path + ".prev"); perr == nil {
				prev = fmt.Sprintf("; %s.prev holds the state before the last write: copy it over %s and resume", path, path)
			}
			return fmt.Errorf("%w: it was not changed; nothing restarts from scratch%s, or start a new bisection with another --state", err, prev)
		}
		if *versions != "" || *gitDir != "" {
			cfg, err := bisectCandidates(ctx, *versions, *gitDir, *good, *bad, *firstParent)
			if err != nil {
				return err
			}
			if cfg.ID() != st.ID {
				return fmt.Errorf("%s is another bisection (%d candidates, %s..%s): resume it without --versions/--git, or start this one with another --state",
					path, len(st.Config.Candidates), st.Config.Candidates[0], st.Config.Candidates[len(st.Config.Candidates)-1])
			}
		}
		if (*sig != "" && st.Target != "" && st.Target != *sig) || (*anyCrash && st.Target != "*" && st.Target != "") {
			return fmt.Errorf("%s searches for the crash %q, not %q", path, st.Target, *sig)
		}
	} else {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: continue it with --resume %s, or pass another --state", path, path)
		}
		cfg, err := bisectCandidates(ctx, *versions, *gitDir, *good, *bad, *firstParent)
		if err != nil {
			return err
		}
		cfg.Confidence, cfg.Verify = *confidence, !*noVerify
		if *fixed > 0 {
			cfg.RunLength = fixed.Seconds()
		} else {
			cfg.MinTest, cfg.MaxTest, cfg.Overhead = minTest.Seconds(), maxTest.Seconds(), overhead.Seconds()
		}
		if *rateFrom != "" {
			if cfg.PriorShape, cfg.PriorRate, err = ratePrior(*rateFrom); err != nil {
				return err
			}
		}
		if st, err = bisect.NewState(cfg); err != nil {
			return err
		}
		st.Target = *sig
		if *anyCrash {
			st.Target = "*"
		}
		if *skip != "" {
			if err := skipCommits(ctx, st, *gitDir, *skip); err != nil {
				return err
			}
		}
	}
	if st.Config.Settings == nil {
		st.Config.Settings = map[string]string{}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !isSetting(f.Name) {
			return
		}
		if _, kept := st.Config.Settings[f.Name]; !kept || flagGiven(fs, f.Name) {
			st.Config.Settings[f.Name] = f.Value.String()
		}
	})
	set := st.Config.Settings
	if st.Verdict == nil && (set["host"] == "" && set["lab-target"] == "" || set["load"] == "") {
		return fmt.Errorf("need --host (or --lab-target) and --load")
	}
	if st.Verdict != nil {
		return bisectReport(env, st, *asJSON)
	}
	if err := st.Save(path); err != nil {
		return err
	}
	b, closeB, err := newBisector(ctx, env, st, fs)
	if err != nil {
		return err
	}
	defer closeB()
	if *resume != "" {
		fmt.Fprintf(env.stderr, "resuming %s: %d steps done", path, len(st.Steps))
		if p := st.Pending; p != nil {
			fmt.Fprintf(env.stderr, "; the test of %s interrupted at %s runs again", st.Config.Candidates[p.Test.Candidate], p.Start.Format(time.TimeOnly))
		}
		fmt.Fprintln(env.stderr)
	}
	out := env.stdout
	if *asJSON {
		out = env.stderr
	}
	fmt.Fprintf(out, "bisecting %d candidates %s..%s at %.3g%% confidence; state in %s\n", len(st.Config.Candidates),
		st.Config.Candidates[0], st.Config.Candidates[len(st.Config.Candidates)-1], 100*st.Config.Confidence, path)
	_, err = bisect.Run(ctx, st, b.test, bisect.Hooks{
		Save: func(st *bisect.State) error {
			b.record(st, "running")
			return st.Save(path)
		},
		Start: func(t bisect.Test) {
			fmt.Fprintf(out, "step %d [%s] %s: testing for up to %s\n", len(st.Steps)+1, t.Phase, st.Config.Candidates[t.Candidate], repro.Dur(t.Seconds))
		},
		Step: func(s *bisect.Search, step bisect.Step) {
			fmt.Fprintln(out, bisect.StepLine(st, step, s.Probs()))
		},
	})
	if err != nil {
		b.record(st, err.Error())
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; every observation is in %s: continue with kcrash bisect --resume %s", path, path)
		}
		return fmt.Errorf("%w\nevery observation so far is in %s; fix the cause (a hook given again replaces the kept one) and continue with kcrash bisect --resume %s", err, path, path)
	}
	b.record(st, st.Verdict.Status)
	return bisectReport(env, st, *asJSON)
}

func isSetting(name string) bool {
	for _, s := range bisectSettings {
		if s == name {
			return true
		}
	}
	return false
}

// bisectReport prints the verdict and, with --json, the result as the last line.
func bisectReport(env *cmdEnv, st *bisect.State, asJSON bool) error {
	if asJSON {
		bisect.WriteVerdict(env.stderr, st)
		line, err := json.Marshal(st.Result())
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s\n", line)
		return nil
	}
	bisect.WriteVerdict(env.stdout, st)
	return nil
}

// bisectCandidates reads --versions or lists the commits of --git.
func bisectCandidates(ctx context.Context, versions, gitDir, good, bad string, firstParent bool) (bisect.Config, error) {
	cfg := bisect.Config{FirstIsGood: true}
	if gitDir != "" {
		if good == "" || bad == "" {
			return cfg, errors.New("--git needs --good REV and --bad REV")
		}
		cfg.Kind = "git"
		goodSHA, err := gitOut(ctx, gitDir, "rev-parse", "--verify", good+"^{commit}")
		if err != nil {
			return cfg, err
		}
		list := []string{"rev-list", "--reverse"}
		if firstParent {
			list = append(list, "--first-parent")
		}
		commits, err := gitOut(ctx, gitDir, append(list, goodSHA+".."+bad)...)
		if err != nil {
			return cfg, err
		}
		cfg.Candidates = append([]string{goodSHA}, strings.Fields(commits)...)
		if len(cfg.Candidates) < 2 {
			return cfg, fmt.Errorf("no commit between %s and %s: is %s an ancestor of %s?", good, bad, good, bad)
		}
		return cfg, nil
	}
	cfg.Kind = "versions"
	var list []string
	if _, err := os.Stat(versions); err == nil && !strings.Contains(versions, ",") {
		f, err := os.Open(versions)
		if err != nil {
			return cfg, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				list = append(list, l)
			}
		}
		if err := sc.Err(); err != nil {
			return cfg, err
		}
	} else {
		for _, v := range strings.Split(versions, ",") {
			if v = strings.TrimSpace(v); v != "" {
				list = append(list, v)
			}
		}
	}
	if len(list) < 2 {
		return cfg, fmt.Errorf("--versions: need the good end and at least one more version, oldest first (have %q)", list)
	}
	for i := 1; i < len(list); i++ {
		if looksLikeABI(list[i-1]) && looksLikeABI(list[i]) && lab.CompareABIs(list[i-1], list[i]) >= 0 {
			return cfg, fmt.Errorf("--versions: %s comes after %s in Debian version order: list them oldest first (the good end first, as kcrash lab kernels does)", list[i-1], list[i])
		}
	}
	cfg.Candidates = list
	return cfg, nil
}

func looksLikeABI(v string) bool { return len(v) > 0 && v[0] >= '0' && v[0] <= '9' }

// skipCommits records the --skip revisions as untestable steps.
func skipCommits(ctx context.Context, st *bisect.State, gitDir, skip string) error {
	s, err := bisect.NewSearch(st)
	if err != nil {
		return err
	}
	for _, rev := range strings.Split(skip, ",") {
		sha, err := gitOut(ctx, gitDir, "rev-parse", "--verify", strings.TrimSpace(rev)+"^{commit}")
		if err != nil {
			return err
		}
		i := -1
		for j, c := range st.Config.Candidates {
			if c == sha {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("--skip %s: not a commit of the range", rev)
		}
		s.Record(bisect.Test{Candidate: i, Phase: bisect.PhaseSearch}, bisect.Observation{Outcome: bisect.Untestable, Note: "--skip"}, time.Now())
	}
	return nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ratePrior reads a kcrash repro --json result as the Gamma prior of the rate:
// shape its crashes, rate its exposure.
func ratePrior(path string) (float64, float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var res repro.Result
	if err := json.Unmarshal(data, &res); err != nil {
		var file reproFile
		if json.Unmarshal(data, &file) != nil {
			return 0, 0, fmt.Errorf("%s: not a kcrash repro --json result: %w", path, err)
		}
		res = file.Result
	}
	r := float64(res.Rate)
	if res.Crashes == 0 || !(r > 0) || math.IsInf(r, 0) {
		return 0, 0, fmt.Errorf("%s: the repro saw no crash (%d runs): no rate to start from; leave --rate-from out to learn it", path, res.Runs)
	}
	return float64(res.Crashes), float64(res.Crashes) / r, nil
}
