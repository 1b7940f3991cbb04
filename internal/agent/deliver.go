package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Stored is a report the collector acknowledged (POST /api/agent/reports's answer).
type Stored struct {
	ID      int64  `json:"id"`
	Created bool   `json:"created"`
	Title   string `json:"title"`
	Source  string `json:"source"`
}

// ErrNoReport is the collector's answer to a log without a crash report (422).
var ErrNoReport = errors.New("the collector found no crash report in it")

// Client sends dumps to a collector.
type Client struct {
	Server string // base URL of kcrash serve
	Token  string // its write token
	Host   string // the host name the reports are filed under
	HTTP   *http.Client
}

// Send uploads one dump and returns the stored reports. Only a 200 with at least one
// report ID is an acknowledgement; anything else is an error (to retry later).
func (c *Client) Send(ctx context.Context, d Dump) ([]Stored, error) {
	u := strings.TrimSuffix(c.Server, "/") + "/api/agent/reports?host=" + url.QueryEscape(c.Host) + "&source=" + url.QueryEscape(d.Source)
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(d.Text))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Idempotency-Key", d.Key)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnprocessableEntity:
		return nil, ErrNoReport
	default:
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var ack struct {
		Reports []Stored `json:"reports"`
	}
	if err := json.Unmarshal(body, &ack); err != nil {
		return nil, fmt.Errorf("the collector's answer: %w", err)
	}
	if len(ack.Reports) == 0 {
		return nil, errors.New("the collector answered without report IDs")
	}
	for _, r := range ack.Reports {
		if r.ID <= 0 {
			return nil, fmt.Errorf("the collector answered report ID %d", r.ID)
		}
	}
	return ack.Reports, nil
}

// Entry is what the journal keeps of a delivered dump.
type Entry struct {
	Source   string   `json:"source"`
	Files    []string `json:"files"`
	Reports  []Stored `json:"reports,omitempty"`
	NoReport bool     `json:"no_report,omitempty"` // the collector found no report: kept, not resent
	// DumpUploaded says the vmcore next to a kdump log was uploaded completely.
	DumpUploaded bool      `json:"dump_uploaded,omitempty"`
	At           time.Time `json:"at"`
}

// Journal records the dumps delivered, by key, in a JSON file replaced atomically
// (written to a temporary file, synced, renamed), so an agent killed at any point
// finds it either before or after a delivery, never half-way.
type Journal struct {
	path string
	mu   sync.Mutex
	Done map[string]Entry
}

// OpenJournal reads the journal at path (a missing file is an empty journal).
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path, Done: map[string]Entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &j.Done); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// Has says a dump was delivered (or refused as holding no report).
func (j *Journal) Has(key string) (Entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.Done[key]
	return e, ok
}

// Mark records a delivery and writes the journal out before returning.
func (j *Journal) Mark(key string, e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.Done[key] = e
	data, err := json.MarshalIndent(j.Done, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), ".journal-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), j.path)
}

// Agent delivers a host's pstore records and kdump logs.
type Agent struct {
	Client    *Client
	Journal   *Journal
	PstoreDir string // "" for none
	CrashDir  string // "" for none
	// UploadVmcore also uploads the dump file next to a kdump log (resumable, in
	// chunks of Chunk bytes) once the log is delivered.
	UploadVmcore bool
	Chunk        int64
	// Log, when set, is told what happens (the command prints it).
	Log func(format string, args ...any)
}

// Outcome is one dump's fate in a run.
type Outcome struct {
	Key     string   `json:"key"`
	Source  string   `json:"source"`
	Files   []string `json:"files"`
	Reports []Stored `json:"reports,omitempty"`
	// State: "delivered", "already delivered", "no report", "failed".
	State string `json:"state"`
	// Dump is "uploaded" when the vmcore went up in this run.
	Dump string `json:"dump,omitempty"`
	Err  string `json:"error,omitempty"`
}

func (a *Agent) log(format string, args ...any) {
	if a.Log != nil {
		a.Log(format, args...)
	}
}

