// Package sqlite opens the collector's embedded SQLite database.
//
// It uses modernc.org/sqlite, SQLite translated to Go: no cgo and no C toolchain,
// so `go install` and a static kcrash binary work everywhere; the cost is about
// half of the C library's speed, far more than a crash collector writes.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/kcrash/kcrash/internal/store"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's.
var Dialect = store.Dialect{Name: "sqlite"}

// Open opens (creating it and its directory) the database file at path, in WAL
// mode with a busy timeout, and applies the migrations.
func Open(ctx context.Context, path string) (*store.SQL, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; one connection keeps it simple and
	// leaves no "database is locked" to retry.
	db.SetMaxOpenConns(1)
	sub, _ := fs.Sub(migrations, "migrations")
	if err := store.Migrate(ctx, db, sub, Dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return store.NewSQL(db, Dialect), nil
}
