package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// TestReadToken: with a read token, every page, the API, the live tail and the
// metrics need it (or the write token) in the Authorization header, as a Bearer
// token or a Basic password; a token in the URL counts for nothing; /healthz stays
// open; the write endpoint still takes the write token only.
func TestReadToken(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(New(Options{Store: st, Token: "write-tok", ReadToken: "read-tok"}))
	defer srv.Close()
	do := func(method, path, auth string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(""))
		switch {
		case strings.HasPrefix(auth, "basic:"):
			req.SetBasicAuth("anyone", auth[len("basic:"):])
		case auth != "":
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/", "", 401},
		{"GET", "/", "wrong", 401},
		{"GET", "/", "read-tok", 200},
		{"GET", "/", "write-tok", 200},
		{"GET", "/", "basic:read-tok", 200},
		{"GET", "/", "basic:wrong", 401},
		{"GET", "/?token=read-tok", "", 401},
		{"GET", "/api/reports", "", 401},
		{"GET", "/api/reports", "read-tok", 200},
		{"GET", "/api/hosts", "", 401},
		{"GET", "/api/groups", "", 401},
		{"GET", "/api/hosts/h/tail", "", 401},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "read-tok", 200},
		{"GET", "/assets/tail.js", "", 401},
		{"GET", "/healthz", "", 200},
		{"POST", "/api/ingest?host=x", "read-tok", 401},
		{"POST", "/api/ingest?host=x&token=write-tok", "", 401},
		{"POST", "/api/ingest", "write-tok", 400}, // authorized; no ?host
	} {
		if got := do(tc.method, tc.path, tc.auth); got != tc.want {
			t.Errorf("%s %s (auth %q): %d, want %d", tc.method, tc.path, tc.auth, got, tc.want)
		}
	}
}
