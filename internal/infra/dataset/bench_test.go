package dataset_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// benchCSV writes a CSV of about size bytes with a realistic mix of
// columns: ids, timestamps, a low-cardinality category, amounts, unique
// names and free text.
func benchCSV(tb testing.TB, size int64) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bench.csv")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "id,created_at,category,amount,customer,note")
	var written int64
	for i := 0; written < size; i++ {
		n, _ := fmt.Fprintf(w, "%d,2024-%02d-%02d %02d:%02d:00,cat%d,%d.%02d,customer-%07d,note about order %d\n",
			i, i%12+1, i%28+1, i%24, i%60, i%20, i%10000, i%100, i, i%977)
		written += int64(n)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkIngestCSV compares Store.Create (stream to disk, load, profile,
// checkpoint, rename) with DuckDB's own CREATE TABLE AS read_csv on the
// same file, into a fresh database file and into memory.
func BenchmarkIngestCSV(b *testing.B) {
	path := benchCSV(b, 50<<20)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.Run("store", func(b *testing.B) {
		s := mustOpen(b, dataset.Config{Dir: b.TempDir()})
		b.SetBytes(st.Size())
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			ds, err := s.Create(ctx, "", "bench.csv", f)
			_ = f.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(ctx, ds.ID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	for _, target := range []string{"duckdb-file", "duckdb-memory"} {
		b.Run(target, func(b *testing.B) {
			b.SetBytes(st.Size())
			dir := b.TempDir()
			i := 0
			for b.Loop() {
				dsn := ""
				if target == "duckdb-file" {
					dsn = filepath.Join(dir, fmt.Sprintf("raw%d.duckdb", i))
				}
				i++
				c, err := duckdb.NewConnector(dsn, nil)
				if err != nil {
					b.Fatal(err)
				}
				db := sql.OpenDB(c)
				if _, err := db.ExecContext(ctx, "CREATE TABLE t AS SELECT * FROM read_csv(?)", path); err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQueryGroupBy compares Session.Query (guard, sandboxed
// read-only handle, streaming conversion, caps) with a plain query on a
// DuckDB database holding the same table, for a group-by over 1M rows.
func BenchmarkQueryGroupBy(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, "g.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "region,product,sales")
	regions := []string{"North", "South", "East", "West", "Central"}
	for i := 0; i < 1_000_000; i++ {
		fmt.Fprintf(w, "%s,p%d,%d\n", regions[i%5], i%97, i%1000)
	}
	_ = w.Flush()
	_ = f.Close()
	const q = "SELECT region, sum(sales) AS total, count(*) AS n FROM data GROUP BY region ORDER BY total DESC"

	b.Run("session", func(b *testing.B) {
		s := mustOpen(b, dataset.Config{Dir: b.TempDir()})
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		ds, err := s.Create(ctx, "", "g.csv", in)
		_ = in.Close()
		if err != nil {
			b.Fatal(err)
		}
		sess, err := s.Session(ctx, ds.ID)
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		for b.Loop() {
			if res, err := sess.Query(ctx, q); err != nil || res.RowCount != 5 {
				b.Fatal(res, err)
			}
		}
	})
	b.Run("duckdb", func(b *testing.B) {
		c, err := duckdb.NewConnector(filepath.Join(b.TempDir(), "raw.duckdb"), nil)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(c)
		defer db.Close()
		if _, err := db.ExecContext(ctx, "CREATE TABLE data AS SELECT * FROM read_csv(?)", path); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n != 5 {
				b.Fatal(n)
			}
		}
	})
}

// BenchmarkWorkerReplace measures how long a killed worker takes to be
// replaced: each iteration SIGKILLs the only worker, then runs a parse-only
// check, which fails once (the crash) and then waits for the replacement.
// "warm" is the same check on a live worker, the baseline.
func BenchmarkWorkerReplace(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b, dataset.Config{Workers: 1})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if err := s.ValidateSQL(ctx, "SELECT 1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("killed", func(b *testing.B) {
		for b.Loop() {
			pids := s.WorkerPIDs()
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				b.Fatal(err)
			}
			for {
				err := s.ValidateSQL(ctx, "SELECT 1")
				if err == nil {
					break
				}
				var de *dataset.Error
				if !errors.As(err, &de) || de.Kind != dataset.KindQueryTooExpensive {
					b.Fatal(err)
				}
			}
		}
	})
}
