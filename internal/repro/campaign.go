package repro

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outcomes of a run.
const (
	OutcomeCrash    = "crash"    // the target crash: its time counts
	OutcomeCensored = "censored" // watched until the timeout without it
	OutcomeOther    = "other"    // the host died of another crash first: censored then
	OutcomeSilent   = "silent"   // the host went silent (MaxSilence): censored when last heard
)

// Run is one run of a campaign.
type Run struct {
	N     int       `json:"n"`
	Start time.Time `json:"start"`
	// Seconds is the time to crash, or how long the run was watched without it.
	Seconds float64 `json:"seconds"`
	Outcome string  `json:"outcome"`
	// Crash is the report that ended the run (target or other crash).
	Crash *Crash `json:"crash,omitempty"`
	// Others are the reports of other signatures that did not end the run.
	Others []Crash `json:"others,omitempty"`
	// Overhead is how long after the report's first line reached the collector the
	// campaign saw it (seconds).
	Overhead float64 `json:"overhead_s,omitempty"`
}

// Campaign measures a crash's time to crash under a load: it starts the load,
// watches the collector for the host's report, stops the load, restarts the host
// and waits for it to be back, Runs times.
type Campaign struct {
	Load    Load
	Watch   Watcher
	Restart Hook // nil: the host reboots by itself after a crash (panic=N)
	Ready   Hook // nil: the host is back when its netconsole stream resumes
	Match   *Matcher

	Runs    int
	Timeout time.Duration // a run without the crash this long is censored

	// RestartTimeout bounds the restart hook (default 5 min); ReadyTimeout the wait
	// for the host to be back (default 10 min); Unreachable how long the collector
	// may not answer (default 30 s); Poll is the polling period (default 200 ms);
	// Grace is how long a load that ended is given for its crash to arrive (5 s): a
	// load that failed then ends the campaign, one that ended cleanly ends the run,
	// censored when the load ended.
	RestartTimeout, ReadyTimeout, Unreachable, Poll, Grace time.Duration

	// MaxSilence ends a run whose host was not heard from this long (a hang that
	// prints nothing), censored when it was last heard; 0 disables it.
	MaxSilence time.Duration

	// OnRun is called after every run with all runs so far (to save them).
	OnRun func(runs []Run)
	// Progress is called while a run is watched.
	Progress func(run int, elapsed time.Duration)
	// Note is told what the campaign waits for between runs.
	Note func(string)
}

func (c *Campaign) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RestartTimeout, 5*time.Minute)
	def(&c.ReadyTimeout, 10*time.Minute)
	def(&c.Unreachable, 30*time.Second)
	def(&c.Poll, 200*time.Millisecond)
	def(&c.Grace, 5*time.Second)
	if c.Match == nil {
		c.Match = &Matcher{}
	}
}

