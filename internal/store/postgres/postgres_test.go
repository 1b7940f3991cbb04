package postgres

import (
	"context"
	"testing"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

func TestStore(t *testing.T) {
	pg := storetest.StartPostgres(t)
	ctx := context.Background()
	s, err := Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A second collector opening the same database migrates nothing twice.
	s2, err := Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	storetest.Run(t, s)
	storetest.RunSources(t, s)
}
