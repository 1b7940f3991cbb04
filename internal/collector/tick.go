package collector

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// logPhase is how far into logEvery a host's periodic raw log writes fall. A new
// host's log is written at the next slow tick; hosts first heard together (a fleet
// after a collector restart) would from then on all fall due in the same tick,
// which holds the shard lock to copy every host's log and then writes thousands of
// files at once (measured: 33-66 ms and 0.5-0.75 s every 5 s with 10,000 hosts).
// After its first write, each host keeps to one of logPhases phases, by its id.
func logPhase(id string) time.Duration {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return time.Duration(h%logPhases) * logEvery / logPhases
}

// tickWork is what one tick collected, to be done outside the shard locks.
type tickWork struct {
	seen []store.HostSeen // hosts whose last contact the store has not heard of (slow ticks)
	logs []logChunk       // raw log to write
	done []capture        // finished captures, to analyze once logs are written
}

// tick releases held records, completes quiet captures and collects, into w, the
// finished captures with their hosts' raw logs; a fast tick visits the busy hosts
// only (sh.active); a slow tick visits every host and also collects the raw logs
// due and the hosts whose last contact the store has not heard of; all collects
// every raw log.
func (c *Collector) tick(now time.Time, w *tickWork, slow, all bool) {
	compactBudget := compactPerTick
	w.seen, w.logs, w.done = w.seen[:0], w.logs[:0], w.done[:0]
	// Silence is judged on the clock of what has been processed: a line still in
	// Receive's queue may end it.
	clock := c.clock(now)
	// Evict down to 90% of MaxHosts, from each shard in proportion to its hosts.
	var excess int64
	if c.evict.Swap(false) {
		excess = c.Stats.Hosts.Load() - int64(c.o.MaxHosts)*9/10
	}
	total := max(c.Stats.Hosts.Load(), 1)
	for _, sh := range c.shards {
		sh.mu.Lock()
		if excess > 0 {
			c.evictIdle(sh, int((excess*int64(len(sh.hosts))+total-1)/total), w)
		}
		visit := func(h *host) {
			if h.stream.Pending() {
				before := h.stream.Stats
				h.stream.Tick(clock, func(line []byte, ev netconsole.Event) { c.line(h, line, ev, clock, false) })
				c.account(h, before)
			}
			if h.capture != nil && (h.ready || clock.Sub(h.lastLine) >= c.o.Quiet) {
				c.finish(h)
			}
			// The store hears of a host's last contact every seenEvery, and of
			// a new host, name, release or boot at the next slow tick: writing
			// every host every second costs more than receiving them.
			if slow && h.dirty && (h.urgent || all || now.Sub(h.told) >= seenEvery) && (all || !c.seenBusy.Load()) {
				w.seen = append(w.seen, store.HostSeen{ID: h.id, Name: h.name, Release: h.release, Seen: h.lastSeen, Boot: h.boot})
				h.dirty, h.urgent, h.told = false, false, now
			}
			// A host's raw log is written as soon as one of its captures is finished
			// (before its reports are analyzed); otherwise when it has a fair amount,
			// while it is crashing, or every logEvery: writing 10,000 small pieces
			// every second would cost more than collecting them.
			// The period ends half a slow tick early: a tick a little early must not
			// put the host off a whole tick (phases would drift into each other).
			periodEnd := now.Sub(h.logWritten) >= logEvery-slowEvery/2
			due := h.logDue || slow && (all || len(h.ctx)-h.logged >= logChunkBytes || h.capture != nil || periodEnd)
			if due {
				var b []byte
				if !h.logDue && h.capture == nil && !all && c.logBacklog.Load() > c.maxLogBacklog {
					// The writer is far behind (a slow disk): the periodic raw log
					// of a host that is not crashing is shed, counted.
					if n := len(h.ctx) - h.logged; n > 0 {
						c.Stats.LogDrops.Add(uint64(n))
						h.logged = len(h.ctx)
						b = h.ctx[:0:0] // taken, for the period below
					}
				} else if b = h.takeLog(); b != nil {
					w.logs = append(w.logs, logChunk{host: h.id, data: b})
				}
				switch {
				case h.logWritten.IsZero():
					if b != nil {
						h.logWritten = now.Add(-logPhase(h.id))
					}
				case b != nil || slow && periodEnd:
					// A host with nothing to write when its period ends keeps its
					// phase: hosts silent together and heard again together would
					// otherwise all fall due in one tick.
					h.logWritten = now
				}
			}
			h.logDue = false
			if slow && compactBudget > 0 && c.compact(&c.zip, h, clock) {
				compactBudget--
				c.Stats.Compacted.Add(1)
			}
		}
		if slow {
			// Every host, visitSegment at a time with the lock let go in between:
			// the shard's processor waits one segment at most, not the whole visit
			// (measured at 10,000 hosts, with their raw logs to copy: 33-115 ms, or
			// 6,000-21,000 datagrams queued at 188,000/s). Hosts are removed by the
			// tick only (evictIdle, above), so the list stays valid; a host added
			// meanwhile waits for the next slow tick.
			vs := sh.visiting[:0]
			for _, h := range sh.hosts {
				vs = append(vs, h)
			}
			for _, h := range sh.named {
				vs = append(vs, h)
			}
			for i, h := range vs {
				if i > 0 && i%visitSegment == 0 {
					c.countLines(sh)
					sh.mu.Unlock()
					if c.betweenSegments != nil {
						c.betweenSegments(sh)
					}
					sh.mu.Lock()
				}
				visit(h)
			}
			clear(vs)
			sh.visiting = vs[:0]
		} else {
			// Visiting idle hosts 50 times a second would cost more, with 10,000
			// hosts, than everything else the collector does.
			for _, h := range sh.active {
				visit(h)
			}
		}
		keep := sh.active[:0]
		for _, h := range sh.active {
			if h.busy() {
				keep = append(keep, h)
			} else {
				h.active = false
			}
		}
		clear(sh.active[len(keep):])
		sh.active = keep
		w.done = append(w.done, sh.done...)
		clear(sh.done)
		sh.done = sh.done[:0]
		c.countLines(sh)
		sh.mu.Unlock()
	}
}

