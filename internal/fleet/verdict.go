package fleet

import (
	"fmt"
	"math"
	"sort"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// modal returns the most frequent key of m, its count (ties go to the smaller key).
func modal(m map[string]int) (string, int) {
	best, n := "", 0
	for k, c := range m {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best, n
}

// groupVerdict weighs a group's evidence. Only the group's own reports count: a
// host's hardware lines move a group through that host's reports alone.
func (e *Engine) groupVerdict(g *group) Verdict {
	var evs []Evidence
	nh := len(g.hosts)
	if g.kind == "mce" {
		evs = append(evs, ev("machine-check", 4, "the reports are machine checks: the CPU reported a hardware error"))
	}
	site, ns := modal(g.sites)
	sites := 0
	for range g.sites {
		sites++
	}
	if g.n >= 2 && ns > 0 {
		f := float64(ns) / float64(g.n)
		switch {
		case f >= 0.9 && nh >= 2:
			evs = append(evs, ev("same-site", -0.6, "%d of %d reports fault at %s", ns, g.n, site))
		case f >= 0.9 && g.n >= 3:
			evs = append(evs, ev("same-site", -0.5, "all %d reports on its one host fault at %s", g.n, site))
		case f < 0.5 && g.n >= 3:
			evs = append(evs, ev("wandering-site", 1, "%d reports fault at %d different places in the function", g.n, sites))
		}
	}
	if chain, nc := modal(g.chains); nh >= 2 && nc > 0 && float64(nc) >= 0.8*float64(g.n) {
		evs = append(evs, ev("same-call-chain", -0.4, "%d of %d reports share the call chain %s", nc, g.n, chain))
	}
	if nh >= 2 {
		evs = append(evs, ev("many-hosts", -math.Min(3, 1.2*math.Log2(float64(nh))), "the same crash on %d hosts", nh))
	}
	if len(g.models) >= 2 {
		evs = append(evs, ev("many-models", -0.5, "on %d hardware models", len(g.models)))
	}
	if first, p, cleanHours, ok := e.gate(g); ok {
		evs = append(evs, ev("starts-at-release", -1.5,
			"crashes from %s on, none in %.2f host-hours on earlier releases (chance %.2g were the rate the same)", first, cleanHours, p))
	}
	if g.hwReports > 0 {
		f := float64(g.hwReports) / float64(g.n)
		evs = append(evs, ev("hardware-signals", 3*f, "%d of %d reports carry hardware evidence, e.g. %s", g.hwReports, g.n, g.hwDetail))
	}
	if g.suspect > 0 {
		f := float64(min(g.suspect, g.n)) / float64(g.n)
		evs = append(evs, ev("suspect-hosts", 2.5*f, "%d of %d reports come from hosts judged suspect hardware", min(g.suspect, g.n), g.n))
	}
	return decide(evs)
}

// gate tests "the bug starts at a release": at least 3 crashes, none on the
// releases before the first crashing one, although those ran long enough that,
// were the crash rate the same on every release, all crashes landing on the later
// ones would have a chance below 5% ((later hours / all hours)^crashes).
func (e *Engine) gate(g *group) (first string, p, cleanHours float64, ok bool) {
	crashHours := 0.0
	for rel := range g.releases {
		if first == "" || CompareReleases(rel, first) < 0 {
			first = rel
		}
		crashHours += e.relHours[rel]
	}
	if first == "" || crashHours <= 0 {
		return "", 0, 0, false
	}
	for rel, hrs := range e.relHours {
		if g.releases[rel] == nil && CompareReleases(rel, first) < 0 {
			cleanHours += hrs
		}
	}
	crashes := 0
	for _, rs := range g.releases {
		crashes += rs.reports
	}
	p = math.Pow(crashHours/(crashHours+cleanHours), float64(crashes))
	return first, p, cleanHours, crashes >= 3 && p < 0.05
}

// hostVerdict weighs a host's evidence: its hardware error lines, machine checks,
// taint, bit flips, wild instruction pointers, signatures no other host shows and
// crashes always on one CPU, against crashes that are signatures shared with other
// hosts (software bugs the host merely hit).
func (e *Engine) hostVerdict(h *host) Verdict {
	var evs []Evidence
	if h.hwLines > 0 {
		w := 1.5
		if h.hwLines >= 3 {
			w = 2.5
		}
		evs = append(evs, ev("hardware-errors", w, "%d hardware error lines near its crashes, e.g. %q", h.hwLines, h.hwSample[0]))
	}
	if h.mce > 0 {
		evs = append(evs, ev("machine-check", 3, "%d machine-check reports", h.mce))
	}
	if h.taintMB > 0 {
		evs = append(evs, ev("taint", 2, "%d reports tainted M (machine check) or B (bad page)", h.taintMB))
	}
	if len(h.flips) > 0 {
		s, best := 0.0, h.flips[0]
		for _, f := range h.flips {
			s += f.Score
			if f.Score > best.Score {
				best = f
			}
		}
		evs = append(evs, ev("bit-flip", math.Min(3, 2*s), "%d bad addresses one bit from a plausible pointer, e.g. %s", len(h.flips), best))
	}
	if h.wildIP > 0 {
		evs = append(evs, ev("wild-ip", math.Min(1, 0.5*float64(h.wildIP)), "%d crashes executing outside kernel text and modules", h.wildIP))
	}
	unshared, sharedReports := 0, 0
	for sig, n := range h.sigs {
		g := e.groups[sig]
		if g == nil {
			continue
		}
		if len(g.hosts) == 1 {
			unshared++
		} else {
			sharedReports += n
		}
	}
	switch {
	case unshared >= 4:
		evs = append(evs, ev("unrelated-signatures", 2.5, "%d different signatures no other host shows", unshared))
	case unshared == 3:
		evs = append(evs, ev("unrelated-signatures", 2, "3 different signatures no other host shows"))
	case unshared == 2:
		evs = append(evs, ev("unrelated-signatures", 1, "2 different signatures no other host shows"))
	}
	if h.n >= 3 && len(h.cpus) == 1 {
		for cpu := range h.cpus {
			evs = append(evs, ev("same-cpu", 0.75, "all %d crashes on CPU %d", h.n, cpu))
		}
	}
	// Crashes other hosts share are software bugs the host hit; they explain the
	// host's crashes only when it has no crash of its own.
	if sharedReports > 0 && unshared == 0 {
		evs = append(evs, ev("shared-signatures", -2.5, "all %d crashes are signatures other hosts show too", h.n))
	}
	return decide(evs)
}

// ReleaseStat is one release of a group: its reports and hosts (crashing) or none
// (clean), with the host-hours the fleet ran it.
type ReleaseStat struct {
	Release   string  `json:"release"`
	Reports   int     `json:"reports"`
	Hosts     int     `json:"hosts"`
	HostHours float64 `json:"host_hours"`
	// Rate is reports per 1000 host-hours (0 when the hours are unknown).
	Rate float64 `json:"rate_per_1000h"`
}

// Releases is a group's crashing and clean releases, in version order.
type Releases struct {
	Crashing []ReleaseStat `json:"crashing"`
	Clean    []ReleaseStat `json:"clean"`
}

// BisectRange is the pair of releases to bisect between: the last release that ran
// clean before the first that crashed (of the same flavour when there is one).
type BisectRange struct {
	Good    string `json:"good"`
	Bad     string `json:"bad"`
	Command string `json:"command"`
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func (e *Engine) releasesOf(g *group) Releases {
	out := Releases{Crashing: []ReleaseStat{}, Clean: []ReleaseStat{}}
	for rel, rs := range g.releases {
		hrs := e.relHours[rel]
		st := ReleaseStat{Release: rel, Reports: rs.reports, Hosts: len(rs.hosts), HostHours: round4(hrs)}
		if hrs > 0 {
			st.Rate = round2(float64(rs.reports) / hrs * 1000)
		}
		out.Crashing = append(out.Crashing, st)
	}
	for rel, hrs := range e.relHours {
		if g.releases[rel] == nil && hrs > 0 {
			out.Clean = append(out.Clean, ReleaseStat{Release: rel, HostHours: round4(hrs)})
		}
	}
	for _, l := range [][]ReleaseStat{out.Crashing, out.Clean} {
		sort.Slice(l, func(i, j int) bool { return CompareReleases(l[i].Release, l[j].Release) < 0 })
	}
	return out
}

// bisectOf suggests a bisection for a group not judged hardware: from the last
// release of the first crashing one's flavour that ran clean (host-hours, no
// crash) before it. Kernels of another flavour are another configuration: no
// range crosses flavours.
func bisectOf(sig string, v Verdict, rs Releases) *BisectRange {
	if len(rs.Crashing) == 0 || v.Class == Hardware {
		return nil
	}
	bad := rs.Crashing[0].Release
	good := ""
	for _, c := range rs.Clean {
		if CompareReleases(c.Release, bad) < 0 && Flavour(c.Release) == Flavour(bad) && c.HostHours > 0 {
			good = c.Release
		}
	}
	if good == "" {
		return nil
	}
	return &BisectRange{Good: good, Bad: bad,
		Command: fmt.Sprintf("kcrash bisect --versions %s,%s --signature %s", good, bad, sig)}
}

// round4 keeps host-hours to a third of a second.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
