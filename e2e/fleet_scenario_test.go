package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fleetVerdict, fleetGroup and fleetHost are the API objects of issue 12's
// contract, as `kcrash lab scenario fleet --json` and /api/… carry them.
type fleetVerdict struct {
	Class      string  `json:"class"`
	Confidence float64 `json:"confidence"`
	Evidence   []struct {
		Signal, Favours, Detail string
		Weight                  float64
	} `json:"evidence"`
}

type fleetRelease struct {
	Release   string  `json:"release"`
	Reports   int     `json:"reports"`
	HostHours float64 `json:"host_hours"`
}

type fleetGroup struct {
	Signature string       `json:"signature"`
	Title     string       `json:"title"`
	Hosts     []string     `json:"hosts"`
	Verdict   fleetVerdict `json:"verdict"`
	Releases  struct {
		Crashing []fleetRelease `json:"crashing"`
		Clean    []fleetRelease `json:"clean"`
	} `json:"releases"`
	BisectRange *struct {
		Good    string `json:"good"`
		Bad     string `json:"bad"`
		Command string `json:"command"`
	} `json:"bisect_range"`
}

type fleetHost struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Release string            `json:"release"`
	Verdict *fleetVerdict     `json:"verdict"`
}

type fleetScenario struct {
	Config struct {
		GatedABI      string   `json:"gated_abi"`
		PreviousABI   string   `json:"previous_abi"`
		HardwareHosts []string `json:"hardware_hosts"`
		HealthyHosts  []string `json:"healthy_hosts"`
	} `json:"config"`
	Groups  []fleetGroup `json:"groups"`
	Hosts   []fleetHost  `json:"hosts"`
	Targets []struct {
		Name      string `json:"name"`
		Forwarded bool   `json:"forwarded"`
	} `json:"targets"`
	DB        string `json:"db"`
	Inventory string `json:"inventory"`
	State     string `json:"state"`
}

// checkFleet holds serve's answers to issue 12's bar: the race group is software
// with the gated ABI as the first bad release and the previous ABI as the good
// one; the hardware hosts and their crashes are hardware; the healthy hosts have
// no verdict. It returns the race group and the hardware hosts' groups.
func checkFleet(t *testing.T, f *fleetScenario, groups []fleetGroup, hosts []fleetHost) (race fleetGroup, hw []fleetGroup) {
	t.Helper()
	byName := map[string]fleetHost{}
	for _, h := range hosts {
		byName[h.Name] = h
	}
	hwIDs := map[string]bool{}
	for _, n := range f.Config.HardwareHosts {
		h, ok := byName[n]
		if !ok {
			t.Fatalf("no host named %s in %+v", n, hosts)
		}
		hwIDs[h.ID] = true
		if h.Verdict == nil || h.Verdict.Class != "hardware" {
			t.Errorf("hardware host %s: verdict %+v, want hardware", n, h.Verdict)
		}
	}
	for _, n := range f.Config.HealthyHosts {
		h, ok := byName[n]
		if !ok {
			t.Fatalf("no host named %s", n)
		}
		if h.Verdict != nil {
			t.Errorf("healthy host %s has a verdict: %+v", n, h.Verdict)
		}
	}
	found := false
	for _, g := range groups {
		onHW := len(g.Hosts) > 0
		for _, h := range g.Hosts {
			onHW = onHW && hwIDs[h]
		}
		switch {
		case strings.Contains(g.Title, "netrace_rcv"):
			race, found = g, true
		case onHW:
			hw = append(hw, g)
			if g.Verdict.Class != "hardware" {
				t.Errorf("group %q of the hardware host: %+v, want hardware", g.Title, g.Verdict)
			}
		default:
			t.Errorf("unexpected group %q on %v", g.Title, g.Hosts)
		}
	}
	if !found {
		t.Fatalf("no race group among %d groups", len(groups))
	}
	if race.Verdict.Class != "software" {
		t.Errorf("race group verdict %+v, want software", race.Verdict)
	}
	if b := race.BisectRange; b == nil || b.Good != f.Config.PreviousABI || b.Bad != f.Config.GatedABI || !strings.Contains(b.Command, "kcrash bisect") {
		t.Errorf("race bisect_range %+v, want %s → %s", b, f.Config.PreviousABI, f.Config.GatedABI)
	}
	if len(race.Releases.Crashing) == 0 || race.Releases.Crashing[0].Release != f.Config.GatedABI {
		t.Errorf("race crashing releases %+v, want %s first", race.Releases.Crashing, f.Config.GatedABI)
	}
	clean := false
	for _, r := range race.Releases.Clean {
		clean = clean || (r.Release == f.Config.PreviousABI && r.HostHours > 0)
	}
	if !clean {
		t.Errorf("race clean releases %+v lack %s with host-hours", race.Releases.Clean, f.Config.PreviousABI)
	}
	if len(hw) == 0 {
		t.Errorf("no group from the hardware hosts")
	}
	return race, hw
}

