// Command kcrash finds, parses, decodes and collects Linux kernel crash reports.
//
// Every subcommand is a row of the commands table; `kcrash help` and the README's
// command reference are generated from that table (see TestREADMECommands).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand: its name, a one-line synopsis, its usage line and the
// function that runs it with the arguments after the subcommand name.
type command struct {
	name     string
	synopsis string
	usage    string
	run      func(env *cmdEnv, args []string) error
}

// cmdEnv carries the process's standard streams so subcommands are testable in-process.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// errUsage marks an error whose usage message was already printed.
var errUsage = errors.New("usage")

// exitError carries a specific exit status out of a subcommand.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// commands is filled by each subcommand file's init, keeping one file per subcommand.
var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func sortedCommands() []*command {
	cs := make([]*command, 0, len(commands))
	for _, c := range commands {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

// commandReference renders the command table as the README's reference section.
func commandReference() string {
	var b strings.Builder
	for _, c := range sortedCommands() {
		fmt.Fprintf(&b, "- `%s`: %s\n", c.usage, c.synopsis)
	}
	return b.String()
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "kcrash: Linux kernel crash toolkit\n\nUsage: kcrash COMMAND [ARGS]\n\nCommands:\n")
	for _, c := range sortedCommands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintf(w, "\nRun 'kcrash COMMAND -h' for a command's flags.\n")
}

// newFlagSet returns a FlagSet whose -h prints the command's usage line and flags.
func newFlagSet(env *cmdEnv, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: kcrash %s\n\n%s\n", strings.TrimPrefix(c.usage, "kcrash "), c.synopsis)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(env.stderr, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args, mapping -h to a clean exit and bad flags to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{0}
		}
		return errUsage
	}
	return nil
}

func run(env *cmdEnv, args []string) int {
	if len(args) == 0 {
		usage(env.stderr)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return run(env, []string{c.name, "-h"})
			}
		}
		usage(env.stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.stderr, "kcrash: unknown command %q\n\n", name)
		usage(env.stderr)
		return 2
	}
	err := c.run(env, args[1:])
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(env.stderr, "kcrash %s: %v\n", name, err)
		return 1
	}
}

func main() {
	os.Exit(run(&cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}
