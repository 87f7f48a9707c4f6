package pgsource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// seqScans reads pg_stat_user_tables.seq_scan for schema.table, as the
// cumulative statistics system has it now.
func seqScans(t *testing.T, admin *pgx.Conn, schema, table string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := admin.QueryRow(ctx, `SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`,
		schema, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Profile reads the catalog only: on a 100,000-row table it answers fast,
// with estimates close to the truth, and the table is never scanned (its
// seq_scan counter moves only for a control query that does scan it).
func TestProfileShouldReadTheCatalogOnly(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %[1]s.facts (id int, grp text, val numeric(12,2), maybe int, flag boolean, day date);
INSERT INTO %[1]s.facts
	SELECT g, 'g' || (g %% 10), (g %% 1000) / 4.0, CASE WHEN g %% 2 = 0 THEN g END, g %% 3 = 0, DATE '2024-01-01' + (g %% 366)
	FROM generate_series(1, 100000) g;
ANALYZE %[1]s.facts;
CREATE TABLE %[1]s.fresh (x int);`, ident(schema)))
	s := openRO(t, pgsource.Config{Schemas: []string{schema}, MaxConnections: 1})
	before := seqScans(t, admin, schema, "facts")

	start := time.Now()
	prof, err := s.Profile(context.Background(), "facts")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// How long it took is a benchmark's business (BenchmarkProfile), not
	// an assertion: the seq_scan count below is the proof.
	t.Logf("Profile of 100,000 rows took %v", took)
	if prof.Schema != schema || prof.Table != "facts" || !prof.Analyzed || prof.RowEstimate < 95_000 || prof.RowEstimate > 105_000 {
		t.Fatalf("profile: %+v", prof)
	}
	cols := map[string]pgsource.ColumnProfile{}
	for _, c := range prof.Columns {
		cols[c.Name] = c
	}
	if len(prof.Columns) != 6 || prof.Columns[0].Name != "id" {
		t.Fatalf("columns: %+v", prof.Columns)
	}
	num := func(v any) float64 {
		n, ok := v.(json.Number)
		if !ok {
			t.Fatalf("want a json.Number, got %T %v", v, v)
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	id := cols["id"]
	if !id.HasStats || id.Type != "integer" || num(id.Min) > 2000 || num(id.Max) < 98_000 || id.Distinct < 90_000 || id.Nulls != 0 {
		t.Fatalf("id: %+v", id)
	}
	grp := cols["grp"]
	if grp.Distinct != 10 || len(grp.TopValues) != 10 || grp.Min != "g0" || grp.Max != "g9" {
		t.Fatalf("grp: %+v", grp)
	}
	if f := grp.TopValues[0].Frequency; f < 0.08 || f > 0.12 {
		t.Fatalf("grp's top frequency %v", f)
	}
	if m := cols["maybe"]; m.NullFraction < 0.45 || m.NullFraction > 0.55 || m.Nulls < 45_000 || m.Nulls > 55_000 {
		t.Fatalf("maybe: %+v", m)
	}
	if f := cols["flag"]; f.Min != false || f.Max != true || f.Distinct != 2 {
		t.Fatalf("flag: %+v", f)
	}
	if d := cols["day"]; d.Min != "2024-01-01" || d.Max != "2024-12-31" {
		t.Fatalf("day: %+v", d)
	}
	if v := cols["val"]; v.Type != "numeric(12,2)" || num(v.Min) > 5 || num(v.Max) < 240 {
		t.Fatalf("val: %+v", v)
	}

	// Never analyzed: no statistics, no row estimate, and still no scan.
	fresh, err := s.Profile(context.Background(), schema+".fresh")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Analyzed || fresh.RowEstimate != -1 || len(fresh.Columns) != 1 || fresh.Columns[0].HasStats || fresh.Columns[0].TopValues == nil {
		t.Fatalf("fresh: %+v", fresh)
	}

	// The control scans the table once (a plain Seq Scan under a Limit);
	// once its count shows, so would any scan by Profile, made before it
	// on the same connection.
	query(t, s, "SELECT id FROM facts LIMIT 1")
	s.Close() // a backend flushes its statistics when it exits
	deadline := time.Now().Add(15 * time.Second)
	after := seqScans(t, admin, schema, "facts")
	for after == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		after = seqScans(t, admin, schema, "facts")
	}
	if after != before+1 {
		t.Fatalf("seq_scan went from %d to %d; want exactly the control's one scan", before, after)
	}
}

// 50 concurrent queries share MaxConnections connections: neither the
// pool's own count nor the server's pg_stat_activity ever shows more, and
// every query succeeds.
func TestQueryShouldRespectMaxConnectionsUnderLoad(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	name := "load_" + randomSuffix()
	const maxConns = 3
	s := openRO(t, pgsource.Config{Name: name, MaxConnections: maxConns})

	stop := make(chan struct{})
	sampled := make(chan int)
	go func() {
		peak := 0
		defer func() { sampled <- peak }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var n int
			if err := admin.QueryRow(context.Background(),
				`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, "nexus/"+name).Scan(&n); err != nil {
				return
			}
			peak = max(peak, n)
		}
	}()

	const calls = 50
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := s.Query(ctx, fmt.Sprintf("SELECT pg_sleep(0.02), %d AS i, g FROM generate_series(1, 3) g", i))
			if err == nil && (len(res.Rows) != 3 || res.Rows[0][1] != int64(i)) {
				err = fmt.Errorf("call %d got %v", i, res.Rows)
			}
			errs <- err
		}()
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	serverPeak := <-sampled
	st := s.Stats()
	t.Logf("pool: %+v; server-side peak %d connections", st, serverPeak)
	if st.PeakInUse > maxConns || st.MaxConnections != maxConns || st.Open > maxConns {
		t.Fatalf("pool stats %+v exceed %d", st, maxConns)
	}
	if st.PeakInUse < 2 {
		t.Fatalf("the queries did not overlap (peak %d): the test proves nothing", st.PeakInUse)
	}
	if serverPeak > maxConns || serverPeak == 0 {
		t.Fatalf("the server saw %d connections at once, want 1..%d", serverPeak, maxConns)
	}
}
