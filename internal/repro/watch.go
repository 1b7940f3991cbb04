package repro

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Crash is one report the collector stored for the watched host.
type Crash struct {
	ID   int64     `json:"id"`
	Host string    `json:"host"`
	Time time.Time `json:"time"` // when its first line reached the collector
	// Seen is when the watcher saw it (for the detection overhead).
	Seen      time.Time `json:"seen"`
	Kind      string    `json:"kind"`
	Title     string    `json:"title"`
	Signature string    `json:"signature"`
	Panicked  bool      `json:"panicked"`
}

// Observation is what one Poll learned of the host.
type Observation struct {
	// Reports are the host's reports stored since the previous Poll, oldest first.
	Reports []Crash
	// LastSeen is when the host was last heard from (zero: never); LastBoot when it
	// last started a new boot (zero: unknown; plain netconsole does not say).
	LastSeen, LastBoot time.Time
}

// Watcher is the collector as the loops see it: a running `kcrash serve` read
// through its API, or one embedded in the command.
type Watcher interface {
	// Poll returns what is new since the previous call. The first call only sets
	// the starting point: reports stored before it are not returned.
	Poll(ctx context.Context) (Observation, error)
}

// Process is a running load command.
type Process interface {
	// Done is closed when the process exited by itself or was stopped.
	Done() <-chan struct{}
	// Err is the exit error once Done is closed (nil for a clean exit).
	Err() error
	// Stop ends the process and waits for it; stopping twice is harmless.
	Stop() error
}

// Load starts the load that provokes the crash (for the lab: `kcrash lab load --to
// NAME --pps N`).
type Load interface {
	Start(ctx context.Context) (Process, error)
}

// Hook is a restart hook or a readiness check: nil when it succeeded.
type Hook func(ctx context.Context) error

// Matcher says which reports are the crash being measured.
type Matcher struct {
	// Signature is the target crash's signature (a prefix of it is enough); empty
	// with Any false, the first crash's signature becomes the target.
	Signature string
	// Any counts every report as the target crash.
	Any bool
}

// Match says whether c is the target crash, learning the target from the first
// crash when none was given.
func (m *Matcher) Match(c Crash) bool {
	if m.Any {
		return true
	}
	if m.Signature == "" {
		m.Signature = c.Signature
		return true
	}
	return c.Signature != "" && strings.HasPrefix(c.Signature, m.Signature)
}

// poller polls a Watcher, tolerating an unreachable collector for a while.
type poller struct {
	w           Watcher
	every       time.Duration
	unreachable time.Duration // how long the collector may not answer
	failing     time.Time     // since when it has not answered (zero: it answers)
	lastSeen    time.Time
	lastBoot    time.Time
	ok          bool // the last poll answered
}

// ErrUnreachable wraps the error of a collector that stopped answering.
var ErrUnreachable = errors.New("collector unreachable")

// poll asks the watcher once; it returns an error only when the collector has not
// answered for longer than p.unreachable (or ctx ended).
func (p *poller) poll(ctx context.Context, now time.Time) (Observation, error) {
	obs, err := p.w.Poll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return obs, ctx.Err()
		}
		p.ok = false
		if p.failing.IsZero() {
			p.failing = now
		}
		if now.Sub(p.failing) > p.unreachable {
			return obs, fmt.Errorf("%w for %s: %v", ErrUnreachable, now.Sub(p.failing).Round(100*time.Millisecond), err)
		}
		return obs, nil
	}
	p.ok, p.failing = true, time.Time{}
	if obs.LastSeen.After(p.lastSeen) {
		p.lastSeen = obs.LastSeen
	}
	if obs.LastBoot.After(p.lastBoot) {
		p.lastBoot = obs.LastBoot
	}
	return obs, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
