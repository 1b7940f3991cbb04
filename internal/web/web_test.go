package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"net/netip"
)

// setup stores one report with hostile text and one real crash, and serves them.
func setup(t *testing.T) (*httptest.Server, *collector.Collector) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	col := collector.New(collector.Options{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	go col.Run(ctx, 5*time.Second)
	t.Cleanup(func() { cancel(); <-col.Done() })
	evil := "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000\n" +
		"[    1.000001] CPU: 0 PID: 1 Comm: <script>alert(1)</script> Not tainted 6.1.0-x #1\n" +
		"[    1.000002] RIP: 0010:evil_</pre><img src=x onerror=alert(1)>+0x1/0x2\n" +
		"[    1.000003] Kernel panic - not syncing: Fatal exception\n[    1.000004] ---[ end Kernel panic - not syncing: Fatal exception ]---\n"
	if err := col.Ingest("<b>evil</b>", strings.NewReader(evil)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../collector/testdata/ACCESS_NULL.netconsole")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := col.Ingest("lab-1", f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for col.Stats.Reports.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if col.Stats.Reports.Load() < 2 {
		t.Fatalf("%d reports stored", col.Stats.Reports.Load())
	}
	srv := httptest.NewServer(New(Options{Store: st, Pipeline: col, Token: "tok",
		Metrics: func(w io.Writer) { io.WriteString(w, "kcrash_test 1\n") }}))
	t.Cleanup(srv.Close)
	return srv, col
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPagesAndAPI(t *testing.T) {
	srv, _ := setup(t)
	var reps struct {
		Reports []store.Report `json:"reports"`
	}
	code, body := get(t, srv.URL+"/api/reports")
	if code != 200 || json.Unmarshal([]byte(body), &reps) != nil || len(reps.Reports) != 2 {
		t.Fatalf("/api/reports: %d %s", code, body)
	}
	if r := reps.Reports[0]; r.Host != "lab-1" || r.Kind != "null-ptr-deref" || r.Signature == "" || r.Title == "" {
		t.Errorf("newest report %+v", r)
	}
	for _, path := range []string{"/", "/api/hosts", "/api/groups", "/reports/1", "/reports/2", "/hosts/lab-1", "/groups/" + reps.Reports[0].Signature, "/api/reports/2", "/metrics"} {
		code, body := get(t, srv.URL+path)
		if code != 200 {
			t.Errorf("%s: %d %.200s", path, code, body)
			continue
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<b>evil") {
			t.Errorf("%s: kernel text not escaped", path)
		}
	}
	if _, body := get(t, srv.URL+"/"); !strings.Contains(body, "lkdtm_ACCESS_NULL") || !strings.Contains(body, "<svg class=\"chart\"") {
		t.Errorf("dashboard lacks the group or its chart")
	}
	if _, body := get(t, srv.URL+"/reports/2"); !strings.Contains(body, "lkdtm_ACCESS_NULL") || !strings.Contains(body, "id=\"frames\"") {
		t.Errorf("report page lacks its frames")
	}
	for _, path := range []string{"/reports/999", "/reports/x", "/api/reports/999", "/api/groups/nope"} {
		if code, _ := get(t, srv.URL+path); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
}

func TestIngestToken(t *testing.T) {
	srv, _ := setup(t)
	post := func(tok string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/api/ingest?host=up", strings.NewReader("[    1.0] hello\n"))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(""); c != 401 {
		t.Errorf("no token: %d", c)
	}
	if c := post("wrong"); c != 401 {
		t.Errorf("wrong token: %d", c)
	}
	if c := post("tok"); c != 202 {
		t.Errorf("right token: %d", c)
	}
}

func TestTail(t *testing.T) {
	srv, col := setup(t)
	from := netip.MustParseAddrPort("10.1.2.3:6665")
	col.HandleBatch(0, time.Now(), []netconsole.Packet{{From: from, Data: []byte("first\n")}})
	resp, err := http.Get(srv.URL + "/api/hosts/10.1.2.3:6665/tail")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		col.HandleBatch(0, time.Now(), []netconsole.Packet{{From: from, Data: []byte("<live> line\n")}})
	}()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: <live> line" {
			return
		}
	}
	t.Fatalf("no live line: %v", sc.Err())
}

func TestChart(t *testing.T) {
	now := time.Now()
	svg := string(chart([]time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour), now.Add(-time.Hour), now}))
	if strings.Count(svg, "<rect") != 3 || !strings.Contains(svg, "4 reports") {
		t.Errorf("chart %s", svg)
	}
}
