package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// campaignSetup stores a real crash (its group) and three campaigns: a repro of
// that crash, a soak that passed and one of another crash with hostile text.
func campaignSetup(t *testing.T) (*httptest.Server, string, []int64) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	col := collector.New(collector.Options{Store: st})
	cctx, cancel := context.WithCancel(ctx)
	go col.Run(cctx, 5*time.Second)
	t.Cleanup(func() { cancel(); <-col.Done() })
	f, err := os.Open("../collector/testdata/ACCESS_NULL.netconsole")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := col.Ingest("lab-1", f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for col.Stats.Reports.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	reps, err := st.Reports(ctx, store.ReportQuery{Limit: 1})
	if err != nil || len(reps) != 1 {
		t.Fatalf("reports %v, %v", reps, err)
	}
	sig, rep := reps[0].Signature, reps[0].ID
	now := time.Now().Truncate(time.Millisecond)
	var ids []int64
	for _, c := range []struct {
		camp store.Campaign
		runs []store.CampaignRun
	}{
		{store.Campaign{Kind: "repro", Host: "lab-1", Load: "kcrash lab load --pps 20000", Signature: sig, Status: "done", Result: []byte(`{"runs":4}`)},
			[]store.CampaignRun{
				{N: 1, Start: now, Seconds: 2.5, Outcome: "crash", Report: rep, Signature: sig},
				{N: 2, Start: now, Seconds: 4, Outcome: "crash", Report: rep, Signature: sig},
				{N: 3, Start: now, Seconds: 1.5, Outcome: "crash", Report: rep, Signature: sig},
				{N: 4, Start: now, Seconds: 10, Outcome: "censored"},
			}},
		{store.Campaign{Kind: "soak", Host: "lab-1", Load: "flood (fixed=1)", Signature: sig, Status: "fixed",
			Result: []byte(`{"required_s":30,"watched_s":30.2,"crashed":false,"verdict":"fixed","confidence":0.95,"rate_reduction_at_least":3.4}`)},
			[]store.CampaignRun{{N: 1, Start: now, Seconds: 30.2, Outcome: "censored"}}},
		{store.Campaign{Kind: "repro", Host: "<b>evil</b>", Load: "<script>alert(1)</script>", Signature: "v1:other", Status: "running"}, nil},
	} {
		c.camp.Started, c.camp.Updated = now, now
		if err := st.SaveCampaign(ctx, &c.camp); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.runs {
			if err := st.SaveCampaignRun(ctx, c.camp.ID, r); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, c.camp.ID)
	}
	srv := httptest.NewServer(New(Options{Store: st, Pipeline: col}))
	t.Cleanup(srv.Close)
	return srv, sig, ids
}

func TestCampaignPages(t *testing.T) {
	srv, sig, ids := campaignSetup(t)
	id := func(i int) string { return strconv.FormatInt(ids[i], 10) }
	for _, tc := range []struct {
		path    string
		want    []string
		notWant []string
	}{
		{"/campaigns", []string{`href="/campaigns/` + id(0) + `"`, `href="/campaigns/` + id(2) + `"`, "kcrash lab load --pps 20000"},
			[]string{"<script>alert", "<b>evil"}},
		{"/campaigns/" + id(0), []string{
			"Repro campaign " + id(0), `<svg class="ttc"`, `href="/groups/` + sig + `"`, `href="/reports/`,
			// 3 crashes in 18 s watched: rate 10/min, mean time to crash 6 s.
			"Rate</th><td>10/min (95%:", "Mean time to crash</th><td>6 s (95%:",
			"3 crashed, 1 censored",
		}, []string{`id="verdict"`}},
		{"/campaigns/" + id(1), []string{"Soak campaign", `id="verdict"`, ">fixed<", "95%", "30.2 s of 30 s required", "3.4×"}, nil},
		{"/campaigns/" + id(2), []string{"No run yet", `aria-label="no runs"`}, []string{"<script>alert", "<b>evil"}},
		{"/groups/" + sig, []string{"campaigns of this crash", `href="/campaigns/` + id(0) + `"`, `href="/campaigns/` + id(1) + `"`},
			[]string{`href="/campaigns/` + id(2) + `"`}},
		{"/", []string{`href="/campaigns"`}, nil},
	} {
		code, body := get(t, srv.URL+tc.path)
		if code != 200 {
			t.Errorf("%s: %d %.300s", tc.path, code, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", tc.path, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(body, w) {
				t.Errorf("%s has %q", tc.path, w)
			}
		}
	}
	// The chart: one bar per run, crashes red, the censored run grey with its arrow.
	_, body := get(t, srv.URL+"/campaigns/"+id(0))
	svg := regexp.MustCompile(`(?s)<svg class="ttc".*?</svg>`).FindString(body)
	if n := strings.Count(svg, `class="crash"`); n != 3 {
		t.Errorf("chart has %d crash bars, want 3: %s", n, svg)
	}
	if strings.Count(svg, `class="censored"`) != 1 || strings.Count(svg, `class="arrow"`) != 1 || !strings.Contains(svg, `class="mttc"`) || !strings.Contains(svg, `class="band"`) {
		t.Errorf("chart lacks the censored run, the mean or its band: %s", svg)
	}
	for _, path := range []string{"/campaigns/999", "/campaigns/x", "/api/campaigns/999"} {
		if code, _ := get(t, srv.URL+path); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	var api struct {
		Campaigns []store.Campaign `json:"campaigns"`
	}
	if _, body := get(t, srv.URL+"/api/campaigns?signature="+sig); json.Unmarshal([]byte(body), &api) != nil || len(api.Campaigns) != 2 {
		t.Errorf("/api/campaigns?signature=: %s", body)
	}
	var one struct {
		Runs   []store.CampaignRun `json:"runs"`
		Result map[string]any      `json:"result"`
	}
	if _, body := get(t, srv.URL+"/api/campaigns/"+id(0)); json.Unmarshal([]byte(body), &one) != nil || len(one.Runs) != 4 || one.Result["runs"] != 4.0 {
		t.Errorf("/api/campaigns/%s: %s", id(0), body)
	}
}
