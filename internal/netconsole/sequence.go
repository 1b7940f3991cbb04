package netconsole

import (
	"bytes"
	"hash/maphash"
	"sort"
	"time"
)

// asm reassembles fragmented records (drivers/net/netconsole.c send_msg_fragmented
// sends every fragment of one record with the same header and ncfrag=off/total).
// It keeps at most two records in progress per host; a third evicts the oldest.
type asm struct {
	n     int          // slots in use: most hosts never fragment, and size costs nothing then
	slots *[2]fragSlot // allocated by the first fragment: most hosts never send one
}

type fragSlot struct {
	used  bool
	seq   uint64
	total int
	got   int
	since time.Time
	buf   []byte
	have  []uint64 // bitmap of received bytes, so duplicates do not complete a record
}

func (a *asm) size() int {
	if a.n == 0 {
		return 0
	}
	n := 0
	for i := range a.slots {
		if a.slots[i].used {
			n += a.slots[i].total
		}
	}
	return n
}

// add stores a fragment and returns the whole body when it is complete.
func (a *asm) add(r *Record, now time.Time) ([]byte, bool) {
	f := r.Frag
	if a.slots == nil {
		a.slots = new([2]fragSlot)
	}
	var sl *fragSlot
	for i := range a.slots {
		if a.slots[i].used && a.slots[i].seq == r.Seq && a.slots[i].total == f.Total {
			sl = &a.slots[i]
		}
	}
	if sl == nil {
		sl = &a.slots[0]
		for i := range a.slots {
			if !a.slots[i].used {
				sl = &a.slots[i]
				break
			}
			if a.slots[i].since.Before(sl.since) {
				sl = &a.slots[i]
			}
		}
		if !sl.used {
			a.n++
		}
		*sl = fragSlot{used: true, seq: r.Seq, total: f.Total, since: now,
			buf: make([]byte, f.Total), have: make([]uint64, (f.Total+63)/64)}
	}
	copy(sl.buf[f.Off:], f.Body)
	for i := f.Off; i < f.Off+len(f.Body); i++ {
		if sl.have[i/64]&(1<<(i%64)) == 0 {
			sl.have[i/64] |= 1 << (i % 64)
			sl.got++
		}
	}
	if sl.got < sl.total {
		return nil, false
	}
	body := sl.buf
	*sl = fragSlot{}
	a.n--
	return body, true
}

func (a *asm) expire(now time.Time, after time.Duration) {
	if a.slots == nil {
		return
	}
	for i := range a.slots {
		if a.slots[i].used && now.Sub(a.slots[i].since) >= after {
			a.slots[i] = fragSlot{}
			a.n--
		}
	}
}

// sequencer puts one host's extended records in order. A record ahead of the next
// expected one waits (at most window records, at most the timeout); one behind is a
// duplicate when it matches what this boot already sent, and otherwise starts a new
// boot. The kernel replays its whole ring buffer when a netconsole target registers
// from the module parameter (CON_PRINTBUFFER), so replays must not look like reboots.
type sequencer struct {
	window  int
	started bool
	next    uint64
	held    map[uint64]*Record
	since   time.Time // when the oldest held record arrived
	bytes   int
	// The first and last timestamps of this boot, and the first and the most recent
	// records heard (sequence, timestamp, text hash), to tell a replay from a reboot.
	firstSeq, firstTS uint64
	lastTS            uint64
	recent            [32]seen   // the last records, by seq modulo 32
	early             [64]uint64 // fingerprints of records firstSeq … firstSeq+63 (0: not heard)
}

// seen is a record heard: its sequence number and fingerprint (0: none).
type seen struct {
	seq, fp uint64
}

// fingerprint combines a record's timestamp and text hash; never 0.
func fingerprint(ts uint64, text []byte) uint64 {
	fp := textHash(text) ^ ts*0x9e3779b97f4a7c15
	if fp == 0 {
		fp = 1
	}
	return fp
}

// textHash hashes a record's text for fingerprint. Fingerprints never leave the
// process, so the seed is the process's. Every record is hashed: on a 75-byte
// console line maphash takes 7 ns, FNV-1a a byte at a time 57 ns.
func textHash(b []byte) uint64 { return maphash.Bytes(fpSeed, b) }

var fpSeed = maphash.MakeSeed()

type statFunc func(gaps, dups, reordered, reboots uint64)
type recFunc func(*Record, Event)

