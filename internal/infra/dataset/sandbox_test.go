package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// sandboxes returns a stored and an inline session on the same 3-row
// table, so that every sandbox test runs against both kinds.
func sandboxes(t *testing.T, s *dataset.Store) map[string]*dataset.Session {
	t.Helper()
	content := "id,name\n1,a\n2,b\n3,c\n"
	ds := mustCreate(t, s, "t.csv", []byte(content))
	return map[string]*dataset.Session{
		"stored": mustSession(t, s, ds.ID),
		"inline": mustInline(t, s, "csv", content),
	}
}

func TestQueryRefusesAnythingButOneSelect(t *testing.T) {
	t.Parallel()
	victim := filepath.Join(t.TempDir(), "x.csv")
	attached := filepath.Join(t.TempDir(), "x.db")
	tests := []struct {
		name string
		sql  string
	}{
		{name: "stacked drop", sql: "DROP TABLE data; SELECT 1"},
		{name: "stacked drop after select", sql: "SELECT 1; DROP TABLE data"},
		{name: "two selects", sql: "SELECT 1; SELECT 2"},
		{name: "copy to file", sql: fmt.Sprintf("COPY data TO '%s'", victim)},
		{name: "attach", sql: fmt.Sprintf("ATTACH '%s'", attached)},
		{name: "install", sql: "INSTALL httpfs"},
		{name: "load", sql: "LOAD httpfs"},
		{name: "set", sql: "SET enable_external_access=true"},
		{name: "reset", sql: "RESET lock_configuration"},
		{name: "pragma", sql: "PRAGMA database_list"},
		{name: "call", sql: "CALL pragma_version()"},
		{name: "create table", sql: "CREATE TABLE t AS SELECT * FROM data"},
		{name: "insert", sql: "INSERT INTO data VALUES (4, 'd')"},
		{name: "update", sql: "UPDATE data SET name = 'x'"},
		{name: "delete", sql: "DELETE FROM data"},
		{name: "drop", sql: "DROP TABLE data"},
		{name: "checkpoint", sql: "CHECKPOINT"},
		{name: "export", sql: fmt.Sprintf("EXPORT DATABASE '%s'", filepath.Dir(victim))},
		{name: "empty", sql: "  "},
		{name: "comment only", sql: "-- SELECT 1"},
	}
	s := mustOpen(t, dataset.Config{})
	for kind, q := range sandboxes(t, s) {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				_, err := q.Query(ctx, tt.sql)
				e := requireKind(t, err, dataset.KindUnsafeSQL)
				if !strings.HasPrefix(e.Message, "only a single read-only SELECT is allowed") {
					t.Errorf("message: %q", e.Message)
				}
				requireKind(t, q.Validate(ctx, tt.sql), dataset.KindUnsafeSQL)
				requireKind(t, s.ValidateSQL(ctx, tt.sql), dataset.KindUnsafeSQL)
				// Nothing happened.
				if n := mustCount(t, q); n != 3 {
					t.Errorf("row count changed to %d", n)
				}
				for _, p := range []string{victim, attached} {
					if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s was created", p)
					}
				}
			})
		}
	}
}

func TestSandboxBlocksWhatPassesTheGuard(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	secret := filepath.Join(t.TempDir(), "secret.csv")
	if err := os.WriteFile(secret, []byte("password\nhunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each is a single SELECT that the guard refuses by its table
	// function or table name; past the guard, the sandboxed database must
	// refuse it on its own.
	tests := []struct {
		name string
		sql  string
	}{
		{name: "read_csv of /etc/passwd", sql: "SELECT * FROM read_csv('/etc/passwd')"},
		{name: "read_csv of a file", sql: fmt.Sprintf("SELECT * FROM read_csv('%s')", secret)},
		{name: "read_text", sql: fmt.Sprintf("SELECT * FROM read_text('%s')", secret)},
		{name: "replacement scan", sql: fmt.Sprintf("SELECT * FROM '%s'", secret)},
		{name: "glob", sql: "SELECT * FROM glob('/*')"},
		{name: "parquet over http", sql: "SELECT * FROM read_parquet('https://example.com/x.parquet')"},
		{name: "another dataset's database", sql: fmt.Sprintf("SELECT * FROM read_csv('%s/ds_0000000000000000.json')", dir)},
		{name: "inside a subquery", sql: "SELECT (SELECT count(*) FROM read_csv('/etc/passwd')) AS n FROM data"},
	}
	s := mustOpen(t, dataset.Config{Dir: dir})
	for kind, q := range sandboxes(t, s) {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				requireNoUnsafe := func(err error) *dataset.Error {
					t.Helper()
					e := requireKind(t, err, dataset.KindSQL)
					if strings.Contains(e.Message, dir) || strings.Contains(e.Message, secret) || strings.Contains(e.Message, "/etc/") {
						t.Errorf("message reveals a path: %q", e.Message)
					}
					return e
				}
				for what, err := range map[string]error{
					"ValidateSQL": s.ValidateSQL(ctx, tt.sql),
					"Query":       func() error { _, err := q.Query(ctx, tt.sql); return err }(),
					"Validate":    q.Validate(ctx, tt.sql),
				} {
					e := requireKind(t, err, dataset.KindUnsafeSQL)
					if strings.Contains(e.Message, dir) || strings.Contains(e.Message, secret) || strings.Contains(e.Message, "/etc/") {
						t.Errorf("%s: message reveals a path: %q", what, e.Message)
					}
				}
				e := requireNoUnsafe(func() error { _, err := q.QueryUnguarded(ctx, tt.sql); return err }())
				if !strings.Contains(e.Message, "disabled") {
					t.Errorf("want DuckDB's sandbox refusal, got %q", e.Message)
				}
			})
		}
	}
}

