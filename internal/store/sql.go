package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Dialect is what differs between the SQL databases the store runs on.
type Dialect struct {
	Name string
	// Numbered placeholders ($1, $2 …) instead of '?'.
	Numbered bool
}

// SQL implements Store on database/sql with portable SQL (upserts with ON CONFLICT,
// RETURNING), times as Unix milliseconds and booleans as integers.
type SQL struct {
	db *sql.DB
	d  Dialect
}

// NewSQL wraps an open database whose schema is migrated.
func NewSQL(db *sql.DB, d Dialect) *SQL { return &SQL{db: db, d: d} }

// DB returns the underlying database.
func (s *SQL) DB() *sql.DB { return s.db }

func (s *SQL) q(query string) string {
	if !s.d.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Migrate applies the migrations in dir of fsys (files NNN_name.sql, in order) that
// the database has not seen, each in its own transaction, recording them in
// schema_migrations.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	s := &SQL{db: db, d: d}
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: no version number", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM schema_migrations WHERE version = ?`), v).Scan(&one)
		if err == nil {
			tx.Rollback()
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", name, err)
		}
		for _, stmt := range strings.Split(string(body), ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w", name, err)
			}
		}
		// Another collector may have applied it concurrently: the primary key says so.
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), v, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// SaveReport implements Store.
func (s *SQL) SaveReport(ctx context.Context, r *Report) (int64, bool, error) {
	r = cleanReport(r)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("save report: %w", err)
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO reports (rkey, host, received, kind, title, signature, kernel_release, corrupted, panicked, text, context, parsed, sources)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rkey) DO NOTHING RETURNING id`),
		r.Key, r.Host, ms(r.Time), r.Kind, r.Title, r.Signature, r.Release, b2i(r.Corrupted), b2i(r.Panicked),
		r.Text, r.Context, string(r.Parsed), r.Source).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var sources string
		err = tx.QueryRowContext(ctx, s.q(`SELECT id, sources FROM reports WHERE rkey = ?`), r.Key).Scan(&id, &sources)
		if err != nil {
			return 0, false, fmt.Errorf("save report: %w", err)
		}
		// The same report again: remember the way it came this time.
		if merged := MergeSources(sources, r.Source); merged != sources {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE reports SET sources = ? WHERE id = ?`), merged, id); err != nil {
				return 0, false, fmt.Errorf("save report: %w", err)
			}
		}
		return id, false, tx.Commit()
	}
	if err != nil {
		return 0, false, fmt.Errorf("save report: %w", err)
	}
	t := ms(r.Time)
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO crash_groups (signature, title, kind, count, first_seen, last_seen) VALUES (?, ?, ?, 1, ?, ?)
		  ON CONFLICT (signature) DO UPDATE SET count = crash_groups.count + 1,
		  first_seen = CASE WHEN excluded.first_seen < crash_groups.first_seen THEN excluded.first_seen ELSE crash_groups.first_seen END,
		  last_seen = CASE WHEN excluded.last_seen > crash_groups.last_seen THEN excluded.last_seen ELSE crash_groups.last_seen END`,
			[]any{r.Signature, r.Title, r.Kind, t, t}},
		{`INSERT INTO group_hosts (signature, host) VALUES (?, ?) ON CONFLICT DO NOTHING`, []any{r.Signature, r.Host}},
		{`INSERT INTO hosts (id, name, kernel_release, first_seen, last_seen, last_boot, last_panic, reports) VALUES (?, ?, ?, ?, ?, 0, ?, 1)
		  ON CONFLICT (id) DO UPDATE SET reports = hosts.reports + 1,
		  last_panic = CASE WHEN excluded.last_panic > hosts.last_panic THEN excluded.last_panic ELSE hosts.last_panic END`,
			[]any{r.Host, r.Host, r.Release, t, t, ms(panicTime(r))}},
	}
	if r.Release != "" {
		stmts = append(stmts, struct {
			q    string
			args []any
		}{`INSERT INTO group_releases (signature, kernel_release) VALUES (?, ?) ON CONFLICT DO NOTHING`, []any{r.Signature, r.Release}})
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, s.q(st.q), st.args...); err != nil {
			return 0, false, fmt.Errorf("save report: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("save report: %w", err)
	}
	return id, true, nil
}

func panicTime(r *Report) time.Time {
	if r.Panicked {
		return r.Time
	}
	return time.Time{}
}

// SeeHosts implements Store.
func (s *SQL) SeeHosts(ctx context.Context, hs []HostSeen) error {
	if len(hs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("see hosts: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, s.q(`INSERT INTO hosts (id, name, kernel_release, first_seen, last_seen, last_boot, last_panic, reports) VALUES (?, ?, ?, ?, ?, ?, 0, 0)
		ON CONFLICT (id) DO UPDATE SET
		name = CASE WHEN excluded.name <> excluded.id THEN excluded.name ELSE hosts.name END,
		kernel_release = CASE WHEN excluded.kernel_release <> '' THEN excluded.kernel_release ELSE hosts.kernel_release END,
		last_seen = CASE WHEN excluded.last_seen > hosts.last_seen THEN excluded.last_seen ELSE hosts.last_seen END,
		last_boot = CASE WHEN excluded.last_boot > hosts.last_boot THEN excluded.last_boot ELSE hosts.last_boot END`))
	if err != nil {
		return fmt.Errorf("see hosts: %w", err)
	}
	defer st.Close()
	for _, h := range hs {
		name := h.Name
		if name == "" {
			name = h.ID
		}
		if _, err := st.ExecContext(ctx, h.ID, name, h.Release, ms(h.Seen), ms(h.Seen), ms(h.Boot)); err != nil {
			return fmt.Errorf("see host %s: %w", h.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("see hosts: %w", err)
	}
	return nil
}

const hostCols = `id, name, kernel_release, first_seen, last_seen, last_boot, last_panic, reports`

func scanHost(sc interface{ Scan(...any) error }) (Host, error) {
	var h Host
	var fs, ls, lb, lp int64
	err := sc.Scan(&h.ID, &h.Name, &h.Release, &fs, &ls, &lb, &lp, &h.Reports)
	h.FirstSeen, h.LastSeen, h.LastBoot, h.LastPanic = fromMS(fs), fromMS(ls), fromMS(lb), fromMS(lp)
	return h, err
}

// Hosts implements Store.
func (s *SQL) Hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+hostCols+` FROM hosts ORDER BY last_seen DESC, id LIMIT 20000`)
	if err != nil {
		return nil, fmt.Errorf("hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("hosts: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Host implements Store.
func (s *SQL) Host(ctx context.Context, id string) (*Host, error) {
	h, err := scanHost(s.db.QueryRowContext(ctx, s.q(`SELECT `+hostCols+` FROM hosts WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", id, err)
	}
	return &h, nil
}

