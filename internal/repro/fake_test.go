package repro

import (
	"context"
	"errors"
	"sync"
	"time"
)

// fakeHost is a collector and a host in one: a load started on it schedules the
// next crash of its script; the watcher returns the reports it stored.
type fakeHost struct {
	mu       sync.Mutex
	reports  []Crash
	next     int // reports already returned
	lastSeen time.Time
	lastBoot time.Time
	down     bool // Poll fails
	nextID   int64

	// script is, per load start, after how long it crashes (0: never) and with
	// which signature and panic.
	script []step
	starts int
}

type step struct {
	after    time.Duration
	sig      string
	panicked bool
	loadErr  error // the load exits with this error after `after`
	startErr error
}

func (h *fakeHost) Poll(ctx context.Context) (Observation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return Observation{}, errors.New("connection refused")
	}
	obs := Observation{Reports: append([]Crash(nil), h.reports[h.next:]...), LastSeen: h.lastSeen, LastBoot: h.lastBoot}
	for i := range obs.Reports {
		obs.Reports[i].Seen = time.Now()
	}
	h.next = len(h.reports)
	return obs, nil
}

func (h *fakeHost) crash(sig string, panicked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	now := time.Now()
	h.reports = append(h.reports, Crash{ID: h.nextID, Host: "h", Time: now, Signature: sig, Title: "BUG " + sig, Panicked: panicked})
	h.lastSeen = now
}

func (h *fakeHost) setDown(v bool) {
	h.mu.Lock()
	h.down = v
	h.mu.Unlock()
}

// heard makes the host print a line now.
func (h *fakeHost) heard() {
	h.mu.Lock()
	h.lastSeen = time.Now()
	h.mu.Unlock()
}

type fakeProc struct {
	once sync.Once
	done chan struct{}
	err  error
	mu   sync.Mutex
}

func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
func (p *fakeProc) end(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	})
}
func (p *fakeProc) Stop() error { p.end(nil); return nil }

// Start implements Load.
func (h *fakeHost) Start(ctx context.Context) (Process, error) {
	h.mu.Lock()
	var s step
	if h.starts < len(h.script) {
		s = h.script[h.starts]
	}
	h.starts++
	h.mu.Unlock()
	if s.startErr != nil {
		return nil, s.startErr
	}
	p := &fakeProc{done: make(chan struct{})}
	if s.after > 0 {
		go func() {
			select {
			case <-p.done:
				return
			case <-time.After(s.after):
			}
			if s.loadErr == errClean {
				p.end(nil)
				return
			}
			if s.loadErr != nil {
				p.end(s.loadErr)
				return
			}
			h.crash(s.sig, s.panicked)
			if s.panicked {
				p.end(nil) // the target went away
			}
		}()
	}
	return p, nil
}

// restart is a restart hook after which the host prints a line.
func (h *fakeHost) restart(ctx context.Context) error {
	time.Sleep(2 * time.Millisecond)
	h.heard()
	return nil
}
