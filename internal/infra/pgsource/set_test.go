package pgsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/pgsource/pgtest"
)

// Rows pages a table in its primary key's order, one page at a time, and
// says whether rows remain.
func TestRowsShouldPageInPrimaryKeyOrder(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	exec(t, admin, "INSERT INTO "+ident(schema, "customers")+" VALUES (0, 'Zed', 'Oslo')") // first by key, last inserted
	s := shopSource(t, schema, nil)
	tables := s.Tables()
	if got := tables[0].PrimaryKey; tables[0].Name != "customers" || !reflect.DeepEqual(got, []string{"id"}) {
		t.Fatalf("customers: %+v", tables[0])
	}
	ctx := context.Background()
	cases := []struct {
		limit     int
		offset    int64
		rows      string
		truncated bool
		count     int64
	}{
		{2, 0, `[[0,"Zed","Oslo"],[1,"Ada","London"]]`, true, 3},
		{2, 2, `[[2,"Grace","New York"],[3,"Linus",null]]`, false, 2},
		{2, 4, `[]`, false, 0},
	}
	for _, tc := range cases {
		res, err := s.Rows(ctx, "customers", tc.limit, tc.offset)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(res.Rows)
		if string(got) != tc.rows || res.Truncated != tc.truncated || res.RowCount != tc.count {
			t.Errorf("Rows(limit %d, offset %d) = %s truncated %v count %d, want %s %v %d",
				tc.limit, tc.offset, got, res.Truncated, res.RowCount, tc.rows, tc.truncated, tc.count)
		}
	}
	_, err := s.Rows(ctx, "secrets", 2, 0)
	requireKind(t, err, pgsource.KindNotFound, `no table "secrets"`)
}

// Health follows the database: reachable with a latency after Open, and
// unreachable with the error as soon as a query cannot reach it. OnQuery
// hears every query's outcome.
func TestHealthShouldFollowTheDatabase(t *testing.T) {
	t.Parallel()
	ro, err := url.Parse(dsn(t, envRODSN))
	if err != nil {
		t.Fatal(err)
	}
	p := pgtest.StartProxy(t, ro.Host)
	via := *ro
	via.Host = p.Addr()
	var mu sync.Mutex
	var outcomes []string
	s := openRO(t, pgsource.Config{DSN: via.String(), MaxConnections: 1, OnQuery: func(outcome string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		outcomes = append(outcomes, outcome)
	}})
	h := s.Health()
	if h.Reachable == nil || !*h.Reachable || h.LatencyMS == nil || h.LastError != nil || h.CheckedAt == nil {
		t.Fatalf("after Open: %+v", h)
	}
	ctx := context.Background()
	query(t, s, "SELECT 1")
	_, err = s.Query(ctx, "SELECT nope")
	requireKind(t, err, pgsource.KindSQL)

	p.Stop()
	_, err = s.Query(ctx, "SELECT 1")
	requireKind(t, err, pgsource.KindUnavailable)
	h = s.Health()
	if h.Reachable == nil || *h.Reachable || h.LastError == nil || *h.LastError != err.(*pgsource.Error).Message {
		t.Fatalf("after the database went away: %+v (error %v)", h, err)
	}
	mu.Lock()
	got := outcomes
	mu.Unlock()
	if want := []string{"ok", "sql_error", "unavailable"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
}

// A Set finds its sources by name, refuses others with ErrUnknownSource,
// probes them, and closes them.
func TestSetShouldFindProbeAndCloseItsSources(t *testing.T) {
	t.Parallel()
	a := openRO(t, pgsource.Config{Name: "a"})
	b := openRO(t, pgsource.Config{Name: "b"})
	set := pgsource.NewSet(a, b)
	if got, err := set.Get("b"); err != nil || got != b {
		t.Fatalf("Get(b) = %v, %v", got, err)
	}
	if _, err := set.Get("c"); !errors.Is(err, pgsource.ErrUnknownSource) || err.Error() != `no source with that name: "c"` {
		t.Fatalf("Get(c): %v", err)
	}
	if all := set.All(); len(all) != 2 || all[0] != a || all[1] != b {
		t.Fatalf("All() = %v", all)
	}
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := *a.Health().CheckedAt
	set.StartProbing(20*time.Millisecond, time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !a.Health().CheckedAt.After(before) || !b.Health().CheckedAt.After(before) {
		if time.Now().After(deadline) {
			t.Fatal("no probe within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	set.Close()
	set.Close()
	_, err := a.Query(context.Background(), "SELECT 1")
	requireKind(t, err, pgsource.KindUnavailable, "the source is closed")

	var none *pgsource.Set
	if _, err := none.Get("a"); !errors.Is(err, pgsource.ErrUnknownSource) || none.All() != nil || none.Refresh(context.Background()) != nil {
		t.Fatal("a nil Set should have no sources")
	}
	none.StartProbing(time.Second, time.Second)
	none.Close()
}