// RunOnce reads what is there and delivers each dump not yet delivered, removing a
// pstore record only once the collector acknowledged its reports (and the journal
// says so). It returns every dump's outcome and an error when any is undelivered.
func (a *Agent) RunOnce(ctx context.Context) ([]Outcome, error) {
	var dumps []Dump
	var bad []error
	if a.PstoreDir != "" {
		d, b := ReadPstore(a.PstoreDir, a.Client.Host)
		dumps, bad = append(dumps, d...), append(bad, b...)
	}
	if a.CrashDir != "" {
		d, b := ReadCrashDir(a.CrashDir, a.Client.Host)
		dumps, bad = append(dumps, d...), append(bad, b...)
	}
	for _, err := range bad {
		a.log("skipping: %v", err)
	}
	var out []Outcome
	failed := 0
	for _, d := range dumps {
		o := Outcome{Key: d.Key, Source: d.Source, Files: d.Files}
		if e, ok := a.Journal.Has(d.Key); ok {
			o.State, o.Reports = "already delivered", e.Reports
			if e.NoReport {
				o.State = "no report"
			} else if d.Source == "pstore" {
				a.remove(d) // killed after the journal was written, before the removal
			}
			if !a.uploadCore(ctx, d, &o) {
				failed++
			}
			out = append(out, o)
			continue
		}
		stored, err := a.Client.Send(ctx, d)
		switch {
		case errors.Is(err, ErrNoReport):
			o.State = "no report"
			a.log("%s: %v; kept", strings.Join(d.Files, " "), err)
			if err := a.Journal.Mark(d.Key, Entry{Source: d.Source, Files: d.Files, NoReport: true, At: time.Now().UTC()}); err != nil {
				return out, err
			}
		case err != nil:
			o.State, o.Err = "failed", err.Error()
			failed++
			a.log("%s: not delivered: %v", strings.Join(d.Files, " "), err)
		default:
			o.State, o.Reports = "delivered", stored
			if err := a.Journal.Mark(d.Key, Entry{Source: d.Source, Files: d.Files, Reports: stored, At: time.Now().UTC()}); err != nil {
				return out, err
			}
			for _, r := range stored {
				a.log("%s: report %d (%s)%s", strings.Join(d.Files, " "), r.ID, r.Title, map[bool]string{false: " already stored"}[r.Created])
			}
			if d.Source == "pstore" {
				a.remove(d)
			}
			if !a.uploadCore(ctx, d, &o) {
				failed++
			}
		}
		out = append(out, o)
	}
	if failed > 0 {
		return out, fmt.Errorf("%d of %d crash logs not delivered", failed, len(dumps))
	}
	return out, nil
}

// uploadCore uploads a delivered kdump log's vmcore when asked and not done yet; it
// returns false when the upload failed (to be resumed next run).
func (a *Agent) uploadCore(ctx context.Context, d Dump, o *Outcome) bool {
	if !a.UploadVmcore || d.Source != "kdump" || len(d.Files) < 2 {
		return true
	}
	e, ok := a.Journal.Has(d.Key)
	if !ok || e.NoReport || e.DumpUploaded {
		return true
	}
	var ids []int64
	for _, r := range e.Reports {
		ids = append(ids, r.ID)
	}
	if err := a.Client.UploadDump(ctx, d.Key, d.Files[1], a.Chunk, ids...); err != nil {
		o.State, o.Err = "failed", "vmcore upload: "+err.Error()
		a.log("%s: vmcore not uploaded yet: %v", d.Files[1], err)
		return false
	}
	e.DumpUploaded = true
	if err := a.Journal.Mark(d.Key, e); err != nil {
		o.State, o.Err = "failed", err.Error()
		return false
	}
	o.Dump = "uploaded"
	a.log("%s: vmcore uploaded", d.Files[1])
	return true
}

// remove erases a delivered dump's pstore records (which frees the backend's space).
func (a *Agent) remove(d Dump) {
	for _, f := range d.Files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log("removing %s: %v", f, err)
		}
	}
}
