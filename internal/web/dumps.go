package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Resumable dump uploads from kcrash agent (--upload-vmcore), under Options.DumpDir:
//
//	GET  /api/agent/dumps/{key}                   {"size": bytes received, "complete": bool}
//	PUT  /api/agent/dumps/{key}?offset=N          append the body at N (409 with the size when N is not it)
//	POST /api/agent/dumps/{key}/complete?size=&sha256=   check and keep it as KEY.vmcore
//
// A dump is received into KEY.part and renamed once its size and SHA-256 match; no
// upload may grow past Options.DumpMax (413).

var dumpKeyRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

var dumpMu sync.Mutex // one writer at a time per server (appends are short)

func (s *Server) dumpPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kcrash"`)
		http.Error(w, "a valid token is needed (serve --token)", http.StatusUnauthorized)
		return "", false
	}
	if s.o.DumpDir == "" {
		http.Error(w, "this server takes no dumps (serve --dumps)", http.StatusNotFound)
		return "", false
	}
	key := r.PathValue("key")
	if !dumpKeyRE.MatchString(key) {
		http.Error(w, "bad dump key", http.StatusBadRequest)
		return "", false
	}
	return filepath.Join(s.o.DumpDir, key), true
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (s *Server) dumpStatus(w http.ResponseWriter, r *http.Request) {
	base, ok := s.dumpPath(w, r)
	if !ok {
		return
	}
	if fi, err := os.Stat(base + ".vmcore"); err == nil {
		writeJSON(w, map[string]any{"size": fi.Size(), "complete": true})
		return
	}
	writeJSON(w, map[string]any{"size": fileSize(base + ".part"), "complete": false})
}

func (s *Server) dumpAppend(w http.ResponseWriter, r *http.Request) {
	base, ok := s.dumpPath(w, r)
	if !ok {
		return
	}
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		http.Error(w, "need ?offset=N", http.StatusBadRequest)
		return
	}
	dumpMu.Lock()
	defer dumpMu.Unlock()
	if err := os.MkdirAll(s.o.DumpDir, 0o750); err != nil {
		fail(w, err)
		return
	}
	part := base + ".part"
	size := fileSize(part)
	if offset != size {
		w.WriteHeader(http.StatusConflict)
		writeJSON(w, map[string]any{"size": size, "complete": false})
		return
	}
	room := s.o.DumpMax - size
	if r.ContentLength > room {
		http.Error(w, fmt.Sprintf("the dump would exceed %d bytes", s.o.DumpMax), http.StatusRequestEntityTooLarge)
		return
	}
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		fail(w, err)
		return
	}
	n, err := io.Copy(f, io.LimitReader(r.Body, room+1))
	if err == nil && n > room {
		err = fmt.Errorf("the dump would exceed %d bytes", s.o.DumpMax)
	}
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		// Keep only what arrived whole: cut back to where this chunk started.
		os.Truncate(part, size)
		status := http.StatusBadRequest
		if n > room {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	writeJSON(w, map[string]any{"size": size + n, "complete": false})
}

func (s *Server) dumpComplete(w http.ResponseWriter, r *http.Request) {
	base, ok := s.dumpPath(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	want, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil {
		http.Error(w, "need ?size=N&sha256=H", http.StatusBadRequest)
		return
	}
	dumpMu.Lock()
	defer dumpMu.Unlock()
	if fileSize(base+".vmcore") == want && want > 0 {
		writeJSON(w, map[string]any{"size": want, "complete": true})
		return
	}
	got, sum, err := hashFile(base + ".part")
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if got != want || sum != q.Get("sha256") {
		http.Error(w, fmt.Sprintf("received %d bytes with SHA-256 %s, not %d with %s", got, sum, want, q.Get("sha256")), http.StatusConflict)
		return
	}
	if err := os.Rename(base+".part", base+".vmcore"); err != nil {
		fail(w, err)
		return
	}
	linkReports(s.o.DumpDir, filepath.Base(base)+".vmcore", q.Get("reports"))
	writeJSON(w, map[string]any{"size": got, "complete": true})
}

// linkReports makes DIR/report-ID.vmcore point at a completed dump for each stored
// report ID the agent names (the reports its log was acknowledged with).
func linkReports(dir, name, ids string) {
	for _, f := range strings.Split(ids, ",") {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id <= 0 {
			continue
		}
		link := filepath.Join(dir, fmt.Sprintf("report-%d.vmcore", id))
		os.Remove(link)
		os.Symlink(name, link)
	}
}

// reportDump returns the dump uploaded for a report, or "".
func (s *Server) reportDump(id int64) string {
	if s.o.DumpDir == "" {
		return ""
	}
	p := filepath.Join(s.o.DumpDir, fmt.Sprintf("report-%d.vmcore", id))
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}

// reportVmcore serves a report's uploaded dump (GET /reports/{id}/vmcore).
func (s *Server) reportVmcore(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	p := s.reportDump(id)
	if p == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=report-%d.vmcore", id))
	http.ServeFile(w, r, p)
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", errors.New("nothing received")
	}
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}
