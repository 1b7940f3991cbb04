package agent

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"github.com/kcrash/kcrash/internal/web"
)

// labRecords copies the pstore records the lab's pstore scenario read back after a
// warm reset (ramoops: an Oops and the Panic that followed) into a fresh directory.
func labRecords(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"dmesg-ramoops-0", "dmesg-ramoops-1"} {
		data, err := os.ReadFile(filepath.Join("testdata/pstore", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n), data, 0o444)
	}
	return dir
}

func TestReadPstoreRamoops(t *testing.T) {
	dumps, bad := ReadPstore(labRecords(t), "h")
	if len(bad) > 0 || len(dumps) != 2 {
		t.Fatalf("%d dumps, bad %v", len(dumps), bad)
	}
	for _, d := range dumps {
		if !bytes.Contains(d.Text, []byte("<1>[    2.844721] BUG: kernel NULL pointer dereference")) || bytes.HasPrefix(d.Text, []byte("Oops#")) || bytes.HasPrefix(d.Text, []byte("Panic#")) {
			t.Errorf("%v: text starts %q", d.Files, d.Text[:40])
		}
	}
	if dumps[0].Key == dumps[1].Key {
		t.Error("two records have one key")
	}
	again, _ := ReadPstore(labRecords(t), "h")
	other, _ := ReadPstore(labRecords(t), "h2")
	if again[0].Key != dumps[0].Key || other[0].Key == dumps[0].Key {
		t.Error("the key is not a function of the host and the bytes")
	}
}

// TestReadPstoreParts splits the lab's record the way efi and erst do (PartN is the
// oldest chunk), one part compressed (.enc.z, raw deflate), shuffles the file IDs,
// and checks the parts are joined back in order.
func TestReadPstoreParts(t *testing.T) {
	rec, err := os.ReadFile("testdata/pstore/dmesg-ramoops-0")
	if err != nil {
		t.Fatal(err)
	}
	body := rec[bytes.IndexByte(rec, '\n')+1:]
	dir := t.TempDir()
	// kmsg_dump_get_buffer fills a part with whole lines.
	cut := func(n int) int { return n + bytes.IndexByte(body[n:], '\n') + 1 }
	a, b := cut(10000), cut(20000)
	chunks := [][]byte{body[:a], body[a:b], body[b:]}
	for i, c := range chunks {
		part := len(chunks) - i // the newest chunk is Part1
		data := append([]byte(fmt.Sprintf("Oops#1 Part%d\n", part)), c...)
		name := fmt.Sprintf("dmesg-efi-%d", 177000+(i*7)%5)
		if part == 2 {
			var z bytes.Buffer
			w, _ := flate.NewWriter(&z, flate.BestCompression)
			w.Write(data)
			w.Close()
			data, name = z.Bytes(), name+".enc.z"
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o444)
	}
	// A second dump in the same backend stays separate; junk is reported, not fatal.
	os.WriteFile(filepath.Join(dir, "dmesg-efi-199"), []byte("Panic#2 Part1\n<0>[ 9.0] Kernel panic - not syncing: x\n"), 0o444)
	os.WriteFile(filepath.Join(dir, "dmesg-efi-200.enc.z"), []byte("not deflate"), 0o444)
	os.WriteFile(filepath.Join(dir, "console-ramoops-0"), []byte("console"), 0o444)
	dumps, bad := ReadPstore(dir, "h")
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "dmesg-efi-200.enc.z") {
		t.Errorf("bad records: %v", bad)
	}
	if len(dumps) != 2 {
		t.Fatalf("%d dumps", len(dumps))
	}
	var oops *Dump
	for i := range dumps {
		if len(dumps[i].Files) == 3 {
			oops = &dumps[i]
		}
	}
	if oops == nil || !bytes.Equal(oops.Text, body) {
		t.Fatalf("the joined parts differ from the record (%d files)", len(dumps[0].Files))
	}
}

func TestReadCrashDir(t *testing.T) {
	dir := t.TempDir()
	rec, _ := os.ReadFile("testdata/pstore/dmesg-ramoops-0")
	os.MkdirAll(filepath.Join(dir, "202611301012"), 0o755)
	os.WriteFile(filepath.Join(dir, "202611301012", "dmesg.202611301012"), rec, 0o644)
	os.WriteFile(filepath.Join(dir, "202611301012", "dump.202611301012"), []byte("KDUMP   "), 0o644)
	os.MkdirAll(filepath.Join(dir, "127.0.0.1-2026-11-30-10:20:00"), 0o755)
	os.WriteFile(filepath.Join(dir, "127.0.0.1-2026-11-30-10:20:00", "vmcore-dmesg.txt"), rec, 0o644)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "kexec_cmd"), []byte("x"), 0o644)
	dumps, bad := ReadCrashDir(dir, "h")
	if len(bad) > 0 || len(dumps) != 2 {
		t.Fatalf("%d dumps, bad %v", len(dumps), bad)
	}
	if dumps[0].Key == dumps[1].Key {
		t.Error("two crash directories with the same log share a key")
	}
	for _, d := range dumps {
		if d.Source != "kdump" {
			t.Errorf("source %q", d.Source)
		}
	}
	if len(dumps[1].Files) != 2 || !strings.HasPrefix(filepath.Base(dumps[1].Files[1]), "dump.") {
		t.Errorf("files %v", dumps[1].Files)
	}
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

func newAgent(t *testing.T, server, pstore, journal string) *Agent {
	t.Helper()
	j, err := OpenJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{Client: &Client{Server: server, Token: "tok", Host: "lab-pstore"}, Journal: j, PstoreDir: pstore}
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
	dumps, _ := ReadPstore(ps, "lab-pstore")
	j, _ := OpenJournal(journal)
	for _, d := range dumps {
		j.Mark(d.Key, Entry{Source: "pstore", Files: d.Files, Reports: []Stored{{ID: 7}}})
	}
	out, err := newAgent(t, c.srv.URL, ps, journal).RunOnce(context.Background())
	if err != nil || len(out) != 2 || out[0].State != "already delivered" {
		t.Fatalf("%+v %v", out, err)
	}
	if len(c.reports(t)) != 0 || remaining(t, ps) != 0 {
		t.Errorf("%d reports sent, %d records left", len(c.reports(t)), remaining(t, ps))
	}
}

func FuzzReadPstore(f *testing.F) {
	rec, _ := os.ReadFile("testdata/pstore/dmesg-ramoops-1")
	f.Add(rec[:2000], false)
	f.Add([]byte("Oops#1 Part2\nabc"), true)
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		dir := t.TempDir()
		name := "dmesg-erst-1"
		if compressed {
			name += ".enc.z"
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o444)
		ReadPstore(dir, "h")
	})
}
