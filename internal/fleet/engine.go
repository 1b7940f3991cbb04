// Package fleet judges crashes across a fleet: per crash group and per host, is it
// a software bug or suspect hardware (a verdict with its confidence and evidence);
// per group, which kernel releases crash and which ran clean, weighed by host-hours,
// and the release range to bisect. It also names hosts (an inventory file) and
// sends alerts (a webhook). The Engine is in memory, fed report by report and with
// host uptime observations; kcrash serve rebuilds it from the store at start.
package fleet

import (
	"math"
	"sort"
	"sync"
	"time"
)

// Verdict classes.
const (
	Software = "software"
	Hardware = "hardware"
	Unknown  = "unknown"
)

// Verdict is a judgement with its evidence. The score is the sum of the evidence
// weights (positive favours hardware, negative software); the class is hardware at
// Threshold or above, software at -Threshold or below, and the confidence is the
// logistic of the score's magnitude.
type Verdict struct {
	Class      string     `json:"class"`
	Confidence float64    `json:"confidence"`
	Score      float64    `json:"score"`
	Evidence   []Evidence `json:"evidence"`
}

// Evidence is one signal that went into a verdict.
type Evidence struct {
	Signal  string  `json:"signal"`
	Favours string  `json:"favours"` // "hardware" or "software"
	Weight  float64 `json:"weight"`
	Detail  string  `json:"detail"`
}

// Threshold is the score a class needs.
const Threshold = 1.5

func decide(ev []Evidence) Verdict {
	s := 0.0
	for _, e := range ev {
		s += e.Weight
	}
	v := Verdict{Class: Unknown, Score: math.Round(s*100) / 100, Evidence: ev}
	switch {
	case s >= Threshold:
		v.Class = Hardware
	case s <= -Threshold:
		v.Class = Software
	}
	v.Confidence = math.Round(100/(1+math.Exp(-math.Abs(s)))) / 100
	if v.Evidence == nil {
		v.Evidence = []Evidence{}
	}
	return v
}

func ev(signal string, w float64, format string, args ...any) Evidence {
	f := Hardware
	if w < 0 {
		f = Software
	}
	return Evidence{Signal: signal, Favours: f, Weight: math.Round(w*100) / 100, Detail: sprintf(format, args...)}
}

// Event is something worth an alert.
type Event struct {
	Type      string    `json:"event"` // "new_signature", "rate_jump", "suspect_hardware"
	Signature string    `json:"signature,omitempty"`
	Title     string    `json:"title,omitempty"`
	Host      string    `json:"host,omitempty"`
	Time      time.Time `json:"time"`
	Text      string    `json:"text"` // one line for people (Slack's text field)
}

// Options tune the Engine.
type Options struct {
	// MaxGap is the longest interval between two observations of a host that still
	// counts as uptime (15 minutes).
	MaxGap time.Duration
	// RateWindow is the window of a rate jump (1 hour): an alert when a group's
	// reports in the last window are at least RateFactor (4) times its average per
	// window over the RateBaseline before it (24 hours), and at least RateMin (5).
	RateWindow, RateBaseline time.Duration
	RateFactor               float64
	RateMin                  int
}

func (o *Options) fill() {
	if o.MaxGap <= 0 {
		o.MaxGap = 15 * time.Minute
	}
	if o.RateWindow <= 0 {
		o.RateWindow = time.Hour
	}
	if o.RateBaseline <= 0 {
		o.RateBaseline = 24 * time.Hour
	}
	if o.RateFactor <= 0 {
		o.RateFactor = 4
	}
	if o.RateMin <= 0 {
		o.RateMin = 5
	}
}

// Engine holds the fleet's state. It is safe for concurrent use.
type Engine struct {
	mu       sync.Mutex
	o        Options
	groups   map[string]*group
	hosts    map[string]*host
	relHours map[string]float64 // release → host-hours observed fleet-wide
	inv      *Inventory
}

type relStat struct {
	reports int
	hosts   map[string]int
}

type group struct {
	sig, title, kind string
	n                int
	first, last      time.Time
	hosts            map[string]int
	releases         map[string]*relStat
	sites, chains    map[string]int
	models           map[string]int
	hwReports        int // reports with hardware evidence of their own
	hwDetail         string
	suspect          int         // reports from hosts whose verdict is hardware
	recent           []time.Time // arrival times, bounded (rate jumps, charts)
	alerted          time.Time   // last rate-jump alert
	verdict          Verdict
}

type host struct {
	id, hostname string
	release      string // from the newest report naming one
	// Host-hours per release: observed (Observe, AddUptime, saved state) and from
	// the reports' uptimes (each boot's uptime at its last report); relHours, the
	// hours counted, is the larger of the two, so one boot is never counted twice.
	relHours, obsHours, bootHours map[string]float64
	lastUptime                    float64 // seconds, of the newest report with one
	lastObs                       time.Time
	lastRel                       string
	n                             int
	first, last                   time.Time
	sigs                          map[string]int
	cpus                          map[int]int
	hwLines                       int
	hwSample                      []string
	hwSeen                        map[string]bool // distinct lines counted (at most maxHWSeen)
	mce                           int             // machine-check reports
	taintMB                       int
	flips                         []Flip
	wildIP                        int
	recent                        []time.Time
	verdict                       Verdict
	hasVerdict                    bool
}

