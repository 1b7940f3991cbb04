package fleet

import (
	"sort"
	"time"
)

// GroupInfo is what the engine knows of a group, as the API shows it next to the
// store's fields.
type GroupInfo struct {
	Verdict     Verdict      `json:"verdict"`
	Releases    Releases     `json:"releases"`
	BisectRange *BisectRange `json:"bisect_range"`
	// Hosts counts reports per host.
	Hosts map[string]int `json:"-"`
	Times []time.Time    `json:"-"`
}

// HostInfo is what the engine knows of a host.
type HostInfo struct {
	ID     string            `json:"-"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Release is the host's release from its reports or uptime observations.
	Release string `json:"release,omitempty"`
	// Verdict is nil for a host without crashes.
	Verdict *Verdict `json:"verdict"`
	// HostHours by release.
	HostHours map[string]float64 `json:"host_hours,omitempty"`
	// HardwareLines are a sample of the host's hardware error lines.
	HardwareLines []string       `json:"hardware_lines,omitempty"`
	Flips         []Flip         `json:"bit_flips,omitempty"`
	Signatures    map[string]int `json:"-"`
	Times         []time.Time    `json:"-"`
}

// Group returns what the engine knows of signature sig (false when nothing).
func (e *Engine) Group(sig string) (GroupInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.groups[sig]
	if g == nil {
		return GroupInfo{}, false
	}
	rs := e.releasesOf(g)
	hosts := make(map[string]int, len(g.hosts))
	for k, v := range g.hosts {
		hosts[k] = v
	}
	return GroupInfo{Verdict: g.verdict, Releases: rs, BisectRange: bisectOf(sig, g.verdict, rs), Hosts: hosts,
		Times: append([]time.Time(nil), g.recent...)}, true
}

// Host returns what the engine knows of host id, named after the inventory, the
// given name (userdata), the boot log's hostname, or the id, in that order.
func (e *Engine) Host(id, name string) HostInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	hi := HostInfo{ID: id, Name: id, Labels: map[string]string{}}
	h := e.hosts[id]
	if h != nil && h.hostname != "" {
		hi.Name = h.hostname
	}
	if name != "" && name != id {
		hi.Name = name
	}
	if ent, ok := e.inv.Lookup(id); ok {
		if ent.Name != "" {
			hi.Name = ent.Name
		}
		for k, v := range ent.Labels {
			hi.Labels[k] = v
		}
	}
	if h == nil {
		return hi
	}
	hi.Release = h.release
	if h.hasVerdict {
		v := h.verdict
		hi.Verdict = &v
	}
	if len(h.relHours) > 0 {
		hi.HostHours = map[string]float64{}
		for k, v := range h.relHours {
			hi.HostHours[k] = round4(v)
		}
	}
	hi.HardwareLines = append([]string(nil), h.hwSample...)
	hi.Flips = append([]Flip(nil), h.flips...)
	hi.Signatures = map[string]int{}
	for k, v := range h.sigs {
		hi.Signatures[k] = v
	}
	hi.Times = append([]time.Time(nil), h.recent...)
	return hi
}

// SetInventory names hosts after inv (nil for none).
func (e *Engine) SetInventory(inv *Inventory) {
	e.mu.Lock()
	e.inv = inv
	e.mu.Unlock()
}

// Counts are the engine's totals, for metrics.
type Counts struct {
	Groups, Hosts map[string]int // by verdict class ("none" for hosts without crashes)
	// GroupReports is the report count of every group, with its class.
	GroupReports []GroupCount
}

// GroupCount is one group's reports and class.
type GroupCount struct {
	Signature, Class string
	Reports          int
}

// Counts returns the engine's totals.
func (e *Engine) Counts() Counts {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := Counts{Groups: map[string]int{}, Hosts: map[string]int{}}
	for _, g := range e.groups {
		c.Groups[g.verdict.Class]++
		c.GroupReports = append(c.GroupReports, GroupCount{g.sig, g.verdict.Class, g.n})
	}
	for _, h := range e.hosts {
		if h.hasVerdict {
			c.Hosts[h.verdict.Class]++
		} else {
			c.Hosts["none"]++
		}
	}
	sort.Slice(c.GroupReports, func(i, j int) bool { return c.GroupReports[i].Signature < c.GroupReports[j].Signature })
	return c
}

// HostClass returns a host's verdict class ("" without a verdict).
func (e *Engine) HostClass(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h := e.hosts[id]; h != nil && h.hasVerdict {
		return h.verdict.Class
	}
	return ""
}

// GroupClass returns a group's verdict class ("" for an unknown group).
func (e *Engine) GroupClass(sig string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.groups[sig]; g != nil {
		return g.verdict.Class
	}
	return ""
}

// ReleaseHours returns the fleet's host-hours per release.
func (e *Engine) ReleaseHours() map[string]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]float64, len(e.relHours))
	for k, v := range e.relHours {
		out[k] = v
	}
	return out
}

// Uptime is the engine's host-hours, per host and release, as kcrash serve saves
// them between runs (reports are in the store; uptime observations are not).
type Uptime map[string]map[string]float64

// Uptime returns the host-hours observed so far.
func (e *Engine) Uptime() Uptime {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := Uptime{}
	for id, h := range e.hosts {
		if len(h.relHours) == 0 {
			continue
		}
		m := make(map[string]float64, len(h.relHours))
		for r, v := range h.relHours {
			m[r] = v
		}
		out[id] = m
	}
	return out
}

// LoadUptime adds saved host-hours as observed hours (a report's uptime counted
// then is not counted again) and recomputes every verdict, since the release gates
// depend on them.
func (e *Engine) LoadUptime(u Uptime) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, m := range u {
		h := e.host(id)
		for r, v := range m {
			if v > 0 && r != "" {
				e.addHoursLocked(h, r, v)
			}
		}
	}
	for _, g := range e.groups {
		g.verdict = e.groupVerdict(g)
	}
}
