package dataset_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// A dataset's owner is recorded at creation, kept when tables are added,
// listed, and read back after a restart; a dataset created without one
// has none.
func TestOwnerShouldBeRecordedKeptAndPersisted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dataset.Config{Dir: dir})

	// Given one dataset created for team-a and one for nobody
	owned, err := s.Create(ctx, "", "orders.csv", strings.NewReader(ordersCSV), dataset.WithOwner("team-a"))
	if err != nil {
		t.Fatal(err)
	}
	anon, err := s.Create(ctx, "", "customers.csv", strings.NewReader(customersCSV))
	if err != nil {
		t.Fatal(err)
	}
	// When a table is added to the owned one
	added, err := addTables(ctx, s, owned.ID, file{"sales.csv", salesCSV})
	if err != nil {
		t.Fatal(err)
	}
	// Then the owner stays, and both read back as created
	if owned.Owner != "team-a" || added.Owner != "team-a" || anon.Owner != "" {
		t.Fatalf("owners: created %q, after adding %q, anonymous %q", owned.Owner, added.Owner, anon.Owner)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Owner != "team-a" || list[1].Owner != "" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// And after a restart too
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dataset.Config{Dir: dir})
	got, err := s.Get(ctx, owned.ID)
	if err != nil || got.Owner != "team-a" {
		t.Fatalf("after reopening: owner %q, %v", got.Owner, err)
	}
}
