package collector

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// TestEvictNeverMidCrash: with room for 8 hosts, a host starts a crash and goes
// quiet (a dying kernel can stall), then spoofed sources flood the collector over
// several ticks: the crashing host is the least recently heard, yet it is never
// evicted, and the rest of its crash completes its report. The host count stays
// bounded; the spoofed sources are evicted or dropped, both counted.
func TestEvictNeverMidCrash(t *testing.T) {
	s := openStore(t)
	c := New(Options{Store: s, MaxHosts: 8, Quiet: 5 * time.Second})
	stop := run(c)
	defer stop()
	victim := netip.MustParseAddrPort("10.9.0.1:6665")
	dgrams := datagrams(t, "ACCESS_NULL.netconsole-ext")
	start := -1
	for i, d := range dgrams {
		if r, err := netconsole.ParseExtended(d); err == nil && len(r.Text) > 4 && string(r.Text[:4]) == "BUG:" {
			start = i
			break
		}
	}
	if start < 0 || start+5 >= len(dgrams) {
		t.Fatal("no BUG: line in the capture")
	}
	c.HandleBatch(0, time.Now(), packets(victim, dgrams[:start+5]))
	spoofed := 0
	for round := 0; round < 10; round++ {
		var flood []netconsole.Packet
		for j := 0; j < 20; j++ {
			spoofed++
			flood = append(flood, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, byte(spoofed >> 8), byte(spoofed)}), 6665), Data: []byte("spoofed line\n")})
		}
		before := c.Stats.Evicted.Load() // read before the flood: a tick may evict at once
		c.HandleBatch(0, time.Now(), flood)
		if n := c.Stats.Hosts.Load(); n > 8 {
			t.Fatalf("%d hosts in memory, MaxHosts 8", n)
		}
		waitUntil(t, "an eviction", 5*time.Second, func() bool { return c.Stats.Evicted.Load() > before })
	}
	c.HandleBatch(0, time.Now(), packets(victim, dgrams[start+5:]))
	waitUntil(t, "the victim's report", 10*time.Second, func() bool { return c.Stats.Reports.Load() == 1 })
	reps, err := s.Reports(context.Background(), store.ReportQuery{})
	if err != nil || len(reps) != 1 || reps[0].Host != victim.String() {
		t.Fatalf("reports %+v %v, want one from %s", reps, err, victim)
	}
	full, err := s.Report(context.Background(), reps[0].ID)
	if err != nil || !strings.Contains(full.Text, "BUG: kernel NULL pointer dereference") || !strings.Contains(full.Text, "Call Trace:") {
		t.Fatalf("the victim's report lost its beginning (%v):\n%s", err, full.Text)
	}
	if c.Stats.Evicted.Load() == 0 || c.Stats.Dropped.Load() == 0 {
		t.Errorf("evicted %d, dropped %d: the flood was neither evicted nor dropped", c.Stats.Evicted.Load(), c.Stats.Dropped.Load())
	}
	if ev := c.Stats.Evicted.Load(); ev+c.Stats.Dropped.Load() < uint64(spoofed)-8 {
		t.Errorf("evicted %d + dropped %d of %d spoofed sources", ev, c.Stats.Dropped.Load(), spoofed)
	}
}

func packets(from netip.AddrPort, ds [][]byte) []netconsole.Packet {
	var out []netconsole.Packet
	for _, d := range ds {
		out = append(out, netconsole.Packet{From: from, Data: d})
	}
	return out
}

// TestDeniedCostsNothing: datagrams from outside --allow create no host and
// allocate nothing.
func TestDeniedCostsNothing(t *testing.T) {
	c := New(Options{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}, Shards: 2})
	var batch []netconsole.Packet
	for i := 0; i < 256; i++ {
		batch = append(batch, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 1}), 6665), Data: []byte("4,1,1,-;flood\n")})
	}
	allocs := testing.AllocsPerRun(20, func() { c.HandleBatch(0, time.Now(), batch) })
	if allocs != 0 || c.Stats.Hosts.Load() != 0 || c.Stats.Lines.Load() != 0 {
		t.Errorf("denied batch: %.0f allocations, %d hosts, %d lines", allocs, c.Stats.Hosts.Load(), c.Stats.Lines.Load())
	}
	if got := c.Stats.Denied.Load(); got != 21*256 {
		t.Errorf("denied %d, want %d", got, 21*256)
	}
}

// TestHostileDatagrams: malformed extended records, absurd ncfrag fields and binary
// junk are counted and dropped; they produce no console line, and the host's good
// records around them still arrive in order.
func TestHostileDatagrams(t *testing.T) {
	c := New(Options{})
	from := netip.MustParseAddrPort("10.0.0.1:6665")
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 900)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	junk[3] = 0
	bad := [][]byte{
		[]byte("6,2,100,-,ncfrag=0/99999999999;x"),      // total beyond any record
		[]byte("6,2,100,-,ncfrag=5000/10;xxxxx"),        // offset past the total
		[]byte("6,2,100,-,ncfrag=0/8;0123456789abcdef"), // body longer than the total
		[]byte("6,2,100,-,ncfrag=1;x"),                  // no total
		[]byte("6,2,100,-,ncfrag=-1/9;x"),               // negative
	}
	var dg [][]byte
	dg = append(dg, []byte("6,1,100,-;first"))
	dg = append(dg, bad...)
	dg = append(dg, junk, []byte("\x00\x01\x02\x03"), []byte("6,2,200,-;second"))
	c.HandleBatch(0, time.Now(), packets(from, dg))
	if got := c.Stats.BadPackets.Load(); got != uint64(len(bad)) {
		t.Errorf("bad packets %d, want %d", got, len(bad))
	}
	if got := c.Stats.Junk.Load(); got != 2 {
		t.Errorf("junk packets %d, want 2", got)
	}
	h := c.shards[0].hosts[from]
	if got, want := string(h.ctx), "[    0.000100] first\n[    0.000200] second\n"; got != want || c.Stats.Lines.Load() != 2 {
		t.Errorf("context %q (%d lines), want %q", got, c.Stats.Lines.Load(), want)
	}
	if c.Stats.Gaps.Load() != 0 {
		t.Errorf("%d gaps", c.Stats.Gaps.Load())
	}
}
