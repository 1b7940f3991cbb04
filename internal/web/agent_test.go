package web_test

// kcrash agent against the real server side: a collector with a SQLite store behind
// the web API's POST /api/agent/reports (here rather than in internal/agent so that
// package's fuzz target does not link the store).

import (
	"bytes"
	"context"
	"io"
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

func newDumpServer(t *testing.T, max int64) (*collectorServer, string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kcrash.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dumps := t.TempDir()
	col := collector.New(collector.Options{Store: st})
	h := web.New(web.Options{Store: st, Pipeline: col, Token: "tok", DumpDir: dumps, DumpMax: max})
	c := &collectorServer{st: st}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.wrap != nil {
			c.wrap(h).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c, dumps
}

// TestDumpUploadResumes: an upload cut in the middle of a chunk (the connection
// dropped, as when the agent is killed) keeps only the whole chunks before it and
// resumes from there; the completed dump is the file, byte for byte.
func TestDumpUploadResumes(t *testing.T) {
	c, dumps := newDumpServer(t, 1<<20)
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	file := filepath.Join(t.TempDir(), "dump.202611301012")
	os.WriteFile(file, data, 0o644)
	const key = "0123456789abcdef0123456789abcdef"
	puts := 0
	c.wrap = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "PUT" {
				puts++
				if puts == 3 { // half of the third chunk arrives, then the line drops
					r.Body = io.NopCloser(io.MultiReader(io.LimitReader(r.Body, 32<<10), cutReader{}))
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	cl := &agent.Client{Server: c.srv.URL, Token: "tok", Host: "h"}
	if err := cl.UploadDump(context.Background(), key, file, 64<<10); err == nil {
		t.Fatal("no error when the connection dropped")
	}
	if fi, err := os.Stat(filepath.Join(dumps, key+".part")); err != nil || fi.Size() != 128<<10 {
		t.Fatalf("after the cut: %v %v, want the two whole chunks", fi, err)
	}
	c.wrap = nil
	if err := cl.UploadDump(context.Background(), key, file, 64<<10); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dumps, key+".vmcore"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the stored dump differs from the file (%d of %d bytes, %v)", len(got), len(data), err)
	}
	if _, err := os.Stat(filepath.Join(dumps, key+".part")); err == nil {
		t.Error("the partial file stayed")
	}
	// Done is done: another run uploads nothing.
	puts = 0
	c.wrap = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "PUT" {
				puts++
			}
			h.ServeHTTP(w, r)
		})
	}
	if err := cl.UploadDump(context.Background(), key, file, 64<<10); err != nil || puts != 0 {
		t.Errorf("a complete dump again: %v, %d chunks sent", err, puts)
	}
}

// TestDumpUploadRefused: over the size cap, without the token, or with a file that
// changed under the upload, the dump is never completed.
func TestDumpUploadRefused(t *testing.T) {
	c, dumps := newDumpServer(t, 256<<10)
	big := filepath.Join(t.TempDir(), "vmcore")
	os.WriteFile(big, make([]byte, 600<<10), 0o644)
	cl := &agent.Client{Server: c.srv.URL, Token: "tok", Host: "h"}
	err := cl.UploadDump(context.Background(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", big, 100<<10)
	if err == nil || !strings.Contains(err.Error(), "413") {
		t.Errorf("over the cap: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dumps, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.part")); err == nil && fi.Size() > 256<<10 {
		t.Errorf("the partial dump grew to %d bytes past the cap", fi.Size())
	}
	bad := &agent.Client{Server: c.srv.URL, Token: "nope", Host: "h"}
	if err := bad.UploadDump(context.Background(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", big, 100<<10); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	// The file grows between the chunks and the completion: the hash does not match.
	small := filepath.Join(t.TempDir(), "vmcore")
	os.WriteFile(small, make([]byte, 100<<10), 0o644)
	c.wrap = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "sha256=", "sha256=00", 1)
			}
			h.ServeHTTP(w, r)
		})
	}
	if err := cl.UploadDump(context.Background(), "cccccccccccccccccccccccccccccccc", small, 64<<10); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("hash mismatch: %v", err)
	}
	ents, _ := os.ReadDir(dumps)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".vmcore") {
			t.Errorf("completed although refused: %s", e.Name())
		}
	}
}

// TestAgentUploadsVmcore: with --upload-vmcore the kdump log is delivered, then its
// dump uploaded once; the journal keeps a second run from sending it again.
func TestAgentUploadsVmcore(t *testing.T) {
	c, dumps := newDumpServer(t, 1<<20)
	crash := t.TempDir()
	sub := filepath.Join(crash, "202611301012")
	os.MkdirAll(sub, 0o755)
	rec, _ := os.ReadFile("../agent/testdata/pstore/dmesg-ramoops-0")
	os.WriteFile(filepath.Join(sub, "dmesg.202611301012"), rec, 0o644)
	os.WriteFile(filepath.Join(sub, "dump.202611301012"), bytes.Repeat([]byte("KDUMP "), 50000), 0o644)
	j, _ := agent.OpenJournal(filepath.Join(t.TempDir(), "j.json"))
	a := &agent.Agent{Client: &agent.Client{Server: c.srv.URL, Token: "tok", Host: "h"}, Journal: j, CrashDir: crash, UploadVmcore: true, Chunk: 100 << 10}
	out, err := a.RunOnce(context.Background())
	if err != nil || len(out) != 1 || out[0].State != "delivered" || out[0].Dump != "uploaded" {
		t.Fatalf("%+v %v", out, err)
	}
	got, _ := os.ReadFile(filepath.Join(dumps, out[0].Key+".vmcore"))
	if len(got) != 300000 {
		t.Errorf("stored dump %d bytes", len(got))
	}
	out, err = a.RunOnce(context.Background())
	if err != nil || out[0].State != "already delivered" || out[0].Dump != "" {
		t.Errorf("second run: %+v %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(sub, "dump.202611301012")); err != nil {
		t.Error("the kdump directory was touched")
	}
}

type cutReader struct{}

func (cutReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