func (q *sequencer) push(r *Record, now time.Time, stat statFunc, emit recFunc) {
	if !q.started {
		q.reset(r)
		q.out(r, EventLine, emit)
		return
	}
	switch {
	case r.Seq == q.next:
		q.out(r, EventLine, emit)
		q.drain(emit)
	case r.Seq > q.next:
		if _, dup := q.held[r.Seq]; dup {
			stat(0, 1, 0, 0)
			return
		}
		if r.Seq-q.next > uint64(q.window) || len(q.held) >= q.window {
			// Too far ahead to wait for: release what is held and jump.
			q.release(r.Seq, stat, emit)
			q.out(r, EventLine, emit)
			q.drain(emit)
			return
		}
		if q.held == nil {
			q.held = map[uint64]*Record{}
		}
		if len(q.held) == 0 {
			q.since = now
		}
		// r and its text are the stream's scratch: what is held is a copy.
		h := *r
		h.Text = bytes.Clone(r.Text)
		q.held[r.Seq] = &h
		q.bytes += len(r.Text)
		stat(0, 0, 1, 0)
	default:
		if q.sameBoot(r) {
			stat(0, 1, 0, 0)
			return
		}
		q.release(^uint64(0), stat, emit)
		stat(0, 0, 0, 1)
		q.reset(r)
		q.out(r, EventReboot, emit)
	}
}

// sameBoot says whether a record behind the next expected one belongs to this boot.
//
// A remembered record (one of the boot's first 64 or its last 32) decides exactly:
// same sequence, timestamp and text. A new boot's first records are often identical
// to the previous boot's (the banner and command line, all stamped 0.000000), so
// they are taken for a replay until the first one that differs declares the reboot.
// Between the first and last records heard, a timestamp in that range means a
// replay. A record older than the first one heard cannot be checked and counts as a
// new boot; the collector de-duplicates the reports of such a replay by their text.
func (q *sequencer) sameBoot(r *Record) bool {
	fp := fingerprint(r.TS, r.Text)
	if r.Seq >= q.firstSeq && r.Seq-q.firstSeq < uint64(len(q.early)) {
		if e := q.early[r.Seq-q.firstSeq]; e != 0 {
			return e == fp
		}
	}
	if e := q.recent[r.Seq%uint64(len(q.recent))]; e.fp != 0 && e.seq == r.Seq {
		return e.fp == fp
	}
	if r.Seq >= q.firstSeq {
		return r.TS >= q.firstTS && r.TS <= q.lastTS
	}
	return false
}

func (q *sequencer) reset(r *Record) {
	q.started = true
	q.next = r.Seq
	q.firstSeq, q.firstTS = r.Seq, r.TS
	q.lastTS = r.TS
	q.early = [64]uint64{}
	q.recent = [32]seen{}
	clear(q.held)
	q.bytes = 0
}

func (q *sequencer) out(r *Record, ev Event, emit recFunc) {
	q.next = r.Seq + 1
	if r.TS > q.lastTS {
		q.lastTS = r.TS
	}
	fp := fingerprint(r.TS, r.Text)
	q.recent[r.Seq%uint64(len(q.recent))] = seen{r.Seq, fp}
	if d := r.Seq - q.firstSeq; r.Seq >= q.firstSeq && d < uint64(len(q.early)) {
		q.early[d] = fp
	}
	emit(r, ev)
}

func (q *sequencer) drain(emit recFunc) {
	for len(q.held) > 0 {
		r, ok := q.held[q.next]
		if !ok {
			return
		}
		delete(q.held, q.next)
		q.bytes -= len(r.Text)
		q.out(r, EventLine, emit)
	}
}

// release emits held records below limit in order, counting the holes as gaps.
func (q *sequencer) release(limit uint64, stat statFunc, emit recFunc) {
	if len(q.held) == 0 {
		if limit != ^uint64(0) && limit > q.next {
			stat(limit-q.next, 0, 0, 0)
		}
		return
	}
	seqs := make([]uint64, 0, len(q.held))
	for s := range q.held {
		if s < limit {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		r := q.held[s]
		delete(q.held, s)
		q.bytes -= len(r.Text)
		if s > q.next {
			stat(s-q.next, 0, 0, 0)
		}
		q.out(r, EventLine, emit)
	}
	if limit != ^uint64(0) && limit > q.next {
		stat(limit-q.next, 0, 0, 0)
	}
	q.since = time.Time{}
}

// tick gives up on missing records once the oldest held one waited timeout.
func (q *sequencer) tick(now time.Time, timeout time.Duration, stat statFunc, emit recFunc) {
	if len(q.held) == 0 || now.Sub(q.since) < timeout {
		return
	}
	// Release up to and including the lowest held record, then drain what follows.
	lowest := ^uint64(0)
	for s := range q.held {
		lowest = min(lowest, s)
	}
	q.release(lowest+1, stat, emit)
	q.drain(emit)
	if len(q.held) > 0 {
		q.since = now
	}
}
