package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

func TestListCampaigns(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, sig := range []string{"v1:aabb", "v1:aa", "", "v1:cc"} {
		c := &store.Campaign{Kind: "repro", Host: "h", Load: "l", Signature: sig, Started: now, Updated: now, Status: "done"}
		if err := s.SaveCampaign(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		q    store.CampaignQuery
		want []int64 // ids, newest first
	}{
		{store.CampaignQuery{}, []int64{4, 3, 2, 1}},
		{store.CampaignQuery{Limit: 2}, []int64{4, 3}},
		{store.CampaignQuery{Signature: "v1:aabb"}, []int64{2, 1}}, // itself and a prefix of it
		{store.CampaignQuery{Signature: "v1:aa"}, []int64{2}},
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
