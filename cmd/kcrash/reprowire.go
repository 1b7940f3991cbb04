package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"

	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/repro/watch"
)

// openWatcher returns the collector a command watches: --server's API, or an
// embedded collector on --udp writing to --db. close is never nil.
func openWatcher(ctx context.Context, env *cmdEnv, server, udp, db, host string) (repro.Watcher, func(), error) {
	if server != "" {
		if _, err := url.Parse(server); err != nil {
			return nil, nil, fmt.Errorf("--server: %w", err)
		}
		return watch.NewServer(server, host), func() {}, nil
	}
	if udp == "" {
		return nil, nil, errors.New("need --server URL (a running kcrash serve) or --udp ADDR (a collector of its own)")
	}
	st, err := openStore(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	w, err := watch.StartEmbedded(ctx, udp, st, host)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	fmt.Fprintf(env.stderr, "collecting netconsole on udp %s into %s\n", w.Addr(), redact(db))
	return w, func() { w.Close(); st.Close() }, nil
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
