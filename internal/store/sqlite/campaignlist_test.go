package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

func TestListCampaigns(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.RunListCampaigns(t, s)
}
