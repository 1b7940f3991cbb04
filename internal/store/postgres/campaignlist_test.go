package postgres

import (
	"context"
	"testing"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

func TestListCampaigns(t *testing.T) {
	pg := storetest.StartPostgres(t)
	s, err := Open(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.RunListCampaigns(t, s)
}
