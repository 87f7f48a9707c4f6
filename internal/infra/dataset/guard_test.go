package dataset_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// Every refusal names what was refused and why, in words a user or an
// LLM can act on, the same with or without a dataset to bind against.
func TestGuardShouldSayWhatItRefusesAndWhy(t *testing.T) {
	t.Parallel()
	notAQuery := []string{"only a single read-only SELECT is allowed: the SQL holds a statement that is not a query", "write one SELECT"}
	tests := []struct {
		name string
		sql  string
		kind dataset.Kind
		want []string // substrings of the message
	}{
		{name: "drop", sql: "DROP TABLE data", kind: dataset.KindUnsafeSQL, want: notAQuery},
		{name: "select then drop", sql: "SELECT 1; DROP TABLE data", kind: dataset.KindUnsafeSQL, want: notAQuery},
		{name: "two selects", sql: "SELECT 1; SELECT 2", kind: dataset.KindUnsafeSQL, want: []string{"the SQL holds 2 statements; send exactly one"}},
		{name: "only comments", sql: "-- SELECT 1\n;", kind: dataset.KindUnsafeSQL, want: []string{"the SQL is empty"}},
		{name: "read_csv", sql: "SELECT * FROM read_csv('/etc/passwd')", kind: dataset.KindUnsafeSQL, want: []string{"the table function read_csv() is not allowed: it reads files"}},
		{name: "glob", sql: "FROM glob('*')", kind: dataset.KindUnsafeSQL, want: []string{"glob() is not allowed: it reads files"}},
		{name: "parquet_metadata", sql: "FROM parquet_metadata('x.parquet')", kind: dataset.KindUnsafeSQL, want: []string{"parquet_metadata() is not allowed: it reads files"}},
		{name: "query", sql: "FROM query('SELECT 1')", kind: dataset.KindUnsafeSQL, want: []string{"the table function query() is not allowed: it runs SQL held in a string"}},
		{name: "duckdb_settings()", sql: "FROM duckdb_settings()", kind: dataset.KindUnsafeSQL, want: []string{"duckdb_settings() is not allowed: it reads the system catalog or the server's settings"}},
		{name: "other table function", sql: "FROM test_all_types()", kind: dataset.KindUnsafeSQL, want: []string{"test_all_types() is not allowed: the only table functions allowed are range, generate_series, unnest"}},
		{name: "current_setting", sql: "SELECT current_setting('home_directory')", kind: dataset.KindUnsafeSQL, want: []string{"the function current_setting() is not allowed: it reads the server's settings"}},
		{name: "getenv", sql: "SELECT getenv('HOME')", kind: dataset.KindUnsafeSQL, want: []string{"the function getenv() is not allowed: it reads the server's environment"}},
		{name: "string as table", sql: "SELECT * FROM '/etc/passwd'", kind: dataset.KindUnsafeSQL, want: []string{"a file name cannot be used as a table: reading files is not allowed"}},
		{name: "quoted file name", sql: `SELECT * FROM "x.csv"`, kind: dataset.KindUnsafeSQL, want: []string{"a file name cannot be used as a table"}},
		{name: "summarize a file", sql: "SUMMARIZE 'x.parquet'", kind: dataset.KindUnsafeSQL, want: []string{"a file name cannot be used as a table"}},
		{name: "system view", sql: "SELECT * FROM pg_settings", kind: dataset.KindUnsafeSQL, want: []string{"the table pg_settings is not allowed: it is part of the system catalog"}},
		{name: "information_schema", sql: "SELECT * FROM information_schema.tables", kind: dataset.KindUnsafeSQL, want: []string{"the table information_schema.tables is not allowed: it is part of the system catalog"}},
		{name: "system catalog", sql: "SELECT * FROM system.main.duckdb_tables", kind: dataset.KindUnsafeSQL, want: []string{"the table system.main.duckdb_tables is not allowed: it is part of the system catalog"}},
		{name: "other database", sql: "SELECT * FROM other.main.t", kind: dataset.KindUnsafeSQL, want: []string{"the table other.main.t is not allowed: only"}},
		{name: "show databases", sql: "SHOW DATABASES", kind: dataset.KindUnsafeSQL, want: []string{"SHOW databases is not allowed: it reads the system catalog"}},
		{name: "syntax error names the line", sql: "SELECT 1\nFROM data\nWHERE x = = 2", kind: dataset.KindSQL, want: []string{`syntax error at or near "="`, "(line 3)"}},
		{name: "locking clause", sql: "SELECT * FROM data FOR UPDATE", kind: dataset.KindSQL, want: []string{"SELECT locking clause is not supported"}},
		{name: "mixed parameters", sql: "SELECT * FROM data WHERE a = $1 AND b = $name", kind: dataset.KindSQL, want: []string{"Mixing named and positional parameters"}},
	}
	s := mustOpen(t, dataset.Config{Workers: 1})
	q := mustInline(t, s, "csv", "id,name\n1,a\n")
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for what, err := range map[string]error{
				"ValidateSQL": s.ValidateSQL(ctx, tt.sql),
				"Validate":    q.Validate(ctx, tt.sql),
			} {
				e := requireKind(t, err, tt.kind)
				for _, want := range tt.want {
					if !strings.Contains(e.Message, want) {
						t.Errorf("%s: message %q lacks %q", what, e.Message, want)
					}
				}
			}
		})
	}
}

// Given a CTE named like a system view, when the view is read where that
// CTE is out of scope (DuckDB resolves it to the system view), then the
// guard still refuses it. It used to exempt any name a CTE had anywhere.
func TestGuardShouldNotLetACTEHideASystemView(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{Workers: 1})
	q := mustInline(t, s, "csv", "id,name\n1,a\n")
	ctx := context.Background()
	for _, text := range []string{
		"WITH a AS (FROM pg_settings), pg_settings AS (SELECT 1) SELECT count(*) FROM a",
		"SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) AS x, duckdb_databases",
	} {
		_, err := q.Query(ctx, text)
		if e := requireKind(t, err, dataset.KindUnsafeSQL); !strings.Contains(e.Message, "system catalog") {
			t.Errorf("Query(%q): message %q", text, e.Message)
		}
		requireKind(t, s.ValidateSQL(ctx, text), dataset.KindUnsafeSQL)
	}
}

// SHOW TABLES and DESCRIBE list only the dataset's table in the sandbox,
// so they are allowed.
func TestGuardShouldAllowListingTheTables(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{Workers: 1})
	q := mustInline(t, s, "csv", "id,name\n1,a\n")
	ctx := context.Background()
	for _, text := range []string{"SHOW TABLES", "SHOW ALL TABLES", "DESCRIBE", "DESCRIBE data", "SUMMARIZE data"} {
		res, err := q.Query(ctx, text)
		if err != nil {
			t.Errorf("Query(%q): %v", text, err)
			continue
		}
		if res.RowCount == 0 {
			t.Errorf("Query(%q): no rows", text)
		}
		if err := s.ValidateSQL(ctx, text); err != nil {
			t.Errorf("ValidateSQL(%q): %v", text, err)
		}
	}
}
