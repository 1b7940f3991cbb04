package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/fleet"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// fleetSetup ingests the crash lab's real consoles (the race on two ABIs, a host
// with a bad DIMM) into a collector whose reports feed a fleet engine, with the
// clean ABI's uptime, and serves it all.
func fleetSetup(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := fleet.New(fleet.Options{})
	inv, err := fleet.ParseInventory(strings.NewReader("bad-dimm dimm-01 rack=r7\nhost-2 race-56 rack=r1\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng.SetInventory(inv)
	eng.AddUptime("host-1", "6.1.0-55-cloud-amd64", 120.0/3600)
	eng.AddUptime("host-2", "6.1.0-56-cloud-amd64", 21.6/3600)
	eng.AddUptime("host-3", "6.1.0-57-cloud-amd64", 6.7/3600)
	col := collector.New(collector.Options{Store: st})
	col.OnReport(func(r *store.Report) { eng.Add(fleet.FromStore(r)) })
	ctx, cancel := context.WithCancel(context.Background())
	go col.Run(ctx, 5*time.Second)
	t.Cleanup(func() { cancel(); <-col.Done() })
	want := uint64(0)
	for _, f := range []struct{ host, file string }{
		{"host-2", "host-2-run-1.serial"}, {"host-3", "host-3-run-1.serial"},
		{"bad-dimm", "bad-dimm-flip-2.serial"}, {"bad-dimm", "bad-dimm-flip-5.serial"},
	} {
		data, err := os.ReadFile(filepath.Join("../fleet/testdata/lab", f.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := col.Ingest(f.host, strings.NewReader(string(data))); err != nil {
			t.Fatal(err)
		}
		want += 1
		if strings.HasPrefix(f.file, "bad-dimm") {
			want++ // the corrected machine checks are a report of their own
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for col.Stats.Reports.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if col.Stats.Reports.Load() < want {
		t.Fatalf("%d reports stored, want %d", col.Stats.Reports.Load(), want)
	}
	srv := httptest.NewServer(New(Options{Store: st, Pipeline: col, Fleet: eng}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFleetAPI(t *testing.T) {
	srv := fleetSetup(t)
	var groups struct {
		Groups []map[string]json.RawMessage `json:"groups"`
	}
	code, body := get(t, srv.URL+"/api/groups")
	if code != 200 || json.Unmarshal([]byte(body), &groups) != nil {
		t.Fatalf("/api/groups: %d %s", code, body)
	}
	classes := map[string]string{}
	for _, g := range groups.Groups {
		for _, k := range []string{"verdict", "releases", "bisect_range", "signature", "title", "hosts"} {
			if _, ok := g[k]; !ok {
				t.Errorf("group lacks %q: %v", k, g)
			}
		}
		var title string
		var v fleet.Verdict
		var rs fleet.Releases
		json.Unmarshal(g["title"], &title)
		json.Unmarshal(g["verdict"], &v)
		json.Unmarshal(g["releases"], &rs)
		classes[title] = v.Class
		if strings.Contains(title, "netrace_rcv") {
			var b fleet.BisectRange
			if json.Unmarshal(g["bisect_range"], &b) != nil || b.Good != "6.1.0-55-cloud-amd64" || b.Bad != "6.1.0-56-cloud-amd64" ||
				!strings.Contains(b.Command, "kcrash bisect") {
				t.Errorf("race bisect_range %s", g["bisect_range"])
			}
			if len(rs.Crashing) != 2 || len(rs.Clean) == 0 || rs.Clean[0].Release != "6.1.0-55-cloud-amd64" || rs.Clean[0].HostHours <= 0 {
				t.Errorf("race releases %s", g["releases"])
			}
		}
	}
	if len(classes) < 4 {
		t.Fatalf("groups %v, want the race, the corrected machine checks and two bit flips", classes)
	}
	for title, c := range classes {
		want := fleet.Hardware
		if strings.Contains(title, "netrace_rcv") {
			want = fleet.Software
		}
		if c != want {
			t.Errorf("group %q: %s, want %s\n%s", title, c, want, body)
		}
	}
	var hosts struct {
		Hosts []struct {
			ID      string            `json:"id"`
			Name    string            `json:"name"`
			Labels  map[string]string `json:"labels"`
			Verdict *fleet.Verdict    `json:"verdict"`
			Release string            `json:"release"`
		} `json:"hosts"`
	}
	code, body = get(t, srv.URL+"/api/hosts")
	if code != 200 || json.Unmarshal([]byte(body), &hosts) != nil || len(hosts.Hosts) != 3 {
		t.Fatalf("/api/hosts: %d %s", code, body)
	}
	for _, h := range hosts.Hosts {
		switch h.ID {
		case "bad-dimm":
			if h.Name != "dimm-01" || h.Labels["rack"] != "r7" || h.Verdict == nil || h.Verdict.Class != fleet.Hardware || h.Release != "6.1.0-57-amd64" {
				t.Errorf("bad-dimm host: %+v", h)
			}
		case "host-2":
			if h.Name != "race-56" || h.Verdict == nil || h.Verdict.Class != fleet.Software {
				t.Errorf("host-2: %+v", h)
			}
		}
	}
}

func TestFleetPagesAndFilters(t *testing.T) {
	srv := fleetSetup(t)
	for _, c := range []struct {
		query        string
		want, reject []string
	}{
		{"", []string{`class="fleetchart"`, "netrace_rcv", "handle_mm_fault", "dimm-01", `class="verdict software"`, `class="verdict hardware"`}, nil},
		{"?verdict=software", []string{"netrace_rcv", `<option selected>software</option>`}, []string{"in handle_mm_fault"}},
		{"?verdict=hardware&since=24h", []string{"handle_mm_fault"}, []string{"in netrace_rcv"}},
		{"?label=rack%3Dr7", []string{"dimm-01", "handle_mm_fault"}, []string{"in netrace_rcv", "race-56"}},
		{"?release=6.1.0-56-cloud-amd64", []string{"netrace_rcv"}, []string{"in handle_mm_fault"}},
		{"?kind=null-ptr-deref&host=host-3", []string{"netrace_rcv"}, []string{"in handle_mm_fault"}},
	} {
		code, body := get(t, srv.URL+"/"+c.query)
		if code != 200 {
			t.Fatalf("/%s: %d", c.query, code)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("/%s lacks %q", c.query, w)
			}
		}
		for _, r := range c.reject {
			if strings.Contains(body, r) {
				t.Errorf("/%s shows %q", c.query, r)
			}
		}
	}
	var groups struct {
		Groups []store.Group `json:"groups"`
	}
	_, body := get(t, srv.URL+"/api/groups")
	json.Unmarshal([]byte(body), &groups)
	for _, g := range groups.Groups {
		code, page := get(t, srv.URL+"/groups/"+g.Signature)
		if code != 200 || !strings.Contains(page, `class="evidence"`) || !strings.Contains(page, `id="releases"`) {
			t.Errorf("group page %s: %d, evidence/releases missing", g.Signature, code)
		}
		if strings.Contains(g.Title, "netrace_rcv") && !strings.Contains(page, `id="bisect"`) {
			t.Errorf("race group page has no bisect suggestion")
		}
	}
	code, page := get(t, srv.URL+"/hosts/bad-dimm")
	if code != 200 || !strings.Contains(page, `id="hwlines"`) || !strings.Contains(page, `id="flips"`) || !strings.Contains(page, "dimm-01") {
		t.Errorf("bad-dimm page: %d, hardware lines / flips / name missing", code)
	}
}
