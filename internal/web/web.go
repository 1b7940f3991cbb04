// Package web serves kcrash serve's dashboard, JSON API, live tail and metrics.
//
// Everything shown comes from kernels and is untrusted: pages are html/template
// (contextual escaping), the live tail inserts text nodes, JSON is encoded by
// encoding/json, and every response carries a Content-Security-Policy that allows
// no script but the page's own. Write endpoints need the bearer token.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/fleet"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/symbols"
)

// Decoder turns a report into decoded text (source lines for the frames and an
// explanation of the fault) using the kernel image vmlinux. kcrash decode provides
// the real one; the page shows the parsed frames, registers and code without it.
type Decoder interface {
	Decode(ctx context.Context, r *oops.Report, vmlinux string) (string, error)
}

// Pipeline is what the server needs of the collector.
type Pipeline interface {
	Tail(host string) (<-chan []byte, func())
	Context(host string) []byte
	Ingest(host string, r io.Reader) error
}

// Options configure the server.
type Options struct {
	Store    store.Store
	Pipeline Pipeline // nil: no live tail and no ingest
	// Token guards the write endpoints (POST /api/ingest); empty disables them.
	// It is taken from the Authorization header only (Bearer), never from a URL.
	Token string
	// ReadToken, when set, guards everything else but /healthz: pages, API, live
	// tail and metrics need it (or Token) as a Bearer token, or as the password of
	// HTTP Basic authentication (what a browser prompts for).
	ReadToken string
	// Symbols is a directory searched for a vmlinux per release (see FindVmlinux).
	Symbols string
	// FindVmlinux, when set, finds a release's vmlinux instead of FindVmlinux(Symbols):
	// the symbol sources (a local tree, debuginfod, distribution packages).
	FindVmlinux func(ctx context.Context, release string) (string, error)
	// DumpDir receives kcrash agent's vmcore uploads (see dumps.go); "" refuses them.
	// DumpMax caps one dump's size.
	DumpDir string
	DumpMax int64
	// Vmcore, when set, answers crash commands (sys, bt, explain) about a report's
	// uploaded dump for its page (kcrash vmcore, symbols found by the dump's build ID).
	Vmcore  func(ctx context.Context, dump string, cmds []string) (string, error)
	Decoder Decoder
	// SilentAfter is how long without a line makes a host "silent" (10 minutes).
	SilentAfter time.Duration
	// Metrics writes the Prometheus text exposition of the collector's counters.
	Metrics func(w io.Writer)
	// DecodeErrors counts failed decodes, for the metrics.
	DecodeErrors func()
	// Warnings lists the collector's troubles now (raw logs shed to a full disk, a
	// failing store, reports waiting in the spool), shown atop the dashboard.
	Warnings func() []string
	// Fleet gives groups and hosts their verdicts, releases and names; nil for none.
	Fleet *fleet.Engine
}

//go:embed templates/*.html templates/tail.js
var templateFS embed.FS

// Server is the HTTP handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	tpl *template.Template
}

