package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// The repro scenario drives kcrash repro and soak's own loops (internal/repro)
// in-process against one lab target with the netrace module: the load is Flood
// into its NIC, the restart hook reboots it, and the watcher reads its serial
// console as a console server would. Not netconsole: netrace oopses inside the
// NIC's own NAPI poll, where netpoll finds the device owned by this CPU
// (netpoll_owner_active) and queues the oops for a work item that never runs
// after the panic; none of it leaves the guest. The campaigns and their runs are
// recorded in the scenario's crash database (kcrash.db), as kcrash repro and soak
// record theirs.

// ReproScenarioResult is `kcrash lab scenario repro --json`: the contract is
// exactly these keys.
type ReproScenarioResult struct {
	// Repro is kcrash repro --json of the flood, compared with idle.
	Repro repro.Result `json:"repro"`
	// SoakFixed and SoakBuggy are kcrash soak --json at 95% of the fixed=1 module
	// and of the buggy one under the same flood.
	SoakFixed repro.SoakResult `json:"soak_fixed"`
	SoakBuggy repro.SoakResult `json:"soak_buggy"`
}

// Parameters of the repro scenario: flood runs of at most reproRunLimit; the idle
// part is reproIdleRuns runs of reproIdleLimit (60 s in all); soaks at 95%.
const (
	reproRunLimit   = 60 * time.Second
	reproIdleRuns   = 2
	reproIdleLimit  = 30 * time.Second
	reproConfidence = 0.95
	// reproPoll is how often the console is read: a crash is timed when the poll
	// after its first line saw it, so this is the resolution of the times to crash.
	reproPoll      = 25 * time.Millisecond
	reproHost      = "repro" // the target's name
	reproBuggyArgs = "lab_load=netrace"
	reproFixedArgs = "lab_load=netrace netrace.fixed=1"
)

// floodLoad is a repro.Load: a UDP flood into the target's forwarded port (read
// at each start: every boot has a new one).
type floodLoad struct {
	st  *TargetState
	pps int
}

func (l floodLoad) Start(ctx context.Context) (repro.Process, error) {
	if l.st.UDPPort == 0 {
		return nil, errors.New("the target has no forwarded UDP port")
	}
	lctx, cancel := context.WithCancel(ctx)
	p := &funcProcess{done: make(chan struct{}), cancel: cancel}
	to := fmt.Sprintf("127.0.0.1:%d", l.st.UDPPort)
	go func() {
		_, err := Flood(lctx, LoadOptions{To: to, PPS: l.pps})
		p.finish(err)
	}()
	return p, nil
}

// idleLoad is a repro.Load that does nothing until stopped.
type idleLoad struct{}

func (idleLoad) Start(ctx context.Context) (repro.Process, error) {
	lctx, cancel := context.WithCancel(ctx)
	p := &funcProcess{done: make(chan struct{}), cancel: cancel}
	go func() {
		<-lctx.Done()
		p.finish(nil)
	}()
	return p, nil
}

