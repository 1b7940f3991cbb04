package main

// Side by side with Meta's netconsd (-netconsd): the same generator drives an
// external daemon, netconsd or `kcrash serve`, over loopback at a ladder of rates;
// loss is read from the kernel (the receiving sockets' drops in /proc/net/udp and
// udp6) plus, for kcrash, what it shed under overload (/metrics); CPU from
// /proc/PID/stat; memory from /proc/PID/status. netconsd is not part of this
// repository: bench/netconsd.sh says where it comes from and how to build it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// daemon is an external receiver under test.
type daemon struct {
	name string
	cmd  *exec.Cmd
	port int
	// shed returns what the daemon dropped by itself (kcrash: overload shedding).
	shed func() uint64
}

func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// socketDrops sums the drops of the UDP sockets bound to port (IPv4 and IPv6).
func socketDrops(port int) (drops uint64, sockets int) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 13 || !strings.HasSuffix(fs[1], suffix) {
				continue
			}
			d, _ := strconv.ParseUint(fs[len(fs)-1], 10, 64)
			drops += d
			sockets++
		}
	}
	return drops, sockets
}

// cpuSeconds is the user and system CPU time of pid and its reaped children.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks float64
	for _, i := range []int{11, 12} { // utime, stime (fields 14 and 15)
		v, _ := strconv.ParseFloat(fs[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// memKB reads VmRSS and VmHWM of pid.
func memKB(pid int) (rss, hwm uint64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

func startNetconsd(bin, module, dir string) (*daemon, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	// One listener and two workers (its defaults); logger-simple writes one log
	// file per host into its working directory, as kcrash writes raw logs.
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-u", strconv.Itoa(port), module)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &daemon{name: "netconsd", cmd: cmd, port: port, shed: func() uint64 { return 0 }}, nil
}

// startRaw starts this benchmark's own bare receiver (-drain): the kcrash serve
// receiver's sockets (one per CPU, SO_REUSEPORT, 8 MiB buffers, recvmmsg of 256)
// with a handler that only counts. Its zero-loss rate is the machine's raw drain
// with the generator in another process, as it is for the daemons.
func startRaw() (*daemon, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-drain", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &daemon{name: "raw recvmmsg", cmd: cmd, port: port, shed: func() uint64 { return 0 }}, nil
}

// runDrain is the process startRaw starts: it receives on addr until killed.
func runDrain(addr string) error {
	rcv, err := netconsole.Listen(context.Background(), addr, netconsole.ListenOptions{Sockets: runtime.GOMAXPROCS(0), Coalesce: -1})
	if err != nil {
		return err
	}
	var n atomic.Uint64
	return rcv.Run(func(_ int, _ time.Time, p []netconsole.Packet) { n.Add(uint64(len(p))) })
}

var shedMetric = regexp.MustCompile(`(?m)^kcrash_drops_total\{what="overload_(?:shed|crash)"\} (\S+)$`)

func startKcrash(bin, dir string) (*daemon, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	httpAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--udp", fmt.Sprintf("127.0.0.1:%d", port), "--http", httpAddr,
		"--db", filepath.Join(dir, "kcrash.db"), "--logs", filepath.Join(dir, "logs"))
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("KCRASH_ARGS"))...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	shed := func() uint64 {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var n uint64
		for _, m := range shedMetric.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			n += uint64(v)
		}
		return n
	}
	return &daemon{name: "kcrash serve", cmd: cmd, port: port, shed: shed}, nil
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}

// vsRun is one daemon's run at one rate.
type vsRun struct {
	rate               float64
	sent, lost         uint64
	cpuPerRecord       float64 // µs
	rssKB, hwmKB       uint64
	processedPerSecond float64
	achieved           float64 // records/s the generator reached
}

// waitIdle waits until process pid uses less than 5% of a CPU over half a second,
// for at most max; it returns how long it waited and whether pid was idle.
func waitIdle(pid int, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < max {
		c0 := cpuSeconds(pid)
		time.Sleep(500 * time.Millisecond)
		if cpuSeconds(pid)-c0 < 0.025 {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// fixedRates, when set (-rates), replaces the ladder: every daemon runs at each.
var fixedRates []float64

// measureDaemon runs the generator at each rate of the ladder, highest first, until
// one loses nothing. start starts the daemon, warmed up (ten records per host at a
// gentle rate) before the first rate or, with fresh, before each: a daemon that
// keeps what an earlier, faster rate left it (netconsd grows by about a kilobyte
// per record it was sent and slows down as it grows) would otherwise be measured
// with that burden.
func measureDaemon(start func() (*daemon, func(), error), fresh bool, hosts int, script []string, dur time.Duration, first float64, tries int) ([]vsRun, error) {
	var d *daemon
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	f := newFleet(hosts, 20, script, 1<<62) // no crashes: both sides do their ordinary work
	var snd *sender
	begin := func() error {
		if stop != nil {
			stop()
			stop = nil
			unixClose(snd.fd)
			snd = nil
		}
		var err error
		if d, stop, err = start(); err != nil {
			return err
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, n := socketDrops(d.port); n > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not bind udp port %d", d.name, d.port)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		if snd, err = newSender(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(d.port)), 64); err != nil {
			return err
		}
		if _, err := f.run(snd, 20000, time.Duration(float64(hosts*10)/20000*float64(time.Second))); err != nil {
			return err
		}
		time.Sleep(6 * time.Second) // kcrash writes a quiet host's raw log within 5 s
		return nil
	}
	if err := begin(); err != nil {
		return nil, err
	}
	defer func() {
		if snd != nil {
			unixClose(snd.fd)
		}
	}()
	var out []vsRun
	rate := first
	if len(fixedRates) > 0 {
		tries = len(fixedRates)
	}
	for i := 0; i < tries; i++ {
		if len(fixedRates) > 0 {
			rate = fixedRates[i]
		}
		// Each rate starts on an idle daemon: one that queues without bound (netconsd)
		// may still be working through what an earlier, faster rate left it, and
		// would lose at this rate because of that one.
		if i > 0 && fresh {
			if err := begin(); err != nil {
				return out, err
			}
		} else if i > 0 {
			if waited, idle := waitIdle(d.cmd.Process.Pid, 120*time.Second); waited > time.Second {
				fmt.Printf("  %s: idle again after %.1fs%s\n", d.name, waited.Seconds(), map[bool]string{false: " (still busy: measured anyway)", true: ""}[idle])
			}
		}
		rss0, _ := memKB(d.cmd.Process.Pid)
		drops0, _ := socketDrops(d.port)
		shed0 := d.shed()
		cpu0 := cpuSeconds(d.cmd.Process.Pid)
		sent, err := f.run(snd, rate, dur)
		if err != nil {
			return out, err
		}
		time.Sleep(2 * time.Second) // let the daemon drain its socket
		drops1, _ := socketDrops(d.port)
		r := vsRun{rate: rate, sent: sent, lost: drops1 - drops0 + d.shed() - shed0}
		r.cpuPerRecord = (cpuSeconds(d.cmd.Process.Pid) - cpu0) / float64(sent) * 1e6
		r.rssKB, r.hwmKB = memKB(d.cmd.Process.Pid)
		r.processedPerSecond = float64(sent-min(r.lost, sent)) / dur.Seconds()
		r.achieved = float64(sent) / dur.Seconds()
		out = append(out, r)
		fmt.Printf("  %s at %.0f/s (reached %.0f/s): sent %d, lost %d, %.2f µs CPU per record, RSS %.1f MiB (%+.1f MiB in the run, peak %.1f MiB)\n",
			d.name, rate, r.achieved, sent, r.lost, r.cpuPerRecord, float64(r.rssKB)/1024, (float64(r.rssKB)-float64(rss0))/1024, float64(r.hwmKB)/1024)
		if len(fixedRates) > 0 {
			continue
		}
		if r.lost == 0 {
			return out, nil
		}
		rate = min(rate, r.processedPerSecond) * 0.9
	}
	return out, nil
}

// runVs measures, one after the other against the same generator (in this
// process), the bare receiver (-drain), netconsd (when netconsd is set) and kcrash
// serve, each a separate process, and prints the comparison.
func runVs(netconsd, module, kcrash string, hosts int, dur time.Duration, tries int, scriptPath string, fresh bool) error {
	script, err := crashScript(scriptPath)
	if err != nil {
		return err
	}
	if kcrash == "" {
		tmp, err := os.MkdirTemp("", "serve-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		kcrash = filepath.Join(tmp, "kcrash")
		if out, err := exec.Command("go", "build", "-o", kcrash, "./cmd/kcrash").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/kcrash: %v\n%s", err, out)
		}
	}
	if module == "" && netconsd != "" {
		module = filepath.Join(filepath.Dir(netconsd), "modules", "logger-simple.so")
	}
	raw, err := measure(hosts, 0, script, 0, dur, false)
	if err != nil {
		return err
	}
	fmt.Printf("machine: %d CPUs; %d hosts; in-process raw recvmmsg drain %.0f datagrams/s (the ladder starts at 1.5x that)\n", runtimeCPUs(), hosts, raw.rate())
	names := []string{"raw recvmmsg", "kcrash serve"}
	if netconsd != "" {
		names = []string{"raw recvmmsg", "netconsd", "kcrash serve"}
	}
	best := map[string]vsRun{}
	for _, name := range names {
		start := func() (*daemon, func(), error) {
			dir, err := os.MkdirTemp("", "serve-bench-vs-")
			if err != nil {
				return nil, nil, err
			}
			var d *daemon
			switch name {
			case "raw recvmmsg":
				d, err = startRaw()
			case "netconsd":
				d, err = startNetconsd(netconsd, module, dir)
			default:
				d, err = startKcrash(kcrash, dir)
			}
			if err != nil {
				os.RemoveAll(dir)
				return nil, nil, err
			}
			return d, func() { d.stop(); os.RemoveAll(dir) }, nil
		}
		runs, err := measureDaemon(start, fresh, hosts, script, dur, 1.5*raw.rate(), tries)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if last := runs[len(runs)-1]; last.lost == 0 {
			best[name] = last
		}
	}
	if len(fixedRates) > 0 {
		return nil // the runs above are the result
	}
	r, k := best["raw recvmmsg"], best["kcrash serve"]
	if r.rate == 0 || k.rate == 0 {
		return errors.New("no zero-loss rate for one of them (more -tries?)")
	}
	fmt.Printf("RESULT zero-loss records/s, generator in another process: raw recvmmsg %.0f, kcrash serve %.0f (%.0f%% of raw); CPU per record: raw %.2f µs, kcrash %.2f µs\n",
		r.achieved, k.achieved, 100*k.achieved/r.achieved, r.cpuPerRecord, k.cpuPerRecord)
	if netconsd == "" {
		return nil
	}
	n := best["netconsd"]
	if n.rate == 0 {
		return errors.New("no zero-loss rate for netconsd (more -tries?)")
	}
	fmt.Printf("RESULT zero-loss records/s: netconsd %.0f, kcrash serve %.0f (kcrash/netconsd %.2f); CPU per record: netconsd %.2f µs, kcrash %.2f µs (%.1fx); RSS: netconsd %.1f MiB, kcrash %.1f MiB\n",
		n.achieved, k.achieved, k.achieved/n.achieved, n.cpuPerRecord, k.cpuPerRecord, k.cpuPerRecord/n.cpuPerRecord, float64(n.rssKB)/1024, float64(k.rssKB)/1024)
	return nil
}
