package repro

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// errClean scripts a load that exits cleanly.
var errClean = errors.New("clean exit")

func TestCampaign(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		script   []step
		match    Matcher
		restart  func(h *fakeHost) Hook
		ready    Hook
		runs     int
		outcomes []string
		err      string
	}{
		{
			name:     "crashes and a censored run",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}, {}, {after: 30 * ms, sig: "v1:aa", panicked: true}},
			runs:     3,
			outcomes: []string{OutcomeCrash, OutcomeCensored, OutcomeCrash},
		},
		{
			name:     "another signature is not the target",
			script:   []step{{after: 20 * ms, sig: "v1:bb", panicked: true}, {after: 20 * ms, sig: "v1:aa", panicked: true}},
			match:    Matcher{Signature: "v1:aa"},
			runs:     2,
			outcomes: []string{OutcomeOther, OutcomeCrash},
		},
		{
			name:     "a warning of another signature does not end the run",
			script:   []step{{after: 20 * ms, sig: "v1:bb"}},
			match:    Matcher{Signature: "v1:aa"},
			runs:     1,
			outcomes: []string{OutcomeCensored},
		},
		{
			name:     "any report",
			script:   []step{{after: 20 * ms, sig: "v1:bb", panicked: true}, {after: 20 * ms, sig: "v1:aa", panicked: true}},
			match:    Matcher{Any: true},
			runs:     2,
			outcomes: []string{OutcomeCrash, OutcomeCrash},
		},
		{
			name:     "the first crash's signature becomes the target",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}, {after: 20 * ms, sig: "v1:bb", panicked: true}},
			runs:     2,
			outcomes: []string{OutcomeCrash, OutcomeOther},
		},
		{
			name:     "load does not start",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}, {startErr: boom}},
			runs:     3,
			outcomes: []string{OutcomeCrash},
			err:      "run 2: load did not start: boom",
		},
		{
			name:   "load fails without a crash",
			script: []step{{after: 10 * ms, loadErr: boom}},
			runs:   1,
			err:    "run 1: load failed and no crash followed: boom",
		},
		{
			name:     "load ends cleanly: censored when it ended",
			script:   []step{{after: 10 * ms, loadErr: errClean}},
			runs:     1,
			outcomes: []string{OutcomeCensored},
		},
		{
			name:     "restart hook fails",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}},
			restart:  func(*fakeHost) Hook { return func(context.Context) error { return boom } },
			runs:     2,
			outcomes: []string{OutcomeCrash},
			err:      "after run 1: restart hook: boom",
		},
		{
			name:   "restart hook times out",
			script: []step{{after: 20 * ms, sig: "v1:aa", panicked: true}},
			restart: func(*fakeHost) Hook {
				return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
			},
			runs:     2,
			outcomes: []string{OutcomeCrash},
			err:      "after run 1: restart hook timed out",
		},
		{
			name:     "host never comes back",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}},
			restart:  func(*fakeHost) Hook { return func(context.Context) error { return nil } },
			runs:     2,
			outcomes: []string{OutcomeCrash},
			err:      "host did not come back",
		},
		{
			name:     "ready check never succeeds",
			script:   []step{{after: 20 * ms, sig: "v1:aa", panicked: true}},
			ready:    func(context.Context) error { return errors.New("not yet") },
			runs:     1,
			outcomes: nil,
			err:      "host did not come back within 300ms: ready check: not yet",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{script: tc.script}
			restart := h.restart
			var rh Hook = restart
			if tc.restart != nil {
				rh = tc.restart(h)
			}
			m := tc.match
			c := &Campaign{Load: h, Watch: h, Restart: rh, Ready: tc.ready, Match: &m, Runs: tc.runs,
				Timeout: 400 * ms, Poll: 5 * ms, Grace: 100 * ms, ReadyTimeout: 300 * ms, RestartTimeout: 100 * ms}
			var saved int
			c.OnRun = func(runs []Run) { saved = len(runs) }
			runs, err := c.Execute(context.Background())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.Outcome)
				switch r.Outcome {
				case OutcomeCrash, OutcomeOther:
					if r.Crash == nil || r.Seconds < 0.015 || r.Seconds > 0.3 || r.Overhead > 0.2 {
						t.Errorf("run %d: %+v", r.N, r)
					}
				case OutcomeCensored:
					if tc.script != nil && tc.script[0].loadErr == errClean {
						if r.Seconds < 0.01 || r.Seconds > 0.2 {
							t.Errorf("run %d censored at %g, not when its load ended", r.N, r.Seconds)
						}
					} else if r.Seconds != 0.4 {
						t.Errorf("run %d censored at %g", r.N, r.Seconds)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.outcomes, ",") || saved != len(runs) {
				t.Errorf("outcomes %v (saved %d), want %v", got, saved, tc.outcomes)
			}
		})
	}
}

