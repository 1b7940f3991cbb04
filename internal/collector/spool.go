package collector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/kcrash/kcrash/internal/store"
)

// spool is the durable hand-off between the collector and its store: each report
// is appended to the spool file and fsynced before it is queued for the store, and
// marked done once the store has it (stored, or found already stored). A report is
// thus on local disk before the collector depends on any other service; after a
// crash, the reports not marked done are stored again, and the store's report key
// keeps one that was stored just before the crash from being stored twice.
//
// The file is a sequence of lines, each written by one write(2):
//
//	R <crc32 of JSON, 8 hex digits> <spoolRecord JSON>
//	D <report key>
//
// A line cut short by a crash, or whose checksum does not match, is ignored: its
// report had not been queued, since queueing follows the fsync.
type spool struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64
	pending map[string]int // report key → records spooled and not done
}

// spoolRecord is a report as spooled: store.Report keeps Key and Parsed out of JSON.
type spoolRecord struct {
	Key    string        `json:"key"`
	Parsed []byte        `json:"parsed,omitempty"`
	Report *store.Report `json:"report"`
}

// spoolCompactBytes: once every spooled report is done and the file is larger, it
// is truncated.
const spoolCompactBytes = 1 << 20

// openSpool opens (creating) the spool at path and returns the reports it holds
// that are not done, in spool order. The file is rewritten to hold only those.
func openSpool(path string) (*spool, []*store.Report, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	pending, err := readSpool(path)
	if err != nil {
		return nil, nil, err
	}
	// Rewrite: the pending reports only, then rename over the old file.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{path: path, pending: map[string]int{}}
	w := bufio.NewWriter(f)
	for _, r := range pending {
		line, err := spoolLine(r)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		w.Write(line)
		s.size += int64(len(line))
		s.pending[r.Key]++
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("spool %s: %w", path, err)
	}
	if s.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	return s, pending, nil
}

// readSpool returns the reports of the spool at path not marked done.
func readSpool(path string) ([]*store.Report, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var order []*store.Report
	done := map[string]int{}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // cut short by a crash
		}
		line := data[:i]
		data = data[i+1:]
		switch {
		case bytes.HasPrefix(line, []byte("D ")):
			done[string(line[2:])]++
		case bytes.HasPrefix(line, []byte("R ")) && len(line) > 12 && line[10] == ' ':
			sum, err := strconv.ParseUint(string(line[2:10]), 16, 32)
			js := line[11:]
			if err != nil || uint32(sum) != crc32.ChecksumIEEE(js) {
				continue
			}
			var rec spoolRecord
			if json.Unmarshal(js, &rec) != nil || rec.Report == nil || rec.Key == "" {
				continue
			}
			rec.Report.Key, rec.Report.Parsed = rec.Key, rec.Parsed
			order = append(order, rec.Report)
		}
	}
	var pending []*store.Report
	for _, r := range order {
		if done[r.Key] > 0 {
			done[r.Key]--
			continue
		}
		pending = append(pending, r)
	}
	return pending, nil
}

func spoolLine(r *store.Report) ([]byte, error) {
	js, err := json.Marshal(spoolRecord{Key: r.Key, Parsed: r.Parsed, Report: r})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	line := make([]byte, 0, len(js)+12)
	line = append(line, "R "...)
	line = fmt.Appendf(line, "%08x ", crc32.ChecksumIEEE(js))
	line = append(line, js...)
	return append(line, '\n'), nil
}

// add appends r and waits until it is on disk.
func (s *spool) add(r *store.Report) error {
	line, err := spoolLine(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(line); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	s.size += int64(len(line))
	s.pending[r.Key]++
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	return nil
}

// done marks the report with key stored. It is not synced: a mark lost to a crash
// costs one more SaveReport of an already stored report, which the store ignores.
func (s *spool) done(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[key] == 0 {
		return nil
	}
	if s.pending[key]--; s.pending[key] == 0 {
		delete(s.pending, key)
	}
	if len(s.pending) == 0 && s.size > spoolCompactBytes {
		// Every report spooled is stored: start the file over.
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("spool %s: %w", s.path, err)
		}
		s.size = 0
		return nil
	}
	line := append(append([]byte("D "), key...), '\n')
	if _, err := s.f.Write(line); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	s.size += int64(len(line))
	return nil
}

// pendingCount is the number of spooled reports not yet stored.
func (s *spool) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.pending {
		n += c
	}
	return n
}

func (s *spool) Close() error { return s.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
