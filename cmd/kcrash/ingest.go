package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
)

func init() {
	register(&command{
		name:     "ingest",
		synopsis: "import console logs into the crash database through the collector's pipeline",
		usage:    "kcrash ingest [--host NAME] [--db PATH|postgres://… | --server URL --token T] FILE|- ...",
		run:      runIngest,
	})
}

func runIngest(env *cmdEnv, args []string) error {
	c := commands["ingest"]
	fs := newFlagSet(env, c)
	host := fs.String("host", "", "host `name` the logs belong to (default: each file's base name)")
	db := fs.String("db", filepath.Join(dataDir(), "kcrash.db"), "SQLite database `file` or postgres:// URL")
	server := fs.String("server", "", "send to a running `kcrash serve` at this URL instead of opening the database")
	token := fs.String("token", os.Getenv("KCRASH_TOKEN"), "the server's bearer `token` (default $KCRASH_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return errUsage
	}
	name := func(f string) string {
		if *host != "" {
			return *host
		}
		if f == "-" {
			return "stdin"
		}
		return filepath.Base(f)
	}
	if *server != "" {
		for _, f := range files {
			data, err := readInput(env, f)
			if err != nil {
				return err
			}
			if err := postLog(*server, *token, name(f), data); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		return nil
	}
	ctx := context.Background()
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	col := collector.New(collector.Options{Store: st})
	runCtx, stop := context.WithCancel(ctx)
	go col.Run(runCtx, time.Minute)
	for _, f := range files {
		data, err := readInput(env, f)
		if err == nil {
			err = col.Ingest(name(f), bytes.NewReader(data))
		}
		if err != nil {
			stop()
			<-col.Done()
			return err
		}
	}
	stop()
	<-col.Done()
	s := &col.Stats
	fmt.Fprintf(env.stdout, "%d new reports, %d already stored", s.Reports.Load(), s.Duplicates.Load())
	if n := s.QueueDrops.Load(); n > 0 {
		fmt.Fprintf(env.stdout, ", %d NOT stored", n)
	}
	fmt.Fprintln(env.stdout)
	if s.QueueDrops.Load() > 0 {
		return fmt.Errorf("the store did not take every report")
	}
	return nil
}

func postLog(server, token, host string, data []byte) error {
	u := strings.TrimSuffix(server, "/") + "/api/ingest?host=" + url.QueryEscape(host)
	req, err := http.NewRequest("POST", u, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
