package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync/atomic"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/store"
)

// runSoak runs the collector (receiver, streams, raw logs, SQLite) for d at rate
// records/s (0: 80% of the zero-loss rate the ladder finds first, with runs of
// ladder each: longer than the benchmark's 5 s, as what is sustained for a few
// seconds need not be for an hour), with one host
// crashing every crashEvery, and prints a line a minute: records sent, processed,
// shed and dropped by the kernel, reports stored, heap and RSS. Raw logs rotate at
// logMax bytes so that an hour of 10,000 hosts fits on the disk.
func runSoak(hosts int, d time.Duration, rate float64, crashEvery, ladder time.Duration, tries int, script []string, logMax int64) error {
	fmt.Printf("soak: machine %d CPUs; %d hosts for %s, a crash every %s\n", runtime.NumCPU(), hosts, d, crashEvery)
	if rate <= 0 {
		raw, best, err := zeroLoss(hosts, 20, ladder, tries, script)
		if err != nil {
			return err
		}
		rate = 0.8 * best.rate()
		fmt.Printf("soak: zero-loss rate %.0f records/s (raw drain %.0f/s); soaking at 80%%: %.0f records/s\n", best.rate(), raw.rate(), rate)
	}
	r, err := newRig("serve-bench-soak-", collector.Options{LogMaxBytes: logMax, MaxHosts: hosts + 10}, true)
	if err != nil {
		return err
	}
	defer r.close()
	col, port := r.col, r.port()
	snd, err := newSender(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), 64)
	if err != nil {
		return err
	}
	defer unixClose(snd.fd)
	f := newFleet(hosts, 0, script, 1<<62)
	// Warm up as measure does: every host known, its raw log written once.
	if err := r.warm(snd, f, hosts, 10); err != nil {
		return err
	}
	time.Sleep(6500 * time.Millisecond)
	base := col.Stats.Packets.Load()
	drops0, _ := socketDrops(port)

	type sample struct {
		at            time.Duration
		heap, rss     uint64
		sent, handled uint64
	}
	var sent atomic.Uint64
	var genLag atomic.Int64 // µs the generator was behind its schedule at most, this minute
	var samples []sample
	var crashes int
	stop := make(chan struct{})
	if traceOnShed != "" {
		quit := make(chan struct{})
		done, err := watchFirstLoss(traceOnShed, col, port, drops0, quit)
		if err != nil {
			return err
		}
		defer func() { close(quit); <-done }()
	}
	sampled := make(chan struct{})
	start := time.Now()
	cpu0 := processCPU()
	if profile != nil {
		pprof.StartCPUProfile(profile)
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		defer func() {
			if f, err := os.Create(memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	go func() {
		defer close(sampled)
		tk := time.NewTicker(time.Minute)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			rss, _ := memKB(os.Getpid())
			drops, _ := socketDrops(port)
			s := sample{time.Since(start), m.HeapInuse, uint64(rss) << 10, sent.Load(), col.Stats.Packets.Load() - base}
			samples = append(samples, s)
			fmt.Printf("soak %3.0f min: sent %d, processed %d, shed %d, kernel drops %d, reports %d, heap in use %.1f MiB, RSS %.1f MiB, CPU %.2f of %d, generator behind by up to %.1f ms\n",
				s.at.Minutes(), s.sent, s.handled, col.Stats.Shed.Load(), drops-drops0, col.Stats.Reports.Load(),
				float64(s.heap)/(1<<20), float64(s.rss)/(1<<20), (processCPU()-cpu0).Seconds()/s.at.Seconds(), runtime.NumCPU(),
				float64(genLag.Swap(0))/1e3)
		}
	}()
	// The generator, paced, on its own thread; a different host crashes every crashEvery.
	var genCPU time.Duration
	err = func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		defer func() { genCPU = threadCPU() - t0 }()
		const batch = 64
		srcs := make([][4]byte, batch)
		nextCrash := crashEvery
		for {
			el := time.Since(start)
			if el >= d {
				return nil
			}
			if el >= nextCrash {
				f.crashNow((crashes*7919 + 13) % hosts)
				crashes++
				nextCrash += crashEvery
			}
			due := el.Seconds() * rate
			if float64(sent.Load()) >= due {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			// How far behind its schedule the generator is: it catches up at full
			// speed, so a lag is a burst the collector sees.
			if lag := int64((due - float64(sent.Load())) / rate * 1e6); lag > genLag.Load() {
				genLag.Store(lag)
			}
			f.fill(snd, batch, srcs)
			if err := snd.send(batch, srcs); err != nil {
				return err
			}
			sent.Add(batch)
		}
	}()
	if err != nil {
		return err
	}
	// Catch up with the socket, let the last crash be stored, stop.
	for last := uint64(0); ; {
		time.Sleep(300 * time.Millisecond)
		n := col.Stats.Packets.Load() - base
		if n == last || n >= sent.Load() {
			break
		}
		last = n
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-sampled
	cpu := processCPU() - cpu0
	handled := col.Stats.Packets.Load() - base
	drops, _ := socketDrops(port)
	r.stopReceiving()
	r.cancel()
	<-col.Done()
	reps, err := r.st.Reports(context.Background(), store.ReportQuery{Limit: 100000})
	if err != nil {
		return err
	}
	whole := 0
	for _, r := range reps {
		if !r.Corrupted && r.Panicked {
			whole++
		}
	}
	total := sent.Load()
	fmt.Printf("RESULT soak %s at %.0f records/s (%d hosts): sent %d, processed %d, lost %d (shed %d, kernel drops %d, gaps %d); %d crashes, %d reports, %d whole; collector CPU %.2f µs per record (generator excluded)\n",
		d, rate, hosts, total, handled, total-min(total, handled), col.Stats.Shed.Load(), drops-drops0, col.Stats.Gaps.Load(),
		crashes, col.Stats.Reports.Load(), whole, float64(cpu-genCPU)/float64(time.Microsecond)/float64(max(handled, 1)))
	if len(samples) >= 4 {
		// Flat memory: the first quarter's samples against the last quarter's.
		q := len(samples) / 4
		avg := func(ss []sample, rss bool) float64 {
			var t float64
			for _, s := range ss {
				if rss {
					t += float64(s.rss)
				} else {
					t += float64(s.heap)
				}
			}
			return t / float64(len(ss)) / (1 << 20)
		}
		var peak uint64
		for _, s := range samples {
			peak = max(peak, s.rss)
		}
		fmt.Printf("RESULT soak memory: heap in use %.1f MiB (first quarter) -> %.1f MiB (last quarter); RSS %.1f -> %.1f MiB, peak %.1f MiB\n",
			avg(samples[:q], false), avg(samples[len(samples)-q:], false), avg(samples[:q], true), avg(samples[len(samples)-q:], true), float64(peak)/(1<<20))
	}
	return nil
}

// watchFirstLoss keeps a flight-recorder trace of the soak and, at the first datagram
// shed or dropped by the kernel, writes the last few seconds of it, the moments
// leading to the loss, to file; a burst of loss in an hour is otherwise hard to
// explain (this is how a lock held while waiting was found). It stops with stop
// and closes the channel it returns once it has finished.
func watchFirstLoss(file string, col *collector.Collector, port int, drops0 uint64, stop <-chan struct{}) (<-chan struct{}, error) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 5 * time.Second, MaxBytes: 256 << 20})
	if err := fr.Start(); err != nil {
		return nil, err
	}
	shed0 := col.Stats.Shed.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer fr.Stop()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			lost := col.Stats.Shed.Load() > shed0
			if !lost && n%10 == 0 { // the kernel's count costs a read of /proc: every 100 ms
				d, _ := socketDrops(port)
				lost = d > drops0
			}
			if !lost {
				continue
			}
			at := time.Now()
			time.Sleep(500 * time.Millisecond) // the loss itself, and how it ends
			f, err := os.Create(file)
			if err == nil {
				_, err = fr.WriteTo(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Printf("soak: first loss at %s; writing its trace: %v\n", at.Format("15:04:05.000"), err)
			} else {
				fmt.Printf("soak: first loss at %s; the trace of the seconds before it is in %s (go tool trace %s)\n", at.Format("15:04:05.000"), file, file)
			}
			return
		}
	}()
	return done, nil
}
