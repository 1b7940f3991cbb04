package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

// kernelFlag is --kernel of every lab subcommand that boots a kernel.
func kernelFlag(fs *flag.FlagSet) *string {
	return fs.String("kernel", "", "kernel ABI (6.1.0-57-cloud-amd64), series (6.12), flavour (amd64) or SERIES-FLAVOUR, or arm64 (the arm64 guest); default: the current cloud ABI")
}

func printJSON(env *cmdEnv, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\n", out)
	return nil
}

func runLabKernels(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "kernels", "[--flavor cloud-amd64|amd64|all] [--json]",
		"list the kernel ABIs the host's package lists offer, in version order, and which are cached")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	flavor := fs.String("flavor", lab.DefaultFlavor, "kernel flavour, or all")
	asJSON := fs.Bool("json", false, "print a JSON list of {abi, release, version, cached}")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f := *flavor
	if f == "all" {
		f = ""
	}
	list, err := lab.ListKernels(ctx, *dir, f)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []lab.KernelInfo{}
		}
		return printJSON(env, list)
	}
	def, _ := lab.ResolveABI(ctx)
	tw := tabwriter.NewWriter(env.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ABI\tRELEASE\tPACKAGE VERSION\tCACHED\t")
	for _, k := range list {
		cached := "no"
		if k.Cached {
			cached = "yes"
			if k.Light {
				cached = "yes (light)"
			}
		}
		mark := ""
		if k.ABI == def {
			mark = "default"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ABI, k.Release, k.Version, cached, mark)
	}
	return tw.Flush()
}

