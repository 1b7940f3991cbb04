// Package storetest holds what tests of store implementations and of the collector
// share: a conformance test every Store must pass, and a throwaway PostgreSQL
// server started from Debian's postgresql package.
package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

// Run checks a fresh, empty store s behaves as the Store interface documents.
func Run(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	mk := func(key, host, sig string, at time.Duration, panicked bool) *store.Report {
		return &store.Report{Key: key, Host: host, Time: t0.Add(at), Kind: "null-ptr-deref",
			Title: "BUG: kernel NULL pointer dereference in " + sig, Signature: sig, Release: "6.1.0-" + host,
			Panicked: panicked, Text: "BUG: <script>alert(1)</script>\x00\xff", Context: "before\n", Parsed: []byte(`{"title":"x"}`)}
	}
	if err := s.SeeHosts(ctx, []store.HostSeen{{ID: "10.0.0.1:6665", Name: "web-1", Release: "6.1.0-a", Seen: t0}, {ID: "10.0.0.2:6665", Seen: t0}}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range []*store.Report{
		mk("k1", "10.0.0.1:6665", "sigA", time.Second, false),
		mk("k2", "10.0.0.2:6665", "sigA", 2*time.Second, true),
		mk("k3", "10.0.0.1:6665", "sigB", 3*time.Second, true),
	} {
		id, created, err := s.SaveReport(ctx, r)
		if err != nil || !created {
			t.Fatalf("SaveReport %s: id %d created %v err %v", r.Key, id, created, err)
		}
		ids = append(ids, id)
	}
	// The same key again: not stored twice, not counted twice.
	id, created, err := s.SaveReport(ctx, mk("k2", "10.0.0.2:6665", "sigA", 9*time.Second, true))
	if err != nil || created || id != ids[1] {
		t.Fatalf("duplicate SaveReport: id %d (want %d) created %v err %v", id, ids[1], created, err)
	}
	groups, err := s.Groups(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Signature != "sigB" || groups[1].Signature != "sigA" {
		t.Fatalf("groups %+v, want sigB then sigA", groups)
	}
	a := groups[1]
	if a.Count != 2 || !a.FirstSeen.Equal(t0.Add(time.Second)) || !a.LastSeen.Equal(t0.Add(2*time.Second)) ||
		strings.Join(a.Hosts, ",") != "10.0.0.1:6665,10.0.0.2:6665" || len(a.Releases) != 2 {
		t.Errorf("group sigA %+v", a)
	}
	reps, err := s.Reports(ctx, store.ReportQuery{})
	if err != nil || len(reps) != 3 || reps[0].ID != ids[2] || reps[2].ID != ids[0] {
		t.Fatalf("Reports newest first: %+v %v", reps, err)
	}
	if reps[0].Text != "" {
		t.Errorf("summaries carry text")
	}
	reps, err = s.Reports(ctx, store.ReportQuery{Host: "10.0.0.1:6665", Before: ids[2]})
	if err != nil || len(reps) != 1 || reps[0].ID != ids[0] {
		t.Errorf("Reports by host before: %+v %v", reps, err)
	}
	reps, err = s.Reports(ctx, store.ReportQuery{Signature: "sigA", Limit: 1})
	if err != nil || len(reps) != 1 || reps[0].ID != ids[1] {
		t.Errorf("Reports by signature: %+v %v", reps, err)
	}
	r, err := s.Report(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if !r.Panicked || r.Context != "before\n" || !strings.HasPrefix(r.Text, "BUG: <script>") || string(r.Parsed) != `{"title":"x"}` || !r.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("Report %+v", r)
	}
	if _, err := s.Report(ctx, 999999); err != store.ErrNotFound {
		t.Errorf("missing report: %v", err)
	}
	times, err := s.ReportTimes(ctx, "sigA", t0)
	if err != nil || len(times) != 2 {
		t.Errorf("ReportTimes %v %v", times, err)
	}
	// Hosts: web-1 kept its name, got a report; 10.0.0.2 crashed (a panic after its boot).
	if err := s.SeeHosts(ctx, []store.HostSeen{{ID: "10.0.0.1:6665", Seen: t0.Add(time.Minute), Boot: t0.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	h1, err := s.Host(ctx, "10.0.0.1:6665")
	if err != nil {
		t.Fatal(err)
	}
	if h1.Name != "web-1" || h1.Release != "6.1.0-a" || h1.Reports != 2 || !h1.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("host 1 %+v", h1)
	}
	if st := h1.State(t0.Add(2*time.Minute), 5*time.Minute); st != "alive" {
		t.Errorf("host 1 state %s, want alive (rebooted after its panic)", st)
	}
	h2, _ := s.Host(ctx, "10.0.0.2:6665")
	if h2 == nil || h2.State(t0.Add(time.Hour), 5*time.Minute) != "crashed" {
		t.Errorf("host 2 %+v should be crashed", h2)
	}
	hosts, err := s.Hosts(ctx)
	if err != nil || len(hosts) != 2 || hosts[0].ID != "10.0.0.1:6665" {
		t.Errorf("Hosts %+v %v", hosts, err)
	}
	if g, err := s.Group(ctx, "nope"); err != store.ErrNotFound {
		t.Errorf("missing group: %v %v", g, err)
	}
}

// RunSources checks on a fresh store s: a report that arrived after the reboot keeps
// its source, and the same report arriving another way (live, then from pstore) is
// stored once with both.
func RunSources(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	mk := func(key, host, sig string, at time.Duration, panicked bool) *store.Report {
		return &store.Report{Key: key, Host: host, Time: t0.Add(at), Kind: "null-ptr-deref", Title: "BUG: x in " + sig,
			Signature: sig, Panicked: panicked, Text: "BUG: x\n", Parsed: []byte(`{}`)}
	}
	for _, tc := range []struct {
		key     string
		arrive  []string
		sources string
	}{
		{"s1", []string{"pstore"}, "pstore"},
		{"s2", []string{"", "pstore", "pstore"}, "live,pstore"},
		{"s3", []string{"kdump", "", "pstore"}, "kdump,live,pstore"},
		{"s4", []string{"", ""}, ""},
	} {
		var first int64
		for i, src := range tc.arrive {
			r := mk(tc.key, "host-s", "sigS", time.Duration(i)*time.Second, true)
			r.Source = src
			id, created, err := s.SaveReport(ctx, r)
			if err != nil || created != (i == 0) || (i > 0 && id != first) {
				t.Fatalf("%s arrival %d (%q): id %d created %v err %v", tc.key, i, src, id, created, err)
			}
			if i == 0 {
				first = id
			}
		}
		r, err := s.Report(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if r.Sources != tc.sources || r.Source != strings.TrimPrefix(strings.Split(tc.sources, ",")[0], "live") {
			t.Errorf("%s: sources %q source %q, want %q", tc.key, r.Sources, r.Source, tc.sources)
		}
	}
	g, err := s.Group(ctx, "sigS")
	if err != nil || g.Count != 4 {
		t.Errorf("group of the sourced reports: %+v %v (want 4 reports)", g, err)
	}
}

// Postgres is a PostgreSQL server in a temporary directory, on loopback.
type Postgres struct {
	DSN    string
	dir    string
	bin    string
	port   int
	asUser []string
}

// pgBin finds Debian's PostgreSQL server binaries.
func pgBin() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[len(m)-1])
}

// NeedPostgres skips (or under CI=true fails) when PostgreSQL is not installed.
func NeedPostgres(t testing.TB) string {
	t.Helper()
	bin := pgBin()
	if bin == "" {
		msg := "PostgreSQL is not installed; install it with: apt-get install postgresql (test.sh does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// StartPostgres initialises and starts a server on a free loopback port, run as
// the postgres user when the test runs as root (initdb refuses root), and stops it
// when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := NeedPostgres(t)
	dir, err := os.MkdirTemp("", "kcrash-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and no postgres user: %v", err)
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
		var uid, gid int
		fmt.Sscan(u.Uid, &uid)
		fmt.Sscan(u.Gid, &gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		full := append(append([]string{}, asUser...), args...)
		cmd := exec.Command(full[0], full[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(full, " "), err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &Postgres{dir: dir, bin: bin, port: port, asUser: asUser}
	data := filepath.Join(dir, "data")
	run(filepath.Join(bin, "initdb"), "-D", data, "-U", "kcrash", "-A", "trust", "--no-sync", "-E", "UTF8")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	p.DSN = fmt.Sprintf("postgres://kcrash@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p
}

func (p *Postgres) pgctl(args ...string) error {
	full := append(append(append([]string{}, p.asUser...), filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data")), args...)
	if out, err := exec.Command(full[0], full[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return nil
}

// Start starts the server (again, after Stop) and waits until it takes connections.
func (p *Postgres) Start() error {
	return p.pgctl("-l", filepath.Join(p.dir, "log"), "-w", "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", p.port, p.dir), "start")
}

// Stop stops the server at once (an outage, as far as clients can tell).
func (p *Postgres) Stop() error { return p.pgctl("-m", "immediate", "-w", "stop") }
