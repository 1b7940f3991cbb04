package repro

import (
	"context"
	"fmt"
	"time"
)

// Soak runs the load for the state's required clean time, watching the collector:
// the target crash ends it "not fixed"; the required time watched clean ends it
// "fixed". Only watched time counts: a stretch while the collector does not
// answer, the host is silent longer than MaxSilence, or the host rebooted without
// a report is voided and recorded as a gap.
type Soak struct {
	Load  Load
	Watch Watcher
	Match *Matcher
	State *SoakState
	// MaxSilence voids time after the host was last heard from this long ago (0:
	// the host's silence does not void time; a quiet kernel prints nothing).
	MaxSilence time.Duration
	// Poll is the polling period (200 ms); Unreachable how long the collector may
	// not answer before the soak stops with an error (5 min); Step how often the
	// state is saved (10 s).
	Poll, Unreachable, Step time.Duration
	// Save is called with the state after every step and at the end.
	Save func(*SoakState) error
	// Progress is called after every poll.
	Progress func(*SoakState)
}

// Execute soaks until a verdict or an error; the state holds what was watched
// either way (its verdict stays "incomplete" on an error).
func (s *Soak) Execute(ctx context.Context) (*SoakState, error) {
	if s.Poll <= 0 {
		s.Poll = 200 * time.Millisecond
	}
	if s.Unreachable <= 0 {
		s.Unreachable = 5 * time.Minute
	}
	if s.Step <= 0 {
		s.Step = 10 * time.Second
	}
	if s.Match == nil {
		s.Match = &Matcher{}
	}
	st := s.State
	st.Verdict = VerdictIncomplete
	if st.Started.IsZero() {
		st.Started = time.Now()
	}
	save := func() error {
		st.Updated = time.Now()
		if s.Save != nil {
			return s.Save(st)
		}
		return nil
	}
	p := &poller{w: s.Watch, every: s.Poll, unreachable: s.Unreachable}
	if _, err := s.Watch.Poll(ctx); err != nil {
		return st, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if err := save(); err != nil {
		return st, err
	}
	err := s.loop(ctx, p)
	if serr := save(); err == nil {
		err = serr
	}
	return st, err
}

func (s *Soak) loop(ctx context.Context, p *poller) error {
	st := s.State
	proc, err := s.Load.Start(ctx)
	if err != nil {
		return fmt.Errorf("load did not start: %w", err)
	}
	defer func() { proc.Stop() }()
	last := time.Now()
	lastSave := last
	bootSeen := time.Time{}
	first := true
	for st.Watched < st.Required {
		if err := sleep(ctx, s.Poll); err != nil {
			return err
		}
		now := time.Now()
		obs, err := p.poll(ctx, now)
		if err != nil {
			s.gap(last, now, "the collector did not answer")
			return err
		}
		for _, cr := range obs.Reports {
			if s.Match.Match(cr) {
				cr := cr
				st.Crash, st.Verdict = &cr, VerdictNotFixed
				return nil
			}
			st.Others = append(st.Others, cr)
			if cr.Panicked {
				s.gap(last, now, "the host crashed of another bug: "+cr.Title)
				return fmt.Errorf("the host crashed of another bug (%s, %s): the soak cannot go on", cr.Title, cr.Signature)
			}
		}
		reason := ""
		switch {
		case !p.ok:
			reason = "the collector did not answer"
		case !first && p.lastBoot.After(bootSeen):
			reason = "the host rebooted without a report"
		case s.MaxSilence > 0 && (p.lastSeen.IsZero() || now.Sub(p.lastSeen) > s.MaxSilence):
			reason = fmt.Sprintf("no netconsole line from the host for more than %s", s.MaxSilence)
		}
		if p.ok {
			bootSeen, first = p.lastBoot, false
		}
		if reason != "" {
			s.gap(last, now, reason)
		} else {
			st.Watched += now.Sub(last).Seconds()
		}
		last = now
		select {
		case <-proc.Done():
			if err := proc.Err(); err != nil {
				return fmt.Errorf("load failed: %w", err)
			}
			// A load that ends by itself is started again: only loaded time counts.
			if proc, err = s.Load.Start(ctx); err != nil {
				return fmt.Errorf("load did not start again: %w", err)
			}
		default:
		}
		if s.Progress != nil {
			s.Progress(st)
		}
		if now.Sub(lastSave) >= s.Step {
			if err := s.save(); err != nil {
				return err
			}
			lastSave = now
		}
	}
	st.Verdict = VerdictFixed
	return nil
}

func (s *Soak) save() error {
	s.State.Updated = time.Now()
	if s.Save != nil {
		return s.Save(s.State)
	}
	return nil
}

// gap voids the stretch from..to, merging it with the previous gap of the same
// reason when they touch.
func (s *Soak) gap(from, to time.Time, reason string) {
	st := s.State
	d := to.Sub(from).Seconds()
	if d <= 0 {
		return
	}
	st.Voided += d
	if n := len(st.Gaps); n > 0 && st.Gaps[n-1].Reason == reason && !from.After(st.Gaps[n-1].To) {
		st.Gaps[n-1].To = to
		return
	}
	if len(st.Gaps) < maxGaps {
		st.Gaps = append(st.Gaps, Gap{From: from, To: to, Reason: reason})
	}
}
