package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

// RunCampaigns checks a store's keeping of repro and soak campaigns.
func RunCampaigns(t *testing.T, s store.Campaigns) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond).UTC()
	c := &store.Campaign{Kind: "repro", Host: "10.0.0.5", Load: "flood", Started: now, Updated: now, Status: "running"}
	if err := s.SaveCampaign(ctx, c); err != nil || c.ID == 0 {
		t.Fatalf("insert: id %d, %v", c.ID, err)
	}
	for _, r := range []store.CampaignRun{
		{N: 1, Start: now, Seconds: 12.5, Outcome: "crash", Report: 7, Signature: "v1:aa"},
		{N: 2, Start: now.Add(time.Minute), Seconds: 600, Outcome: "censored"},
		{N: 2, Start: now.Add(time.Minute), Seconds: 601, Outcome: "censored"}, // rewritten
	} {
		if err := s.SaveCampaignRun(ctx, c.ID, r); err != nil {
			t.Fatalf("run %d: %v", r.N, err)
		}
	}
	c.Status, c.Signature, c.Result, c.Updated = "done", "v1:aa", []byte(`{"runs":2}`), now.Add(time.Hour)
	if err := s.SaveCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, runs, err := s.Campaign(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "repro" || got.Host != "10.0.0.5" || got.Load != "flood" || got.Status != "done" || got.Signature != "v1:aa" ||
		string(got.Result) != `{"runs":2}` || !got.Started.Equal(now) || !got.Updated.Equal(now.Add(time.Hour)) {
		t.Errorf("campaign %+v", got)
	}
	if len(runs) != 2 || runs[0].Report != 7 || runs[0].Seconds != 12.5 || runs[1].Seconds != 601 || !runs[1].Start.Equal(now.Add(time.Minute)) {
		t.Errorf("runs %+v", runs)
	}
	if _, _, err := s.Campaign(ctx, c.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing campaign: %v", err)
	}
	if err := s.SaveCampaign(ctx, &store.Campaign{ID: c.ID + 1000}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("updating a missing campaign: %v", err)
	}
}
