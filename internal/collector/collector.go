// Package collector is kcrash serve's pipeline: netconsole datagrams (or imported
// console logs) become per-host console lines; each host keeps a short context of
// recent lines and a raw log on disk; a line the oops detector recognises starts a
// capture, which is parsed into reports once stable (the panic's end marker, the
// host going quiet, or enough unrelated lines), and every report is stored with the
// lines before it and counted in its signature's group. With a spool (OpenSpool),
// every report is fsynced to local disk before it is queued for the store, and the
// reports a killed collector had not stored are stored when the next one starts.
//
// Memory is bounded per host (context, capture, unwritten log, reorder window) and
// in total (the host count, the capture budget and the store queue); what does not
// fit is dropped and counted, never allowed to grow.
package collector

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/store"
)

// Options configure a Collector. Zero values pick the defaults.
type Options struct {
	Store store.Store
	// LogDir keeps each host's raw console log (HOST.log, rotated to HOST.log.1 at
	// LogMaxBytes, default 8 MiB); empty keeps none.
	LogDir      string
	LogMaxBytes int64
	// ContextBytes is how much of the log before a report is kept with it (8 KiB).
	ContextBytes int
	// Quiet is how long a host must be silent before its capture is parsed (300 ms).
	Quiet time.Duration
	// MaxCapture bounds one capture (256 KiB); CaptureBudget all of them (256 MiB).
	MaxCapture    int
	CaptureBudget int64
	// MaxHosts bounds the hosts held in memory (100,000). When a new source would
	// exceed it, the next tick evicts the hosts heard from least recently, down to
	// 90% of MaxHosts, never one in the middle of a crash (capturing, holding records
	// or a partial line, or tailed); datagrams of new sources are dropped (and
	// counted) until then.
	MaxHosts int
	// Allow limits netconsole sources to these networks; empty allows all.
	Allow []netip.Prefix
	// Queue bounds the reports waiting for the store (10,000).
	Queue int
	// Stream tunes each host's netconsole decoding.
	Stream netconsole.StreamOptions
	// Shards is the number of host tables (one per receiving socket; default 1).
	Shards int
	// IdleAfter is how long a host must be silent before its context is kept
	// compressed (30 s).
	IdleAfter time.Duration
}

func (o *Options) fill() {
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 8 << 20
	}
	if o.ContextBytes <= 0 {
		o.ContextBytes = 8 << 10
	}
	if o.Quiet <= 0 {
		o.Quiet = 300 * time.Millisecond
	}
	if o.MaxCapture <= 0 {
		o.MaxCapture = 256 << 10
	}
	if o.CaptureBudget <= 0 {
		o.CaptureBudget = 256 << 20
	}
	if o.MaxHosts <= 0 {
		o.MaxHosts = 100_000
	}
	if o.Queue <= 0 {
		o.Queue = 10_000
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.IdleAfter <= 0 {
		o.IdleAfter = idleAfter
	}
}

// Stats are the collector's counters, as /metrics shows them.
type Stats struct {
	Packets, Bytes, Lines     atomic.Uint64
	BadPackets, Denied        atomic.Uint64 // malformed or truncated; from a source not allowed
	Junk                      atomic.Uint64 // binary datagrams, not console text (netconsole.Junk)
	Dropped                   atomic.Uint64 // datagrams from new hosts beyond MaxHosts
	Shed, Kept                atomic.Uint64 // under overload (Receive): ordinary datagrams shed; crash datagrams kept
	CrashDrops                atomic.Uint64 // crash datagrams lost under overload (the reserve full too)
	Compacted                 atomic.Uint64 // idle hosts whose context was compressed
	Evicted                   atomic.Uint64 // idle hosts evicted to make room (MaxHosts)
	Hosts                     atomic.Int64
	Reports, Duplicates       atomic.Uint64 // stored; received again and not stored
	QueueDrops, LogDrops      atomic.Uint64 // reports lost to a full store queue (kept in the spool, if any); raw log bytes shed
	LogErrors                 atomic.Uint64 // failed raw log writes (a full or failing disk); raw logs are then shed for a second
	LogShedding               atomic.Bool   // raw logs are being shed after a failed write
	StoreErrors, StoreRetries atomic.Uint64
	SpoolErrors               atomic.Uint64 // failed spool writes
	Gaps, Dups, Reboots       atomic.Uint64
	CaptureBytes              atomic.Int64
	Queued                    atomic.Int64
}

