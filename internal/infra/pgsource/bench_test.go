package pgsource_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// The benchmarks measure the source against pgx talking to the same server
// as the same read-only role, which is what psql does over the wire without
// its process start-up. Run them with PostgreSQL up:
//
//	source .ci/postgres-setup.sh
//	go test -run x -bench . -benchtime 20x ./internal/infra/pgsource
//
// Report the ratios source/direct of one run.

// benchTable creates a table of n rows (id, grp, val) in a schema of the
// benchmark's own, analyzed, and returns its qualified name.
func benchTable(b *testing.B, n int) (schema, table string) {
	b.Helper()
	admin := adminConn(b)
	schema = fixtureSchema(b, admin)
	table = "facts"
	exec(b, admin, fmt.Sprintf(`CREATE TABLE %[1]s.facts (id int PRIMARY KEY, grp text, val numeric(12,2));
INSERT INTO %[1]s.facts SELECT g, 'g' || (g %% 100), (g %% 1000) / 4.0 FROM generate_series(1, %[2]d) g;
ANALYZE %[1]s.facts;`, ident(schema), n))
	return schema, table
}

func directPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), dsn(b, envRODSN))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// drain reads every row, as the source does.
func drain(b *testing.B, rows pgx.Rows) int {
	b.Helper()
	n := 0
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkQueryOverhead: a point query (the fixed cost: read-only
// transaction, settings, EXPLAIN, plan check) and an aggregate over 1M
// rows (the cost that matters for analysis), each through the source and
// straight through pgx.
func BenchmarkQueryOverhead(b *testing.B) {
	schema, table := benchTable(b, 1_000_000)
	s := openRO(b, pgsource.Config{Schemas: []string{schema}, MaxConnections: 2, MaxRows: 1000})
	pool := directPool(b)
	ctx := context.Background()
	queries := map[string]string{
		"point":     fmt.Sprintf("SELECT * FROM %s.%s WHERE id = 424242", ident(schema), ident(table)),
		"aggregate": fmt.Sprintf("SELECT grp, count(*), avg(val) FROM %s.%s GROUP BY grp ORDER BY grp", ident(schema), ident(table)),
	}
	for _, name := range []string{"point", "aggregate"} {
		q := queries[name]
		b.Run(name+"/direct", func(b *testing.B) {
			for b.Loop() {
				rows, err := pool.Query(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				drain(b, rows)
			}
		})
		b.Run(name+"/source", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Query(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProfile profiles a 10M-row table from the catalog, against the
// cheapest scan a profile could otherwise start from: count(*).
func BenchmarkProfile(b *testing.B) {
	schema, table := benchTable(b, 10_000_000)
	s := openRO(b, pgsource.Config{Schemas: []string{schema}, MaxConnections: 2})
	pool := directPool(b)
	ctx := context.Background()
	b.Run("catalog", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Profile(ctx, table); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("count-scan", func(b *testing.B) {
		for b.Loop() {
			var n int64
			if err := pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.%s", ident(schema), ident(table))).Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
