package collector

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// TestReceiveOverload: Receive's queue is stalled (Run not started) while a fleet
// sends a flood of ordinary records and, in the middle of it, several hosts crash.
// Once the queue is full, ordinary datagrams are shed and counted; every datagram of
// the crashing hosts from their report's first line on is kept, so when the
// collector runs every crash is stored whole, once.
func TestReceiveOverload(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) { receiveOverload(t, shards) })
	}
}

func receiveOverload(t *testing.T, shards int) {
	s := openStore(t)
	c := New(Options{Store: s, Shards: shards})
	crash := datagrams(t, "ACCESS_NULL.netconsole-ext")
	start := -1
	for i, d := range crash {
		if r, err := netconsole.ParseExtended(d); err == nil && len(r.Text) > 4 && string(r.Text[:4]) == "BUG:" {
			start = i
			break
		}
	}
	crashers := []netip.AddrPort{}
	for i := 0; i < 5; i++ {
		crashers = append(crashers, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 5, 0, byte(1 + i)}), 6665))
	}
	now := time.Now()
	seq := map[int]int{}
	sent := 0
	// Batches of 250 datagrams, far more than the queue holds. From batch 100 on,
	// the crashing hosts send their captures in turn, one record per batch: the
	// crash records are spread over several times more batches than the queue's
	// reserve has room for.
	for b := 0; b < 100+len(crashers)*len(crash)+10; b++ {
		var batch []netconsole.Packet
		for i := 0; i < 250; i++ {
			h := (b*250 + i) % 1000
			seq[h]++
			batch = append(batch, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 6, byte(h >> 8), byte(h)}), 6665),
				Data: []byte(fmt.Sprintf("6,%d,%d,-;ordinary line %d", seq[h], 1000*seq[h], b))})
		}
		if k, j := (b-100)/len(crashers), (b-100)%len(crashers); b >= 100 && k < len(crash) {
			batch = append(batch, netconsole.Packet{From: crashers[j], Data: crash[k]})
		}
		sent += len(batch)
		c.Receive(b%shards, now, batch)
	}
	if c.Stats.Shed.Load() == 0 || c.Stats.Kept.Load() == 0 {
		t.Fatalf("shed %d, kept %d: no overload", c.Stats.Shed.Load(), c.Stats.Kept.Load())
	}
	if c.Stats.CrashDrops.Load() != 0 {
		t.Errorf("%d crash datagrams lost", c.Stats.CrashDrops.Load())
	}
	stop := run(c)
	waitUntil(t, "five reports", 10*time.Second, func() bool { return c.Stats.Reports.Load() == 5 })
	stop()
	reps, _ := s.Reports(context.Background(), store.ReportQuery{})
	hosts := map[string]bool{}
	for _, r := range reps {
		full, err := s.Report(context.Background(), r.ID)
		if err != nil || !contains(full.Text, "BUG: kernel NULL pointer dereference") || !contains(full.Text, "Kernel panic - not syncing") {
			t.Errorf("report of %s not whole (%v):\n%s", r.Host, err, full.Text)
		}
		hosts[r.Host] = true
	}
	if len(reps) != 5 || len(hosts) != 5 {
		t.Errorf("%d reports from %d hosts, want 5 from 5", len(reps), len(hosts))
	}
	if got := c.Stats.Packets.Load() + c.Stats.Shed.Load(); got != uint64(sent) {
		t.Errorf("processed %d + shed %d = %d, sent %d", c.Stats.Packets.Load(), c.Stats.Shed.Load(), got, sent)
	}
	_ = start
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestClockHeldChunk: the clock that judges silence stays at the receipt time of
// what is not yet handled, also while the processor holds the last chunk it took
// from an otherwise empty queue and while datagrams kept aside during shedding
// wait. The clock once fell back to the wall clock in those windows, so a capture
// whose rest was in the processor's hands was ended as quiet and split in two
// (TestReceiveOverload failed 2 times in 30 on a loaded machine).
func TestClockHeldChunk(t *testing.T) {
	c := New(Options{Shards: 1})
	q := c.rx[0]
	t0 := time.Now()
	wall := t0.Add(time.Hour)
	if got := c.clock(wall); !got.Equal(wall) {
		t.Fatalf("idle: clock %v, want the wall clock %v", got, wall)
	}
	q.handled.Store(t0.UnixNano())
	c.Receive(0, t0.Add(time.Second), []netconsole.Packet{{From: netip.MustParseAddrPort("10.0.0.1:6665"), Data: []byte("6,1,1,-;line")}})
	if got := c.clock(wall); !got.Equal(t0) {
		t.Errorf("queued: clock %v, want %v", got, t0)
	}
	ch := <-q.queue // the processor has taken it and not yet handled it
	if got := c.clock(wall); !got.Equal(t0) {
		t.Errorf("taken, not handled: clock %v, want %v", got, t0)
	}
	q.backlog.Add(-1) // what process does once handled
	q.put(ch)
	if got := c.clock(wall); !got.Equal(wall) {
		t.Errorf("handled: clock %v, want the wall clock %v", got, wall)
	}
	// Datagrams kept aside while shedding count too.
	for i := 0; i < 2*rxChunks; i++ {
		c.Receive(0, t0, []netconsole.Packet{{From: netip.MustParseAddrPort("10.0.0.2:6665"), Data: []byte("6,1,1,-;line")}})
	}
	for len(q.queue) > 0 {
		<-q.queue
		q.backlog.Add(-1)
	}
	c.Receive(0, t0, []netconsole.Packet{{From: netip.MustParseAddrPort("10.0.0.3:6665"), Data: []byte("0,1,1,-;BUG: kernel NULL pointer dereference, address: 0000000000000000")}})
	if q.kept == nil && len(q.queue) == 0 {
		t.Fatal("the report's first line was neither queued nor kept")
	}
	if got := c.clock(wall); !got.Equal(t0) {
		t.Errorf("kept aside: clock %v, want %v", got, t0)
	}
}

