package web_test

// kcrash agent against the real server side: a collector with a SQLite store behind
// the web API's POST /api/agent/reports (here rather than in internal/agent so that
// package's fuzz target does not link the store).

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/agent"
	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"github.com/kcrash/kcrash/internal/web"
)

// labRecords copies the pstore records the lab's pstore scenario read back after a
// warm reset (internal/agent/testdata) into a fresh directory.
func labRecords(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"dmesg-ramoops-0", "dmesg-ramoops-1"} {
		data, err := os.ReadFile(filepath.Join("../agent/testdata/pstore", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n), data, 0o444)
	}
	return dir
}

// collectorServer is a real collector (SQLite store, the web API) behind an
// httptest server whose handler the test can wrap.
type collectorServer struct {
	st   store.Store
	srv  *httptest.Server
	wrap func(http.Handler) http.Handler
}

func newCollector(t *testing.T) *collectorServer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kcrash.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	col := collector.New(collector.Options{Store: st})
	h := web.New(web.Options{Store: st, Pipeline: col, Token: "tok"})
	c := &collectorServer{st: st}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.wrap != nil {
			c.wrap(h).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collectorServer) reports(t *testing.T) []store.Report {
	t.Helper()
	reps, err := c.st.Reports(context.Background(), store.ReportQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return reps
}

func newAgent(t *testing.T, server, pstore, journal string) *agent.Agent {
	t.Helper()
	j, err := agent.OpenJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	return &agent.Agent{Client: &agent.Client{Server: server, Token: "tok", Host: "lab-pstore"}, Journal: j, PstoreDir: pstore}
}

func remaining(t *testing.T, dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}

// TestAgentDelivers: both records reach the collector as one report (the Oops and
// the Panic dump hold the same report), source pstore, and are removed; a second run
// finds nothing to do.
func TestAgentDelivers(t *testing.T) {
	c := newCollector(t)
	ps := labRecords(t)
	journal := filepath.Join(t.TempDir(), "journal.json")
	a := newAgent(t, c.srv.URL, ps, journal)
	out, err := a.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].State != "delivered" || out[1].State != "delivered" {
		t.Fatalf("outcomes %+v", out)
	}
	reps := c.reports(t)
	if len(reps) != 1 {
		t.Fatalf("%d reports stored, want 1", len(reps))
	}
	r, _ := c.st.Report(context.Background(), reps[0].ID)
	if r.Sources != "pstore" || r.Host != "lab-pstore" || !strings.Contains(r.Title, "lkdtm_ACCESS_NULL") {
		t.Errorf("stored %+v", r)
	}
	if strings.Contains(r.Text, "<1>[") {
		t.Errorf("the stored text kept pstore's level prefixes: %q", r.Text[:60])
	}
	if n := remaining(t, ps); n != 0 {
		t.Errorf("%d records left after the acknowledgement", n)
	}
	if out, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background()); err != nil || len(out) != 0 {
		t.Errorf("second run: %+v %v", out, err)
	}
}

// TestAgentCollectorDown: with the collector unreachable, or answering without an
// acknowledgement, or refusing the token, nothing is removed; once it is back the
// records arrive, once.
func TestAgentCollectorDown(t *testing.T) {
	c := newCollector(t)
	ps := labRecords(t)
	journal := filepath.Join(t.TempDir(), "journal.json")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name   string
		server string
		token  string
		wrap   func(http.Handler) http.Handler
	}{
		{"connection refused", down, "tok", nil},
		{"wrong token", c.srv.URL, "nope", nil},
		{"502 from a proxy", c.srv.URL, "tok", func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", 502) })
		}},
		{"200 without IDs", c.srv.URL, "tok", func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"reports":[]}`)) })
		}},
	} {
		c.wrap = tc.wrap
		a := newAgent(t, tc.server, ps, journal)
		a.Client.Token = tc.token
		if _, err := a.RunOnce(context.Background()); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		if n := remaining(t, ps); n != 2 {
			t.Errorf("%s: %d records left, want 2", tc.name, n)
		}
	}
	c.wrap = nil
	if len(c.reports(t)) != 0 {
		t.Fatal("stored while down")
	}
	if _, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(c.reports(t)); n != 1 || remaining(t, ps) != 0 {
		t.Errorf("%d reports, %d records left", n, remaining(t, ps))
	}
}

// TestAgentLostAcknowledgement: the collector stores the report but the agent never
// sees the answer (killed, or the connection cut): the record stays, and the next
// run is answered with the same stored report (not a second one) and removes it.
func TestAgentLostAcknowledgement(t *testing.T) {
	c := newCollector(t)
	ps := labRecords(t)
	journal := filepath.Join(t.TempDir(), "journal.json")
	c.wrap = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(httptest.NewRecorder(), r) // stored, answer dropped
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		})
	}
	if _, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background()); err == nil {
		t.Fatal("no error without an answer")
	}
	first := c.reports(t)
	if len(first) != 1 || remaining(t, ps) != 2 {
		t.Fatalf("%d reports, %d records left", len(first), remaining(t, ps))
	}
	c.wrap = nil
	out, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if reps := c.reports(t); len(reps) != 1 || out[0].Reports[0].ID != first[0].ID || out[0].Reports[0].Created {
		t.Errorf("after the retry: %d reports, ack %+v", len(reps), out[0].Reports)
	}
	if remaining(t, ps) != 0 {
		t.Error("records left after the acknowledgement")
	}
}

// TestAgentJournalBeforeRemoval: killed after writing the journal but before removing
// the records, the agent removes them next time without sending again.
func TestAgentJournalBeforeRemoval(t *testing.T) {
	c := newCollector(t)
	ps := labRecords(t)
	journal := filepath.Join(t.TempDir(), "journal.json")
	dumps, _ := agent.ReadPstore(ps, "lab-pstore")
	j, _ := agent.OpenJournal(journal)
	for _, d := range dumps {
		j.Mark(d.Key, agent.Entry{Source: "pstore", Files: d.Files, Reports: []agent.Stored{{ID: 7}}})
	}
	out, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background())
	if err != nil || len(out) != 2 || out[0].State != "already delivered" {
		t.Fatalf("%+v %v", out, err)
	}
	if len(c.reports(t)) != 0 || remaining(t, ps) != 0 {
		t.Errorf("%d reports sent, %d records left", len(c.reports(t)), remaining(t, ps))
	}
}
