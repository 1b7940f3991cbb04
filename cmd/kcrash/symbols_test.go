package main

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/symbols"
)

// TestMain keeps the commands under test from reaching for symbols on the network:
// no Debian -dbg package downloads (hundreds of MB) and no debuginfod servers.
func TestMain(m *testing.M) {
	os.Setenv("KCRASH_DBG_PACKAGES", "0")
	os.Unsetenv("DEBUGINFOD_URLS")
	os.Exit(m.Run())
}

// slowSource answers after release is closed, counting the queries.
type slowSource struct {
	release chan struct{}
	asked   atomic.Int32
}

func (s *slowSource) Name() string { return "slow" }
func (s *slowSource) Find(ctx context.Context, q symbols.Query) (string, error) {
	s.asked.Add(1)
	select {
	case <-s.release:
		return "/found/" + q.Release, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// TestFindVmlinuxOutlivesThePage: a fetch slower than the page's deadline is not
// cancelled with the page; the page says it is under way, and a later view finds it.
func TestFindVmlinuxOutlivesThePage(t *testing.T) {
	src := &slowSource{release: make(chan struct{})}
	find := findVmlinux(&symbols.Lookup{Sources: []symbols.Source{src}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := find(ctx, "6.1.0-57-amd64"); err == nil || !strings.Contains(err.Error(), "still being fetched") {
		t.Fatalf("first view: %v", err)
	}
	close(src.release)
	p, err := find(context.Background(), "6.1.0-57-amd64")
	if err != nil || p != "/found/6.1.0-57-amd64" {
		t.Fatalf("later view: %q %v", p, err)
	}
}
