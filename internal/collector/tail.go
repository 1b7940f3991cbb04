package collector

import "sync"

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
	return append([]byte(nil), h.ctx...)
}