// Execute runs the campaign. It returns every run recorded, also with an error
// (a load that does not start, a hook that fails, a host that does not come back,
// a collector that stops answering): a run cut short by an error is not recorded.
func (c *Campaign) Execute(ctx context.Context) ([]Run, error) {
	c.defaults()
	if c.Runs <= 0 || c.Timeout <= 0 {
		return nil, fmt.Errorf("repro: need runs > 0 and a timeout")
	}
	p := &poller{w: c.Watch, every: c.Poll, unreachable: c.Unreachable}
	if _, err := c.Watch.Poll(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if c.Ready != nil {
		if err := c.ready(ctx, p, time.Now()); err != nil {
			return nil, err
		}
	}
	var runs []Run
	for i := 1; i <= c.Runs; i++ {
		r, err := c.run(ctx, p, i)
		if err != nil {
			return runs, fmt.Errorf("run %d: %w", i, err)
		}
		runs = append(runs, r)
		if c.OnRun != nil {
			c.OnRun(runs)
		}
		if i == c.Runs && c.Restart == nil {
			break
		}
		if err := c.recover(ctx, p, r); err != nil {
			return runs, fmt.Errorf("after run %d: %w", i, err)
		}
	}
	return runs, nil
}

// run is one run: load until the crash or the timeout.
func (c *Campaign) run(ctx context.Context, p *poller, n int) (Run, error) {
	// Forget what arrived before this run (a late report of the previous crash).
	if _, err := p.poll(ctx, time.Now()); err != nil {
		return Run{}, err
	}
	start := time.Now()
	r := Run{N: n, Start: start}
	proc, err := c.Load.Start(ctx)
	if err != nil {
		return r, fmt.Errorf("load did not start: %w", err)
	}
	defer proc.Stop()
	deadline := start.Add(c.Timeout)
	loadDone := proc.Done()
	var loadEnd time.Time
	var loadErr error
	for {
		now := time.Now()
		obs, err := p.poll(ctx, now)
		if err != nil {
			return r, err
		}
		for _, cr := range obs.Reports {
			ttc := cr.Time.Sub(start)
			if ttc < -2*time.Second {
				continue // stored late, from before this run
			}
			ttc = max(ttc, 0)
			if !c.Match.Match(cr) {
				if !cr.Panicked {
					r.Others = append(r.Others, cr)
					continue
				}
				r.Outcome = OutcomeOther
			} else {
				r.Outcome = OutcomeCrash
			}
			cr := cr
			r.Crash, r.Seconds = &cr, ttc.Seconds()
			if !cr.Seen.IsZero() {
				r.Overhead = max(0, cr.Seen.Sub(cr.Time).Seconds())
			}
			proc.Stop()
			return r, nil
		}
		if heard := later(p.lastSeen, start); c.MaxSilence > 0 && p.ok && now.Sub(heard) > c.MaxSilence {
			r.Outcome, r.Seconds = OutcomeSilent, heard.Sub(start).Seconds()
			return r, nil
		}
		if !now.Before(deadline) {
			r.Outcome, r.Seconds = OutcomeCensored, c.Timeout.Seconds()
			return r, nil
		}
		select {
		case <-loadDone:
			// The load ended: its crash may still be on its way (a flood ends when
			// the crashed target goes away, before the report is complete).
			loadDone, loadErr, loadEnd = nil, proc.Err(), now
		default:
		}
		if !loadEnd.IsZero() && now.Sub(loadEnd) > c.Grace {
			if loadErr != nil {
				return r, fmt.Errorf("load failed and no crash followed: %w", loadErr)
			}
			// A load that ended cleanly: the run was loaded, and watched, until then.
			r.Outcome, r.Seconds = OutcomeCensored, loadEnd.Sub(start).Seconds()
			return r, nil
		}
		if c.Progress != nil {
			c.Progress(n, now.Sub(start))
		}
		if err := sleep(ctx, min(c.Poll, time.Until(deadline)+time.Millisecond)); err != nil {
			return r, err
		}
	}
}

// recover restarts the host after a run and waits for it to be back.
func (c *Campaign) recover(ctx context.Context, p *poller, r Run) error {
	since := time.Now()
	if c.Restart != nil {
		c.note("restarting the host")
		// Lines heard while the hook runs count: a hook that waits for the boot
		// (kcrash lab target reboot) returns after the host printed it.
		hctx, cancel := context.WithTimeout(ctx, c.RestartTimeout)
		err := c.Restart(hctx)
		timedOut := hctx.Err() != nil && ctx.Err() == nil
		cancel()
		if timedOut {
			return fmt.Errorf("restart hook timed out after %s", c.RestartTimeout)
		}
		if err != nil {
			return fmt.Errorf("restart hook: %w", err)
		}
	} else if r.Outcome == OutcomeCensored {
		return nil // nothing crashed and nothing restarts: the host is up
	}
	return c.ready(ctx, p, since)
}

// ErrNotBack is returned when the host does not come back after a restart.
var ErrNotBack = errors.New("host did not come back")

// ready waits for the host: the Ready hook until it succeeds, or a new boot or a
// line heard after since (without a restart hook, at least 5 s after it, so a
// crashed kernel's last lines are not taken for a new boot).
func (c *Campaign) ready(ctx context.Context, p *poller, since time.Time) error {
	end := time.Now().Add(c.ReadyTimeout)
	if c.Ready != nil {
		c.note("waiting for the ready check")
	} else {
		c.note("waiting for the host's netconsole stream to resume")
	}
	after := since
	if c.Restart == nil {
		after = since.Add(5 * time.Second)
	}
	var last error
	for {
		if c.Ready != nil {
			hctx, cancel := context.WithDeadline(ctx, end)
			last = c.Ready(hctx)
			cancel()
			if last == nil {
				return nil
			}
		} else {
			if _, err := p.poll(ctx, time.Now()); err != nil {
				return err
			}
			if p.lastBoot.After(since) || p.lastSeen.After(after) {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(end) {
			if last != nil {
				return fmt.Errorf("%w within %s: ready check: %v", ErrNotBack, c.ReadyTimeout, last)
			}
			return fmt.Errorf("%w within %s (no netconsole line since the restart)", ErrNotBack, c.ReadyTimeout)
		}
		wait := c.Poll
		if c.Ready != nil {
			wait = max(c.Poll, time.Second)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Times splits runs into crash times and censored times (seconds) for Fit.
func Times(runs []Run) (crashes, censored []float64) {
	for _, r := range runs {
		if r.Outcome == OutcomeCrash {
			crashes = append(crashes, r.Seconds)
		} else {
			censored = append(censored, r.Seconds)
		}
	}
	return crashes, censored
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (c *Campaign) note(s string) {
	if c.Note != nil {
		c.Note(s)
	}
}