// TestReceiveSplitAllocs: Receive splits each batch among the shards' queues
// without allocating (the split allocated every batch's packets again, most of
// what a 10,000-host soak allocated), and every datagram reaches its own shard's
// queue, in order.
func TestReceiveSplitAllocs(t *testing.T) {
	for _, shards := range []int{2, 3, 7} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			c := New(Options{Shards: shards})
			var pkts []netconsole.Packet
			for i := range 300 { // more than one split of splitBatch
				pkts = append(pkts, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 6, byte(i >> 8), byte(i)}), 6666),
					Data: fmt.Appendf(nil, "6,%d,%d,-;ordinary line %d", i, i, i)})
			}
			got := make([][]string, shards)
			drain := func(keep bool) {
				for k, q := range c.rx {
					for len(q.queue) > 0 {
						ch := <-q.queue
						q.backlog.Add(-1)
						for _, p := range ch.pkts {
							if shardOf(p.From, shards) != k {
								t.Fatalf("datagram of %v in shard %d's queue", p.From, k)
							}
							if keep {
								got[k] = append(got[k], string(p.Data))
							}
						}
						q.put(ch)
					}
				}
			}
			c.Receive(0, time.Now(), pkts)
			drain(true)
			for k := range shards {
				var want []string
				for _, p := range pkts {
					if shardOf(p.From, shards) == k {
						want = append(want, string(p.Data))
					}
				}
				if !slices.Equal(got[k], want) {
					t.Errorf("shard %d got %d datagrams, want %d in order", k, len(got[k]), len(want))
				}
			}
			if a := testing.AllocsPerRun(50, func() { c.Receive(0, time.Now(), pkts); drain(false) }); a != 0 {
				t.Errorf("%v allocations per batch", a)
			}
		})
	}
}

