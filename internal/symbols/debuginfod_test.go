package symbols

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	idC = "cccccccccccccccccccccccccccccccccccccccc"
)

// files lists every file under dir (temporary ones included).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestDebuginfodMisbehaving runs the client against a server that answers wrongly
// in each way a real one (or something posing as one) can: every answer is refused
// with an error saying why, and nothing is left in the cache.
func TestDebuginfodMisbehaving(t *testing.T) {
	good := makeELF(t, idA, 1000)
	for _, tc := range []struct {
		name    string
		max     int64
		handler http.HandlerFunc
		want    string // in the error
	}{
		{"wrong build ID", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Write(makeELF(t, idB, 1000))
		}, "build ID mismatch: the file has " + idB},
		{"truncated with length", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(good)))
			w.Write(good[:len(good)/2])
			// The handler returns early: net/http closes the connection short.
		}, "unexpected EOF"},
		{"truncated chunked", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Write(good[:len(good)-100])
		}, "not an ELF file with a build ID"},
		{"html error page with 200", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body><h1>Service Unavailable</h1></body></html>"))
		}, "not an ELF file with a build ID"},
		{"html error page with 503", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			w.Write([]byte("<html><body><h1>Service Unavailable</h1></body></html>"))
		}, "503 Service Unavailable"},
		{"redirect loop", 0, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		}, "stopped after 10 redirects"},
		{"1 GiB announced, cap 500 MB", 500 << 20, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(1<<30))
			w.Write(good) // the client hangs up long before 1 GiB
		}, "larger than the cache cap"},
		{"unannounced stream over the cap", 1 << 20, func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64<<10)
			for i := 0; i < 40; i++ { // 2.5 MiB, chunked
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}, "larger than the cache cap"},
		{"stalled", 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(good)))
			w.Write(good[:100])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "no data for 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			cache := &Cache{Dir: t.TempDir(), Max: tc.max}
			d := &Debuginfod{URLs: []string{srv.URL}, Cache: cache, Stall: 300 * time.Millisecond}
			start := time.Now()
			p, err := d.Find(context.Background(), Query{BuildID: idA})
			if err == nil {
				t.Fatalf("got %s, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("a misbehaving server is reported as not having the file: %v", err)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("refusing took %v", time.Since(start))
			}
			if f := files(t, cache.Dir); len(f) > 0 {
				t.Errorf("left in the cache: %v", f)
			}
		})
	}
}

// TestDebuginfodFetch checks a good fetch, the cache hit that follows without asking
// the server, the fall-through from a server without the file to one with it, and
// DEBUGINFOD_URLS splitting.
func TestDebuginfodFetch(t *testing.T) {
	var hits atomic.Int32
	has := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/buildid/"+idA+"/debuginfo" {
			http.NotFound(w, r)
			return
		}
		w.Write(makeELF(t, idA, 5000))
	}))
	defer has.Close()
	hasNot := httptest.NewServer(http.NotFoundHandler())
	defer hasNot.Close()
	t.Setenv("DEBUGINFOD_URLS", "  "+hasNot.URL+"\t"+has.URL+"/ \n")
	urls := URLsFromEnv()
	if len(urls) != 2 {
		t.Fatalf("DEBUGINFOD_URLS split into %q", urls)
	}
	cache := &Cache{Dir: t.TempDir()}
	var progressed atomic.Bool
	d := &Debuginfod{URLs: urls, Cache: cache, Progress: func(string, int64, int64) { progressed.Store(true) }}
	p, err := d.Find(context.Background(), Query{BuildID: idA})
	if err != nil {
		t.Fatal(err)
	}
	if p != cache.Path(idA) {
		t.Errorf("path %s, want %s", p, cache.Path(idA))
	}
	if id, err := FileBuildID(p); err != nil || id != idA {
		t.Errorf("cached file has build ID %q, %v", id, err)
	}
	if !progressed.Load() {
		t.Error("no progress reported")
	}
	if _, err := d.Find(context.Background(), Query{BuildID: idA}); err != nil || hits.Load() != 1 {
		t.Errorf("second lookup: %v, server asked %d times (want 1)", err, hits.Load())
	}
	_, err = d.Find(context.Background(), Query{BuildID: idB})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("an absent build ID: %v, want ErrNotFound", err)
	}
	if _, err := d.Find(context.Background(), Query{Release: "6.1.0-57-amd64"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a query by release alone: %v, want ErrNotFound", err)
	}
	if _, err := d.Find(context.Background(), Query{BuildID: "../../etc"}); err == nil {
		t.Error("a build ID with a path in it was accepted")
	}
}

// TestCacheLRU fills a cache with room for two files with three: the least
// recently used one goes, and a hit makes a file recent.
func TestCacheLRU(t *testing.T) {
	one := int64(len(makeELF(t, idA, 10000)))
	c := &Cache{Dir: t.TempDir(), Max: 2*one + one/2}
	put := func(id string) {
		t.Helper()
		data := makeELF(t, id, 10000)
		if _, err := c.Put(id, strings.NewReader(string(data)), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	put(idA)
	os.Chtimes(c.Path(idA), old, old)
	put(idB)
	os.Chtimes(c.Path(idB), old.Add(time.Minute), old.Add(time.Minute))
	if _, ok := c.Get(idA); !ok { // A is now the most recent
		t.Fatal("A not cached")
	}
	put(idC)
	for id, want := range map[string]bool{idA: true, idB: false, idC: true} {
		if _, ok := c.Get(id); ok != want {
			t.Errorf("%s cached = %v, want %v", id[:4], ok, want)
		}
	}
	if s := c.Size(); s > c.Max {
		t.Errorf("cache holds %d bytes, cap %d", s, c.Max)
	}
}

func TestCacheClean(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	stale := filepath.Join(c.Dir, tmpPrefix+idA+"-1")
	fresh := filepath.Join(c.Dir, tmpPrefix+idB+"-2")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	c.Clean(time.Hour)
	if regular(stale) || !regular(fresh) {
		t.Errorf("after Clean: stale kept %v, fresh kept %v", regular(stale), regular(fresh))
	}
}
