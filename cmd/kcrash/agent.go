package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/agent"
)

func init() {
	register(&command{
		name:     "agent",
		synopsis: "deliver the crash logs a host kept across its reboot (pstore, kdump) to a kcrash collector",
		usage:    "kcrash agent --server URL --token T [--host NAME] [--pstore DIR] [--crash-dir DIR] [--state FILE] [--upload-vmcore] [--once] [--json]",
		run:      runAgent,
	})
}

func runAgent(env *cmdEnv, args []string) error {
	c := commands["agent"]
	fs := newFlagSet(env, c)
	server := fs.String("server", "", "the collector's `URL` (kcrash serve --http)")
	token := fs.String("token", os.Getenv("KCRASH_TOKEN"), "the collector's write `token` (default $KCRASH_TOKEN)")
	hostname, _ := os.Hostname()
	host := fs.String("host", hostname, "host `name` the reports are filed under (as the collector knows the host, for reports also heard live)")
	pstore := fs.String("pstore", "/sys/fs/pstore", "pstore `directory` (\"\" for none)")
	crashDir := fs.String("crash-dir", "/var/crash", "kdump's crash `directory` (\"\" for none)")
	state := fs.String("state", "/var/lib/kcrash/agent.json", "journal `file` of what was delivered")
	once := fs.Bool("once", false, "try once and exit (status 1 when something was not delivered); default: retry until all is delivered")
	maxWait := fs.Duration("retry-max", time.Minute, "longest wait between attempts")
	asJSON := fs.Bool("json", false, "print the outcome of each crash log as JSON")
	upload := fs.Bool("upload-vmcore", false, "also upload the vmcore next to each kdump log (resumable; the collector needs serve --dumps)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *server == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	j, err := agent.OpenJournal(*state)
	if err != nil {
		return err
	}
	a := &agent.Agent{
		Client:       &agent.Client{Server: *server, Token: *token, Host: *host},
		Journal:      j,
		PstoreDir:    existingDir(*pstore),
		CrashDir:     existingDir(*crashDir),
		UploadVmcore: *upload,
		Log:          func(format string, args ...any) { fmt.Fprintf(env.stderr, "kcrash agent: "+format+"\n", args...) },
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	wait := time.Second
	for {
		out, err := a.RunOnce(ctx)
		if err == nil || *once || ctx.Err() != nil {
			if *asJSON {
				if out == nil {
					out = []agent.Outcome{}
				}
				b, _ := json.Marshal(map[string]any{"host": *host, "outcomes": out})
				fmt.Fprintf(env.stdout, "%s\n", b)
			} else {
				for _, o := range out {
					fmt.Fprintf(env.stdout, "%s %s: %s", o.Source, filepath.Base(o.Files[0]), o.State)
					for _, r := range o.Reports {
						fmt.Fprintf(env.stdout, " report %d", r.ID)
					}
					fmt.Fprintln(env.stdout)
				}
			}
			if err != nil {
				fmt.Fprintf(env.stderr, "kcrash agent: %v\n", err)
				return exitError{1}
			}
			return nil
		}
		fmt.Fprintf(env.stderr, "kcrash agent: %v; retrying in %v\n", err, wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, *maxWait)
	}
}

// existingDir returns dir, or "" when it does not exist (no pstore on this host).
func existingDir(dir string) string {
	if dir == "" {
		return ""
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}
