package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/bisect"
	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
)

// bisector runs kcrash bisect's tests with the real hooks: install, boot, wait
// until ready, load under the collector's watch (the oracle of kcrash repro).
type bisector struct {
	env   *cmdEnv
	st    *bisect.State
	set   map[string]string
	watch repro.Watcher
	rec   *recorder
	match *repro.Matcher
	runs  int // steps recorded in the crash database

	hookTimeout, readyTimeout, maxSilence time.Duration
}

func newBisector(ctx context.Context, env *cmdEnv, st *bisect.State, fs *flag.FlagSet) (*bisector, func(), error) {
	set := st.Config.Settings
	b := &bisector{env: env, st: st, set: set}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"hook-timeout", &b.hookTimeout}, {"ready-timeout", &b.readyTimeout}, {"max-silence", &b.maxSilence}} {
		v, err := time.ParseDuration(set[d.name])
		if err != nil || v < 0 {
			return nil, nil, fmt.Errorf("--%s %q: not a duration", d.name, set[d.name])
		}
		*d.to = v
	}
	host := set["host"]
	var cs store.Campaigns
	closeFn := func() {}
	if t := set["lab-target"]; t != "" {
		if host == "" {
			host = t
		}
		// The console's reports are stored as a collector would, and the
		// bisection recorded, in --db.
		var db store.Store
		if set["db"] != "" {
			s, err := openStore(ctx, set["db"])
			if err != nil {
				return nil, nil, err
			}
			db, closeFn = s, func() { s.Close() }
			cs, _ = s.(store.Campaigns)
		}
		b.watch = &lab.TargetConsole{Root: set["lab-dir"], Name: t, DB: db}
	} else {
		w, c, cl, err := openWatcher(ctx, env, set["server"], set["udp"], set["db"], flagGiven(fs, "db") || st.Campaign > 0, host)
		if err != nil {
			return nil, nil, err
		}
		b.watch, cs, closeFn = w, c, cl
	}
	set["host"] = host
	b.match = &repro.Matcher{Signature: st.Target, Any: st.Target == "*"}
	if b.match.Any {
		b.match.Signature = ""
	}
	b.rec = newRecorder(cs, env.stderr, "bisect", host, set["load"], strings.TrimPrefix(st.Target, "*"), st.Campaign)
	return b, closeFn, nil
}

// subst puts the candidate in a hook's command line.
func subst(cmd, v string) string {
	q := v
	if strings.ContainsAny(v, " \t\n'\"\\$`;&|<>()*?[]{}~!#") {
		q = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	return strings.NewReplacer("{version}", q, "{commit}", q).Replace(cmd)
}

// test is the predicate: one candidate tested for t.Seconds.
func (b *bisector) test(ctx context.Context, t bisect.Test) (bisect.Observation, error) {
	v := b.st.Config.Candidates[t.Candidate]
	env := []string{"KCRASH_HOST=" + b.set["host"], "KCRASH_VERSION=" + v}
	for _, h := range []string{"install", "boot"} {
		cmd := b.set[h]
		if cmd == "" {
			continue
		}
		fmt.Fprintf(b.env.stderr, "%s %s: %s\n", h, v, subst(cmd, v))
		hctx, cancel := context.WithTimeout(ctx, b.hookTimeout)
		err := repro.ShellHook(subst(cmd, v), env, b.env.stderr)(hctx)
		timedOut := hctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return bisect.Observation{}, ctx.Err()
		}
		if timedOut {
			err = fmt.Errorf("timed out after %s", b.hookTimeout)
		}
		if err != nil {
			return bisect.Observation{Outcome: bisect.Untestable, Note: fmt.Sprintf("%s hook failed: %v", h, err)}, nil
		}
	}
	camp := &repro.Campaign{
		Load:  &repro.ShellLoad{Cmd: subst(b.set["load"], v), Env: env, Output: b.env.stderr},
		Watch: b.watch, Match: b.match, Ready: repro.ShellHook(subst(b.set["ready"], v), env, b.env.stderr),
		Runs: 1, Timeout: time.Duration(t.Seconds * float64(time.Second)), ReadyTimeout: b.readyTimeout, MaxSilence: b.maxSilence,
		Poll: 100 * time.Millisecond,
	}
	runs, err := camp.Execute(ctx)
	if errors.Is(err, repro.ErrNotBack) {
		return bisect.Observation{Outcome: bisect.Untestable, Note: "not ready: " + err.Error()}, nil
	}
	if err != nil {
		return bisect.Observation{}, err
	}
	if b.match.Signature != "" && b.st.Target == "" {
		b.st.Target = b.match.Signature
	}
	r := runs[0]
	o := bisect.Observation{Outcome: bisect.Survived, Seconds: r.Seconds}
	switch r.Outcome {
	case repro.OutcomeCrash:
		o.Outcome = bisect.Crash
	case repro.OutcomeOther:
		o.Outcome, o.Note = bisect.Other, "another crash: "+r.Crash.Title
	case repro.OutcomeSilent:
		o.Note = "the host went silent: watched until last heard"
	}
	if r.Crash != nil {
		o.Signature, o.Title, o.Report = r.Crash.Signature, r.Crash.Title, r.Crash.ID
	}
	return o, nil
}

// record keeps the bisection in the crash database as a campaign of kind
// "bisect" (its result the summary the dashboard draws).
func (b *bisector) record(st *bisect.State, status string) {
	if b.rec == nil {
		return
	}
	sum, err := bisect.Summarize(st)
	if err != nil {
		return
	}
	b.rec.save(status, strings.TrimPrefix(st.Target, "*"), sum)
	if st.Campaign == 0 && b.rec.id() > 0 {
		st.Campaign = b.rec.id()
	}
	for ; b.runs < len(st.Steps); b.runs++ {
		s := st.Steps[b.runs]
		b.rec.run(repro.Run{N: s.N, Start: s.Start, Seconds: s.Watched, Outcome: s.Outcome, Crash: crashOf(s)})
	}
}

func crashOf(s bisect.Step) *repro.Crash {
	if s.Outcome != bisect.Crash && s.Outcome != bisect.Other {
		return nil
	}
	return &repro.Crash{ID: s.Report, Signature: s.Signature, Title: s.Title}
}
