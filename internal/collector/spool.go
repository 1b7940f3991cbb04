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
	"time"

	"golang.org/x/sys/unix"

	"github.com/kcrash/kcrash/internal/store"
)

// spool is the durable hand-off between the collector and its store. A finished
// capture is appended and fsynced before it is analyzed (with the other captures
// of its tick: one fsync), its reports are appended and fsynced before they are
// queued for the store, then the capture is marked analyzed; each report is marked
// done once the store has it (stored, or found already stored). A report is thus on
// local disk, as text or as its capture, from at most one 20 ms tick after its
// capture completed, and before the collector depends on any other service. After
// a crash the captures not marked analyzed are analyzed again and the reports not
// marked done are stored again; the store's report key keeps a report stored just
// before the crash from being stored twice.
//
// The file is a sequence of lines, each written by one write(2):
//
//	C <crc32 of JSON, 8 hex digits> <spoolCapture JSON>
//	A <capture id>
//	R <crc32 of JSON, 8 hex digits> <spoolRecord JSON>
//	D <report key>
//
// A line cut short by a crash, or whose checksum does not match, is ignored: what
// it held had not gone further, since that follows the fsync.
type spool struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	lock    *os.File // PATH.lock, flocked while the spool is open
	size    int64
	pending map[string]int // report key → records spooled and not done
}

// spoolRecord is a report as spooled: store.Report keeps Key and Parsed out of JSON.
type spoolRecord struct {
	Key    string        `json:"key"`
	Parsed []byte        `json:"parsed,omitempty"`
	Report *store.Report `json:"report"`
}

// spoolCapture is a capture as spooled.
type spoolCapture struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	Release string    `json:"release,omitempty"`
	At      time.Time `json:"at"`
	Text    []byte    `json:"text"`
}

// spoolCompactBytes: once every spooled report is done and the file is larger, it
// is truncated.
const spoolCompactBytes = 1 << 20

// openSpool opens (creating) the spool at path and returns the captures it holds
// that are not analyzed and the reports that are not done, in spool order. The
// file is rewritten to hold only those.
func openSpool(path string) (_ *spool, _ []capture, _ []*store.Report, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, nil, fmt.Errorf("spool: %w", err)
	}
	// One collector per spool: a second would rewrite the file under the first.
	// The kernel drops the lock when its holder dies, kill -9 included.
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("spool: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, nil, fmt.Errorf("spool %s is in use by another collector", path)
		}
		return nil, nil, nil, fmt.Errorf("spool %s: lock: %w", path, err)
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	caps, pending, err := readSpool(path)
	if err != nil {
		return nil, nil, nil, err
	}
	// Rewrite: the pending captures and reports only, then rename over the old file.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{path: path, lock: lock, pending: map[string]int{}}
	w := bufio.NewWriter(f)
	for _, cp := range caps {
		line, err := captureLine(cp)
		if err != nil {
			f.Close()
			return nil, nil, nil, err
		}
		w.Write(line)
		s.size += int64(len(line))
		s.pending["C"+cp.id]++
	}
	for _, r := range pending {
		line, err := spoolLine(r)
		if err != nil {
			f.Close()
			return nil, nil, nil, err
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
		return nil, nil, nil, fmt.Errorf("spool %s: %w", path, err)
	}
	if s.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, nil, nil, fmt.Errorf("spool: %w", err)
	}
	return s, caps, pending, nil
}

// checked returns the JSON of a "X <crc> <json>" line when its checksum matches.
func checked(line []byte) ([]byte, bool) {
	if len(line) <= 12 || line[10] != ' ' {
		return nil, false
	}
	sum, err := strconv.ParseUint(string(line[2:10]), 16, 32)
	js := line[11:]
	return js, err == nil && uint32(sum) == crc32.ChecksumIEEE(js)
}

// readSpool returns the captures of the spool at path not marked analyzed and the
// reports not marked done.
func readSpool(path string) ([]capture, []*store.Report, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	var order []*store.Report
	var caps []capture
	done := map[string]int{}
	analyzed := map[string]int{}
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
		case bytes.HasPrefix(line, []byte("A ")):
			analyzed[string(line[2:])]++
		case bytes.HasPrefix(line, []byte("C ")):
			js, ok := checked(line)
			var sc spoolCapture
			if !ok || json.Unmarshal(js, &sc) != nil || sc.ID == "" {
				continue
			}
			caps = append(caps, capture{id: sc.ID, host: sc.Host, release: sc.Release, at: sc.At, text: sc.Text})
		case bytes.HasPrefix(line, []byte("R ")):
			js, ok := checked(line)
			if !ok {
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
	var pendingCaps []capture
	for _, cp := range caps {
		if analyzed[cp.id] > 0 {
			analyzed[cp.id]--
			continue
		}
		pendingCaps = append(pendingCaps, cp)
	}
	return pendingCaps, pending, nil
}

func captureLine(cp capture) ([]byte, error) {
	js, err := json.Marshal(spoolCapture{ID: cp.id, Host: cp.host, Release: cp.release, At: cp.at, Text: cp.text})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	line := make([]byte, 0, len(js)+12)
	line = append(line, "C "...)
	line = fmt.Appendf(line, "%08x ", crc32.ChecksumIEEE(js))
	line = append(line, js...)
	return append(line, '\n'), nil
}

// addCaptures appends cps and waits until they are on disk (one fsync).
func (s *spool) addCaptures(cps []capture) error {
	if len(cps) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	for _, cp := range cps {
		line, err := captureLine(cp)
		if err != nil {
			return err
		}
		buf = append(buf, line...)
	}
	if err := s.write(buf); err != nil {
		return err
	}
	for _, cp := range cps {
		s.pending["C"+cp.id]++
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	return nil
}

// write appends lines whole or not at all: a write cut short (a full disk) is
// truncated away, so the next line does not run into a piece of this one. The
// lock is held.
func (s *spool) write(lines []byte) error {
	n, err := s.f.Write(lines)
	if err != nil {
		if n > 0 {
			s.f.Truncate(s.size)
		}
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	s.size += int64(n)
	return nil
}

// analyzed marks the capture id analyzed: its reports are spooled. It is not
// synced: a mark lost to a crash costs one more analysis, whose reports the store
// already has or is given again (the same keys).
func (s *spool) analyzed(id string) error {
	return s.mark("C"+id, "A "+id)
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
	if err := s.write(line); err != nil {
		return err
	}
	s.pending[r.Key]++
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	return nil
}

// done marks the report with key stored. It is not synced: a mark lost to a crash
// costs one more SaveReport of an already stored report, which the store ignores.
func (s *spool) done(key string) error {
	return s.mark(key, "D "+key)
}

// mark writes line for the pending entry k (a report key, or "C" and a capture id).
func (s *spool) mark(k, mark string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[k] == 0 {
		return nil
	}
	if s.pending[k]--; s.pending[k] == 0 {
		delete(s.pending, k)
	}
	if len(s.pending) == 0 && s.size > spoolCompactBytes {
		// Every report spooled is stored: start the file over.
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("spool %s: %w", s.path, err)
		}
		s.size = 0
		return nil
	}
	return s.write(append([]byte(mark), '\n'))
}

// pendingCount is the number of spooled reports not yet stored and of spooled
// captures not yet analyzed.
func (s *spool) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.pending {
		n += c
	}
	return n
}

// Close closes the spool and releases its lock.
func (s *spool) Close() error {
	err := s.f.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

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
