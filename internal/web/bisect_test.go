package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/bisect"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// TestBisectPage: a bisection recorded as kcrash bisect records it (a campaign of
// kind "bisect" whose result is bisect.Summarize of its state) is shown with its
// verdict, the posterior and the timeline as SVG; hostile candidate names are
// escaped everywhere.
func TestBisectPage(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cands := []string{"6.1.0-55", "6.1.0-56", "<script>alert(1)</script>", "6.1.0-58"}
	state, err := bisect.NewState(bisect.Config{Candidates: cands, FirstIsGood: true, RunLength: 30, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := bisect.NewSearch(state)
	now := time.Now()
	for _, o := range []struct {
		i   int
		out string
		sec float64
	}{{3, bisect.Crash, 4}, {1, bisect.Survived, 30}, {2, bisect.Crash, 2.5}, {1, bisect.Survived, 30}, {2, bisect.Other, 1}, {1, bisect.Survived, 30}} {
		s.Record(bisect.Test{Candidate: o.i, Seconds: 30, Phase: bisect.PhaseSearch}, bisect.Observation{Outcome: o.out, Seconds: o.sec, Signature: "sig"}, now)
	}
	k, p := bisect.Top(s.Probs())
	state.Verdict = &bisect.Verdict{Status: bisect.VerdictCulprit, Culprit: k, Confidence: p}
	sum, err := bisect.Summarize(state)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(sum)
	c := store.Campaign{Kind: "bisect", Host: "lab", Load: "kcrash lab load", Signature: "v1:sig", Status: "culprit", Result: res, Started: now, Updated: now}
	if err := st.SaveCampaign(ctx, &c); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Store: st}))
	defer srv.Close()
	code, body := get(t, srv.URL+"/campaigns/"+strconv.FormatInt(c.ID, 10))
	if code != 200 {
		t.Fatalf("%d %.500s", code, body)
	}
	for _, want := range []string{"Bisection " + strconv.FormatInt(c.ID, 10), `id="culprit"`, "&lt;script&gt;alert(1)&lt;/script&gt;",
		`<svg class="posterior"`, `<svg class="bisect-timeline"`, `href="/groups/v1:sig"`, `aria-label="6 steps"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a candidate name reached the page unescaped")
	}
	if k != 2 || p < 0.5 {
		t.Fatalf("top %d %.3f: the recorded steps point at candidate 2", k, p)
	}
	timeline := regexp.MustCompile(`(?s)<svg class="bisect-timeline".*?</svg>`).FindString(body)
	if strings.Count(timeline, `<rect class="crash"`) != 2 || strings.Count(timeline, `<rect class="survived"`) != 3 || strings.Count(timeline, `<rect class="other"`) != 1 {
		t.Errorf("timeline: %s", timeline)
	}
	post := regexp.MustCompile(`(?s)<svg class="posterior".*?</svg>`).FindString(body)
	if strings.Count(post, `<rect class="p`) != len(cands)+1 || strings.Count(post, `class="p culprit"`) != 1 || !strings.Contains(post, `class="conf"`) {
		t.Errorf("posterior chart: %s", post)
	}
}
