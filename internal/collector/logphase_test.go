package collector

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// TestLogWritesSpread: hosts first heard together get their raw logs written at
// the next slow tick, and from then on their periodic (logEvery) writes are spread
// over logPhases slow ticks instead of all falling due in one, which held the
// shard lock for tens of milliseconds and wrote every file at once.
func TestLogWritesSpread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		silent int           // slow ticks after the first with no datagram at all
		early  time.Duration // how early every other slow tick comes
	}{
		{"steady", 0, 0},
		// A tick a little early does not put a host off a whole tick, which
		// made phases drift into each other.
		{"ticks a little early", 0, time.Millisecond},
		// Hosts with nothing to write when their period ends keep their phase:
		// heard again together, they are not all due at once.
		{"silent together then heard again", 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) { testLogWritesSpread(t, tc.silent, tc.early) })
	}
}

func testLogWritesSpread(t *testing.T, silent int, early time.Duration) {
	const hosts = 1000
	c := New(Options{LogDir: t.TempDir(), MaxHosts: hosts + 10})
	t0 := time.Now()
	seq := 0
	send := func(now time.Time) {
		var pkts []netconsole.Packet
		for i := 0; i < hosts; i++ {
			pkts = append(pkts, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 6666),
				Data: fmt.Appendf(nil, "6,%d,%d,-;line %d", seq, 1000*seq, seq)})
		}
		seq++
		c.HandleBatch(0, now, pkts)
	}
	var w tickWork
	send(t0)
	c.tick(t0, &w, true, false)
	if len(w.logs) != hosts {
		t.Fatalf("first slow tick wrote %d logs, want all %d new hosts", len(w.logs), hosts)
	}
	for s := 1; s <= silent; s++ {
		c.tick(t0.Add(time.Duration(s)*time.Second), &w, true, false)
		if len(w.logs) != 0 {
			t.Fatalf("slow tick %d s in wrote %d logs of silent hosts", s, len(w.logs))
		}
	}
	per := map[int]int{}
	for s := silent + 1; s <= silent+10; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if s%2 == 0 {
			now = now.Add(-early)
		}
		send(now)
		c.tick(now, &w, true, false)
		per[s] = len(w.logs)
		if n := len(w.logs); n > hosts*3/10 {
			t.Errorf("slow tick %d s in wrote %d of %d hosts' logs at once", s, n, hosts)
		}
	}
	total := 0
	for _, n := range per {
		total += n
	}
	if total < 2*hosts-hosts/10 { // each host about twice in 10 s
		t.Errorf("%d writes in 10 s for %d hosts (per tick %v), want about %d", total, hosts, per, 2*hosts)
	}
}

// TestSlowTickLetsGo: a slow tick visits every host, visitSegment at a time, and
// lets the shard lock go in between, so the shard's processor is not held up for
// the whole visit (tens of milliseconds at 10,000 hosts with raw logs to copy).
func TestSlowTickLetsGo(t *testing.T) {
	const hosts = 10 * visitSegment
	c := New(Options{LogDir: t.TempDir(), MaxHosts: hosts + 10})
	var pkts []netconsole.Packet
	for i := 0; i < hosts; i++ {
		pkts = append(pkts, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, byte(i >> 8), byte(i)}), 6666),
			Data: fmt.Appendf(nil, "6,1,1000,-;line from %d", i)})
	}
	now := time.Now()
	c.HandleBatch(0, now, pkts)
	gaps, free := 0, 0
	c.betweenSegments = func(sh *shard) {
		gaps++
		if sh.mu.TryLock() {
			free++
			sh.mu.Unlock()
		}
	}
	var w tickWork
	c.tick(now, &w, true, false)
	if len(w.logs) != hosts {
		t.Fatalf("slow tick collected %d logs, want %d", len(w.logs), hosts)
	}
	if want := hosts/visitSegment - 1; gaps < want || free != gaps {
		t.Errorf("slow tick let the lock go %d times (free %d), want at least %d", gaps, free, want)
	}
}