// TestBackpressureUnlocked: with its queue full and the socket's kernel buffer
// less than half full, a reader waits for the processor without holding the
// queue's lock. It once slept holding it: a processor that had found the queue
// empty and went for the datagrams kept aside (takeKept) blocked on the lock while
// the reader filled the queue and then waited on it, so neither moved until the
// kernel buffer was half full, and the reader shed (a 10,000-host soak at 220,000
// records/s shed a few thousand datagrams every few minutes that way, with the
// collector half idle).
func TestBackpressureUnlocked(t *testing.T) {
	c := New(Options{Shards: 1})
	q := c.rx[0]
	var full atomic.Bool // the kernel buffer: below half until the test ends
	var asked atomic.Int32
	c.SetBackpressure(func(int) float64 {
		asked.Add(1)
		if full.Load() {
			return 1
		}
		return 0.1
	})
	from := netip.MustParseAddrPort("10.0.0.1:6665")
	for i := range rxChunks {
		c.Receive(0, time.Now(), []netconsole.Packet{{From: from, Data: fmt.Appendf(nil, "6,%d,1,-;line", i+1)}})
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		c.Receive(0, time.Now(), []netconsole.Packet{{From: from, Data: fmt.Appendf(nil, "6,%d,1,-;line", rxChunks+1)}})
	}()
	defer func() { full.Store(true); <-returned }()
	// Once the reader is waiting (it has asked for the buffer's fill twice, so it
	// has slept once; the processor is not running), the lock must be free most of
	// the time.
	waitUntil(t, "the reader to wait for room", 5*time.Second, func() bool { return asked.Load() >= 2 })
	got := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		select {
		case <-returned:
			t.Fatal("Receive returned with the queue full and the kernel buffer below half")
		default:
		}
		if q.mu.TryLock() {
			got = true
			q.mu.Unlock()
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	if !got {
		t.Fatal("the reader holds the queue's lock for 2 s while it waits for room")
	}
	// What the processor does when the queue is empty returns at once...
	took := make(chan *chunk)
	go func() { took <- q.takeKept() }()
	select {
	case k := <-took:
		if k != nil {
			t.Fatalf("takeKept: %d datagrams kept, none were", len(k.pkts))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("takeKept blocked while the reader waits for room")
	}
	// ...and once it takes a chunk the reader queues its batch: nothing shed.
	<-q.queue
	q.backlog.Add(-1)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still waits with room in the queue")
	}
	if n := c.Stats.Shed.Load(); n != 0 {
		t.Errorf("%d datagrams shed with the kernel buffer below half", n)
	}
	if len(q.queue) != rxChunks {
		t.Errorf("%d chunks queued, want %d", len(q.queue), rxChunks)
	}
}

// TestCleanDatagrams: the reader marks a datagram clean when it holds no report
// needle and no escape, and the processor skips looking for a report line only in
// the lines made of a clean datagram alone: a clean record that releases a held
// report line (its missing predecessor) must not hide it.
func TestCleanDatagrams(t *testing.T) {
	q := newRxQueue()
	now := time.Now()
	from := netip.MustParseAddrPort("10.7.0.1:6665")
	for _, tc := range []struct {
		data  string
		clean bool
	}{
		{"6,1,100,-;eth0: link up", true},
		{"6,1,100,-;BUG: kernel NULL pointer dereference, address: 0000000000000000", false},
		{"6,1,100,-;a line with an escape \\x1b[0m", false},
		{"plain text with a newline\n", true},
		{"plain text: Kernel panic - not syncing: Fatal exception\n", false},
	} {
		if got := q.hotCheck(&netconsole.Packet{From: from, Data: []byte(tc.data)}, now); got != tc.clean {
			t.Errorf("hotCheck(%q) clean %v, want %v", tc.data, got, tc.clean)
		}
	}

	for _, tc := range []struct {
		name    string
		pkts    []string
		clean   []bool
		capture bool
	}{
		// Record 3, a report's first line, waits for record 2; clean record 2
		// releases it, and it starts a capture.
		{"held report line released by a clean record", []string{
			"6,1,100,-;ordinary one",
			"0,3,300,-;BUG: kernel NULL pointer dereference, address: 0000000000000000",
			"6,2,200,-;ordinary two",
		}, []bool{true, false, true}, true},
		// With nothing held, a clean datagram's lines are not looked at (the
		// flag is trusted: here it lies, and no capture starts).
		{"clean flag trusted when nothing is held", []string{
			"6,1,100,-;ordinary one",
			"0,2,200,-;BUG: kernel NULL pointer dereference, address: 0000000000000000",
		}, []bool{true, true}, false},
		{"report line not clean", []string{
			"6,1,100,-;ordinary one",
			"0,2,200,-;BUG: kernel NULL pointer dereference, address: 0000000000000000",
		}, []bool{true, false}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{Store: openStore(t)})
			sh := c.shards[0]
			for i, d := range tc.pkts {
				c.handleShard(sh, now, []netconsole.Packet{{From: from, Data: []byte(d)}}, tc.clean[i:i+1], -1)
			}
			h := sh.hosts[from]
			if h == nil {
				t.Fatal("no host")
			}
			if got := h.capture != nil; got != tc.capture {
				t.Errorf("capture started %v, want %v; context:\n%s", got, tc.capture, h.ctx)
			}
		})
	}
}
