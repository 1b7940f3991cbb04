package collector

import (
	"bytes"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/oops"
)

// Receive is the netconsole.Handler of a live receiver. It copies each batch into a
// queue and returns at once; one goroutine per shard (started by Run) feeds its
// queue to the shard. The socket's reader thus goes back to recvmmsg at once,
// and when the collector falls behind the choice of what to lose is the
// collector's, not the kernel's: with the queue full, Receive sheds ordinary
// datagrams (counted in Stats.Shed) and keeps, in the queue's reserve, every
// datagram that starts a crash report (oops.Detect) and every datagram of a host
// that sent one within the last hotFor. The queue keeps the order of arrival. A crash is thus captured whole at
// several times the rate the collector can process, while its context before the
// first report line may be thinned.
//
// SetBackpressure gives Receive the fill of each socket's kernel receive buffer
// (netconsole.Receiver.Fill): with it, a full queue makes the reader wait while the
// kernel buffer is less than half full, and sheds only beyond. Call it before the
// receiver starts.
func (c *Collector) SetBackpressure(fill func(socket int) float64) { c.fill = fill }

// Receive is safe for concurrent use by several sockets' readers. There is one
// queue per shard: a batch is split by the shard of each source, so each shard's
// goroutine handles its own hosts without taking another shard's lock.
//
// The batch is split without allocating (the split once allocated every batch's
// packets again: 86% of what a 10,000-host soak allocated, and so most of its GC).
func (c *Collector) Receive(socket int, now time.Time, pkts []netconsole.Packet) {
	if len(c.rx) == 1 {
		c.receive(c.rx[0], socket, now, pkts, nil, 0)
		return
	}
	if len(c.rx) > maxSplit {
		for k, q := range c.rx {
			c.receive(q, socket, now, pkts, nil, k)
		}
		return
	}
	for len(pkts) > 0 {
		part := pkts[:min(len(pkts), splitBatch)]
		pkts = pkts[len(part):]
		var ks [splitBatch]uint8
		var n [maxSplit]uint16
		for i := range part {
			k := shardOf(part[i].From, len(c.rx))
			ks[i] = uint8(k)
			n[k]++
		}
		for k, q := range c.rx {
			if n[k] > 0 {
				c.receive(q, socket, now, part, ks[:len(part)], k)
			}
		}
	}
}

// Receive splits batches splitBatch datagrams at a time with the shard of each
// on the stack, for up to maxSplit shards; beyond, each shard's receive finds its
// own datagrams.
const (
	splitBatch = 256
	maxSplit   = 256
)

// receive queues, on shard k's queue q, the datagrams of pkts that are its own:
// those whose ks entry is k, or, without ks, those shardOf puts in k (all of them
// with one shard).
func (c *Collector) receive(q *rxQueue, socket int, now time.Time, pkts []netconsole.Packet, ks []uint8, k int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	mine := func(i int) bool {
		switch {
		case ks != nil:
			return int(ks[i]) == k
		case len(c.rx) > 1:
			return shardOf(pkts[i].From, len(c.rx)) == k
		}
		return true
	}
	if c.stopped.Load() {
		for i := range pkts {
			if mine(i) {
				c.Stats.Shed.Add(1)
			}
		}
		return
	}
	ch := q.get(now)
	for i := range pkts {
		if mine(i) {
			ch.add(&pkts[i], q.hotCheck(&pkts[i], now))
		}
	}
	// Senders hold q.mu: a length below the limit means the send cannot block. With the queue at its limit, the reader waits
	// while the socket's kernel buffer is less than half full: a burst it absorbs
	// costs nothing; only an overload that would fill it is shed. It waits without
	// q.mu (the chunk is its own until queued): holding it, a processor that wanted
	// the lock (takeKept) could not drain the queue the reader waited on, and the
	// wait ended only once the kernel buffer was half full, in shedding (a 10,000-host
	// soak at 220,000 records/s, with the collector half idle, shed a few thousand
	// datagrams every few minutes).
	for len(q.queue) >= rxChunks && c.fill != nil && !c.stopped.Load() {
		if f := c.fill(socket); f < 0 || f >= 0.5 {
			break
		}
		q.mu.Unlock()
		time.Sleep(200 * time.Microsecond)
		q.mu.Lock()
	}
	if len(q.queue) < rxChunks {
		q.queueKept()
		q.backlog.Add(1)
		q.queue <- ch
		return
	}
	// The collector is behind: keep what belongs to a crash, shed the rest. The
	// kept datagrams gather in q.kept, which goes to the queue's reserve when full,
	// before the next batch once there is room, or to the processor when it has
	// emptied the queue.
	for i := range ch.pkts {
		p := &ch.pkts[i]
		if !q.hot(p.From, now) {
			c.Stats.Shed.Add(1)
			continue
		}
		if q.kept == nil {
			q.setKept(q.get(now))
			q.backlog.Add(1)
		}
		q.kept.add(p, ch.clean[i])
		c.Stats.Kept.Add(1)
	}
	q.put(ch)
	if q.kept != nil && len(q.kept.pkts) >= keptChunk {
		select {
		case q.queue <- q.kept: // the reserve
		default:
			c.Stats.CrashDrops.Add(uint64(len(q.kept.pkts)))
			q.put(q.kept)
			q.backlog.Add(-1)
		}
		q.setKept(nil)
	}
	// The processor may have emptied the queue since, and looked for kept
	// datagrams before they were (see takeKept): then they are queued now.
	if len(q.queue) < rxChunks {
		q.queueKept()
	}
}

