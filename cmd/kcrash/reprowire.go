package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/repro/watch"
	"github.com/kcrash/kcrash/internal/store"
)

// openWatcher returns the collector a command watches: --server's API, or an
// embedded collector on --udp writing to --db; and the crash database campaigns
// are recorded in (the embedded collector's, or --db when given with --server;
// nil for none). close is never nil.
func openWatcher(ctx context.Context, env *cmdEnv, server, udp, db string, dbGiven bool, host string) (repro.Watcher, store.Campaigns, func(), error) {
	if server != "" {
		if _, err := url.Parse(server); err != nil {
			return nil, nil, nil, fmt.Errorf("--server: %w", err)
		}
		w := watch.NewServer(server, host)
		if !dbGiven {
			return w, nil, func() {}, nil
		}
		st, err := openStore(ctx, db)
		if err != nil {
			return nil, nil, nil, err
		}
		cs, _ := st.(store.Campaigns)
		return w, cs, func() { st.Close() }, nil
	}
	if udp == "" {
		return nil, nil, nil, errors.New("need --server URL (a running kcrash serve) or --udp ADDR (a collector of its own)")
	}
	st, err := openStore(ctx, db)
	if err != nil {
		return nil, nil, nil, err
	}
	w, err := watch.StartEmbedded(ctx, udp, st, host)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	fmt.Fprintf(env.stderr, "collecting netconsole on udp %s into %s\n", w.Addr(), redact(db))
	cs, _ := st.(store.Campaigns)
	return w, cs, func() { w.Close(); st.Close() }, nil
}

// flagGiven says whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// recorder keeps a campaign and its runs in the crash database. A nil recorder
// records nothing; a failing database is reported once and does not stop the
// campaign (the JSON files keep everything).
type recorder struct {
	cs     store.Campaigns
	c      store.Campaign
	stderr io.Writer
	failed bool
}

func newRecorder(cs store.Campaigns, stderr io.Writer, kind, host, load, signature string, id int64) *recorder {
	if cs == nil {
		return nil
	}
	now := time.Now()
	return &recorder{cs: cs, stderr: stderr, c: store.Campaign{ID: id, Kind: kind, Host: host, Load: load, Signature: signature,
		Started: now, Updated: now, Status: "running"}}
}

func (r *recorder) check(err error) {
	if err != nil && !r.failed {
		r.failed = true
		fmt.Fprintf(r.stderr, "kcrash: recording the campaign in the crash database: %v (the JSON output keeps it)\n", err)
	}
}

// save writes the campaign (creating it the first time) with status and result.
func (r *recorder) save(status, signature string, result any) {
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.c.Status, r.c.Updated = status, time.Now()
	if signature != "" {
		r.c.Signature = signature
	}
	if result != nil {
		r.c.Result, _ = json.Marshal(result)
	}
	err := r.cs.SaveCampaign(ctx, &r.c)
	if errors.Is(err, store.ErrNotFound) {
		// A resumed soak whose campaign is not in this database: start it here.
		r.c.ID = 0
		err = r.cs.SaveCampaign(ctx, &r.c)
	}
	r.check(err)
}

// run writes one run.
func (r *recorder) run(run repro.Run) {
	if r == nil || r.c.ID == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cr := store.CampaignRun{N: run.N, Start: run.Start, Seconds: run.Seconds, Outcome: run.Outcome}
	if run.Crash != nil {
		cr.Report, cr.Signature = run.Crash.ID, run.Crash.Signature
	}
	r.check(r.cs.SaveCampaignRun(ctx, r.c.ID, cr))
}

// id is the campaign's id in the database (0: not recorded).
func (r *recorder) id() int64 {
	if r == nil {
		return 0
	}
	return r.c.ID
}

// lockedWriter serializes writes: the commands' own lines and the output of the
// load and hook processes (copied by os/exec's goroutines) share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