// visitSegment is how many hosts a slow tick visits at a time under the shard lock.
const visitSegment = 256

// evictIdle removes up to n of sh's hosts, least recently heard first, skipping
// every host in the middle of a crash: capturing, holding records or a partial
// line, or tailed. Their raw log and last contact go out with w. The shard lock is
// held.
func (c *Collector) evictIdle(sh *shard, n int, w *tickWork) {
	type cand struct {
		at time.Time
		k  netip.AddrPort
	}
	var cs []cand
	for k, h := range sh.hosts {
		if h.capture == nil && !h.stream.Pending() && !h.tailing.Load() && !h.logDue {
			cs = append(cs, cand{h.lastSeen, k})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int { return a.at.Compare(b.at) })
	for _, x := range cs[:min(n, len(cs))] {
		h := sh.hosts[x.k]
		if b := h.takeLog(); b != nil {
			w.logs = append(w.logs, logChunk{host: h.id, data: b})
		}
		if h.dirty {
			w.seen = append(w.seen, store.HostSeen{ID: h.id, Name: h.name, Release: h.release, Seen: h.lastSeen, Boot: h.boot})
		}
		delete(sh.hosts, x.k)
		c.byID.Delete(h.id)
		c.Stats.Hosts.Add(-1)
		c.Stats.Evicted.Add(1)
	}
}

// dispatch hands finished captures to the analyzer, their raw logs written and,
// with a spool, the captures themselves on disk.
func (c *Collector) dispatch(done []capture) {
	if c.spool != nil && len(done) > 0 {
		for i := range done {
			done[i].id = captureID(done[i])
		}
		if err := c.spool.addCaptures(done); err != nil {
			c.Stats.SpoolErrors.Add(1)
			for i := range done {
				done[i].id = "" // not spooled: nothing to mark
			}
		}
	}
	for _, cp := range done {
		select {
		case c.analyze <- cp:
		default:
			// The analyzer is behind: parse here rather than lose the report.
			c.analyzeCapture(cp)
		}
	}
}
