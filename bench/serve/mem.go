package main

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
)

// runMem measures what a host costs: hosts hosts send records records each through the
// receiver (paced, nothing shed) to a collector with raw logs and SQLite; the heap
// and the process's RSS are read once the raw logs are written (active hosts), and
// again once every host's context is compressed (idle hosts).
func runMem(hosts, records int) error {
	const idle = 10 * time.Second
	r, err := newRig("serve-bench-mem-", collector.Options{MaxHosts: hosts + 10, IdleAfter: idle}, false)
	if err != nil {
		return err
	}
	defer r.close()
	col := r.col
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	rss0, _ := memKB(os.Getpid())
	snd, err := newSender(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(r.port())), 64)
	if err != nil {
		return err
	}
	defer unixClose(snd.fd)
	f := newFleet(hosts, 0, nil, 1<<62)
	start := time.Now()
	if err := r.warm(snd, f, hosts, records); err != nil {
		return err
	}
	for col.Stats.Packets.Load() < uint64(hosts*records/64*64) && time.Since(start) < 5*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("%d hosts, %d records in %.1fs (shed %d); waiting for the raw logs\n", col.Stats.Hosts.Load(), col.Stats.Packets.Load(), time.Since(start).Seconds(), col.Stats.Shed.Load())
	time.Sleep(6500 * time.Millisecond)
	report := func(what string) {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC() // the second frees the written raw log buffers a sync.Pool keeps through the first
		runtime.ReadMemStats(&m)
		rss, _ := memKB(os.Getpid())
		fmt.Printf("RESULT %s: %d hosts, heap %.0f bytes per host (%.1f MiB in all), RSS %.0f bytes per host (%.1f MiB in all)\n", what, hosts,
			(float64(m.HeapAlloc)-float64(m0.HeapAlloc))/float64(hosts), float64(m.HeapAlloc)/(1<<20),
			float64(rss-rss0)*1024/float64(hosts), float64(rss)/1024)
	}
	report("active")
	deadline := time.Now().Add(idle + time.Duration(hosts/2000+30)*time.Second)
	for col.Stats.Compacted.Load() < uint64(hosts) && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	report(fmt.Sprintf("idle (%d contexts compressed)", col.Stats.Compacted.Load()))
	return nil
}