// queueKept queues what was kept while shedding, if anything, with q.mu held and
// room in the queue: it goes before the next batch (counted in backlog already).
func (q *rxQueue) queueKept() {
	if q.kept != nil {
		q.queue <- q.kept
		q.setKept(nil)
	}
}

// setKept sets kept, and hasKept with it, with q.mu held.
func (q *rxQueue) setKept(ch *chunk) {
	q.kept = ch
	q.hasKept.Store(ch != nil)
}

// keptChunk is how many kept datagrams make a chunk of the queue's reserve.
const keptChunk = 256

// takeKept returns the datagrams kept aside while shedding, if any. The processor
// calls it whenever it has emptied the queue: with nothing kept it does not take
// q.mu, which the readers take for every batch. A reader that keeps datagrams sets
// hasKept before it looks at the queue's length, and queues them itself when it
// finds room (the processor may have looked before hasKept was set): so kept
// datagrams never wait for the next batch with the queue empty.
func (q *rxQueue) takeKept() *chunk {
	if !q.hasKept.Load() {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	k := q.kept
	q.setKept(nil)
	return k
}

// hotFor is how long after a datagram that starts a report its host's datagrams
// are kept when the collector sheds load: a dying kernel prints its report within
// a second or two.
const hotFor = 10 * time.Second

// rxQueue is one shard's queue between the sockets' readers and the shard's
// processing goroutine.
type rxQueue struct {
	mu sync.Mutex
	// queue holds up to rxChunks batches of every kind and as many again of
	// crash datagrams kept while shedding.
	queue chan *chunk
	free  chan *chunk
	// hotUntil: hosts that sent a report's first line recently (reader side).
	hotUntil map[netip.AddrPort]time.Time
	// kept gathers the datagrams kept while shedding (see Receive).
	kept *chunk
	// hasKept is kept != nil (setKept), for the processor to read without q.mu.
	hasKept atomic.Bool
	// handled is the receipt time (UnixNano) of the chunk the processor handles or
	// handled last.
	handled atomic.Int64
	// backlog counts the chunks received and not yet handled: queued, kept aside
	// while shedding, or in the processor's hands. Unlike len(queue) it does not
	// drop to zero while the processor holds the last chunk it took.
	backlog atomic.Int64
}

// clock is the time up to which every datagram received has been handled: now when
// every datagram received has been handled, else the receipt time of the chunk
// each busy queue is at. Timeouts (a quiet host, a missing record) are judged on it, so a lagging
// processor does not end a capture or give up on a record that is only queued.
func (c *Collector) clock(now time.Time) time.Time {
	t := now
	for _, q := range c.rx {
		if q.backlog.Load() > 0 {
			if h := time.Unix(0, q.handled.Load()); h.Before(t) {
				t = h
			}
		}
	}
	return t
}

// Queue depth: rxChunks batches of up to the receiver's batch size (256
// datagrams), plus as many of crash datagrams.
const rxChunks = 64

// maxHot bounds the hosts remembered as crashing (a flood of forged report lines
// must not grow the map without bound).
const maxHot = 10_000

func newRxQueue() *rxQueue {
	return &rxQueue{queue: make(chan *chunk, 2*rxChunks), free: make(chan *chunk, 2*rxChunks+4), hotUntil: map[netip.AddrPort]time.Time{}}
}

// hotCheck marks p's host hot when p starts a report, and says whether p is clean:
// no report's needle (oops.MayStart) and no escape in it. The queue lock is held.
func (q *rxQueue) hotCheck(p *netconsole.Packet, now time.Time) (clean bool) {
	if !oops.MayStart(p.Data) {
		return bytes.IndexByte(p.Data, '\\') < 0
	}
	if !startsReport(p.Data) {
		return false
	}
	if len(q.hotUntil) >= maxHot {
		for a, t := range q.hotUntil {
			if now.After(t) {
				delete(q.hotUntil, a)
			}
		}
		if len(q.hotUntil) >= maxHot {
			return false
		}
	}
	q.hotUntil[p.From] = now.Add(hotFor)
	return false
}

func (q *rxQueue) hot(a netip.AddrPort, now time.Time) bool {
	t, ok := q.hotUntil[a]
	if ok && now.After(t) {
		delete(q.hotUntil, a)
		return false
	}
	return ok
}

// startsReport says whether a datagram in which oops.MayStart found a needle holds
// a line that starts a report: the text of an extended record (after its header),
// or the lines of a plain payload.
func startsReport(p []byte) bool {
	if i := bytes.IndexByte(p, ';'); i >= 0 && i < 512 && bytes.IndexByte(p[:i], '\n') < 0 {
		body := p[i+1:]
		if j := bytes.IndexByte(body, '\n'); j >= 0 {
			body = body[:j] // the text; dictionary lines follow
		}
		if oops.Detect(body) {
			return true
		}
	}
	return oops.Detect(p)
}

// chunk is a copied batch of datagrams.
type chunk struct {
	now  time.Time
	pkts []netconsole.Packet
	// clean[i] says pkts[i] holds no report line (hotCheck): the processor then
	// need not look for one in the lines made of it alone.
	clean []bool
	buf   []byte
}

func (ch *chunk) add(p *netconsole.Packet, clean bool) {
	off := len(ch.buf)
	ch.buf = append(ch.buf, p.Data...)
	ch.pkts = append(ch.pkts, netconsole.Packet{From: p.From, Data: ch.buf[off:len(ch.buf):len(ch.buf)], Truncated: p.Truncated})
	ch.clean = append(ch.clean, clean)
}

// get returns an empty chunk (recycled when one is free). The queue lock is held.
func (q *rxQueue) get(now time.Time) *chunk {
	select {
	case ch := <-q.free:
		ch.now = now
		return ch
	default:
		return &chunk{now: now, buf: make([]byte, 0, 64<<10)}
	}
}

func (q *rxQueue) put(ch *chunk) {
	// Data of the packets points into buf: both are reset together. A chunk grown
	// past 1 MiB (one huge batch) is not kept.
	ch.pkts, ch.clean, ch.buf = ch.pkts[:0], ch.clean[:0], ch.buf[:0]
	if cap(ch.buf) > 1<<20 {
		return
	}
	select {
	case q.free <- ch:
	default:
	}
}

// process feeds one shard's queue to the shard until stop is closed; then it
// handles what is queued and returns.
func (c *Collector) process(shard int, q *rxQueue, stop <-chan struct{}) {
	handle := func(ch *chunk) {
		q.handled.Store(ch.now.UnixNano())
		c.handleShard(c.shards[shard], ch.now, ch.pkts, ch.clean, -1) // every packet is of this shard
		q.put(ch)
		q.backlog.Add(-1)
	}
	for {
		select {
		case ch := <-q.queue:
			handle(ch)
			continue
		default:
		}
		// The queue is empty: what the reader kept aside while shedding is next.
		if k := q.takeKept(); k != nil {
			handle(k)
			continue
		}
		select {
		case ch := <-q.queue:
			handle(ch)
		case <-stop:
			for {
				select {
				case ch := <-q.queue:
					handle(ch)
				default:
					if k := q.takeKept(); k != nil {
						handle(k)
					}
					return
				}
			}
		}
	}
}
