package watch

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

func TestHostMatcher(t *testing.T) {
	for _, tc := range []struct {
		h, id, name string
		want        bool
	}{
		{"10.0.0.5:6665", "10.0.0.5:6665", "", true},
		{"10.0.0.5", "10.0.0.5:6665", "", true},
		{"10.0.0.5", "10.0.0.5:40000", "", true},
		{"10.0.0.5", "10.0.0.6:6665", "", false},
		{"10.0.0.5:6665", "10.0.0.5:6666", "", false},
		{"web1", "10.0.0.5:6665", "web1", true},
		{"web1", "web1", "", true},
		{"web1", "10.0.0.5:6665", "web2", false},
		{"", "10.0.0.5:6665", "", false},
		{"::1", "[::1]:6665", "", true},
	} {
		if got := HostMatcher(tc.h).Match(tc.id, tc.name); got != tc.want {
			t.Errorf("%q matches %q/%q: %v", tc.h, tc.id, tc.name, got)
		}
	}
}

// fakeAPI serves /api/reports (newest first, ?before=, ?limit=) and /api/hosts.
type fakeAPI struct {
	mu      sync.Mutex
	reports []store.Report
	hosts   []store.Host
	fail    bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/api/hosts":
		json.NewEncoder(w).Encode(map[string]any{"hosts": f.hosts})
	case "/api/reports":
		before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var out []store.Report
		for i := len(f.reports) - 1; i >= 0 && len(out) < limit; i-- {
			if before == 0 || f.reports[i].ID < before {
				out = append(out, f.reports[i])
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"reports": out})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) add(n int, host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		id := int64(len(f.reports) + 1)
		f.reports = append(f.reports, store.Report{ID: id, Host: host, Time: time.Now(), Signature: "v1:" + strconv.FormatInt(id, 10), Panicked: true})
	}
}

func TestServer(t *testing.T) {
	api := &fakeAPI{}
	api.add(5, "10.0.0.5:6665") // before the watch: not returned
	api.hosts = []store.Host{{ID: "10.0.0.5:6665", LastSeen: time.Unix(100, 0)}, {ID: "10.0.0.5:40000", LastSeen: time.Unix(200, 0), LastBoot: time.Unix(150, 0)}, {ID: "10.0.0.6:6665", LastSeen: time.Unix(300, 0)}}
	hs := httptest.NewServer(api)
	defer hs.Close()
	w := NewServer(hs.URL+"/", "10.0.0.5")
	ctx := context.Background()
	obs, err := w.Poll(ctx)
	if err != nil || len(obs.Reports) != 0 || !obs.LastSeen.Equal(time.Unix(200, 0)) || !obs.LastBoot.Equal(time.Unix(150, 0)) {
		t.Fatalf("first poll %+v %v", obs, err)
	}
	// 450 new reports (more than a page), a third of them another host's.
	for range 150 {
		api.add(2, "10.0.0.5:40000")
		api.add(1, "10.0.0.7:6665")
	}
	obs, err = w.Poll(ctx)
	if err != nil || len(obs.Reports) != 300 {
		t.Fatalf("second poll: %d reports, %v", len(obs.Reports), err)
	}
	for i := 1; i < len(obs.Reports); i++ {
		if obs.Reports[i].ID <= obs.Reports[i-1].ID || obs.Reports[i].Host != "10.0.0.5:40000" || obs.Reports[i].Seen.IsZero() {
			t.Fatalf("report %d: %+v after %+v", i, obs.Reports[i], obs.Reports[i-1])
		}
	}
	if obs, _ = w.Poll(ctx); len(obs.Reports) != 0 {
		t.Errorf("reports returned twice: %d", len(obs.Reports))
	}
	api.mu.Lock()
	api.fail = true
	api.mu.Unlock()
	if _, err := w.Poll(ctx); err == nil {
		t.Errorf("a failing server is not an error")
	}
}

func TestEmbedded(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := StartEmbedded(context.Background(), "127.0.0.1:0", st, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if obs, err := w.Poll(context.Background()); err != nil || !obs.LastSeen.IsZero() {
		t.Fatalf("%+v %v", obs, err)
	}
	c, err := net.Dial("udp", w.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, l := range []string{
		"[    3.371591] BUG: kernel NULL pointer dereference, address: 0000000000000000\n",
		"[    3.373413] Oops: 0000 [#1] PREEMPT SMP NOPTI\n",
		"[    3.373900] RIP: 0010:lkdtm_ACCESS_NULL+0x5/0x10\n",
		"[    3.397447] ---[ end Kernel panic - not syncing: Fatal exception ]---\n",
	} {
		c.Write([]byte(l))
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		obs, err := w.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Reports) > 0 {
			r := obs.Reports[0]
			if r.Signature == "" || obs.LastSeen.IsZero() || r.Seen.Sub(r.Time) > time.Second {
				t.Errorf("%+v, last seen %v", r, obs.LastSeen)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no report")
}