func TestCampaignUnreachable(t *testing.T) {
	h := &fakeHost{}
	h.setDown(true)
	c := &Campaign{Load: h, Watch: h, Runs: 1, Timeout: time.Second, Poll: 5 * ms}
	if _, err := c.Execute(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err %v", err)
	}
	// Going away mid-run ends the campaign, keeping the runs before.
	h = &fakeHost{script: []step{{after: 10 * ms, sig: "v1:aa", panicked: true}}}
	c = &Campaign{Load: h, Watch: h, Restart: h.restart, Runs: 3, Timeout: time.Second, Poll: 5 * ms, Unreachable: 50 * ms,
		OnRun: func([]Run) { h.setDown(true) }}
	runs, err := c.Execute(context.Background())
	if !errors.Is(err, ErrUnreachable) || len(runs) != 1 {
		t.Fatalf("runs %d, err %v", len(runs), err)
	}
}

// TestCampaignWithoutRestart: the host reboots by itself (panic=N); the campaign
// waits for its stream to resume before the next run.
func TestCampaignWithoutRestart(t *testing.T) {
	h := &fakeHost{script: []step{{after: 10 * ms, sig: "v1:aa", panicked: true}, {after: 10 * ms, sig: "v1:aa", panicked: true}}}
	go func() {
		// The host boots again 6 s after the crash... a new boot is seen at once.
		time.Sleep(100 * ms)
		h.mu.Lock()
		h.lastBoot = time.Now()
		h.mu.Unlock()
	}()
	c := &Campaign{Load: h, Watch: h, Runs: 2, Timeout: time.Second, Poll: 5 * ms}
	runs, err := c.Execute(context.Background())
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs %+v, err %v", runs, err)
	}
	if runs[1].Start.Sub(runs[0].Start) < 100*ms {
		t.Errorf("second run started before the host was back")
	}
}

func TestSummarizeAndText(t *testing.T) {
	runs := []Run{{Outcome: OutcomeCrash, Seconds: 10}, {Outcome: OutcomeCensored, Seconds: 60}, {Outcome: OutcomeCrash, Seconds: 30.0004}, {Outcome: OutcomeOther, Seconds: 5}}
	res, e, s := Summarize(runs)
	if res.Runs != 4 || res.Crashes != 2 || res.Censored != 2 || len(res.Times) != 2 || res.Times[1] != 30 || e.Exposure != 105.0004 {
		t.Errorf("result %+v", res)
	}
	var b strings.Builder
	WriteText(&b, "flood", runs, e, s)
	for _, want := range []string{"runs 4: 2 crashed, 2 censored (1 of them by another crash)", "mean time to crash", "censored", "#"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	if got := RatioText("flood", "idle", Ratio{60, 25, 140}); got != "flood makes this crash 60× more frequent than idle (95%: 25–1.4e+02×)" {
		t.Errorf("ratio text %q", got)
	}
	if got := RatioText("idle", "flood", Ratio{0.5, 0.25, math.Inf(1)}); !strings.HasPrefix(got, "flood makes this crash 2× more frequent than idle (95%: 0–4×)") {
		t.Errorf("ratio text %q", got)
	}
}

// TestCampaignSilentHost: a host that stops printing ends its run, censored when
// it was last heard, and is restarted (after the last run too: a campaign leaves
// its host up).
func TestCampaignSilentHost(t *testing.T) {
	h := &fakeHost{}
	h.heard()
	restarts := 0
	c := &Campaign{Load: h, Watch: h, Runs: 2, Timeout: 5 * time.Second, Poll: 5 * ms, MaxSilence: 100 * ms,
		Restart: func(ctx context.Context) error { restarts++; return h.restart(ctx) }}
	runs, err := c.Execute(context.Background())
	if err != nil || len(runs) != 2 || restarts != 2 {
		t.Fatalf("runs %+v, %d restarts, %v", runs, restarts, err)
	}
	for _, r := range runs {
		if r.Outcome != OutcomeSilent || r.Seconds > 0.05 {
			t.Errorf("run %d: %s after %g s", r.N, r.Outcome, r.Seconds)
		}
	}
	if _, ce := Times(runs); len(ce) != 2 {
		t.Errorf("silent runs are not censored")
	}
}
