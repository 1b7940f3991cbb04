package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

func init() {
	register(&command{
		name:     "lab",
		synopsis: "crash lab: boot Debian's kernels under QEMU, crash them (LKDTM, a receive-path race under load, hardware faults), keep consoles, pstore and vmcores",
		usage:    "kcrash lab kernels|setup|run|fleet|target|load|scenario [flags]",
		run:      runLab,
	})
}

func runLab(env *cmdEnv, args []string) error {
	c := commands["lab"]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fs := newFlagSet(env, c)
		fs.Usage()
		fmt.Fprintf(env.stderr, "\nSubcommands:\n"+
			"  kernels   list the Debian kernel ABIs the lab can boot, in version order\n"+
			"  setup     install packages, fetch a kernel (--kernel ABI), its -dbg vmlinux, build LKDTM and the lab modules\n"+
			"  run       setup, then the crash matrix (cached per ABI and lab recipe)\n"+
			"  fleet     boot N guests sending netconsole to one port, crash some, say which\n"+
			"  target    start|stop|reboot|status NAME: a long-running guest a controller drives\n"+
			"  load      flood a target's NIC with UDP at a packet rate (the race's load)\n"+
			"  scenario  run a whole story: race, regression, hardware, pstore, repro\n"+
			"\nThe cache is ${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}. Run 'kcrash lab SUBCOMMAND -h' for flags.\n")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch args[0] {
	case "kernels":
		return runLabKernels(ctx, env, args[1:])
	case "target":
		return runLabTarget(ctx, env, args[1:])
	case "load":
		return runLabLoad(ctx, env, args[1:])
	case "scenario":
		return runLabScenario(ctx, env, args[1:])
	case "setup":
		return runLabSetup(ctx, env, args[1:])
	case "run":
		return runLabRun(ctx, env, args[1:])
	case "fleet":
		return runLabFleet(ctx, env, args[1:])
	}
	fmt.Fprintf(env.stderr, "kcrash lab: unknown subcommand %q (kernels, setup, run, fleet, target, load, scenario)\n", args[0])
	return errUsage
}

// subFlagSet is newFlagSet for "lab SUB", so -h names the subcommand.
func subFlagSet(env *cmdEnv, sub, usage, synopsis string) *command {
	return &command{name: "lab " + sub, usage: "kcrash lab " + sub + " " + usage, synopsis: synopsis}
}

