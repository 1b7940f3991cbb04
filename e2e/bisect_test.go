package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/bisect"
	"github.com/kcrash/kcrash/internal/lab"
)

// bisectJSON is kcrash bisect --json's result.
type bisectJSON struct {
	Culprit     *string `json:"culprit"`
	Confidence  float64 `json:"confidence"`
	Runs        int     `json:"runs"`
	TestSeconds float64 `json:"test_seconds"`
	Steps       []struct {
		Candidate string  `json:"candidate"`
		Seconds   float64 `json:"seconds"`
		Outcome   string  `json:"outcome"`
	} `json:"steps"`
}

// TestBisectScenario: kcrash bisect, a process of its own rebooting a lab target
// into each packaged ABI and flooding it, finds the ABI netrace is gated at with
// the confidence it states, although the scenario killed it with SIGKILL in the
// middle of a test and `kcrash bisect --resume` finished it. Every crash is on
// an ABI at or after the gate; the state file holds the same steps and verdict;
// the bisection's dashboard page (Chromium) shows the culprit and both charts,
// and the crash group links it.
func TestBisectScenario(t *testing.T) {
	var r struct {
		Candidates []string   `json:"candidates"`
		GatedAt    string     `json:"gated_at"`
		Bisect     bisectJSON `json:"bisect"`
	}
	scenario(t, "bisect", &r)
	b := r.Bisect
	if len(r.Candidates) < 3 || r.GatedAt == "" {
		t.Fatalf("scenario %+v", r)
	}
	if b.Culprit == nil || *b.Culprit != r.GatedAt || b.Confidence < 0.95 {
		t.Fatalf("culprit %v at %.3f, want %s at 95%% or more: %+v", b.Culprit, b.Confidence, r.GatedAt, b)
	}
	gate := lab.CompareABIs
	sawGood := false
	for i, s := range b.Steps {
		t.Logf("step %d: %s %s after %.1fs", i+1, s.Candidate, s.Outcome, s.Seconds)
		if s.Outcome == "crash" && gate(s.Candidate, r.GatedAt) < 0 {
			t.Errorf("step %d: %s crashed, before the gate %s", i+1, s.Candidate, r.GatedAt)
		}
		if s.Outcome == "survived" && gate(s.Candidate, r.GatedAt) < 0 {
			sawGood = true
		}
	}
	if !sawGood {
		t.Errorf("no candidate before the gate was watched surviving: the verdict rests on the prior alone")
	}
	dir := filepath.Join(lab.DefaultDir(), "scenarios", "bisect")
	st, err := bisect.LoadState(filepath.Join(dir, lab.BisectScenarioState))
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict == nil || st.Verdict.Status != bisect.VerdictCulprit || len(st.Steps) != len(b.Steps) || st.Pending != nil {
		t.Fatalf("state: verdict %+v, %d steps (result %d), pending %+v", st.Verdict, len(st.Steps), len(b.Steps), st.Pending)
	}
	// The log: killed during step K, resumed with K-1 steps done and the
	// interrupted test run again, and finished.
	log, err := os.ReadFile(filepath.Join(dir, lab.BisectScenarioLog))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`killed kcrash bisect \(SIGKILL\) during step (\d+)`).FindSubmatch(log)
	if m == nil {
		t.Fatalf("the log shows no kill:\n%s", log)
	}
	k, _ := strconv.Atoi(string(m[1]))
	resumed := fmt.Sprintf("resuming %s: %d steps done; the test of", filepath.Join(dir, lab.BisectScenarioState), k-1)
	if k < 2 || k > len(b.Steps) || !strings.Contains(string(log), resumed) || !strings.Contains(string(log), "first bad: "+r.GatedAt) {
		t.Errorf("killed during step %d of %d; the log lacks %q or the verdict", k, len(b.Steps), resumed)
	}
	t.Logf("killed during step %d of %d; %d runs, %.1fs under load, confidence %.3f", k, len(b.Steps), b.Runs, b.TestSeconds, b.Confidence)

	// The dashboard, on a copy of the scenario's crash database.
	browser := needChromium(t)
	db := filepath.Join(t.TempDir(), "kcrash.db")
	data, err := os.ReadFile(filepath.Join(dir, "kcrash.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, db, t.TempDir())
	resp, err := http.Get("http://" + s.http + "/api/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Campaigns []struct {
			ID        int64  `json:"id"`
			Kind      string `json:"kind"`
			Signature string `json:"signature"`
		} `json:"campaigns"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Campaigns) != 1 || list.Campaigns[0].Kind != "bisect" || list.Campaigns[0].Signature == "" {
		t.Fatalf("campaigns %+v (%v): want the one bisection with its crash", list.Campaigns, err)
	}
	c := list.Campaigns[0]
	url := fmt.Sprintf("http://%s/campaigns/%d", s.http, c.ID)
	page := string(chromium(t, browser, "--dump-dom", url))
	for _, want := range []string{`id="culprit">` + r.GatedAt, `<svg class="posterior"`, `<svg class="bisect-timeline"`, fmt.Sprintf(`aria-label="%d steps"`, len(b.Steps))} {
		if !strings.Contains(page, want) {
			t.Errorf("bisection page lacks %q", want)
		}
	}
	group := string(chromium(t, browser, "--dump-dom", fmt.Sprintf("http://%s/groups/%s", s.http, c.Signature)))
	if !strings.Contains(group, "netrace_rcv") || !strings.Contains(group, fmt.Sprintf(`href="/campaigns/%d"`, c.ID)) {
		t.Errorf("the group page of %s does not link the bisection %d", c.Signature, c.ID)
	}
	shot := filepath.Join(artifactDir(t), "bisect.png")
	chromium(t, browser, "--screenshot="+shot, "--window-size=1280,1200", url)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("bisection page screenshot: %s", shot)
}
