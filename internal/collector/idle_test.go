package collector

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// TestIdleHostMemory: 2,000 hosts each send 120 extended records (about 10 KiB of
// console text, a full context) and go quiet. Once idle, a host costs at most
// 10 KB of heap, everything it is made of included. A host that crashes after
// being idle still has its context: its report carries the lines it sent before.
func TestIdleHostMemory(t *testing.T) {
	const hosts = 2000
	s := openStore(t)
	c := New(Options{Store: s, LogDir: t.TempDir(), MaxHosts: hosts + 10, IdleAfter: 500 * time.Millisecond})
	stop := run(c)
	defer stop()
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}), 6665)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	batch := make([]netconsole.Packet, 0, 256)
	for seq := 0; seq < 120; seq++ {
		for i := 0; i < hosts; i++ {
			batch = append(batch, netconsole.Packet{From: addr(i), Data: []byte(fmt.Sprintf("6,%d,%d,-;host %d: eth0: rx ring refilled, 512 buffers, queue %d of 8 ok", seq, 1000000+seq*1000, i, seq%8))})
			if len(batch) == cap(batch) {
				c.HandleBatch(0, time.Now(), batch)
				batch = batch[:0]
			}
		}
	}
	c.HandleBatch(0, time.Now(), batch)
	waitUntil(t, "the hosts' contexts compressed", 30*time.Second, func() bool {
		n := 0
		sh := c.shards[0]
		sh.mu.Lock()
		for _, h := range sh.hosts {
			if h.ctxZ != nil {
				n++
			}
		}
		sh.mu.Unlock()
		return n == hosts
	})
	// The raw logs are written every logEvery: wait for them too.
	time.Sleep(logEvery + 1500*time.Millisecond)
	// Two collections: the raw log buffers just written wait in a sync.Pool, which
	// keeps them through one (its victim cache) and frees them at the next; the
	// runtime collects at least every two minutes.
	var after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / hosts
	t.Logf("%.0f bytes of heap per idle host", per)
	if per > 10_000 {
		t.Errorf("%.0f bytes per idle host, want at most 10,000", per)
	}
	// Host 7 crashes after being idle: its report's context holds its earlier lines.
	dg := datagrams(t, "ACCESS_NULL.netconsole-ext")
	for i := range dg {
		// Renumber after the host's 120 records so they are not taken for a replay.
		r, err := netconsole.ParseExtended(dg[i])
		if err != nil {
			continue
		}
		dg[i] = []byte(fmt.Sprintf("%d,%d,%d,-;%s", r.Facility*8+r.Level, 120+i, 2000000+i*1000, r.Text))
	}
	c.HandleBatch(0, time.Now(), packets(addr(7), dg))
	waitUntil(t, "the idle host's report", 10*time.Second, func() bool { return c.Stats.Reports.Load() == 1 })
	reps, _ := s.Reports(context.Background(), store.ReportQuery{})
	full, err := s.Report(context.Background(), reps[0].ID)
	if err != nil || !strings.Contains(full.Context, "host 7: eth0: rx ring refilled") {
		t.Errorf("the report's context lacks the host's lines from before it was idle (%v):\n%s", err, full.Context)
	}
}
