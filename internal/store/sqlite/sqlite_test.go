package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kcrash.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, s)
	s.Close()
	// Reopening applies no migration twice and keeps the data.
	s, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, err := s.Groups(context.Background(), 0)
	if err != nil || len(g) != 2 {
		t.Fatalf("after reopening: %d groups, %v", len(g), err)
	}
}

func TestSources(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "kcrash.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.RunSources(t, s)
}