// Collector runs the pipeline. HandleBatch (the netconsole.Handler) and Ingest feed
// it; Run drives its timers and store writer until the context ends.
type Collector struct {
	o      Options
	Stats  Stats
	shards []*shard
	byID   sync.Map // host id → *host

	analyze chan capture
	queue   chan *store.Report
	notify  func(*store.Report)
	subs    subscribers
	logs    *logWriter
	spool   *spool
	// Spooled before a restart: reports not yet stored, captures not yet analyzed.
	backlog         []*store.Report
	backlogCaptures []capture
	wg              sync.WaitGroup
	closed          chan struct{}
	evict           atomic.Bool // a new host found MaxHosts reached
	rx              []*rxQueue  // Receive's queues, one per shard
	stopped         atomic.Bool // Run is ending: Receive takes nothing more
	fill            func(socket int) float64
	zip             compactor    // the tick's, for idle contexts
	out             outbox       // the ticks' hand-off to output and seer
	logBacklog      atomic.Int64 // raw log bytes handed to output, not yet written
	maxLogBacklog   int64        // beyond it, periodic raw logs are shed (defaultLogBacklog)
	seenBusy        atomic.Bool  // seer has hosts to tell the store of
	// Set by tests: betweenSegments runs between two segments of a slow tick's
	// visit, the shard lock let go; beforeWrite before output writes raw logs.
	betweenSegments func(*shard)
	beforeWrite     func()
}

type shard struct {
	mu    sync.Mutex
	hosts map[netip.AddrPort]*host
	named map[string]*host // imported logs, by name
	// done holds the captures finished since the last tick: the tick writes their
	// hosts' raw logs before handing them to the analyzer, so a report is never
	// visible before the lines it came from are in its host's raw log.
	done []capture
	// active holds the hosts the 20 ms tick must visit (busy ones); the others wait
	// for the once-a-second visit of every host.
	active []*host
	// scratch is the working space of the shard's netconsole streams.
	scratch netconsole.Scratch
	// sink keeps handleShard's warming loads from being optimized away.
	sink uint64
	// visiting is the slow tick's list of the hosts to visit (see tick).
	visiting []*host
	// lines counts the console lines not yet added to Stats.Lines (countLines):
	// an atomic add for each line, from every shard's goroutine, kept the counter's
	// cache line moving between the processors.
	lines uint64
}

// countLines adds the shard's lines to Stats.Lines; the shard lock is held.
func (c *Collector) countLines(sh *shard) {
	if sh.lines > 0 {
		c.Stats.Lines.Add(sh.lines)
		sh.lines = 0
	}
}

// activate puts h on the fast tick's list; the shard lock is held.
func (sh *shard) activate(h *host) {
	if !h.active {
		h.active = true
		sh.active = append(sh.active, h)
	}
}

// busy says whether h needs the fast tick: a capture going on or finished, records
// held for a missing one, a partial line or fragments.
func (h *host) busy() bool { return h.capture != nil || h.logDue || h.stream.Pending() }

// host is one source's state, guarded by its shard's mutex.
type host struct {
	// The fields a datagram touches come first, the stream's state after them
	// (its own hot fields first), the rest last: with thousands of hosts each is
	// cold, and the fewer cache lines a record touches the sooner it is handled.
	// ctx holds the host's recent lines, each appended once: the part not yet
	// written to the raw log (ctx[logged:]) and the context of the next report
	// (the lines after ctxFrom, at least the last ContextBytes of them).
	ctx      []byte
	logged   int    // bytes at ctx's start handed to the raw log (all of them without raw logs)
	ctxFrom  int    // where the next report's context starts: after the last capture
	capture  []byte // nil unless a report is being captured
	lastLine time.Time
	lastSeen time.Time
	dirty    bool // lastSeen/boot not yet told to the store
	urgent   bool // new, renamed, new release or boot: tell the store at the next slow tick
	logDue   bool // a capture finished: write log at the next tick
	active   bool // on sh.active
	ready    bool // the capture is complete (end marker, size)
	tailing  atomic.Bool
	quietFor int // lines since the last detected line
	sh       *shard
	name     string
	release  string
	stream   netconsole.Stream

	ctxZ       []byte // the context compressed while the host is idle (ctx is nil then)
	id         string
	capStart   time.Time
	boot       time.Time
	told       time.Time
	logWritten time.Time
}

