// Package postgres opens a PostgreSQL database for collectors that share one
// store, through github.com/jackc/pgx/v5's database/sql driver.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/kcrash/kcrash/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var Dialect = store.Dialect{Name: "postgres", Numbered: true}

// migrationLock is the advisory lock collectors take while migrating, so two
// starting at once do not both create the tables.
const migrationLock = 0x6b637261 // "kcra"

// Open connects to dsn (postgres://user@host/db?…) and applies the migrations.
func Open(ctx context.Context, dsn string) (*store.SQL, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return store.NewSQL(db, Dialect), nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock)
	sub, _ := fs.Sub(migrations, "migrations")
	return store.Migrate(ctx, db, sub, Dialect)
}