func progress(env *cmdEnv) func(string, ...any) {
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(env.stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func runLabSetup(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "setup", "[--dir DIR] [--kernel ABI] [--light]", "install the lab's packages and prepare a kernel (cached)")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	kernel := kernelFlag(fs)
	light := fs.Bool("light", false, "only what targets and scenarios need: no -dbg vmlinux, no LKDTM")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	unlock, err := lab.Lock(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	setup := lab.Setup
	if lab.IsArm64(*kernel) {
		setup = lab.SetupArm64
	}
	k, err := setup(ctx, lab.Config{Dir: *dir, Progress: progress(env), Kernel: *kernel, Light: *light})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "kernel %s (%s) build ID %s\nvmlinux %s\nlkdtm %s\nlab modules %s\ninitramfs %s\n",
		k.Release, k.Version, k.BuildID, k.Vmlinux, k.LKDTM, k.LabModuleDir, k.Initramfs)
	return nil
}

func runLabRun(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "run", "[--dir DIR] [--kernel ABI] [--force] [--only NAME,...] [--parallel N] [--memory SIZE]",
		"prepare the lab (cached) and run the crash matrix, reusing a complete one of the same ABI and recipe")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	kernel := kernelFlag(fs)
	force := fs.Bool("force", false, "rerun the matrix even when a complete one is cached")
	only := fs.String("only", "", "run only these triggers (comma separated), keeping the other cached entries")
	parallel := fs.Int("parallel", 2, "guests at once (each QEMU TCG guest wants a core)")
	list := fs.Bool("list", false, "print the trigger table and exit")
	memory := fs.String("memory", lab.DefaultMemory, "guest RAM; another size than "+lab.DefaultMemory+
		" is the big-dump recipe (EXCEPTION only; elf, elf-paging, kdump-lzo) in its own matrix-SIZE directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *list {
		for _, t := range lab.Triggers() {
			fmt.Fprintf(env.stdout, "%-28s %-22s %-16s panics=%-5v vcpus=%d timeout=%s %s\n",
				t.Name, t.LKDTM, t.Kind, t.Panics, t.VCPUs, t.Timeout, t.Args)
		}
		return nil
	}
	start := time.Now()
	cfg := lab.Config{Dir: *dir, Progress: progress(env), Kernel: *kernel}
	unlock, err := lab.Lock(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	setup := lab.Setup
	if lab.IsArm64(*kernel) {
		setup = lab.SetupArm64 // the arm64 guest and its own small matrix (lab.Arm64Matrix)
	}
	k, err := setup(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Progress("lab: setup done in %.1fs; starting the crash matrix", time.Since(start).Seconds())
	opts := lab.RunOptions{Force: *force, Parallel: *parallel, Memory: *memory}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	m, cached, err := lab.RunMatrix(ctx, cfg, k, opts)
	if m != nil {
		how := fmt.Sprintf("ran in %.1fs", m.MatrixSeconds)
		if cached {
			how = "cached"
		}
		fmt.Fprintf(env.stdout, "crash matrix: %d entries, kernel %s, recipe %s, %s\nmanifest: %s\n",
			len(m.Entries), m.Kernel.Release, m.RecipeHash, how, filepath.Join(m.Dir(), lab.ManifestName))
	}
	return err
}
func runLabFleet(ctx context.Context, env *cmdEnv, args []string) error {
	c := subFlagSet(env, "fleet", "-n N --to HOST:PORT [--kernel ABI] [--extended] [--crash K | --crash-names fleet-1,...] [--trigger T] [--json]",
		"boot N guests that all send netconsole to HOST:PORT, crash some of them and report which crashed")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory (the kernel is prepared there if needed)")
	kernel := kernelFlag(fs)
	n := fs.Int("n", 2, "number of guests (each TCG guest wants a core; 2 at a time suits a 2-core machine)")
	to := fs.String("to", "127.0.0.1:6666", "netconsole receiver HOST:PORT (127.0.0.1 is the host running QEMU)")
	extended := fs.Bool("extended", false, "send extended netconsole records instead of the plain console stream")
	crash := fs.Int("crash", 1, "crash the first K guests")
	names := fs.String("crash-names", "", "crash these guests instead (comma separated: fleet-1,fleet-3)")
	trigger := fs.String("trigger", "ACCESS_NULL", "LKDTM crash type (or sysrq-c)")
	kargs := fs.String("args", "oops=panic", "extra kernel parameters of every guest")
	keep := fs.String("keep", "", "directory for the guests' consoles (default: a temporary one, removed)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	cfg := lab.Config{Dir: *dir, Progress: progress(env), Kernel: *kernel}
	unlock, err := lab.Lock(*dir)
	if err != nil {
		return err
	}
	k, err := lab.Setup(ctx, cfg)
	unlock() // the fleet only reads the kernel files
	if err != nil {
		return err
	}
	work := *keep
	if work == "" {
		if work, err = os.MkdirTemp("", "kcrash-fleet-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	o := lab.FleetOptions{N: *n, To: *to, Extended: *extended, CrashCount: *crash, Trigger: *trigger, Args: *kargs, Dir: work}
	if *names != "" {
		o.Crash = strings.Split(*names, ",")
	}
	res, err := lab.RunFleet(ctx, cfg, k, o)
	if err != nil {
		return err
	}
	if *asJSON {
		out, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s\n", out)
	} else {
		for _, g := range res.Guests {
			state := "running"
			if g.Crashed {
				state = fmt.Sprintf("crashed after %.1fs: %s", g.Seconds, g.PanicMessage)
			}
			if g.Error != "" {
				state += " (" + g.Error + ")"
			}
			fmt.Fprintf(env.stdout, "%-10s told=%-5v %s\n", g.Name, g.Told, state)
		}
	}
	for _, g := range res.Guests {
		if g.Error != "" {
			return exitError{1}
		}
	}
	return nil
}