// New returns a collector; call Run to start its background work.
func New(o Options) *Collector {
	o.fill()
	c := &Collector{o: o, analyze: make(chan capture, 1024), queue: make(chan *store.Report, o.Queue), closed: make(chan struct{}), maxLogBacklog: defaultLogBacklog}
	for range o.Shards {
		c.shards = append(c.shards, &shard{hosts: map[netip.AddrPort]*host{}, named: map[string]*host{}})
		c.rx = append(c.rx, newRxQueue())
	}
	if o.LogDir != "" {
		c.logs = newLogWriter(o.LogDir, o.LogMaxBytes)
	}
	return c
}

// OpenSpool makes the collector's hand-off to its store durable: each finished
// capture is fsynced to the spool file at path before it is analyzed, and each
// report before it is queued for the store (see spool). What a previous run spooled
// and did not store is stored first when Run starts: it returns the number of
// reports and captures waiting. Call it before Run.
func (c *Collector) OpenSpool(path string) (pending int, err error) {
	s, caps, backlog, err := openSpool(path)
	if err != nil {
		return 0, err
	}
	c.spool, c.backlog, c.backlogCaptures = s, backlog, caps
	return len(backlog) + len(caps), nil
}

// SpoolPending is the number of spooled reports not yet stored and captures not
// yet analyzed.
func (c *Collector) SpoolPending() int {
	if c.spool == nil {
		return 0
	}
	return c.spool.pendingCount()
}

// OnReport sets a function called (from the store writer) with each newly stored report.
func (c *Collector) OnReport(f func(*store.Report)) { c.notify = f }

func (c *Collector) allowed(a netip.Addr) bool {
	if len(c.o.Allow) == 0 {
		return true
	}
	for _, p := range c.o.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// HandleBatch takes a batch of datagrams from one socket; it is a netconsole.Handler.
//
// A host belongs to the shard its source address hashes to, whichever socket its
// datagrams arrive on; a batch locks each shard once.
func (c *Collector) HandleBatch(socket int, now time.Time, pkts []netconsole.Packet) {
	if len(c.shards) == 1 {
		c.handleShard(c.shards[0], now, pkts, nil, -1)
		return
	}
	for i := range c.shards {
		c.handleShard(c.shards[i], now, pkts, nil, i)
	}
}

func shardOf(a netip.AddrPort, n int) int {
	b := a.Addr().As16()
	h := uint32(2166136261)
	for _, c := range b[12:] {
		h = (h ^ uint32(c)) * 16777619
	}
	h = (h ^ uint32(a.Port())) * 16777619
	return int(h % uint32(n))
}

// handleShard handles the packets of one shard (all of them when only is -1).
// clean, when not nil, says which packets hold no report line (see chunk).
//
// With thousands of hosts, each datagram's host is cold: its map slot, its state
// and the tail of its line buffer are cache (and TLB) misses, most of the cost of
// a record when paid one after the other. So the packets are taken in groups of
// warmGroup: the group's hosts are looked up, then their state touched, then the
// tails of their buffers, each pass a run of independent loads the processor
// overlaps; then the group is handled on warm memory.
func (c *Collector) handleShard(sh *shard, now time.Time, pkts []netconsole.Packet, clean []bool, only int) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var bytes, n uint64
	var hs [warmGroup]*host
	var kinds [warmGroup]uint8 // what the first pass found of each datagram
	const (
		other = iota // another shard's
		denied
		truncated
		ok
	)
	for base := 0; base < len(pkts); base += warmGroup {
		grp := pkts[base:min(base+warmGroup, len(pkts))]
		var sink uint64
		for i := range grp {
			p := &grp[i]
			hs[i] = nil
			switch {
			case only >= 0 && shardOf(p.From, len(c.shards)) != only:
				kinds[i] = other
			case !c.allowed(p.From.Addr()):
				kinds[i] = denied
			case p.Truncated:
				kinds[i] = truncated
			default:
				kinds[i] = ok
				hs[i] = sh.hosts[p.From]
			}
		}
		for _, h := range hs[:len(grp)] {
			if h != nil {
				sink += uint64(len(h.ctx)) + h.stream.Touch()
			}
		}
		for _, h := range hs[:len(grp)] {
			if h != nil && len(h.ctx) < cap(h.ctx) {
				sink += uint64(h.ctx[:len(h.ctx)+1][len(h.ctx)])
			}
		}
		sh.sink += sink
		for i := range grp {
			p := &grp[i]
			if kinds[i] == other {
				continue
			}
			n++
			bytes += uint64(len(p.Data))
			if kinds[i] == denied {
				c.Stats.Denied.Add(1)
				continue
			}
			if kinds[i] == truncated {
				c.Stats.BadPackets.Add(1)
				continue
			}
			h := hs[i]
			if h == nil { // new, or created by an earlier datagram of the group
				if h = sh.hosts[p.From]; h == nil {
					if h = c.newHost(sh, p.From.String()); h == nil {
						continue
					}
					sh.hosts[p.From] = h
				}
			}
			c.push(h, p.Data, now, clean != nil && clean[base+i])
		}
	}
	c.Stats.Packets.Add(n)
	c.Stats.Bytes.Add(bytes)
	c.countLines(sh)
}

