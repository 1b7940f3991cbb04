package web

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/fleet"
	"github.com/kcrash/kcrash/internal/store"
)

// groupAPI is a group as the API and pages show it: the store's counts with the
// fleet engine's verdict, releases (crashing and clean, with host-hours; they
// replace the store's plain list) and bisect range.
type groupAPI struct {
	store.Group
	Verdict     fleet.Verdict          `json:"verdict"`
	Releases    fleet.Releases         `json:"releases"`
	BisectRange *fleet.BisectRange     `json:"bisect_range"`
	Times       []time.Time            `json:"-"`
	ByRelease   map[string][]time.Time `json:"-"`
}

// hostAPI is a host with its name, labels and verdict.
type hostAPI struct {
	hostView
	Name          string             `json:"name"`
	Labels        map[string]string  `json:"labels"`
	Release       string             `json:"release,omitempty"`
	Verdict       *fleet.Verdict     `json:"verdict"`
	HostHours     map[string]float64 `json:"host_hours,omitempty"`
	HardwareLines []string           `json:"hardware_lines,omitempty"`
	Flips         []fleet.Flip       `json:"bit_flips,omitempty"`
	Times         []time.Time        `json:"-"`
}

func noVerdict() fleet.Verdict {
	return fleet.Verdict{Class: fleet.Unknown, Evidence: []fleet.Evidence{}}
}

func (s *Server) groupAPI(g store.Group) groupAPI {
	out := groupAPI{Group: g, Verdict: noVerdict(), Releases: fleet.Releases{Crashing: []fleet.ReleaseStat{}, Clean: []fleet.ReleaseStat{}}}
	if s.o.Fleet != nil {
		if gi, ok := s.o.Fleet.Group(g.Signature); ok {
			out.Verdict, out.Releases, out.BisectRange, out.Times = gi.Verdict, gi.Releases, gi.BisectRange, gi.Times
			return out
		}
	}
	for _, r := range g.Releases {
		out.Releases.Crashing = append(out.Releases.Crashing, fleet.ReleaseStat{Release: r})
	}
	return out
}

func (s *Server) hostAPI(h hostView) hostAPI {
	out := hostAPI{hostView: h, Name: h.Name, Labels: map[string]string{}, Release: h.Host.Release}
	if s.o.Fleet == nil {
		return out
	}
	hi := s.o.Fleet.Host(h.ID, h.Host.Name)
	out.Name, out.Labels, out.Verdict, out.HostHours = hi.Name, hi.Labels, hi.Verdict, hi.HostHours
	out.HardwareLines, out.Flips, out.Times = hi.HardwareLines, hi.Flips, hi.Times
	if out.Release == "" {
		out.Release = hi.Release
	}
	return out
}

// hostName is the name the fleet knows a host ID by (inventory, boot log), else
// the ID.
func (s *Server) hostName(id string) string {
	if s.o.Fleet == nil {
		return id
	}
	return s.o.Fleet.Host(id, "").Name
}

func (s *Server) hostAPIs(ctx context.Context) ([]hostAPI, error) {
	hs, err := s.hosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]hostAPI, len(hs))
	for i, h := range hs {
		out[i] = s.hostAPI(h)
	}
	return out, nil
}

// filter is the dashboard's selection, kept in the URL's query.
type filter struct {
	Kind, Release, Host, Label, Verdict, Since string
	since                                      time.Duration
}

var sinceChoices = []struct {
	Value string
	D     time.Duration
}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

func parseFilter(q url.Values) filter {
	f := filter{Kind: q.Get("kind"), Release: q.Get("release"), Host: q.Get("host"), Label: q.Get("label"),
		Verdict: q.Get("verdict"), Since: q.Get("since")}
	f.since = 30 * 24 * time.Hour
	for _, c := range sinceChoices {
		if c.Value == f.Since {
			f.since = c.D
		}
	}
	if f.since == 30*24*time.Hour {
		f.Since = "30d"
	}
	return f
}