// Groups implements Store.
func (s *SQL) Groups(ctx context.Context, limit int) ([]Group, error) {
	if limit <= 0 || limit > 5000 {
		limit = 500
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT signature, title, kind, count, first_seen, last_seen FROM crash_groups ORDER BY last_seen DESC, signature LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	var out []Group
	for rows.Next() {
		var g Group
		var fs, ls int64
		if err := rows.Scan(&g.Signature, &g.Title, &g.Kind, &g.Count, &fs, &ls); err != nil {
			rows.Close()
			return nil, fmt.Errorf("groups: %w", err)
		}
		g.FirstSeen, g.LastSeen = fromMS(fs), fromMS(ls)
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	for i := range out {
		if err := s.groupLists(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *SQL) groupLists(ctx context.Context, g *Group) error {
	list := func(q string) ([]string, error) {
		rows, err := s.db.QueryContext(ctx, s.q(q), g.Signature)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", g.Signature, err)
		}
		defer rows.Close()
		out := []string{}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, rows.Err()
	}
	var err error
	if g.Hosts, err = list(`SELECT host FROM group_hosts WHERE signature = ? ORDER BY host LIMIT 1000`); err != nil {
		return err
	}
	g.Releases, err = list(`SELECT kernel_release FROM group_releases WHERE signature = ? ORDER BY kernel_release LIMIT 1000`)
	return err
}

// Group implements Store.
func (s *SQL) Group(ctx context.Context, signature string) (*Group, error) {
	var g Group
	var fs, ls int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT signature, title, kind, count, first_seen, last_seen FROM crash_groups WHERE signature = ?`), signature).
		Scan(&g.Signature, &g.Title, &g.Kind, &g.Count, &fs, &ls)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	g.FirstSeen, g.LastSeen = fromMS(fs), fromMS(ls)
	return &g, s.groupLists(ctx, &g)
}

// Reports implements Store.
func (s *SQL) Reports(ctx context.Context, q ReportQuery) ([]Report, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	where, args := []string{"1 = 1"}, []any{}
	if q.Host != "" {
		where, args = append(where, "host = ?"), append(args, q.Host)
	}
	if q.Signature != "" {
		where, args = append(where, "signature = ?"), append(args, q.Signature)
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, host, received, kind, title, signature, kernel_release, corrupted, panicked FROM reports WHERE `+
		strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var r Report
		var t int64
		var c, p int
		if err := rows.Scan(&r.ID, &r.Host, &t, &r.Kind, &r.Title, &r.Signature, &r.Release, &c, &p); err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		r.Time, r.Corrupted, r.Panicked = fromMS(t), c != 0, p != 0
		out = append(out, r)
	}
	return out, rows.Err()
}

// Report implements Store.
func (s *SQL) Report(ctx context.Context, id int64) (*Report, error) {
	var r Report
	var t int64
	var c, p int
	var parsed string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, rkey, host, received, kind, title, signature, kernel_release, corrupted, panicked, text, context, parsed, sources FROM reports WHERE id = ?`), id).
		Scan(&r.ID, &r.Key, &r.Host, &t, &r.Kind, &r.Title, &r.Signature, &r.Release, &c, &p, &r.Text, &r.Context, &parsed, &r.Sources)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("report %d: %w", id, err)
	}
	r.Time, r.Corrupted, r.Panicked, r.Parsed = fromMS(t), c != 0, p != 0, []byte(parsed)
	r.Source, _, _ = strings.Cut(r.Sources, ",")
	if r.Source == "live" {
		r.Source = ""
	}
	return &r, nil
}

// ReportTimes implements Store.
func (s *SQL) ReportTimes(ctx context.Context, signature string, since time.Time) ([]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT received FROM reports WHERE signature = ? AND received >= ? ORDER BY received LIMIT 100000`), signature, ms(since))
	if err != nil {
		return nil, fmt.Errorf("report times: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, fromMS(t))
	}
	return out, rows.Err()
}

// Ping implements Store.
func (s *SQL) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements Store.
func (s *SQL) Close() error { return s.db.Close() }

// clean makes kernel text storable everywhere: PostgreSQL's TEXT takes neither NUL
// bytes nor invalid UTF-8, which a dying kernel may well print.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func cleanReport(r *Report) *Report {
	c := *r
	for _, p := range []*string{&c.Host, &c.Kind, &c.Title, &c.Signature, &c.Release, &c.Text, &c.Context, &c.Key, &c.Source} {
		*p = clean(*p)
	}
	c.Parsed = []byte(clean(string(c.Parsed)))
	return &c
}

// MergeSources adds source (a report's Source, "" meaning live) to a stored report's
// comma-separated sources (where "" means it was only heard live).
func MergeSources(sources, source string) string {
	if source == "" && sources == "" {
		return ""
	}
	if source == "" {
		source = "live"
	}
	if sources == "" {
		sources = "live"
	}
	for _, s := range strings.Split(sources, ",") {
		if s == source {
			return sources
		}
	}
	return sources + "," + source
}