// New returns the server for o.
func New(o Options) *Server {
	if o.SilentAfter <= 0 {
		o.SilentAfter = 10 * time.Minute
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.tpl = template.Must(template.New("").Funcs(template.FuncMap{
		"ago":   ago,
		"short": func(s string) string { return shorten(s, 12) },
		"chart": chart,
		"state": func(h store.Host) string { return h.State(time.Now(), o.SilentAfter) },
		"hex":   func(v uint64) string { return fmt.Sprintf("%016x", v) },
		"join":  func(v []string) string { return strings.Join(v, ", ") },
		// campaign pages (campaign.go)
		"seconds":  seconds,
		"ratePer":  ratePer,
		"percent":  percent,
		"times":    times,
		"ttcChart": ttcChart,
		// bisection pages (bisect.go)
		"bisectTimeline": bisectTimeline,
		"posteriorChart": posteriorChart,
		"pct":            func(v float64) float64 { return 100 * v },
		// fleet pages (fleet.go)
		"releaseChart": releaseChart,
		"hours":        hours,
		"hostName":     s.hostName,
	}).ParseFS(templateFS, "templates/*.html"))
	m := s.mux
	m.HandleFunc("GET /{$}", s.index)
	m.HandleFunc("GET /groups/{sig}", s.groupPage)
	m.HandleFunc("GET /reports/{id}", s.reportPage)
	m.HandleFunc("GET /hosts/{id}", s.hostPage)
	m.HandleFunc("GET /campaigns", s.campaignsPage)
	m.HandleFunc("GET /campaigns/{id}", s.campaignPage)
	m.HandleFunc("GET /api/campaigns", s.apiCampaigns)
	m.HandleFunc("GET /api/campaigns/{id}", s.apiCampaign)
	m.HandleFunc("GET /api/hosts", s.apiHosts)
	m.HandleFunc("GET /api/groups", s.apiGroups)
	m.HandleFunc("GET /api/groups/{sig}", s.apiGroup)
	m.HandleFunc("GET /api/reports", s.apiReports)
	m.HandleFunc("GET /api/reports/{id}", s.apiReport)
	m.HandleFunc("GET /api/hosts/{id}/tail", s.tail)
	m.HandleFunc("POST /api/ingest", s.ingest)
	m.HandleFunc("POST /api/agent/reports", s.agentReports)
	m.HandleFunc("GET /api/agent/dumps/{key}", s.dumpStatus)
	m.HandleFunc("GET /reports/{id}/vmcore", s.reportVmcore)
	m.HandleFunc("PUT /api/agent/dumps/{key}", s.dumpAppend)
	m.HandleFunc("POST /api/agent/dumps/{key}/complete", s.dumpComplete)
	m.HandleFunc("GET /metrics", s.metrics)
	m.HandleFunc("GET /assets/tail.js", func(w http.ResponseWriter, r *http.Request) {
		js, _ := templateFS.ReadFile("templates/tail.js")
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(js)
	})
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := o.Store.Ping(r.Context()); err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return s
}

// ServeHTTP implements http.Handler with the security headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data:")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if s.o.ReadToken != "" && r.Method != http.MethodPost && r.URL.Path != "/healthz" && !s.readAuthorized(r) {
		h.Set("WWW-Authenticate", `Basic realm="kcrash", charset="UTF-8"`)
		http.Error(w, "a valid read token is needed (serve --read-token)", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// readAuthorized says whether r carries the read token or the write token, as a
// Bearer token or as a Basic password (any user name).
func (s *Server) readAuthorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, got, ok = r.BasicAuth()
	}
	if !ok {
		return false
	}
	match := func(tok string) bool {
		return tok != "" && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1
	}
	return match(s.o.ReadToken) || match(s.o.Token)
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tpl.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "template: "+err.Error(), http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// hostView is a host with its state, as the API and pages show it.
type hostView struct {
	store.Host
	State string `json:"state"`
}

func (s *Server) hosts(ctx context.Context) ([]hostView, error) {
	hs, err := s.o.Store.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]hostView, len(hs))
	for i, h := range hs {
		out[i] = hostView{h, h.State(now, s.o.SilentAfter)}
	}
	return out, nil
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	v, err := s.fleetView(r.Context(), r.URL.Query())
	if err != nil {
		fail(w, err)
		return
	}
	for i := range v.Groups {
		if v.Groups[i].Times == nil {
			if v.Groups[i].Times, err = s.o.Store.ReportTimes(r.Context(), v.Groups[i].Signature, v.Start); err != nil {
				fail(w, err)
				return
			}
		}
	}
	if s.o.Warnings != nil {
		v.Warnings = s.o.Warnings()
	}
	s.render(w, "index.html", v)
}

func (s *Server) groupPage(w http.ResponseWriter, r *http.Request) {
	sig := r.PathValue("sig")
	g, err := s.o.Store.Group(r.Context(), sig)
	if err != nil {
		fail(w, err)
		return
	}
	times, err := s.o.Store.ReportTimes(r.Context(), sig, time.Now().Add(-30*24*time.Hour))
	if err != nil {
		fail(w, err)
		return
	}
	reps, err := s.o.Store.Reports(r.Context(), store.ReportQuery{Signature: sig, Limit: 200})
	if err != nil {
		fail(w, err)
		return
	}
	camps, err := s.listCampaigns(r.Context(), sig)
	if err != nil {
		fail(w, err)
		return
	}
	ga := s.groupAPI(*g)
	ga.Times = times
	type hostN struct {
		H hostAPI
		N int
	}
	var hosts []hostN
	var counts map[string]int
	if s.o.Fleet != nil {
		gi, _ := s.o.Fleet.Group(sig)
		counts = gi.Hosts
	}
	for _, id := range g.Hosts {
		h, err := s.o.Store.Host(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		hosts = append(hosts, hostN{s.hostAPI(hostView{*h, h.State(time.Now(), s.o.SilentAfter)}), counts[id]})
	}
	start := g.FirstSeen.Add(-time.Minute)
	s.render(w, "group.html", map[string]any{"Group": ga, "Reports": reps, "Campaigns": camps, "Hosts": hosts,
		"Chart": byRelease(reps, start), "Start": start})
}

func (s *Server) hostPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h, err := s.o.Store.Host(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	reps, err := s.o.Store.Reports(r.Context(), store.ReportQuery{Host: id, Limit: 100})
	if err != nil {
		fail(w, err)
		return
	}
	var recent string
	if s.o.Pipeline != nil {
		recent = string(s.o.Pipeline.Context(id))
	}
	start := h.FirstSeen.Add(-time.Minute)
	s.render(w, "host.html", map[string]any{"Host": s.hostAPI(hostView{*h, h.State(time.Now(), s.o.SilentAfter)}), "Reports": reps,
		"Recent": recent, "Chart": byRelease(reps, start), "Start": start})
}

func (s *Server) reportPage(w http.ResponseWriter, r *http.Request) {
	rep, parsed, err := s.report(r)
	if err != nil {
		fail(w, err)
		return
	}
	decoded, derr := s.decode(r.Context(), rep, parsed)
	data := map[string]any{"R": rep, "P": parsed, "Decoded": decoded, "DecodeNote": derr}
	if dump := s.reportDump(rep.ID); dump != "" {
		data["Dump"] = true
		if s.o.Vmcore != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			out, err := s.o.Vmcore(ctx, dump, []string{"sys", "bt", "explain"})
			cancel()
			if err != nil {
				out += "\n" + err.Error()
			}
			data["DumpOut"] = out
		}
	}
	s.render(w, "report.html", data)
}