// maxHWSeen bounds the distinct hardware lines remembered per host.
const maxHWSeen = 256

// maxRecent bounds the arrival times kept per group and host.
const maxRecent = 512

// New returns an empty Engine.
func New(o Options) *Engine {
	o.fill()
	return &Engine{o: o, groups: map[string]*group{}, hosts: map[string]*host{}, relHours: map[string]float64{}}
}

func (e *Engine) host(id string) *host {
	h := e.hosts[id]
	if h == nil {
		h = &host{id: id, relHours: map[string]float64{}, obsHours: map[string]float64{}, bootHours: map[string]float64{},
			sigs: map[string]int{}, cpus: map[int]int{}}
		e.hosts[id] = h
	}
	return h
}

// Observe records that host id was up running release at time t: the time since
// its previous observation (when under the same release and within MaxGap) counts
// as host-hours under that release.
func (e *Engine) Observe(id, release string, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.host(id)
	if release == "" {
		release = h.release
	}
	if !h.lastObs.IsZero() && release != "" && release == h.lastRel {
		if d := t.Sub(h.lastObs); d > 0 && d <= e.o.MaxGap {
			e.addHoursLocked(h, release, d.Hours())
		}
	}
	if t.After(h.lastObs) {
		h.lastObs, h.lastRel = t, release
	}
}

// AddUptime counts hours of uptime of host id under release directly.
func (e *Engine) AddUptime(id, release string, hours float64) {
	if hours <= 0 || release == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addHoursLocked(e.host(id), release, hours)
}

func (e *Engine) addHoursLocked(h *host, release string, hours float64) {
	h.obsHours[release] += hours
	e.countHours(h, release)
}

// countHours makes the hours counted for h under release the larger of its two
// sources.
func (e *Engine) countHours(h *host, release string) {
	eff := max(h.obsHours[release], h.bootHours[release])
	e.relHours[release] += eff - h.relHours[release]
	h.relHours[release] = eff
	if h.release == "" {
		h.release = release
	}
}

// reportUptime counts a report's uptime (seconds since its boot) as host-hours:
// a smaller uptime than the host's previous report's starts a new boot.
func (e *Engine) reportUptime(h *host, release string, up float64) {
	if up <= 0 || release == "" {
		return
	}
	add := up
	if up >= h.lastUptime {
		add = up - h.lastUptime // the same boot, further on
	}
	h.lastUptime = up
	h.bootHours[release] += add / 3600
	e.countHours(h, release)
}

// Add takes one report, updates its group and host and recomputes their verdicts,
// returning the alert-worthy events it caused.
func (e *Engine) Add(r Report) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var events []Event
	g := e.groups[r.Signature]
	if g == nil {
		g = &group{sig: r.Signature, title: r.Title, kind: r.Kind, first: r.Time, hosts: map[string]int{},
			releases: map[string]*relStat{}, sites: map[string]int{}, chains: map[string]int{}, models: map[string]int{}}
		e.groups[r.Signature] = g
		events = append(events, Event{Type: "new_signature", Signature: r.Signature, Title: r.Title, Host: r.Host, Time: r.Time,
			Text: sprintf("New crash signature on %s: %s", r.Host, r.Title)})
	}
	h := e.host(r.Host)
	g.n++
	if r.Time.Before(g.first) {
		g.first = r.Time
	}
	if r.Time.After(g.last) {
		g.last = r.Time
	}
	newHost := g.hosts[r.Host] == 0
	g.hosts[r.Host]++
	if r.Release != "" {
		rs := g.releases[r.Release]
		if rs == nil {
			rs = &relStat{hosts: map[string]int{}}
			g.releases[r.Release] = rs
		}
		rs.reports++
		rs.hosts[r.Host]++
	}
	if r.Site != "" {
		g.sites[r.Site]++
	}
	if r.Chain != "" {
		g.chains[r.Chain]++
	}
	if r.Hardware != "" {
		g.models[r.Hardware]++
	}
	own := ownHardware(r)
	if own != "" {
		g.hwReports++
		g.hwDetail = own
	}
	if h.hasVerdict && h.verdict.Class == Hardware {
		g.suspect++
	}
	g.recent = appendBounded(g.recent, r.Time)

	// The host.
	h.n++
	if h.first.IsZero() || r.Time.Before(h.first) {
		h.first = r.Time
	}
	if r.Time.After(h.last) {
		h.last = r.Time
		if r.Release != "" {
			h.release = r.Release
		}
	}
	if h.release == "" {
		h.release = r.Release
	}
	if r.Hostname != "" {
		h.hostname = r.Hostname
	}
	e.reportUptime(h, r.Release, r.Uptime)
	h.sigs[r.Signature]++
	if r.CPU >= 0 {
		h.cpus[r.CPU]++
	}
	// A line is counted once: the same corrected errors are both a machine-check
	// report of their own and the context of the crash that follows.
	for _, l := range r.HWLines {
		if h.hwSeen == nil {
			h.hwSeen = map[string]bool{}
		}
		if h.hwSeen[l] || len(h.hwSeen) >= maxHWSeen {
			continue
		}
		h.hwSeen[l] = true
		h.hwLines++
		if len(h.hwSample) < maxHWLines {
			h.hwSample = append(h.hwSample, l)
		}
	}
	if r.Kind == "mce" {
		h.mce++
	}
	if hardwareTaint(r.Taint) {
		h.taintMB++
	}
	if r.Flip != nil && len(h.flips) < 16 {
		h.flips = append(h.flips, *r.Flip)
	}
	if r.WildIP {
		h.wildIP++
	}
	h.recent = appendBounded(h.recent, r.Time)

	// A group reaching its second host makes the first host's signature shared.
	if newHost && len(g.hosts) == 2 {
		for other := range g.hosts {
			if other != r.Host {
				events = e.hostVerdictLocked(e.hosts[other], events)
			}
		}
	}
	events = e.hostVerdictLocked(h, events)
	g.verdict = e.groupVerdict(g)
	if ev, ok := e.rateJump(g, r.Time); ok {
		events = append(events, ev)
	}
	return events
}