func TestQueryTableFunctionCannotModify(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	for kind, q := range sandboxes(t, s) {
		t.Run(kind, func(t *testing.T) {
			// query() runs a string as SQL from inside a SELECT, which the
			// guard cannot see into: it refuses the function by name, and
			// past the guard the read-only database holds.
			for _, sqlText := range []string{
				"SELECT * FROM query('DROP TABLE data')",
				"SELECT * FROM query('DELETE FROM data RETURNING *')",
				"SELECT * FROM query_table('data')",
			} {
				if _, err := q.Query(context.Background(), sqlText); kindOf(err) != dataset.KindUnsafeSQL {
					t.Errorf("%q: got %v, want KindUnsafeSQL", sqlText, err)
				}
				_, err := q.QueryUnguarded(context.Background(), sqlText)
				if err != nil && kindOf(err) != dataset.KindSQL {
					t.Errorf("%q unguarded: got %v, want success or KindSQL", sqlText, err)
				}
				if n := mustCount(t, q); n != 3 {
					t.Fatalf("%q changed the table: %d rows", sqlText, n)
				}
			}
		})
	}
}

func TestQueryErrorsRevealNoPaths(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	for kind, q := range sandboxes(t, s) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			_, err := q.Query(ctx, "SELECT missing_column FROM data")
			e := requireKind(t, err, dataset.KindSQL)
			if !strings.Contains(e.Message, "missing_column") {
				t.Errorf("message should name the column: %q", e.Message)
			}
			e = requireKind(t, q.Validate(ctx, "SELECT missing_column FROM data"), dataset.KindSQL)
			if !strings.Contains(e.Message, "missing_column") {
				t.Errorf("Validate message should name the column: %q", e.Message)
			}
			for _, sqlText := range []string{
				"SELECT missing_column FROM data",
				"SELECT * FROM duckdb_databases()",
				"SELECT * FROM duckdb_settings()",
				"SELECT * FROM no_such_table",
			} {
				res, err := q.Query(ctx, sqlText)
				var text string
				if err != nil {
					text = err.Error()
				} else {
					text = fmt.Sprint(res.Rows)
				}
				if strings.Contains(text, dir) {
					t.Errorf("%q reveals the data dir: %s", sqlText, text)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	ctx := context.Background()
	tests := []struct {
		name      string
		sql       string
		wantKind  dataset.Kind // "" means valid
		storeKind dataset.Kind // Store.ValidateSQL, parser only
	}{
		{name: "valid select", sql: "SELECT name, count(*) FROM data GROUP BY name"},
		{name: "from-first", sql: "FROM data WHERE id > 1"},
		{name: "cte", sql: "WITH x AS (SELECT id FROM data) SELECT * FROM x"},
		{name: "unknown column binds only against the schema", sql: "SELECT nope FROM data", wantKind: dataset.KindSQL},
		{name: "unknown table", sql: "SELECT * FROM elsewhere", wantKind: dataset.KindUnsafeSQL},
		{name: "syntax error", sql: "SELEC 1", wantKind: dataset.KindSQL, storeKind: dataset.KindSQL},
		{name: "not a select", sql: "DELETE FROM data", wantKind: dataset.KindUnsafeSQL, storeKind: dataset.KindUnsafeSQL},
	}
	for kind, q := range sandboxes(t, s) {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				if got := kindOf(q.Validate(ctx, tt.sql)); got != tt.wantKind {
					t.Errorf("Session.Validate: got kind %q, want %q", got, tt.wantKind)
				}
				if got := kindOf(s.ValidateSQL(ctx, tt.sql)); got != tt.storeKind {
					t.Errorf("Store.ValidateSQL: got kind %q, want %q", got, tt.storeKind)
				}
			})
		}
	}
}

