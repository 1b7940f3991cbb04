package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

func init() {
	register(&command{
		name:     "lab",
		synopsis: "crash lab: boot Debian's kernel under QEMU, crash it with LKDTM, keep consoles and vmcores",
		usage:    "kcrash lab setup|run|fleet [flags]",
		run:      runLab,
	})
}

func runLab(env *cmdEnv, args []string) error {
	c := commands["lab"]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fs := newFlagSet(env, c)
		fs.Usage()
		fmt.Fprintf(env.stderr, "\nSubcommands:\n"+
			"  setup   install packages, fetch the current cloud kernel, -dbg vmlinux, build LKDTM\n"+
			"  run     setup, then the crash matrix (cached per ABI and lab recipe)\n"+
			"  fleet   boot N guests sending netconsole to one port, crash some, say which\n"+
			"\nThe cache is ${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}. Run 'kcrash lab SUBCOMMAND -h' for flags.\n")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch args[0] {
	case "setup":
		return runLabSetup(ctx, env, args[1:])
	case "run":
		return runLabRun(ctx, env, args[1:])
	case "fleet":
		return runLabFleet(ctx, env, args[1:])
	}
	fmt.Fprintf(env.stderr, "kcrash lab: unknown subcommand %q (setup, run, fleet)\n", args[0])
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
	c := subFlagSet(env, "setup", "[--dir DIR]", "install the lab's packages and prepare the current kernel (cached)")
	fs := newFlagSet(env, c)
	dir := fs.String("dir", lab.DefaultDir(), "cache directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	k, err := lab.Setup(ctx, lab.Config{Dir: *dir, Progress: progress(env)})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "kernel %s (%s) build ID %s\nvmlinux %s\nlkdtm %s\ninitramfs %s\n",
		k.Release, k.Version, k.BuildID, k.Vmlinux, k.LKDTM, k.Initramfs)
	return nil
}

func runLabRun(ctx context.Context, env *cmdEnv, args []string) error  { return fmt.Errorf("todo") }
func runLabFleet(ctx context.Context, env *cmdEnv, args []string) error { return fmt.Errorf("todo") }
