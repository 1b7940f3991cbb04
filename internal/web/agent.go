package web

import (
	"context"
	"io"
	"net/http"
	"regexp"

	"github.com/kcrash/kcrash/internal/collector"
)

// AfterBoot is what the server needs of the collector for kcrash agent's uploads.
type AfterBoot interface {
	IngestReports(ctx context.Context, host, source string, text []byte) ([]collector.Stored, error)
}

var sourceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// agentReports takes a log a host read after its reboot (POST
// /api/agent/reports?host=H&source=pstore|kdump, the text as the body, the write
// token), stores its reports before answering, and answers 200 with their IDs
// ({"reports":[{"id","created","title","source"}]}) or 422 when the text holds no
// report. The agent deletes its copy only on a 200 with IDs; an upload repeated
// (the agent killed before it saw the answer) is stored once.
func (s *Server) agentReports(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kcrash"`)
		http.Error(w, "a valid token is needed (serve --token)", http.StatusUnauthorized)
		return
	}
	ab, ok := s.o.Pipeline.(AfterBoot)
	if !ok {
		http.Error(w, "this server takes no agent uploads", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	host, source := q.Get("host"), q.Get("source")
	if host == "" || len(host) > 255 || !sourceRE.MatchString(source) {
		http.Error(w, "need ?host=NAME&source=pstore|kdump", http.StatusBadRequest)
		return
	}
	text, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxIngest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	stored, err := ab.IngestReports(r.Context(), host, source, text)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if len(stored) == 0 {
		http.Error(w, "no crash report in the upload", http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, map[string]any{"reports": stored})
}
