package collector

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// ordinary sends n ordinary extended records from each of hosts hosts (10.7.x.y).
func ordinary(c *Collector, hosts, n int, seq *int) {
	for range n {
		var pkts []netconsole.Packet
		for i := range hosts {
			pkts = append(pkts, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}), 6666),
				Data: fmt.Appendf(nil, "6,%d,%d,-;netdev: eth0: rx ring refilled, 512 buffers, queue 3 of 8 ok, record %d", *seq, 1000**seq, *seq)})
		}
		*seq++
		c.HandleBatch(0, time.Now(), pkts)
	}
}

// TestSlowLogDisk: while the raw log writer is stalled (a disk whose writeback
// fell behind took seconds per write), the ticks go on: the store hears of the
// hosts, periodic raw logs beyond the backlog bound are shed and counted instead
// of piling up, and a crash's raw log is never shed; once the writer moves again,
// the report is stored with its lines in its host's raw log, and shedding ends.
func TestSlowLogDisk(t *testing.T) {
	st := openStore(t)
	logDir := t.TempDir()
	c := New(Options{Store: st, LogDir: logDir, Quiet: 100 * time.Millisecond})
	c.maxLogBacklog = 16 << 10
	var stalled atomic.Bool
	gate := make(chan struct{})
	c.beforeWrite = func() {
		if stalled.Load() {
			<-gate
		}
	}
	stop := run(c)
	defer stop()
	stalled.Store(true)
	seq := 0
	const hosts = 40
	ordinary(c, hosts, 20, &seq) // about 4 KB each: 160 KB at the next slow tick
	crash := netip.MustParseAddrPort("10.7.200.1:6665")
	c.HandleBatch(0, time.Now(), packets(crash, datagrams(t, "ACCESS_NULL.netconsole-ext")))
	// Each slow tick brings more; the first periodic write of every host is due
	// after logEvery at most.
	deadline := time.Now().Add(logEvery + 3*time.Second)
	for c.Stats.LogDrops.Load() == 0 && time.Now().Before(deadline) {
		ordinary(c, hosts, 5, &seq)
		time.Sleep(100 * time.Millisecond)
	}
	if c.Stats.LogDrops.Load() == 0 || !c.Stats.LogShedding.Load() {
		t.Fatalf("with the writer stalled: %d raw log bytes shed, shedding %v", c.Stats.LogDrops.Load(), c.Stats.LogShedding.Load())
	}
	if b := c.logBacklog.Load(); b > 4*c.maxLogBacklog+256<<10 {
		t.Errorf("raw log backlog %d bytes with the writer stalled, bound %d", b, c.maxLogBacklog)
	}
	hs, err := st.Hosts(context.Background())
	if err != nil || len(hs) < hosts {
		t.Errorf("the store heard of %d hosts (%v) while the raw log writer was stalled, want %d", len(hs), err, hosts+1)
	}
	if n := c.Stats.Reports.Load(); n != 0 {
		t.Errorf("%d reports stored before their raw log was written", n)
	}
	stalled.Store(false)
	close(gate)
	waitUntil(t, "the report once the writer moved", 5*time.Second, func() bool { return c.Stats.Reports.Load() == 1 })
	log, err := os.ReadFile(filepath.Join(logDir, LogName(crash.String())))
	if err != nil || !bytes.Contains(log, []byte("Kernel panic - not syncing")) {
		t.Errorf("the crashed host's raw log: %v, %d bytes", err, len(log))
	}
	waitUntil(t, "the end of shedding", 5*time.Second, func() bool { return !c.Stats.LogShedding.Load() })
}

// hangingSeen is a store whose SeeHosts hangs until released (or its context ends).
type hangingSeen struct {
	store.Store
	release chan struct{}
	calls   atomic.Int64
}

func (h *hangingSeen) SeeHosts(ctx context.Context, hs []store.HostSeen) error {
	h.calls.Add(1)
	select {
	case <-h.release:
		return h.Store.SeeHosts(ctx, hs)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestSlowStoreSeen: a store slow to hear of the hosts' last contact (a database
// under load, or gone) does not hold up the capture of a crash: its report is
// stored meanwhile. Hosts the store could not hear of are told again later.
func TestSlowStoreSeen(t *testing.T) {
	st := &hangingSeen{Store: openStore(t), release: make(chan struct{})}
	c := New(Options{Store: st, LogDir: t.TempDir(), Quiet: 100 * time.Millisecond})
	stop := run(c)
	defer stop()
	seq := 0
	ordinary(c, 5, 1, &seq)
	waitUntil(t, "the store asked to hear of the hosts", 3*time.Second, func() bool { return st.calls.Load() > 0 })
	crash := netip.MustParseAddrPort("10.7.200.2:6665")
	c.HandleBatch(0, time.Now(), packets(crash, datagrams(t, "ACCESS_NULL.netconsole-ext")))
	waitUntil(t, "the report with SeeHosts hanging", 3*time.Second, func() bool { return c.Stats.Reports.Load() == 1 })
	close(st.release)
	waitUntil(t, "every host in the store", 5*time.Second, func() bool {
		hs, err := st.Hosts(context.Background())
		return err == nil && len(hs) == 6
	})
}
