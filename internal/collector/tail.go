package collector

import (
	"fmt"
	"sync"
)

// subscribers fan a host's lines out to live-tail readers.
type subscribers struct {
	mu   sync.Mutex
	subs map[string]map[chan []byte]struct{}
}

func (s *subscribers) send(id string, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs[id] {
		select {
		case ch <- append([]byte(nil), line...):
		default: // a slow reader misses lines rather than slowing the host
		}
	}
}

// Tail subscribes to a host's console lines as they arrive. Lines are dropped for
// a reader that falls more than 256 lines behind. cancel ends the subscription.
func (c *Collector) Tail(id string) (lines <-chan []byte, cancel func()) {
	ch := make(chan []byte, 256)
	c.subs.mu.Lock()
	if c.subs.subs == nil {
		c.subs.subs = map[string]map[chan []byte]struct{}{}
	}
	if c.subs.subs[id] == nil {
		c.subs.subs[id] = map[chan []byte]struct{}{}
	}
	c.subs.subs[id][ch] = struct{}{}
	c.subs.mu.Unlock()
	c.setTailing(id, true)
	return ch, func() {
		c.subs.mu.Lock()
		delete(c.subs.subs[id], ch)
		empty := len(c.subs.subs[id]) == 0
		if empty {
			delete(c.subs.subs, id)
		}
		c.subs.mu.Unlock()
		if empty {
			c.setTailing(id, false)
		}
	}
}

func (c *Collector) setTailing(id string, on bool) {
	if v, ok := c.byID.Load(id); ok {
		v.(*host).tailing.Store(on)
	}
}

// Context returns the host's recent lines kept in memory (its context window and
// any capture in progress), for a live tail's first screen.
func (c *Collector) Context(id string) []byte {
	v, ok := c.byID.Load(id)
	if !ok {
		return nil
	}
	h := v.(*host)
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.capture != nil {
		return append([]byte(nil), h.capture...)
	}
	if h.ctxZ != nil {
		return contextOf(h.ctxZ)
	}
	return append([]byte(nil), h.ctx[h.ctxFrom:]...)
}

// Warnings describes the collector's troubles, for the dashboard: raw logs shed
// (a full or failing disk), failed spool writes, reports waiting for the store.
func (c *Collector) Warnings() []string {
	var out []string
	s := &c.Stats
	if n := s.LogDrops.Load(); n > 0 || s.LogShedding.Load() {
		now := ""
		if s.LogShedding.Load() {
			now = "; shedding now"
		}
		out = append(out, fmt.Sprintf("Raw logs: %d bytes shed since start after %d failed writes (the logs directory's disk is full or failing)%s. Crash reports are still captured and stored.", n, s.LogErrors.Load(), now))
	}
	if n := s.SpoolErrors.Load(); n > 0 {
		out = append(out, fmt.Sprintf("Spool: %d failed writes since start (its disk is full or failing): reports go to the store without a copy on disk.", n))
	}
	if q, p := s.Queued.Load(), c.SpoolPending(); q > 0 || p > 0 {
		out = append(out, fmt.Sprintf("Store: %d reports queued, %d in the spool waiting to be stored (%d store errors since start).", q, p, s.StoreErrors.Load()))
	}
	return out
}
