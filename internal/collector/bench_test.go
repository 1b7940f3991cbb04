package collector

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// BenchmarkHandleBatch is the collector's per-record cost in steady state: 10,000
// hosts sending extended records round-robin, in batches of 256 as the receiver
// reads them, with raw logs and the store running (Run). It reports ns per record.
func BenchmarkHandleBatch(b *testing.B) { benchmarkHandleBatch(b, 10_000) }

func benchmarkHandleBatch(b *testing.B, hosts int) {
	const batch = 256
	c := New(Options{Store: openStore(b), LogDir: b.TempDir(), MaxHosts: hosts + 10})
	stop := run(c)
	defer stop()
	addrs := make([]netip.AddrPort, hosts)
	for i := range addrs {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(1 + i/62500), byte(1 + i/250%250), byte(1 + i%250)}), 6666)
	}
	seq := make([]uint64, hosts)
	pkts := make([]netconsole.Packet, batch)
	bufs := make([][]byte, batch)
	next := 0
	fill := func() {
		for i := range pkts {
			h := next
			next = (next + 1) % hosts
			d := bufs[i][:0]
			d = append(d, "4,"...)
			d = strconv.AppendUint(d, seq[h], 10)
			d = append(d, ',')
			d = strconv.AppendUint(d, 5_000_000+seq[h]*1000, 10)
			d = append(d, ",-;netdev: eth0: rx ring refilled, 512 buffers, queue 3 of 8 ok"...)
			seq[h]++
			bufs[i] = d
			pkts[i] = netconsole.Packet{From: addrs[h], Data: d}
		}
	}
	// Every host known, with a full context, before the timer starts.
	for range 200 * hosts / batch {
		fill()
		c.HandleBatch(0, time.Now(), pkts)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		fill()
		c.HandleBatch(0, time.Now(), pkts)
	}
	b.StopTimer()
	if n := c.Stats.Lines.Load(); n < uint64(b.N) {
		b.Fatalf("%d lines for %d records", n, b.N)
	}
}

// BenchmarkHandleBatchSteady is BenchmarkHandleBatch with 1,000 hosts, so that each
// host sends thousands of records: every context is full and cut as it goes, as in
// a long run.
func BenchmarkHandleBatchSteady(b *testing.B) { benchmarkHandleBatch(b, 1_000) }