// Query is the filter as a query string with one field replaced (for links).
func (f filter) Query(key, value string) string {
	q := url.Values{}
	for k, v := range map[string]string{"kind": f.Kind, "release": f.Release, "host": f.Host, "label": f.Label, "verdict": f.Verdict, "since": f.Since} {
		if k == key {
			v = value
		}
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// labelMatch says whether labels hold the filter's "key=value" (or key).
func labelMatch(labels map[string]string, want string) bool {
	if want == "" {
		return true
	}
	k, v, hasV := strings.Cut(want, "=")
	got, ok := labels[k]
	return ok && (!hasV || got == v)
}

func (f filter) host(h hostAPI) bool {
	if f.Host != "" && h.ID != f.Host && h.Name != f.Host {
		return false
	}
	if f.Release != "" && h.Release != f.Release {
		return false
	}
	if f.Verdict != "" && (h.Verdict == nil || h.Verdict.Class != f.Verdict) {
		return false
	}
	return labelMatch(h.Labels, f.Label)
}

// group says whether g passes the filter; hosts are the filtered hosts by ID.
func (f filter) group(g groupAPI, hosts map[string]bool, now time.Time) bool {
	if f.Kind != "" && g.Kind != f.Kind {
		return false
	}
	if f.Verdict != "" && g.Verdict.Class != f.Verdict {
		return false
	}
	if g.LastSeen.Before(now.Add(-f.since)) {
		return false
	}
	if f.Release != "" {
		found := false
		for _, r := range g.Group.Releases {
			found = found || r == f.Release
		}
		if !found {
			return false
		}
	}
	if f.Host != "" || f.Label != "" {
		found := false
		for _, h := range g.Hosts {
			found = found || hosts[h]
		}
		return found
	}
	return true
}

// fleetView is the dashboard's data.
type fleetView struct {
	F        filter
	Groups   []groupAPI
	Hosts    []hostAPI
	Reports  []store.Report
	Chart    []releaseSeries
	Kinds    []string
	Releases []string
	Since    []string
	Verdicts []string
	Start    time.Time
	Warnings []string
}

type releaseSeries struct {
	Release string
	Times   []time.Time
}

// byRelease splits report times by release, releases in version order.
func byRelease(reps []store.Report, since time.Time) []releaseSeries {
	m := map[string][]time.Time{}
	for _, r := range reps {
		if r.Time.Before(since) {
			continue
		}
		rel := r.Release
		if rel == "" {
			rel = "unknown"
		}
		m[rel] = append(m[rel], r.Time)
	}
	out := make([]releaseSeries, 0, len(m))
	for rel, ts := range m {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		out = append(out, releaseSeries{rel, ts})
	}
	sort.Slice(out, func(i, j int) bool { return fleet.CompareReleases(out[i].Release, out[j].Release) < 0 })
	return out
}

func (s *Server) fleetView(ctx context.Context, q url.Values) (*fleetView, error) {
	f := parseFilter(q)
	now := time.Now()
	v := &fleetView{F: f, Start: now.Add(-f.since), Verdicts: []string{fleet.Software, fleet.Hardware, fleet.Unknown}}
	for _, c := range sinceChoices {
		v.Since = append(v.Since, c.Value)
	}
	hosts, err := s.hostAPIs(ctx)
	if err != nil {
		return nil, err
	}
	hostOK := map[string]bool{}
	releases := map[string]bool{}
	for _, h := range hosts {
		if h.Release != "" {
			releases[h.Release] = true
		}
		if f.host(h) {
			hostOK[h.ID] = true
			v.Hosts = append(v.Hosts, h)
		}
	}
	gs, err := s.o.Store.Groups(ctx, 500)
	if err != nil {
		return nil, err
	}
	kinds := map[string]bool{}
	for _, g := range gs {
		kinds[g.Kind] = true
		for _, r := range g.Releases {
			releases[r] = true
		}
		ga := s.groupAPI(g)
		if f.group(ga, hostOK, now) {
			v.Groups = append(v.Groups, ga)
		}
	}
	v.Kinds, v.Releases = sortedSet(kinds), sortedSet(releases)
	sort.Slice(v.Releases, func(i, j int) bool { return fleet.CompareReleases(v.Releases[i], v.Releases[j]) < 0 })
	reps, err := s.o.Store.Reports(ctx, store.ReportQuery{Limit: 1000})
	if err != nil {
		return nil, err
	}
	groupOK := map[string]bool{}
	for _, g := range v.Groups {
		groupOK[g.Signature] = true
	}
	var kept []store.Report
	for _, r := range reps {
		if groupOK[r.Signature] && (f.Release == "" || r.Release == f.Release) &&
			(f.Host == "" && f.Label == "" || hostOK[r.Host]) && !r.Time.Before(v.Start) {
			kept = append(kept, r)
		}
	}
	v.Chart = byRelease(kept, v.Start)
	if len(kept) > 20 {
		kept = kept[:20]
	}
	v.Reports = kept
	return v, nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