// ownHardware says what hardware evidence a report carries by itself.
func ownHardware(r Report) string {
	switch {
	case r.Kind == "mce":
		return "a machine check"
	case len(r.HWLines) > 0:
		return "hardware error lines before it: " + r.HWLines[0]
	case hardwareTaint(r.Taint):
		return "taint " + r.Taint
	case r.Flip != nil && r.Flip.Score >= 0.5:
		return "a bit flip: " + r.Flip.String()
	}
	return ""
}

func appendBounded(s []time.Time, t time.Time) []time.Time {
	if len(s) >= maxRecent {
		copy(s, s[1:])
		s = s[:len(s)-1]
	}
	// Kept sorted: reports mostly arrive in order.
	i := sort.Search(len(s), func(i int) bool { return s[i].After(t) })
	s = append(s, time.Time{})
	copy(s[i+1:], s[i:])
	s[i] = t
	return s
}

// hostVerdictLocked recomputes a host's verdict, moving its reports' weight in its
// groups when it turns hardware or stops being so, and reports the turn.
func (e *Engine) hostVerdictLocked(h *host, events []Event) []Event {
	was := h.hasVerdict && h.verdict.Class == Hardware
	h.verdict, h.hasVerdict = e.hostVerdict(h), h.n > 0
	is := h.hasVerdict && h.verdict.Class == Hardware
	if was != is {
		d := 1
		if was {
			d = -1
		}
		for sig, n := range h.sigs {
			if g := e.groups[sig]; g != nil {
				g.suspect += d * n
				g.verdict = e.groupVerdict(g)
			}
		}
		if is {
			events = append(events, Event{Type: "suspect_hardware", Host: h.id, Time: h.last,
				Text: sprintf("Host %s is suspect hardware (confidence %.2f): %s", h.id, h.verdict.Confidence, topEvidence(h.verdict))})
		}
	}
	return events
}

func topEvidence(v Verdict) string {
	best := Evidence{}
	for _, e := range v.Evidence {
		if math.Abs(e.Weight) > math.Abs(best.Weight) {
			best = e
		}
	}
	return best.Detail
}

// rateJump says whether g's reports in the last window jumped against its baseline.
func (e *Engine) rateJump(g *group, now time.Time) (Event, bool) {
	if !g.alerted.IsZero() && now.Sub(g.alerted) < e.o.RateWindow {
		return Event{}, false
	}
	winStart, baseStart := now.Add(-e.o.RateWindow), now.Add(-e.o.RateWindow-e.o.RateBaseline)
	cur, base := 0, 0
	for _, t := range g.recent {
		switch {
		case t.After(winStart) && !t.After(now):
			cur++
		case t.After(baseStart) && !t.After(winStart):
			base++
		}
	}
	perWindow := float64(base) / (float64(e.o.RateBaseline) / float64(e.o.RateWindow))
	// A group younger than its baseline has no baseline: its arrival is the new
	// signature alert, not a jump.
	if cur < e.o.RateMin || g.first.After(baseStart) || float64(cur) < e.o.RateFactor*math.Max(perWindow, 1) {
		return Event{}, false
	}
	g.alerted = now
	return Event{Type: "rate_jump", Signature: g.sig, Title: g.title, Time: now,
		Text: sprintf("Crash rate jump: %s — %d reports in the last %s (baseline %.1f)", g.title, cur, e.o.RateWindow, perWindow)}, true
}
