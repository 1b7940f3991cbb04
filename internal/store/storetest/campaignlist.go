package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

// CampaignStore is a store that keeps and lists campaigns.
type CampaignStore interface {
	store.Campaigns
	store.CampaignLister
}

// RunListCampaigns checks a store's listing of campaigns: newest first, limited,
// and by signature (the campaigns whose signature is the group's or a prefix of it).
// The store must hold no campaign yet.
func RunListCampaigns(t *testing.T, s CampaignStore) {
	ctx := context.Background()
	now := time.Now()
	var ids []int64
	for _, sig := range []string{"v1:aabb", "v1:aa", "", "v1:cc"} {
		c := &store.Campaign{Kind: "repro", Host: "h", Load: "l", Signature: sig, Started: now, Updated: now, Status: "done"}
		if err := s.SaveCampaign(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	for _, tc := range []struct {
		q    store.CampaignQuery
		want []int64 // newest first
	}{
		{store.CampaignQuery{}, []int64{ids[3], ids[2], ids[1], ids[0]}},
		{store.CampaignQuery{Limit: 2}, []int64{ids[3], ids[2]}},
		{store.CampaignQuery{Signature: "v1:aabb"}, []int64{ids[1], ids[0]}}, // itself and a prefix of it
		{store.CampaignQuery{Signature: "v1:aa"}, []int64{ids[1]}},
		{store.CampaignQuery{Signature: "v1:zz"}, nil},
	} {
		cs, err := s.ListCampaigns(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, c := range cs {
			got = append(got, c.ID)
			if c.Kind != "repro" || c.Status != "done" || c.Started.IsZero() {
				t.Errorf("%+v", c)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: ids %v, want %v", tc.q, got, tc.want)
		}
	}
}