func (s *Server) report(r *http.Request) (*store.Report, *oops.Report, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, nil, store.ErrNotFound
	}
	rep, err := s.o.Store.Report(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	var parsed oops.Report
	if json.Unmarshal(rep.Parsed, &parsed) != nil {
		// An older row or a foreign writer: parse the stored text again.
		if ps := oops.Parse([]byte(rep.Text)); len(ps) > 0 {
			parsed = *ps[0]
		}
	}
	return rep, &parsed, nil
}

// FindVmlinux looks for the kernel image of a release under dir: dir/RELEASE/vmlinux,
// dir/vmlinux-RELEASE, dir/RELEASE/usr/lib/debug/boot/vmlinux-RELEASE (a
// linux-image-…-dbg package unpacked there) or dir/usr/lib/debug/boot/vmlinux-RELEASE.
func FindVmlinux(dir, release string) string { return symbols.FindVmlinux(dir, release) }

// decode is the one call site of the Decoder.
func (s *Server) decode(ctx context.Context, rep *store.Report, parsed *oops.Report) (string, string) {
	if s.o.Decoder == nil {
		return "", "no decoder in this build"
	}
	var vmlinux string
	if s.o.FindVmlinux != nil {
		p, err := s.o.FindVmlinux(ctx, rep.Release)
		if err != nil {
			return "", err.Error()
		}
		vmlinux = p
	} else if vmlinux = FindVmlinux(s.o.Symbols, rep.Release); vmlinux == "" {
		return "", fmt.Sprintf("no vmlinux for %s in --symbols %s", rep.Release, s.o.Symbols)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := s.o.Decoder.Decode(ctx, parsed, vmlinux)
	if err != nil {
		if s.o.DecodeErrors != nil {
			s.o.DecodeErrors()
		}
		return "", "decoding failed: " + err.Error()
	}
	return out, ""
}

func (s *Server) apiHosts(w http.ResponseWriter, r *http.Request) {
	hosts, err := s.hostAPIs(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"hosts": nonNil(hosts)})
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (s *Server) apiGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.o.Store.Groups(r.Context(), 0)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]groupAPI, len(gs))
	for i, g := range gs {
		out[i] = s.groupAPI(g)
	}
	writeJSON(w, map[string]any{"groups": out})
}

func (s *Server) apiGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.o.Store.Group(r.Context(), r.PathValue("sig"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, s.groupAPI(*g))
}

func (s *Server) apiReports(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	reps, err := s.o.Store.Reports(r.Context(), store.ReportQuery{Host: q.Get("host"), Signature: q.Get("signature"), Before: before, Limit: limit})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"reports": nonNil(reps)})
}

func (s *Server) apiReport(w http.ResponseWriter, r *http.Request) {
	rep, parsed, err := s.report(r)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"report": rep, "parsed": parsed})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.o.Token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) == 1
}

// maxIngest bounds one uploaded log.
const maxIngest = 64 << 20

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kcrash"`)
		http.Error(w, "a valid token is needed (serve --token)", http.StatusUnauthorized)
		return
	}
	host := r.URL.Query().Get("host")
	if host == "" || len(host) > 255 || s.o.Pipeline == nil {
		http.Error(w, "need ?host=NAME", http.StatusBadRequest)
		return
	}
	if err := s.o.Pipeline.Ingest(host, http.MaxBytesReader(w, r.Body, maxIngest)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "accepted\n")
}

// tail streams a host's console lines as server-sent events, one event per line.
func (s *Server) tail(w http.ResponseWriter, r *http.Request) {
	if s.o.Pipeline == nil {
		http.Error(w, "no live tail", http.StatusNotFound)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	lines, cancel := s.o.Pipeline.Tail(r.PathValue("id"))
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	io.WriteString(w, ": tail\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			io.WriteString(w, ": keepalive\n\n")
		case l := <-lines:
			// SSE data may not hold CR or LF; a line has one at its end at most.
			fmt.Fprintf(w, "data: %s\n\n", strings.NewReplacer("\r", "", "\n", "").Replace(string(l)))
		}
		fl.Flush()
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	if s.o.Metrics != nil {
		s.o.Metrics(w)
	}
}