// warmGroup is how many datagrams handleShard warms at a time.
const warmGroup = 8

func (c *Collector) newHost(sh *shard, id string) *host {
	if c.Stats.Hosts.Load() >= int64(c.o.MaxHosts) {
		c.Stats.Dropped.Add(1)
		c.evict.Store(true)
		return nil
	}
	c.Stats.Hosts.Add(1)
	so := c.o.Stream
	so.Scratch = &sh.scratch // the shard's hosts share one warm buffer, under its lock
	h := &host{id: id, sh: sh, urgent: true}
	h.stream = *netconsole.NewStream(so)
	c.byID.Store(id, h)
	return h
}

// push runs one datagram of h through its stream; the shard lock is held. clean
// says p holds no report's needle and no escape (hotCheck): when the stream holds
// nothing else (no record waiting for a missing one, no partial line, no
// fragments), every line p yields is made of p's bytes and a "[sec.usec] " prefix
// no needle can start in (TestNoNeedleStartsInAPrefix), so none is a report line.
func (c *Collector) push(h *host, p []byte, now time.Time, clean bool) {
	before := h.stream.Stats
	clean = clean && !h.stream.Pending()
	h.stream.Push(p, now, func(line []byte, ev netconsole.Event) { c.line(h, line, ev, now, clean) })
	c.account(h, before)
	h.lastSeen, h.dirty = now, true
	if !h.active && h.busy() {
		h.sh.activate(h)
	}
}

func (c *Collector) account(h *host, before netconsole.StreamStats) {
	st := h.stream.Stats
	if d := st.Bad - before.Bad; d > 0 {
		c.Stats.BadPackets.Add(d)
	}
	if d := st.Junk - before.Junk; d > 0 {
		c.Stats.Junk.Add(d)
	}
	if d := st.Gaps - before.Gaps; d > 0 {
		c.Stats.Gaps.Add(d)
	}
	if d := st.Dups - before.Dups; d > 0 {
		c.Stats.Dups.Add(d)
	}
	if h.stream.Hostname != "" && h.name != h.stream.Hostname {
		h.name, h.urgent = h.stream.Hostname, true
	}
	if h.stream.Release != "" && h.release != h.stream.Release {
		h.release, h.urgent = h.stream.Release, true
	}
}

var (
	endPanic    = []byte("---[ end Kernel panic")
	linuxVer    = []byte("Linux version ")
	hostnameSet = []byte("Hostname set to <")
)

// bootHostname reads the name of systemd's "Hostname set to <NAME>." line: 1–64
// characters of a hostname's alphabet, else nothing.
func bootHostname(line []byte) (string, bool) {
	rest := line[bytes.Index(line, hostnameSet)+len(hostnameSet):]
	end := bytes.IndexByte(rest, '>')
	if end < 1 || end > 64 {
		return "", false
	}
	for _, b := range rest[:end] {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_') {
			return "", false
		}
	}
	return string(rest[:end]), true
}

// seenEvery is how often the store hears of a busy host's last contact.
const seenEvery = 15 * time.Second

// laterLines is how many lines without a detected report line complete a capture.
const laterLines = 300

// maxLog bounds a host's unwritten raw log; more is dropped until the writer runs.
const maxLog = 256 << 10

// Raw logs are written per host once logChunkBytes are waiting, while the host is
// crashing, and at least every logEvery.
const (
	logChunkBytes = 16 << 10
	logEvery      = 5 * time.Second
	logPhases     = 5 // hosts spread their logEvery writes over this many slow ticks
)

