package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/kcrash/kcrash/internal/crashcmd"
	"github.com/kcrash/kcrash/internal/kernel"
	"github.com/kcrash/kcrash/internal/script"
)

func init() {
	register(&command{
		name:     "vmcore",
		synopsis: "open a kernel dump and answer crash's commands (sys, log, ps, bt, dis, rd, struct, sym, mod, explain)",
		usage:    "kcrash vmcore [--json] [--force] [--script FILE.star] [--modules DIR] [--symbols DIR] [--debuginfod URLS] [VMLINUX] VMCORE [COMMAND[; COMMAND]...]",
		run:      runVmcore,
	})
}

func runVmcore(env *cmdEnv, args []string) error {
	c := commands["vmcore"]
	fs := newFlagSet(env, c)
	asJSON := fs.Bool("json", false, "print JSON (sys, log, ps, bt, explain)")
	modules := fs.String("modules", "", "directory searched for module debug files (explain)")
	scriptFile := fs.String("script", "", "run a Starlark program with `prog` bound to the dump (see scripts/)")
	force := fs.Bool("force", false, "read a dump whose kernel is not the vmlinux's (build ID or release mismatch)")
	sf := addSymbolFlags(fs, "`directory` of debug files searched by the dump's build ID and release when no VMLINUX is given", true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	vmlinux, vmcore, rest, err := vmcoreArgs(context.Background(), fs.Args(), sf.lookup(env))
	if err == errUsage {
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	tty := isTerminal(env.stderr)
	if tty {
		fmt.Fprintf(env.stderr, "kcrash: opening %s …\r", vmcore)
	}
	// The DWARF type index is kept per build ID under the user cache directory.
	cacheDir := ""
	if d, err := os.UserCacheDir(); err == nil {
		cacheDir = filepath.Join(d, "kcrash", "vmlinux")
	}
	k, err := kernel.OpenWith(vmlinux, vmcore, kernel.Options{CacheDir: cacheDir, Force: *force})
	if tty {
		fmt.Fprintf(env.stderr, "\033[K")
	}
	if err != nil {
		return fmt.Errorf("kcrash vmcore: %w", err)
	}
	defer k.Close()
	s := &crashcmd.Session{K: k, VmlinuxPath: vmlinux, DumpPath: vmcore, ModulesDir: *modules, JSON: *asJSON}
	defer s.Close()
	if err := k.CheckIdentity(); err != nil {
		fmt.Fprintf(env.stderr, "kcrash: warning: reading anyway (--force): %v\n", err)
	}
	if k.Dump.Incomplete() {
		fmt.Fprintf(env.stderr, "kcrash: warning: %s is an incomplete dump\n", vmcore)
	}
	if *scriptFile != "" {
		src, err := os.ReadFile(*scriptFile)
		if err != nil {
			return err
		}
		if err := script.Run(s, *scriptFile, src, env.stdout); err != nil {
			return fmt.Errorf("kcrash vmcore --script: %w", err)
		}
		return nil
	}
	if len(rest) > 0 {
		failed := false
		for _, line := range strings.Split(strings.Join(rest, " "), ";") {
			if err := runLine(env, s, line, tty); err != nil {
				failed = true
			}
		}
		if failed {
			return exitError{1}
		}
		return nil
	}
	if f, ok := env.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return interactive(env, s, f)
	}
	// Batch: one command per line from stdin, as `crash -s vmlinux vmcore < cmds`.
	sc := bufio.NewScanner(env.stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "q" || line == "quit" || line == "exit" {
			break
		}
		runLine(env, s, line, false)
	}
	return sc.Err()
}

func runLine(env *cmdEnv, s *crashcmd.Session, line string, tty bool) error {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	if tty && (strings.HasPrefix(line, "ps") || strings.HasPrefix(line, "bt") || strings.HasPrefix(line, "struct") || strings.HasPrefix(line, "sys")) {
		fmt.Fprintf(env.stderr, "kcrash: indexing debug info …\r")
		defer fmt.Fprintf(env.stderr, "\033[K")
	}
	err := s.Run(env.stdout, line)
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", strings.Fields(line)[0], err)
	}
	return err
}

// interactive runs a prompt with line editing and history (golang.org/x/term).
func interactive(env *cmdEnv, s *crashcmd.Session, in *os.File) error {
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return err
	}
	defer term.Restore(int(in.Fd()), old)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, env.stdout}, "kcrash> ")
	for {
		line, err := t.ReadLine()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		if line == "q" || line == "quit" || line == "exit" {
			return nil
		}
		if line == "" {
			continue
		}
		// The terminal is raw; its Write turns "\n" into "\r\n".
		w := t
		if err := s.Run(w, line); err != nil {
			fmt.Fprintf(w, "%s: %v\n", strings.Fields(line)[0], err)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