func runLabTarget(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "target", "start|stop|reboot|status NAME [--kernel ABI] [--args '…'] [--to HOST:PORT] [--extended] [--json]",
		"a long-running guest: start it in the background, reboot it (into another kernel), stop it, ask its state")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	kernel := kernelFlag(fs)
	kargs := fs.String("args", "", "extra kernel parameters, e.g. 'lab_load=netrace netrace.buggy_from=6.1.0-56-cloud-amd64'")
	to := fs.String("to", "", "netconsole collector HOST:PORT (none when empty)")
	extended := fs.Bool("extended", false, "extended netconsole")
	memory := fs.String("memory", "", "guest RAM (default 128M)")
	wait := fs.Duration("wait", 60*time.Second, "start/reboot: wait this long for the guest to boot (0: do not wait)")
	asJSON := fs.Bool("json", false, "print the target's status as JSON")
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errUsage
	}
	verb, name := args[0], args[1]
	if err := parseFlags(fs, args[2:]); err != nil {
		return err
	}
	cfg := lab.Config{Dir: *dir, Progress: progress(env), Kernel: *kernel, Light: true}
	setup := func() (*lab.Kernel, error) {
		unlock, err := lab.Lock(*dir)
		if err != nil {
			return nil, err
		}
		defer unlock()
		return lab.Setup(ctx, cfg)
	}
	var st *lab.TargetState
	var err error
	switch verb {
	case "start":
		k, err := setup()
		if err != nil {
			return err
		}
		st, err = lab.StartTarget(ctx, cfg, k, lab.TargetOptions{Name: name, Args: *kargs, To: *to, Extended: *extended, Memory: *memory})
		if err != nil {
			return err
		}
	case "reboot":
		if st, err = lab.LoadTarget(*dir, name); err != nil {
			return err
		}
		if *kernel == "" {
			cfg.Kernel = st.ABI
		}
		k, err := setup()
		if err != nil {
			return err
		}
		if flagSet(fs, "args") {
			st.Args = *kargs
		}
		if flagSet(fs, "to") {
			st.To = *to
		}
		if err := st.Reboot(ctx, k); err != nil {
			return err
		}
	case "stop":
		if st, err = lab.LoadTarget(*dir, name); err != nil {
			return err
		}
		if err := st.Stop(ctx); err != nil {
			return err
		}
	case "status":
		if st, err = lab.LoadTarget(*dir, name); err != nil {
			return err
		}
	default:
		fmt.Fprintf(env.stderr, "kcrash lab target: unknown verb %q (start, stop, reboot, status)\n", verb)
		return errUsage
	}
	var s lab.TargetStatus
	if (verb == "start" || verb == "reboot") && *wait > 0 {
		if s, err = st.WaitReady(ctx, *wait); err != nil {
			return err
		}
	} else {
		s = st.Status(ctx)
	}
	if *asJSON {
		return printJSON(env, s)
	}
	fmt.Fprintf(env.stdout, "%s: %s, kernel %s, boot %d", s.Name, s.State, s.ABI, s.Boots)
	if s.PID != 0 {
		fmt.Fprintf(env.stdout, ", pid %d, udp load port 127.0.0.1:%d, up %.1fs", s.PID, s.UDPPort, s.Uptime)
	}
	if s.Panic != "" {
		fmt.Fprintf(env.stdout, ", panic: %s", s.Panic)
	}
	fmt.Fprintf(env.stdout, "\nconsole: %s\n", s.Console)
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runLabLoad(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "load", "--to TARGET|HOST:PORT [--pps N] [--seconds S] [--size BYTES] [--json]",
		"flood a lab target's NIC (or any UDP port) with UDP datagrams at a packet rate")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory (for target names)")
	to := fs.String("to", "", "a lab target's name or HOST:PORT")
	pps := fs.Int("pps", 20000, "packets per second (0: as fast as possible)")
	seconds := fs.Float64("seconds", 10, "how long (0: until interrupted)")
	size := fs.Int("size", 64, "UDP payload bytes")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *to == "" {
		fs.Usage()
		return errUsage
	}
	addr := *to
	floodCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	crashed := make(chan time.Time, 1)
	if !strings.Contains(addr, ":") {
		st, err := lab.LoadTarget(*dir, addr)
		if err != nil {
			return err
		}
		s := st.Status(ctx)
		if s.State != "running" {
			return fmt.Errorf("target %s is %s", addr, s.State)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", st.UDPPort)
		// A target's crash ends the flood: a crashed NIC takes no load.
		go func() {
			for floodCtx.Err() == nil {
				if st.Status(floodCtx).State == "crashed" {
					crashed <- time.Now()
					cancel()
					return
				}
				select {
				case <-floodCtx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
		}()
	}
	res, err := lab.Flood(floodCtx, lab.LoadOptions{To: addr, PPS: *pps, Duration: time.Duration(*seconds * float64(time.Second)), Size: *size})
	if err != nil {
		return err
	}
	select {
	case <-crashed:
		res.Stopped = "target crashed"
	default:
	}
	if *asJSON {
		return printJSON(env, res)
	}
	fmt.Fprintf(env.stdout, "sent %d datagrams to %s in %.1fs (%.0f/s, asked %d/s); stopped: %s\n",
		res.Packets, res.To, res.Seconds, res.Rate, res.PPS, res.Stopped)
	return nil
}

func runLabScenario(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "scenario", "race|regression|hardware|pstore|repro|fleet|bisect [--kernel ABI] [--kernels A,B,C --gate ABI] [--pps N] [--runs N] [--force] [--json]",
		"run a whole crash story on the lab (cached by recipe) and say what happened, with paths to its artifacts")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := newFlagSet(env, c)
		fs.Usage()
		fmt.Fprintf(env.stderr, "\nScenarios:\n"+
			"  race        the receive-path race: crashes under a UDP flood, idle, and with fixed=1\n"+
			"  regression  targets on several kernel ABIs under load, the race gated at one of them\n"+
			"  hardware    a host with machine checks and bit flips (crashes that wander) and a healthy one\n"+
			"  pstore      an oops kept by ramoops across a warm reset and read back on the next boot\n"+
			"  repro       kcrash repro (flood vs idle) and kcrash soak (fixed=1 and buggy) on a target with the race\n"+
			"  fleet       hosts on several ABIs (the race gated at one), a bad-DIMM host and a healthy one, all into one\n"+
			"              kcrash serve; prints its verdicts, releases and bisect range (--kernel: the hardware hosts' kernel)\n"+
			"  bisect      kcrash bisect over the regression's ABIs (the race gated at one) on a target rebooted into each,\n"+
			"              the flood as load, the controller killed mid-test and resumed; prints its steps and verdict\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	name := args[0]
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	kernel := kernelFlag(fs)
	kernels := fs.String("kernels", "", "regression: the ABIs, comma separated (default: the three newest of the default series)")
	gate := fs.String("gate", "", "regression: the first ABI with the race (default: the middle one)")
	pps := fs.Int("pps", 20000, "the flood's packet rate")
	runs := fs.Int("runs", 0, "loaded runs per target (race 5, regression 2, hardware bit-flip boots 5, repro flood runs 5)")
	parallel := fs.Int("parallel", 2, "guests at once")
	force := fs.Bool("force", false, "rerun even when a result of the same recipe is cached")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	o := lab.ScenarioOptions{Force: *force, Parallel: *parallel, Kernel: *kernel, Gate: *gate, PPS: *pps, Runs: *runs}
	o.Kcrash, _ = os.Executable()
	if *kernels != "" {
		o.Kernels = strings.Split(*kernels, ",")
	}
	cfg := lab.Config{Dir: *dir, Progress: progress(env)}
	res, cached, err := lab.RunScenario(ctx, cfg, name, o)
	if err != nil {
		return err
	}
	if *asJSON {
		fmt.Fprintf(env.stdout, "%s\n", res)
		return nil
	}
	how := "ran now"
	if cached {
		how = "cached; --force reruns it"
	}
	fmt.Fprintf(env.stdout, "scenario %s (%s)\n", name, how)
	return lab.PrintScenario(env.stdout, name, res)
}