func TestQueryCapsRowsButCountsAll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cfg           dataset.Config
		sql           string
		wantRows      int
		wantCount     int64
		wantTruncated bool
	}{
		{name: "under the caps", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM data WHERE n <= 5", wantRows: 5, wantCount: 5},
		{name: "exactly the row cap", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM data LIMIT 10", wantRows: 10, wantCount: 10},
		{name: "row cap", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM data", wantRows: 10, wantCount: 1000, wantTruncated: true},
		// [1,"xxxxxxxxxx"] is 16 bytes of JSON plus a comma, 17 from n=10:
		// 2 + 9*17 + 2*18 = 191 fits in 200, a 12th row would not.
		{name: "byte cap", cfg: dataset.Config{MaxResultBytes: 200}, sql: "SELECT n, repeat('x', 10) AS s FROM data", wantRows: 11, wantCount: 1000, wantTruncated: true},
		{name: "first row over the byte cap", cfg: dataset.Config{MaxResultBytes: 50}, sql: "SELECT repeat('x', 100) AS s FROM data", wantRows: 0, wantCount: 1000, wantTruncated: true},
		{name: "large result counted by DuckDB", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM range(200000)", wantRows: 10, wantCount: 200_000, wantTruncated: true},
		{name: "trailing comment", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM range(200000) -- all of them", wantRows: 10, wantCount: 200_000, wantTruncated: true},
		{name: "trailing semicolon counted by reading on", cfg: dataset.Config{MaxRows: 10}, sql: "SELECT * FROM range(200000);", wantRows: 10, wantCount: 200_000, wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustOpen(t, tt.cfg)
			ds := mustCreate(t, s, "seq.csv", seqCSV(1000))
			res := mustQuery(t, mustSession(t, s, ds.ID), tt.sql)
			if len(res.Rows) != tt.wantRows || res.RowCount != tt.wantCount || res.Truncated != tt.wantTruncated {
				t.Errorf("got %d rows, row_count %d, truncated %v; want %d, %d, %v",
					len(res.Rows), res.RowCount, res.Truncated, tt.wantRows, tt.wantCount, tt.wantTruncated)
			}
			if len(res.Rows) > 0 && len(res.Rows[0]) != len(res.Columns) {
				t.Errorf("row has %d values for %d columns", len(res.Rows[0]), len(res.Columns))
			}
		})
	}
}

// The limit is 1 s, not less: it bounds the set-up's inline load too, which a
// busy 2-core machine can take a few hundred milliseconds over.
func TestQueryTimesOut(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: time.Second})
	for kind, q := range sandboxes(t, s) {
		t.Run(kind, func(t *testing.T) {
			start := time.Now()
			// Minutes of work if left alone.
			_, err := q.Query(context.Background(), "SELECT count(*) FROM range(100000000) a, range(1000) b")
			elapsed := time.Since(start)
			requireKind(t, err, dataset.KindTimeout)
			if elapsed > 5*time.Second {
				t.Errorf("took %v to stop", elapsed)
			}
			// The session is still usable afterwards.
			if n := mustCount(t, q); n != 3 {
				t.Errorf("count after timeout: %d", n)
			}
		})
	}
}

func TestQueryCallerCancellationIsNotATimeout(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: time.Minute})
	ds := mustCreate(t, s, "t.csv", seqCSV(3))
	q := mustSession(t, s, ds.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := q.Query(ctx, "SELECT count(*) FROM range(100000000) a, range(1000) b")
	if kindOf(err) != "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the caller's context error", err)
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{MaxRows: 20})
	ds := mustCreate(t, s, "seq.csv", seqCSV(100))
	q := mustSession(t, s, ds.ID)
	tests := []struct {
		name string
		n    int
		want int
	}{
		{name: "some", n: 5, want: 5},
		{name: "clamped to MaxRows", n: 1000, want: 20},
		{name: "at least one", n: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := q.Sample(context.Background(), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != tt.want || res.Truncated {
				t.Errorf("got %d rows (truncated %v), want %d", len(res.Rows), res.Truncated, tt.want)
			}
		})
	}
	if got := q.Schema(); len(got) != 1 || got[0] != (dataset.Column{Name: "n", Type: "BIGINT"}) {
		t.Errorf("schema: %v", got)
	}
}
