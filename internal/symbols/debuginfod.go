package symbols

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Debuginfod fetches debug files by build ID from debuginfod servers
// (GET URL/buildid/BUILDID/debuginfo, the protocol of elfutils' debuginfod), into a
// Cache. It needs a build ID; a query by release alone is not found.
type Debuginfod struct {
	URLs  []string
	Cache *Cache
	// Client is the HTTP client (nil: one following at most 10 redirects, so a
	// redirect loop fails).
	Client *http.Client
	// Stall is how long a download may go without receiving a byte (and how long
	// the server may take to answer) before it is abandoned; 0 means 90 s, as
	// elfutils' DEBUGINFOD_TIMEOUT.
	Stall time.Duration
	// Progress, when set, is called as a download proceeds (total -1 when the
	// server did not say).
	Progress func(url string, done, total int64)

	mu       sync.Mutex
	inflight map[string]*fetch
}

type fetch struct {
	done chan struct{}
	path string
	err  error
}

// URLsFromEnv splits DEBUGINFOD_URLS as elfutils does (whitespace-separated).
func URLsFromEnv() []string { return strings.Fields(os.Getenv("DEBUGINFOD_URLS")) }

// DefaultCacheDir is DEBUGINFOD_CACHE_PATH when set, else ~/.cache/kcrash/debuginfod.
func DefaultCacheDir() string {
	if d := os.Getenv("DEBUGINFOD_CACHE_PATH"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kcrash", "debuginfod")
	}
	return filepath.Join(os.TempDir(), "kcrash-debuginfod")
}

// Name implements Source.
func (d *Debuginfod) Name() string { return "debuginfod " + strings.Join(d.URLs, " ") }

// Find implements Source: a cache hit, else each server in turn.
func (d *Debuginfod) Find(ctx context.Context, q Query) (string, error) {
	if err := q.check(); err != nil {
		return "", err
	}
	if q.BuildID == "" {
		return "", fmt.Errorf("a build ID is needed: %w", ErrNotFound)
	}
	if p, ok := d.Cache.Get(q.BuildID); ok {
		return p, nil
	}
	// One download per build ID at a time; concurrent askers wait for it.
	d.mu.Lock()
	if d.inflight == nil {
		d.inflight = map[string]*fetch{}
	}
	if f, ok := d.inflight[q.BuildID]; ok {
		d.mu.Unlock()
		select {
		case <-f.done:
			return f.path, f.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	d.inflight[q.BuildID] = f
	d.mu.Unlock()
	f.path, f.err = d.fetchAll(ctx, q.BuildID)
	d.mu.Lock()
	delete(d.inflight, q.BuildID)
	d.mu.Unlock()
	close(f.done)
	return f.path, f.err
}

func (d *Debuginfod) fetchAll(ctx context.Context, id string) (string, error) {
	if len(d.URLs) == 0 {
		return "", fmt.Errorf("no server URLs: %w", ErrNotFound)
	}
	var errs []string
	notFound := true
	for _, u := range d.URLs {
		p, err := d.fetchOne(ctx, strings.TrimSuffix(u, "/")+"/buildid/"+id+"/debuginfo", id)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if !errors.Is(err, ErrNotFound) {
			notFound = false
		}
		errs = append(errs, err.Error())
	}
	err := errors.New(strings.Join(errs, "; "))
	if notFound {
		return "", &wrapped{err, ErrNotFound}
	}
	return "", err
}

type wrapped struct{ err, is error }

func (w *wrapped) Error() string { return w.err.Error() }
func (w *wrapped) Unwrap() error { return w.is }

func (d *Debuginfod) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return http.DefaultClient
}

func (d *Debuginfod) stall() time.Duration {
	if d.Stall > 0 {
		return d.Stall
	}
	return 90 * time.Second
}

// fetchOne downloads one URL into the cache.
func (d *Debuginfod) fetchOne(ctx context.Context, url, id string) (string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := d.stall()
	errStall := fmt.Errorf("no data for %v", stall)
	timer := time.AfterFunc(stall, func() { cancel(errStall) })
	defer timer.Stop()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := d.client().Do(req)
	if err != nil {
		if c := context.Cause(ctx); c == errStall {
			err = c
		}
		return "", fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("%s: %s: %w", url, resp.Status, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	total := resp.ContentLength
	progress := func(done int64) {
		timer.Reset(stall)
		if d.Progress != nil {
			d.Progress(url, done, total)
		}
	}
	p, err := d.Cache.Put(id, &stallReader{r: resp.Body, timer: timer, stall: stall}, total, progress)
	if err != nil {
		if c := context.Cause(ctx); c == errStall {
			err = fmt.Errorf("%w (%v)", c, err)
		}
		return "", fmt.Errorf("%s: %w", url, err)
	}
	if d.Progress != nil {
		d.Progress(url, total, total)
	}
	return p, nil
}

// stallReader pushes the stall timer back on every read that brings bytes.
type stallReader struct {
	r interface {
		Read([]byte) (int, error)
	}
	timer *time.Timer
	stall time.Duration
}

func (s *stallReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if n > 0 {
		s.timer.Reset(s.stall)
	}
	return n, err
}
