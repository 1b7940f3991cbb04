package collector

import (
	"context"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

// The ticks hand what they collect to two goroutines, so that neither a slow disk
// nor a slow store holds them up (measured: raw log writes of 2,000 hosts taking
// 2.7-5 s on a disk whose writeback fell behind, the ticks stalled meanwhile and
// every host's unwritten log growing towards maxLog):
//
//   - output writes the raw logs, then hands the finished captures to the spool and
//     the analyzer, in the order the ticks collected them: a report is still never
//     visible before the lines it came from are in its host's raw log;
//   - seer tells the store which hosts were heard from.
//
// While output is more than defaultLogBacklog behind, a tick sheds the periodic raw
// log of the hosts that are not crashing (counted in Stats.LogDrops) rather than
// queue it: the raw logs of crashes are never shed for it. While seer is busy, a
// tick leaves the hosts dirty for the next one, so nothing piles up in between.
type outbox struct {
	mu    sync.Mutex
	logs  []logChunk
	done  []capture
	seen  []store.HostSeen
	wake  chan struct{} // output's
	saw   chan struct{} // seer's
	stop  chan struct{}
	wg    sync.WaitGroup
	empty tickWork // output's spare
}

// defaultLogBacklog bounds the raw log bytes handed to output and not yet written.
const defaultLogBacklog = 64 << 20

// startOutput starts the output and seer goroutines.
func (c *Collector) startOutput() {
	o := &c.out
	o.wake, o.saw, o.stop = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	o.wg.Add(2)
	go func() { defer o.wg.Done(); c.output() }()
	go func() { defer o.wg.Done(); c.seer() }()
}

// stopOutput lets both goroutines finish what they were handed, and waits.
func (c *Collector) stopOutput() {
	close(c.out.stop)
	c.out.wg.Wait()
}

// handOff passes what a tick collected in w to the goroutines, and empties w.
func (c *Collector) handOff(w *tickWork) {
	o := &c.out
	var n int64
	for _, ch := range w.logs {
		n += int64(len(ch.data))
	}
	if len(w.logs) > 0 || len(w.done) > 0 {
		c.logBacklog.Add(n)
		o.mu.Lock()
		o.logs = append(o.logs, w.logs...)
		o.done = append(o.done, w.done...)
		o.mu.Unlock()
		poke(o.wake)
	}
	if len(w.seen) > 0 {
		c.seenBusy.Store(true)
		o.mu.Lock()
		o.seen = append(o.seen, w.seen...)
		o.mu.Unlock()
		poke(o.saw)
	}
	clear(w.logs)
	clear(w.done)
	clear(w.seen)
	w.logs, w.done, w.seen = w.logs[:0], w.done[:0], w.seen[:0]
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// output writes raw logs and dispatches captures (see outbox) until stopped.
func (c *Collector) output() {
	o := &c.out
	w := &o.empty
	for {
		stopping := false
		select {
		case <-o.wake:
		case <-o.stop:
			stopping = true
		}
		o.mu.Lock()
		w.logs, o.logs = o.logs, w.logs[:0]
		w.done, o.done = o.done, w.done[:0]
		o.mu.Unlock()
		c.emit(w)
		if stopping {
			return
		}
	}
}

// emit writes the raw logs of w, then dispatches its captures, and empties both.
func (c *Collector) emit(w *tickWork) {
	if c.beforeWrite != nil && len(w.logs) > 0 {
		c.beforeWrite()
	}
	c.writeLogs(time.Now(), w.logs)
	var n int64
	for _, ch := range w.logs {
		n += int64(len(ch.data))
		putLogBuf(ch.data)
	}
	c.logBacklog.Add(-n)
	clear(w.logs) // written: keep no reference to the hosts' old buffers
	w.logs = w.logs[:0]
	c.dispatch(w.done)
	clear(w.done)
	w.done = w.done[:0]
}

// seer tells the store of the hosts' last contact (see outbox) until stopped.
func (c *Collector) seer() {
	o := &c.out
	var seen []store.HostSeen
	for {
		stopping := false
		select {
		case <-o.saw:
		case <-o.stop:
			stopping = true
		}
		o.mu.Lock()
		seen, o.seen = o.seen, seen[:0]
		o.mu.Unlock()
		c.seeHosts(seen)
		clear(seen)
		c.seenBusy.Store(false)
		if stopping {
			return
		}
	}
}

// seeHosts tells the store of seen; on failure the hosts are dirty again, for a
// later tick.
func (c *Collector) seeHosts(seen []store.HostSeen) {
	if len(seen) == 0 || c.o.Store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.o.Store.SeeHosts(ctx, seen); err != nil {
		c.Stats.StoreErrors.Add(1)
		c.redirty(seen)
	}
}