// TestFleetScenario: the fleet scenario's serve answered what issue 12 asks, and a
// kcrash serve restarted on its database (with its inventory and saved host-hours)
// answers the same; every kind of fleet page (dashboard, filtered dashboard,
// software and hardware group, hardware, healthy and software host) is then checked
// in Chromium, with a screenshot of each kept as an artifact (fleet-*.png).
func TestFleetScenario(t *testing.T) {
	var f fleetScenario
	scenario(t, "fleet", &f)
	checkFleet(t, &f, f.Groups, f.Hosts)
	for _, tg := range f.Targets {
		t.Logf("%s: serial console forwarded to serve: %v", tg.Name, tg.Forwarded)
	}

	browser := needChromium(t)
	dir := t.TempDir()
	for _, c := range []struct{ from, to string }{{f.DB, "fleet.db"}, {f.State, "fleet.db.fleet.json"}, {f.Inventory, "hosts.txt"}} {
		data, err := os.ReadFile(c.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.to), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServe(t, filepath.Join(dir, "fleet.db"), filepath.Join(dir, "logs"), "--hosts", filepath.Join(dir, "hosts.txt"))
	var groups struct {
		Groups []fleetGroup `json:"groups"`
	}
	var hosts struct {
		Hosts []fleetHost `json:"hosts"`
	}
	getJSON(t, "http://"+s.http+"/api/groups", &groups)
	getJSON(t, "http://"+s.http+"/api/hosts", &hosts)
	race, hw := checkFleet(t, &f, groups.Groups, hosts.Hosts)

	pages := []struct {
		name, path string
		want       []string
	}{
		{"dashboard", "/", []string{`class="fleetchart"`, "netrace_rcv", `class="verdict software"`, `class="verdict hardware"`, f.Config.GatedABI}},
		{"dashboard-hardware", "/?verdict=hardware", []string{`<option selected="">hardware</option>`, "bad-dimm"}},
		{"group-race", "/groups/" + race.Signature, []string{`id="bisect"`, f.Config.PreviousABI, "kcrash bisect", `class="evidence"`, "software"}},
		{"group-hardware", "/groups/" + hw[0].Signature, []string{`class="evidence"`, "hardware"}},
	}
	// One host page of each kind: the hardware hosts, a healthy host (no verdict)
	// and a host of the race (software); each Chromium run costs seconds.
	kinds := map[string]bool{}
	for _, h := range hosts.Hosts {
		kind := "software"
		switch {
		case slices.Contains(f.Config.HardwareHosts, h.Name):
			kind = h.Name
		case h.Verdict == nil:
			kind = "healthy"
		}
		if kinds[kind] {
			continue
		}
		kinds[kind] = true
		want := []string{h.Name}
		if h.Verdict == nil {
			want = append(want, `id="noverdict"`)
		} else {
			want = append(want, `class="evidence"`)
		}
		if h.Name == "bad-dimm" {
			want = append(want, `id="hwlines"`, "[Hardware Error]")
		}
		pages = append(pages, struct {
			name, path string
			want       []string
		}{"host-" + h.Name, "/hosts/" + h.ID, want})
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			url := "http://" + s.http + p.path
			dom := string(chromium(t, browser, "--dump-dom", url))
			for _, w := range p.want {
				if !strings.Contains(dom, w) {
					t.Errorf("%s: the rendered page lacks %q", p.path, w)
				}
			}
			shot := filepath.Join(artifactDir(t), "fleet-"+p.name+".png")
			chromium(t, browser, "--screenshot="+shot, "--window-size=1280,1200", url)
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
				t.Errorf("screenshot %s: %v", shot, err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, v) != nil {
		t.Fatalf("GET %s: %s %.300s", url, resp.Status, b)
	}
}