// line takes one console line of h, newline included; the shard lock is held.
// clean says it is known to hold no report line.
func (c *Collector) line(h *host, line []byte, ev netconsole.Event, now time.Time, clean bool) {
	h.sh.lines++
	if ev == netconsole.EventReboot {
		c.Stats.Reboots.Add(1)
		h.boot, h.urgent = now, true
		c.finish(h) // what the last boot said is complete now
	}
	if h.stream.Release == "" && bytes.Contains(line, linuxVer) {
		if f := bytes.Fields(line[bytes.Index(line, linuxVer)+len(linuxVer):]); len(f) > 0 {
			if h.release != string(f[0]) {
				h.release, h.urgent = string(f[0]), true
			}
		}
	}
	if h.name == "" && h.stream.Hostname == "" && bytes.Contains(line, hostnameSet) {
		// systemd's "Hostname set to <web-7>." in the boot log names a host that
		// sends no userdata (plain netconsole); userdata, when it comes, wins.
		if name, ok := bootHostname(line); ok {
			h.name, h.urgent = name, true
		}
	}
	h.lastLine = now
	h.inflate()
	c.appendLine(h, line)
	if h.tailing.Load() {
		c.subs.send(h.id, line)
	}
	if h.capture != nil {
		if len(h.capture)+len(line) > c.o.MaxCapture || c.Stats.CaptureBytes.Load() > c.o.CaptureBudget {
			h.ready = true
			return
		}
		h.capture = append(h.capture, line...)
		c.Stats.CaptureBytes.Add(int64(len(line)))
		if !clean && detect(line) {
			h.quietFor = 0
		} else if h.quietFor++; h.quietFor >= laterLines {
			h.ready = true
		}
		if bytes.Contains(line, endPanic) {
			h.ready = true
		}
		return
	}
	if !clean && detect(line) {
		// The capture starts with the context: the lines since the last capture,
		// this one included, at most 2×ContextBytes of them.
		ctx := h.ctx[h.ctxFrom:]
		if len(ctx) > 2*c.o.ContextBytes {
			ctx = ctx[cutAt(ctx, len(ctx)-2*c.o.ContextBytes):]
		}
		h.capture = append(make([]byte, 0, 2*len(ctx)+4096), ctx...)
		c.Stats.CaptureBytes.Add(int64(len(h.capture)))
		h.capStart, h.quietFor, h.ready = now, 0, false
		h.ctxFrom = len(h.ctx)
		h.sh.activate(h)
	}
}

// appendLine appends line to h.ctx, for the raw log and the context. When the
// buffer is full, what is written and older than the last ContextBytes is cut
// first; it grows only when that is not enough, so a warm host appends without
// allocating, and each line is copied once.
func (c *Collector) appendLine(h *host, line []byte) {
	if len(h.ctx)+len(line) > cap(h.ctx) {
		c.makeRoom(h, len(line))
	}
	h.ctx = append(h.ctx, line...)
	if c.logs == nil {
		h.logged = len(h.ctx) // nothing waits for a raw log
	}
}

// makeRoom makes room for n more bytes in h.ctx.
func (c *Collector) makeRoom(h *host, n int) {
	if unwritten := len(h.ctx) - h.logged; unwritten+n > maxLog {
		// The raw log is far behind (its writer is stalled): its oldest unwritten
		// bytes are shed, counted; the context keeps them.
		c.Stats.LogDrops.Add(uint64(unwritten))
		h.logged = len(h.ctx)
	}
	if len(h.ctx) > c.o.ContextBytes {
		cut := min(cutAt(h.ctx, len(h.ctx)-c.o.ContextBytes), h.logged)
		h.ctx = append(h.ctx[:0], h.ctx[cut:]...)
		h.logged -= cut
		h.ctxFrom = max(0, h.ctxFrom-cut)
	}
	if need := len(h.ctx) + n; need > cap(h.ctx) {
		h.ctx = append(make([]byte, 0, max(2*cap(h.ctx), 1024, need)), h.ctx...)
	}
}

// cutAt returns the start of the first whole line of b at or after i.
func cutAt(b []byte, i int) int {
	if i <= 0 {
		return 0
	}
	if j := bytes.IndexByte(b[i-1:], '\n'); j >= 0 {
		return i + j
	}
	return len(b)
}

// takeLog returns a copy of h's lines not yet written to its raw log, and counts
// them as handed over. The shard lock is held.
func (h *host) takeLog() []byte {
	if h.logged >= len(h.ctx) {
		return nil
	}
	b := append(getLogBuf(len(h.ctx)-h.logged), h.ctx[h.logged:]...)
	h.logged = len(h.ctx)
	return b
}

// detect says whether a console line starts (or continues) a report.
func detect(line []byte) bool { return oops.MayStart(line) && oops.Detect(line) }

