// Package store keeps what the collector learns: hosts, crash reports and the
// groups reports form by signature. Store is the one interface; store/sqlite (the
// embedded default) and store/postgres (a server several collectors can share)
// implement it on top of SQL, with their schema migrations embedded and applied by
// Open.
package store

import (
	"context"
	"errors"
	"time"
)

// Host is one netconsole source (or an imported log's host name).
type Host struct {
	// ID is the key: the source address ("10.0.0.5:6665"), or the name given to
	// `kcrash ingest`.
	ID string `json:"id"`
	// Name is the hostname the host sent in its userdata, else the ID.
	Name      string    `json:"name"`
	Release   string    `json:"release,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// LastBoot is when the host last started a new boot (a sequence reset).
	LastBoot time.Time `json:"last_boot,omitzero"`
	// LastPanic is when the host's last report that ended in a panic was received.
	LastPanic time.Time `json:"last_panic,omitzero"`
	Reports   int       `json:"reports"`
}

// State is how a host looks: "crashed" (its last boot ended in a panic), "alive"
// (heard from within silentAfter) or "silent".
func (h *Host) State(now time.Time, silentAfter time.Duration) string {
	switch {
	case !h.LastPanic.IsZero() && !h.LastPanic.Before(h.LastBoot):
		return "crashed"
	case now.Sub(h.LastSeen) <= silentAfter:
		return "alive"
	}
	return "silent"
}

// Report is one stored crash report.
type Report struct {
	ID int64 `json:"id"`
	// Key identifies the report for de-duplication: the same report received twice
	// (a ring buffer replay, a re-imported log) has the same key and is stored once.
	Key       string    `json:"-"`
	Host      string    `json:"host"`
	Time      time.Time `json:"time"` // when the collector received it
	Kind      string    `json:"kind"`
	Title     string    `json:"title"`
	Signature string    `json:"signature"`
	Release   string    `json:"release,omitempty"`
	Corrupted bool      `json:"corrupted"`
	Panicked  bool      `json:"panicked"`
	// Text is the report as the console printed it; Context the lines before it.
	Text    string `json:"text,omitempty"`
	Context string `json:"context,omitempty"`
	// Parsed is the oops.Report as JSON.
	Parsed []byte `json:"-"`
	// Source says how the report arrived: "" live (netconsole, an ingested log), or
	// what carried it after the reboot ("pstore", "kdump"). Sources lists every way
	// the same report arrived ("live,pstore" when heard live and read from pstore).
	Source  string `json:"source,omitempty"`
	Sources string `json:"sources,omitempty"`
}

// Group is the reports of one signature.
type Group struct {
	Signature string    `json:"signature"`
	Title     string    `json:"title"`
	Kind      string    `json:"kind"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Hosts     []string  `json:"hosts"`
	Releases  []string  `json:"releases"`
}

// ReportQuery selects reports, newest first.
type ReportQuery struct {
	Host      string // only this host's
	Signature string // only this group's
	Before    int64  // only IDs below this (paging); 0 for the newest
	Limit     int    // at most this many (default 100, at most 1000)
}

// HostSeen is a batched update of a host's last contact.
type HostSeen struct {
	ID, Name, Release string
	Seen              time.Time
	Boot              time.Time // zero when no new boot started
}

// ErrNotFound is returned for a missing report or group.
var ErrNotFound = errors.New("not found")

// Store is the collector's database.
type Store interface {
	// SaveReport stores r and counts it in its group, in one transaction. A report
	// whose Key is already stored is not stored again: created is false and id is
	// the stored report's.
	SaveReport(ctx context.Context, r *Report) (id int64, created bool, err error)
	// SeeHosts records contact with hosts, creating them as needed.
	SeeHosts(ctx context.Context, hs []HostSeen) error
	Hosts(ctx context.Context) ([]Host, error)
	Host(ctx context.Context, id string) (*Host, error)
	// Groups returns the groups, most recently seen first (at most limit; 0 for 500).
	Groups(ctx context.Context, limit int) ([]Group, error)
	Group(ctx context.Context, signature string) (*Group, error)
	// Reports returns report summaries (no Text, Context or Parsed), newest first.
	Reports(ctx context.Context, q ReportQuery) ([]Report, error)
	// Report returns one whole report.
	Report(ctx context.Context, id int64) (*Report, error)
	// ReportTimes returns when the group's reports arrived since a time, for charts.
	ReportTimes(ctx context.Context, signature string, since time.Time) ([]time.Time, error)
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	Close() error
}