// funcProcess is a repro.Process run by a goroutine that ends when cancel is called.
type funcProcess struct {
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func (p *funcProcess) finish(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

func (p *funcProcess) Done() <-chan struct{} { return p.done }

func (p *funcProcess) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

func (p *funcProcess) Stop() error {
	p.cancel()
	<-p.done
	return nil
}

// reproTarget is the scenario's target with the hooks the loops use.
type reproTarget struct {
	st  *TargetState
	k   *Kernel
	cfg *Config
	// crashed says the last run ended in a report: the target must be rebooted
	// even when its status does not say crashed yet (the panic still printing).
	crashed bool
}

// boot reboots the target with args and waits for it to be ready.
func (t *reproTarget) boot(ctx context.Context, args string) error {
	t.st.Args = args
	if err := t.st.Reboot(ctx, t.k); err != nil {
		return err
	}
	_, err := t.st.WaitReady(ctx, 90*time.Second)
	t.crashed = false
	return err
}

// restart is the campaigns' restart hook: a reboot after a crash, nothing when the
// target is still running.
func (t *reproTarget) restart(ctx context.Context) error {
	if !t.crashed && t.st.Status(ctx).State == "running" {
		return nil
	}
	t.cfg.progress("scenario repro: rebooting the target")
	return t.boot(ctx, t.st.Args)
}

// ready is the campaigns' ready check.
func (t *reproTarget) ready(ctx context.Context) error {
	if s := t.st.Status(ctx); s.State != "running" {
		return fmt.Errorf("target %s is %s", t.st.Name, s.State)
	}
	return nil
}

// runReproScenario: a target with netrace; kcrash repro's loop with the flood
// (o.Runs runs, default 5, of at most 60 s) compared with idle (2 runs of 30 s);
// then kcrash soak's loop at 95%, sized on the flood's mean time to crash (upper
// 95% bound), on the buggy module and on fixed=1.
func runReproScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	k, err := kernelFor(ctx, cfg, o.Kernel, true)
	if err != nil {
		return nil, err
	}
	runs := o.Runs
	if runs <= 0 {
		runs = 5
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "kcrash.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := StartTarget(ctx, Config{Dir: dir}, k, TargetOptions{Name: reproHost, Args: reproBuggyArgs})
	if err != nil {
		return nil, err
	}
	defer st.Stop(context.WithoutCancel(ctx))
	if _, err := st.WaitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	t := &reproTarget{st: st, k: k, cfg: cfg}
	w := &consoleWatcher{st: st, db: db}
	match := &repro.Matcher{}
	floodName := fmt.Sprintf("kcrash lab load --pps %d", o.PPS)
	measure := func(name string, load repro.Load, n int, limit time.Duration) ([]repro.Run, error) {
		c := &repro.Campaign{Load: load, Watch: w, Match: match, Restart: t.restart, Ready: t.ready,
			Runs: n, Timeout: limit, RestartTimeout: 3 * time.Minute, ReadyTimeout: 2 * time.Minute, Poll: reproPoll,
			OnRun: func(rs []repro.Run) {
				r := rs[len(rs)-1]
				t.crashed = r.Outcome != repro.OutcomeCensored
				cfg.progress("scenario repro: %s run %d: %s after %.1fs", name, r.N, r.Outcome, r.Seconds)
			}}
		rs, err := c.Execute(ctx)
		if err != nil {
			return nil, fmt.Errorf("repro %s: %w", name, err)
		}
		return rs, nil
	}
	flood, err := measure("flood", floodLoad{st: st, pps: o.PPS}, runs, reproRunLimit)
	if err != nil {
		return nil, err
	}
	idle, err := measure("idle", idleLoad{}, reproIdleRuns, reproIdleLimit)
	if err != nil {
		return nil, err
	}
	res := &ReproScenarioResult{}
	var e1, e2 repro.Estimate
	res.Repro, e1, _ = repro.Summarize(flood)
	idleRes, e2, _ := repro.Summarize(idle)
	res.Repro.WithCompare(idleRes, repro.RateRatio(e1, e2))
	record(ctx, db, "repro", floodName, match.Signature, "done", res.Repro, flood)
	record(ctx, db, "repro", "idle", match.Signature, "done", idleRes, idle)
	if e1.Crashes == 0 {
		return nil, fmt.Errorf("the race never crashed under the flood in %d runs of %s", runs, reproRunLimit)
	}

	// Soaks sized as kcrash soak --rate-from sizes them: on the rate's lower bound.
	upper := 1 / e1.RateLo
	soak := func(name, args string) (repro.SoakResult, error) {
		if err := t.boot(ctx, args); err != nil {
			return repro.SoakResult{}, err
		}
		state := &repro.SoakState{Version: repro.StateVersion, Host: reproHost, Signature: match.Signature,
			MTTC: upper, Rate: e1.Rate, Confidence: reproConfidence, Required: repro.SoakTime(upper, reproConfidence),
			Verdict: repro.VerdictIncomplete}
		cfg.progress("scenario repro: soak %s for %.1fs", name, state.Required)
		s := &repro.Soak{Load: floodLoad{st: st, pps: o.PPS}, Watch: w, Match: &repro.Matcher{Signature: match.Signature}, State: state, Poll: reproPoll}
		state, err := s.Execute(ctx)
		if err != nil {
			return repro.SoakResult{}, fmt.Errorf("soak %s: %w", name, err)
		}
		t.crashed = state.Crash != nil
		cfg.progress("scenario repro: soak %s: %s after %.1fs", name, state.Verdict, state.Watched)
		run := repro.Run{N: 1, Start: state.Started, Seconds: state.Watched, Outcome: repro.OutcomeCensored, Crash: state.Crash}
		if state.Crash != nil {
			run.Outcome = repro.OutcomeCrash
		}
		record(ctx, db, "soak", floodName+" ("+args+")", match.Signature, state.Verdict, state.Result(), []repro.Run{run})
		return state.Result(), nil
	}
	if res.SoakBuggy, err = soak("buggy", reproBuggyArgs); err != nil {
		return nil, err
	}
	if res.SoakFixed, err = soak("fixed", reproFixedArgs); err != nil {
		return nil, err
	}
	return res, nil
}

// record keeps a campaign and its runs in the scenario's crash database, as
// kcrash repro and soak do (the dashboard's campaign pages read them); a failure
// to record does not fail the scenario.
func record(ctx context.Context, cs store.Campaigns, kind, load, sig, status string, result any, runs []repro.Run) {
	now := time.Now()
	c := store.Campaign{Kind: kind, Host: reproHost, Load: load, Signature: sig, Started: now, Updated: now, Status: status}
	if len(runs) > 0 {
		c.Started = runs[0].Start
	}
	c.Result, _ = json.Marshal(result)
	if cs.SaveCampaign(ctx, &c) != nil {
		return
	}
	for _, r := range runs {
		cr := store.CampaignRun{N: r.N, Start: r.Start, Seconds: r.Seconds, Outcome: r.Outcome}
		if r.Crash != nil {
			cr.Report, cr.Signature = r.Crash.ID, r.Crash.Signature
		}
		cs.SaveCampaignRun(ctx, c.ID, cr)
	}
}

// consoleWatcher is a repro.Watcher of a target's serial console (console.log):
// a report arrives when its first byte reached the file (timed by the poll that
// saw the file grow past it), and is returned once complete (the panic's trailer
// printed, or the console quiet for a second), stored in the crash database.
type consoleWatcher struct {
	st *TargetState
	// db, when set, stores every report as a collector would.
	db      store.Store
	started bool
	boot    int64 // the console offset of the boot being read
	seen    int   // reports of this boot already returned
	size    int64
	grew    []growth
	heard   time.Time
}

// growth is when the boot's console reached a size.
type growth struct {
	size int64
	at   time.Time
}

// quietDone is how long a console must be quiet for a report without the panic
// trailer to count as complete.
const quietDone = time.Second

func (w *consoleWatcher) Poll(ctx context.Context) (repro.Observation, error) {
	now := time.Now()
	if !w.started || w.st.ConsoleOffset != w.boot {
		w.boot, w.seen, w.size, w.grew = w.st.ConsoleOffset, 0, 0, nil
	}
	data, err := readFrom(w.st.Console(), w.boot)
	if err != nil {
		return repro.Observation{}, err
	}
	if n := int64(len(data)); n > w.size {
		w.size, w.heard = n, now
		w.grew = append(w.grew, growth{n, now})
	}
	obs := repro.Observation{LastSeen: w.heard, LastBoot: w.st.Started}
	if !w.started {
		// The first poll sets the starting point.
		w.started, w.seen = true, len(oops.Parse(data))
		return obs, nil
	}
	if !bytes.Contains(data, []byte(PanicTrailer)) && now.Sub(w.heard) < quietDone {
		return obs, nil // a report may be printing
	}
	reps := oops.Parse(data)
	for _, r := range reps[min(w.seen, len(reps)):] {
		c := repro.Crash{Host: w.st.Name, Time: w.arrival(int64(r.Start)), Seen: now,
			Kind: string(r.Kind), Title: r.Title, Signature: r.Signature, Panicked: r.Panicked}
		c.ID = w.save(ctx, data, r, c.Time)
		obs.Reports = append(obs.Reports, c)
	}
	w.seen = max(w.seen, len(reps))
	return obs, nil
}

// save stores a report in the crash database, as a collector would (best effort:
// 0 when there is none or it fails).
func (w *consoleWatcher) save(ctx context.Context, boot []byte, r *oops.Report, at time.Time) int64 {
	if w.db == nil {
		return 0
	}
	start, end := max(0, min(r.Start, len(boot))), max(0, min(r.End, len(boot)))
	start = bytes.LastIndexByte(boot[:start], '\n') + 1
	end = max(start, end)
	parsed, _ := json.Marshal(r)
	release := r.Release
	if release == "" {
		release = w.st.ABI
	}
	rep := &store.Report{Key: fmt.Sprintf("%s %s boot %d at %d", w.st.Dir, w.st.Started.Format(time.RFC3339Nano), w.boot, start),
		Host: w.st.Name, Time: at, Kind: string(r.Kind), Title: r.Title, Signature: r.Signature, Release: release,
		Corrupted: r.Corrupted, Panicked: r.Panicked, Text: string(boot[start:end]), Parsed: parsed}
	id, _, err := w.db.SaveReport(ctx, rep)
	if err != nil {
		return 0
	}
	return id
}

// arrival is when the console first held byte off of the boot.
func (w *consoleWatcher) arrival(off int64) time.Time {
	for _, g := range w.grew {
		if g.size > off {
			return g.at
		}
	}
	return w.heard
}

// readFrom reads a file from offset off.
func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, 64<<20))
}