// finish completes h's capture: the next tick writes h's raw log, then hands the
// capture to the analyzer. The shard lock is held.
func (c *Collector) finish(h *host) {
	if h.capture == nil {
		return
	}
	cp := capture{host: h.id, release: h.release, at: h.capStart, text: h.capture}
	c.Stats.CaptureBytes.Add(-int64(len(h.capture)))
	h.capture, h.ready, h.quietFor = nil, false, 0
	h.ctxFrom = len(h.ctx) // the next report's context starts after this one
	h.sh.done = append(h.sh.done, cp)
	h.logDue = true
	h.sh.activate(h)
}

// slowEvery is the period of the slow tick, which visits every host.
const slowEvery = time.Second

// Run drives the collector until ctx ends: every 20 ms it releases held records
// and completes captures; every second it also collects the raw logs due and the
// hosts whose last contact the store has not heard of. What a tick collects goes
// to the output goroutine, which writes the raw logs and only then hands their
// captures to the analyzer, and to the seer, which tells the store (see outbox); the
// store writer retries until the store answers. When ctx ends it completes every
// capture and drains the queue (for at most drain).
func (c *Collector) Run(ctx context.Context, drain time.Duration) {
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.analyzer() }()
	storeCtx, stopStore := context.WithCancel(context.Background())
	go func() { defer c.wg.Done(); c.writer(storeCtx) }()
	stopRx := make(chan struct{})
	var rxWG sync.WaitGroup
	for i, q := range c.rx {
		rxWG.Add(1)
		go func() { defer rxWG.Done(); c.process(i, q, stopRx) }()
	}
	fast := time.NewTicker(20 * time.Millisecond)
	slow := time.NewTicker(slowEvery)
	defer fast.Stop()
	defer slow.Stop()
	var w tickWork
	c.startOutput()
	step := func(now time.Time, slow bool) {
		c.tick(now, &w, slow, false)
		c.handOff(&w)
		c.updateShedding(now)
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-fast.C:
			step(now, false)
		case now := <-slow.C:
			step(now, true)
		}
	}
	// Take nothing more from Receive, handle what it queued, complete everything
	// and drain.
	for _, q := range c.rx {
		q.mu.Lock()
		c.stopped.Store(true)
		q.mu.Unlock()
	}
	close(stopRx)
	rxWG.Wait()
	c.stopOutput() // what the ticks handed off is written and dispatched
	for _, sh := range c.shards {
		sh.mu.Lock()
		for _, h := range sh.hosts {
			h.stream.Flush(func(line []byte, ev netconsole.Event) { c.line(h, line, ev, time.Now(), false) })
			c.finish(h)
		}
		for _, h := range sh.named {
			c.finish(h)
		}
		c.countLines(sh)
		sh.mu.Unlock()
	}
	c.tick(time.Now(), &w, true, true)
	c.emit(&w)
	c.seeHosts(w.seen)
	if c.logs != nil {
		c.logs.Close()
	}
	close(c.analyze)
	timer := time.AfterFunc(drain, stopStore)
	c.wg.Wait()
	timer.Stop()
	stopStore()
	if c.spool != nil {
		c.spool.Close()
	}
	close(c.closed)
}

// writeLogs writes raw logs, counting what a full or failing disk makes it shed.
func (c *Collector) writeLogs(now time.Time, chunks []logChunk) {
	if c.logs == nil {
		return
	}
	shed, err := c.logs.write(chunks, now)
	if shed > 0 {
		c.Stats.LogDrops.Add(uint64(shed))
	}
	if err != nil {
		c.Stats.LogErrors.Add(1)
	}
	c.updateShedding(now)
}

// updateShedding sets Stats.LogShedding: raw logs are shed after a failed write, or
// while their writer is far behind.
func (c *Collector) updateShedding(now time.Time) {
	if c.logs != nil {
		c.Stats.LogShedding.Store(c.logs.shedding(now) || c.logBacklog.Load() > c.maxLogBacklog)
	}
}

// Done is closed once Run has returned from draining.
func (c *Collector) Done() <-chan struct{} { return c.closed }

func (c *Collector) redirty(seen []store.HostSeen) {
	for _, s := range seen {
		if v, ok := c.byID.Load(s.ID); ok {
			h := v.(*host)
			h.sh.mu.Lock()
			h.dirty, h.urgent = true, true
			h.sh.mu.Unlock()
		}
	}
}

// HostIDs returns the ids of the hosts in memory (for the live tail's host list).
func (c *Collector) HostIDs() []string {
	var out []string
	c.byID.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	return out
}
