package codegen_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
)

// keywordCSV is a dataset whose column names are SQL keywords, several of
// them statements the review refuses (LOAD, CALL, SET, COPY, ATTACH).
const keywordCSV = "region,load,begin,end,call,use,set,copy,attach,sales,day,tags\n" +
	"north,1.5,1,2,a,b,c,d,e,10,2024-01-01,x;y\n" +
	"south,2.5,3,4,f,g,h,i,j,20,2024-01-02,y\n"

// mustStore opens a dataset.Store with one worker in a fresh directory,
// closed when the test ends.
func mustStore(tb testing.TB) *dataset.Store {
	tb.Helper()
	s, err := dataset.Open(dataset.Config{Dir: filepath.Join(tb.TempDir(), "data"), Workers: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("dataset.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// mustDataset uploads keywordCSV and returns its id.
func mustDataset(tb testing.TB, s *dataset.Store) string {
	tb.Helper()
	ds, err := s.Create(context.Background(), "", "keywords.csv", bytes.NewReader([]byte(keywordCSV)))
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	return ds.ID
}

// answer is a Completer standing in for the code_generator circuit: it
// replies with its SQL in a fenced block, as a model would.
type answer string

func (a answer) Complete(context.Context, llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{Content: "Here it is:\n```sql\n" + string(a) + "\n```", Model: "stub"}, nil
}

func (answer) Name() string { return "code_generator" }

// mustGenerate runs /generate's pipeline for SQL whose LLM answers code,
// against datasetID ("" for the parser-only check), and returns the
// review.
func mustGenerate(tb testing.TB, s *dataset.Store, code, datasetID string) codegen.Review {
	tb.Helper()
	res, err := codegen.NewGenerator(answer(code), s, nil).Generate(context.Background(), codegen.Request{
		Prompt: "p", Language: codegen.SQL, DatasetID: datasetID,
	})
	if err != nil {
		tb.Fatalf("Generate: %v", err)
	}
	if res.Code != code {
		tb.Fatalf("Generate extracted %q, want %q", res.Code, code)
	}
	if res.Review.Warnings == nil || len(res.Review.Warnings) != 0 {
		tb.Errorf("Warnings = %#v, want an empty slice", res.Review.Warnings)
	}
	if res.Review.IsValid != (res.Review.ErrorMessage == "") {
		tb.Errorf("IsValid = %v with ErrorMessage %q", res.Review.IsValid, res.Review.ErrorMessage)
	}
	return res.Review
}

// Valid DuckDB SQL passes the review, both with the parser alone and bound
// against a dataset: keywords as column names (quoted only where DuckDB
// requires it), and DuckDB's friendlier syntax.
func TestGenerateShouldAcceptValidSQL(t *testing.T) {
	t.Parallel()
	s := mustStore(t)
	id := mustDataset(t, s)
	tests := []struct {
		name string
		sql  string
	}{
		// Keywords as column names: the three, then the rest.
		{name: "avg of load", sql: "SELECT region, avg(load) FROM data GROUP BY region"},
		{name: "begin and quoted end", sql: `SELECT begin, "end" FROM data`},
		{name: "call and use", sql: "SELECT call, use FROM data"},
		{name: "set copy attach unquoted", sql: "SELECT set, copy, attach FROM data"},
		{name: "every keyword quoted", sql: `SELECT "load", "begin", "end", "call", "use", "set", "copy", "attach" FROM data`},
		{name: "keywords in where and order by", sql: `SELECT load FROM data WHERE begin > 0 AND call <> 'x' ORDER BY "end" DESC, use`},
		{name: "keywords as aliases", sql: `SELECT sales AS load, region AS "drop" FROM data`},
		{name: "keywords qualified", sql: "SELECT d.load, d.set, d.copy FROM data AS d"},
		{name: "keyword in a string", sql: "SELECT 'DROP TABLE data; COPY data TO ''/tmp/x''' AS s FROM data"},
		{name: "keyword in comments", sql: "-- LOAD httpfs; DELETE FROM data\nSELECT region /* ATTACH 'x.db' */ FROM data"},
		{name: "nested block comment", sql: "SELECT 1 /* /* */ ; DROP TABLE data; --*/"},
		{name: "dollar-quoted string", sql: "SELECT $$DROP TABLE data; $$ AS s, $tag$ $$ DELETE $$ $tag$ AS t"},
		{name: "trailing semicolon and comment", sql: "SELECT count(*) FROM data; -- done"},

		// Window functions and QUALIFY.
		{name: "running total", sql: "SELECT region, sales, sum(sales) OVER (PARTITION BY region ORDER BY day) AS running FROM data"},
		{name: "named window", sql: "SELECT region, rank() OVER w AS r FROM data WINDOW w AS (ORDER BY sales DESC)"},
		{name: "lag", sql: "SELECT day, sales - lag(sales) OVER (ORDER BY day) AS change FROM data"},
		{name: "qualify", sql: "SELECT region, sales FROM data QUALIFY row_number() OVER (PARTITION BY region ORDER BY sales DESC) = 1"},

		// PIVOT and UNPIVOT.
		{name: "pivot statement", sql: "PIVOT data ON region IN ('north', 'south') USING sum(sales)"},
		{name: "pivot in a query", sql: "SELECT * FROM (PIVOT data ON region IN ('north', 'south') USING sum(sales) GROUP BY day) ORDER BY day"},
		{name: "unpivot", sql: "UNPIVOT (SELECT region, load, sales::DOUBLE AS sales FROM data) ON load, sales INTO NAME metric VALUE v"},

		// COLUMNS, EXCLUDE, REPLACE.
		{name: "columns regex", sql: "SELECT COLUMNS('^(load|sales)$') FROM data"},
		{name: "columns lambda", sql: "SELECT max(COLUMNS(c -> c IN ('load', 'sales'))) FROM data"},
		{name: "columns star exclude", sql: "SELECT min(COLUMNS(* EXCLUDE (region, tags))) FROM data"},
		{name: "exclude", sql: "SELECT * EXCLUDE (tags, copy) FROM data"},
		{name: "replace", sql: "SELECT * REPLACE (sales * 2 AS sales, upper(region) AS region) FROM data"},

		// Lists and lambdas.
		{name: "list comprehension", sql: "SELECT [x * 2 FOR x IN [sales, sales + 1]] AS doubled FROM data"},
		{name: "list comprehension with filter", sql: "SELECT [t FOR t IN string_split(tags, ';') IF t <> 'x'] AS kept FROM data"},
		{name: "lambda", sql: "SELECT list_transform(string_split(tags, ';'), t -> upper(t)) FROM data"},
		{name: "unnest", sql: "SELECT region, unnest(string_split(tags, ';')) AS tag FROM data"},

		// CTEs.
		{name: "cte", sql: "WITH t AS (SELECT region, sum(sales) AS s FROM data GROUP BY region) SELECT * FROM t WHERE s > 5"},
		{name: "two ctes", sql: "WITH a AS (SELECT * FROM data), b AS (SELECT region FROM a) SELECT count(*) FROM b"},
		{name: "recursive cte", sql: "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r"},
		{name: "materialized cte", sql: "WITH t AS MATERIALIZED (SELECT * FROM data) SELECT load FROM t"},

		// FROM-first, DESCRIBE, SUMMARIZE and friends.
		{name: "from first", sql: "FROM data SELECT region WHERE sales > 5"},
		{name: "from only", sql: "FROM data"},
		{name: "describe", sql: "DESCRIBE data"},
		{name: "describe a query", sql: "DESCRIBE SELECT region, load FROM data"},
		{name: "summarize", sql: "SUMMARIZE data"},
		{name: "show tables", sql: "SHOW TABLES"},
		{name: "group by all", sql: "SELECT region, count(*) FILTER (WHERE sales > 10) AS n FROM data GROUP BY ALL ORDER BY ALL"},
		{name: "values", sql: "VALUES (1, 'a'), (2, 'b')"},
		{name: "union", sql: "(SELECT region FROM data) UNION ALL (SELECT 'west')"},
		{name: "allowed table functions", sql: "SELECT * FROM range(3) r, generate_series(1, 2) g"},
		{name: "subquery", sql: "SELECT * FROM data WHERE sales > (SELECT avg(sales) FROM data)"},
		{name: "self join", sql: "SELECT a.region, b.sales FROM data a JOIN data b USING (region)"},
		{name: "asof join", sql: "SELECT a.day, b.sales FROM data a ASOF JOIN data b ON a.region = b.region AND a.day >= b.day"},
		{name: "struct and date functions", sql: "SELECT {'r': region, 'y': year(day)} AS s, strftime(day, '%Y-%m') AS m FROM data"},
		{name: "sample", sql: "SELECT * FROM data USING SAMPLE 1 ROWS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for mode, datasetID := range map[string]string{"parser only": "", "against the dataset": id} {
				if got := mustGenerate(t, s, tc.sql, datasetID); !got.IsValid {
					t.Errorf("%s: refused: %s", mode, got.ErrorMessage)
				}
			}
		})
	}
}

// Anything but one query that reads only the dataset is refused by the
// guard before it runs, with a message that says what and why; nothing
// it asked for happens.
func TestGenerateShouldRefuseUnsafeSQL(t *testing.T) {
	t.Parallel()
	s := mustStore(t)
	id := mustDataset(t, s)
	dir := t.TempDir()
	victim := filepath.Join(dir, "out.csv")
	exported := filepath.Join(dir, "export")
	attached := filepath.Join(dir, "other.db")
	const (
		unsafe    = "SQL refused: "
		notAQuery = "SQL refused: only a single read-only SELECT is allowed: the SQL holds a statement that is not a query"
		readsFile = "it reads files"
		fileName  = "SQL refused: a file name cannot be used as a table: reading files is not allowed"
		catalog   = "it is part of the system catalog"
	)
	tests := []struct {
		name string
		sql  string
		want []string // substrings of the message
	}{
		// DDL.
		{name: "create table", sql: "CREATE TABLE x AS SELECT * FROM data", want: []string{notAQuery}},
		{name: "create view", sql: "CREATE VIEW v AS SELECT * FROM data", want: []string{notAQuery}},
		{name: "create macro", sql: "CREATE MACRO m(a) AS a", want: []string{notAQuery}},
		{name: "drop", sql: "DROP TABLE data", want: []string{notAQuery}},
		{name: "alter", sql: "ALTER TABLE data ADD COLUMN z INTEGER", want: []string{notAQuery}},
		{name: "truncate", sql: "TRUNCATE data", want: []string{notAQuery}},

		// DML.
		{name: "insert", sql: "INSERT INTO data (region) VALUES ('x')", want: []string{notAQuery}},
		{name: "update", sql: "UPDATE data SET sales = 0", want: []string{notAQuery}},
		{name: "delete", sql: "delete from data", want: []string{notAQuery}},
		{name: "merge", sql: "MERGE INTO data USING data AS s ON true WHEN MATCHED THEN DELETE", want: []string{notAQuery}},

		// Settings, extensions, databases, files.
		{name: "set", sql: "SET enable_external_access = true", want: []string{notAQuery}},
		{name: "set global", sql: "SET GLOBAL memory_limit = '64GB'", want: []string{notAQuery}},
		{name: "set variable", sql: "SET VARIABLE v = 1", want: []string{notAQuery}},
		{name: "reset", sql: "RESET lock_configuration", want: []string{notAQuery}},
		{name: "pragma", sql: "PRAGMA enable_profiling", want: []string{notAQuery}},
		{name: "pragma query", sql: "PRAGMA database_list", want: []string{notAQuery}},
		{name: "copy to", sql: fmt.Sprintf("COPY data TO '%s'", victim), want: []string{notAQuery}},
		{name: "copy query to", sql: fmt.Sprintf("COPY (SELECT * FROM data) TO '%s' (FORMAT csv)", victim), want: []string{notAQuery}},
		{name: "copy from", sql: "COPY data FROM '/etc/passwd'", want: []string{notAQuery}},
		{name: "copy database", sql: "COPY FROM DATABASE memory TO other", want: []string{notAQuery}},
		{name: "attach", sql: fmt.Sprintf("ATTACH '%s' AS other", attached), want: []string{notAQuery}},
		{name: "attach memory", sql: "ATTACH ':memory:' AS m", want: []string{notAQuery}},
		{name: "detach", sql: "DETACH other", want: []string{notAQuery}},
		{name: "use", sql: "USE other", want: []string{notAQuery}},
		{name: "install", sql: "INSTALL httpfs", want: []string{notAQuery}},
		{name: "force install", sql: "FORCE INSTALL httpfs FROM core_nightly", want: []string{notAQuery}},
		{name: "load", sql: "LOAD httpfs", want: []string{notAQuery}},
		{name: "load a file", sql: "LOAD '/tmp/x.duckdb_extension'", want: []string{notAQuery}},
		{name: "export database", sql: fmt.Sprintf("EXPORT DATABASE '%s'", exported), want: []string{notAQuery}},
		{name: "import database", sql: fmt.Sprintf("IMPORT DATABASE '%s'", exported), want: []string{notAQuery}},
		{name: "call", sql: "CALL pragma_version()", want: []string{notAQuery}},
		{name: "checkpoint", sql: "CHECKPOINT", want: []string{notAQuery}},
		{name: "vacuum", sql: "VACUUM", want: []string{notAQuery}},
		{name: "analyze", sql: "ANALYZE data", want: []string{notAQuery}},
		{name: "begin", sql: "BEGIN TRANSACTION", want: []string{notAQuery}},
		{name: "explain", sql: "EXPLAIN SELECT * FROM data", want: []string{notAQuery}},
		{name: "explain analyze", sql: "EXPLAIN ANALYZE SELECT * FROM data", want: []string{notAQuery}},
		{name: "prepare", sql: "PREPARE p AS SELECT 1", want: []string{notAQuery}},

		// A PIVOT whose values DuckDB must first find is a CREATE TYPE
		// and a SELECT.
		{name: "pivot without its values", sql: "PIVOT data ON region USING sum(sales)", want: []string{notAQuery, "a PIVOT must list its values"}},

		// Several statements at once.
		{name: "select then drop", sql: "SELECT 1; DROP TABLE data", want: []string{notAQuery}},
		{name: "drop then select", sql: "DROP TABLE data; SELECT 1", want: []string{notAQuery}},
		{name: "select then copy", sql: fmt.Sprintf("SELECT 1; COPY data TO '%s'", victim), want: []string{notAQuery}},
		{name: "two selects", sql: "SELECT 1; SELECT 2", want: []string{unsafe, "the SQL holds 2 statements; send exactly one"}},
		{name: "statement after a carriage return", sql: "SELECT 1 -- c\r; DROP TABLE data", want: []string{notAQuery}},

		// File-reading table functions.
		{name: "read_csv", sql: "SELECT * FROM read_csv('/etc/passwd')", want: []string{unsafe, "the table function read_csv() is not allowed", readsFile}},
		{name: "read_csv_auto mixed case", sql: "SELECT * FROM Read_CSV_Auto ('/etc/passwd')", want: []string{"read_csv_auto()", readsFile}},
		{name: "read_parquet over https", sql: "SELECT * FROM read_parquet('https://example.com/x.parquet')", want: []string{"read_parquet()", readsFile}},
		{name: "read_json", sql: "SELECT * FROM read_json('x.json')", want: []string{"read_json()", readsFile}},
		{name: "read_json_auto", sql: "SELECT * FROM read_json_auto('x.json')", want: []string{"read_json_auto()", readsFile}},
		{name: "read_ndjson", sql: "SELECT * FROM read_ndjson('x.json')", want: []string{"read_ndjson()", readsFile}},
		{name: "read_text", sql: "SELECT content FROM read_text('/etc/passwd')", want: []string{"read_text()", readsFile}},
		{name: "read_blob", sql: "SELECT * FROM read_blob('/etc/shadow')", want: []string{"read_blob()", readsFile}},
		{name: "read_duckdb", sql: "SELECT * FROM read_duckdb('x.db')", want: []string{"read_duckdb()", readsFile}},
		{name: "glob", sql: "SELECT * FROM glob('/home/*')", want: []string{"glob()", readsFile}},
		{name: "parquet_scan", sql: "SELECT * FROM parquet_scan('x.parquet')", want: []string{"parquet_scan()", readsFile}},
		{name: "parquet_metadata", sql: "SELECT * FROM parquet_metadata('x.parquet')", want: []string{"parquet_metadata()", readsFile}},
		{name: "sniff_csv", sql: "SELECT * FROM sniff_csv('x.csv')", want: []string{"sniff_csv()", readsFile}},
		{name: "schema-qualified read_csv", sql: "SELECT * FROM main.read_csv('/etc/passwd')", want: []string{"read_csv()", readsFile}},
		{name: "quoted read_csv", sql: `SELECT * FROM "read_csv"('/etc/passwd')`, want: []string{"read_csv()", readsFile}},
		{name: "read_csv in a subquery", sql: "SELECT (SELECT count(*) FROM read_csv('/etc/passwd')) AS n", want: []string{"read_csv()", readsFile}},
		{name: "read_csv in a cte", sql: "WITH t AS (FROM read_csv('/etc/passwd')) SELECT * FROM t", want: []string{"read_csv()", readsFile}},
		{name: "read_csv joined", sql: "SELECT * FROM data JOIN read_csv('x.csv') x USING (region)", want: []string{"read_csv()", readsFile}},
		{name: "query", sql: "SELECT * FROM query('SELECT 1')", want: []string{unsafe, "query() is not allowed: it runs SQL held in a string"}},
		{name: "query_table", sql: "SELECT * FROM query_table('data')", want: []string{"query_table() is not allowed: it runs SQL held in a string"}},
		{name: "json_execute_serialized_sql", sql: "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))", want: []string{"json_execute_serialized_sql() is not allowed: it runs SQL held in a string"}},

		// Strings and file names as tables.
		{name: "string as table", sql: "SELECT * FROM '/etc/passwd'", want: []string{fileName}},
		{name: "from-first string", sql: "FROM '/etc/passwd'", want: []string{fileName}},
		{name: "csv file", sql: "SELECT * FROM 'x.csv'", want: []string{fileName}},
		{name: "quoted file name", sql: `SELECT * FROM "data.csv"`, want: []string{fileName}},
		{name: "home directory", sql: "SELECT * FROM '~/.bashrc'", want: []string{fileName}},
		{name: "url", sql: "SELECT * FROM 'https://example.com/x.csv'", want: []string{fileName}},
		{name: "joined file", sql: "SELECT * FROM data d JOIN 'x.csv' x ON d.region = x.region", want: []string{fileName}},
		{name: "comma-joined file", sql: "SELECT * FROM data, 'x.parquet'", want: []string{fileName}},
		{name: "escape string", sql: "SELECT * FROM E'/etc/passwd'", want: []string{fileName}},
		{name: "summarize a file", sql: "SUMMARIZE '/etc/passwd'", want: []string{fileName}},
		{name: "describe a file", sql: "DESCRIBE 'x.csv'", want: []string{fileName}},

		// The system catalog and the server's settings.
		{name: "duckdb_settings()", sql: "SELECT * FROM duckdb_settings()", want: []string{"duckdb_settings() is not allowed: it reads the system catalog"}},
		{name: "duckdb_databases view", sql: "SELECT path FROM duckdb_databases", want: []string{"the table duckdb_databases is not allowed", catalog}},
		{name: "information_schema", sql: "SELECT * FROM information_schema.tables", want: []string{"information_schema.tables", catalog}},
		{name: "pg_catalog", sql: "SELECT * FROM pg_catalog.pg_settings", want: []string{"pg_catalog.pg_settings", catalog}},
		{name: "pg_settings", sql: "SELECT * FROM pg_settings", want: []string{"the table pg_settings", catalog}},
		{name: "sqlite_master", sql: "SELECT * FROM sqlite_master", want: []string{"sqlite_master", catalog}},
		{name: "pragma view", sql: "SELECT * FROM pragma_database_list", want: []string{"pragma_database_list", catalog}},
		{name: "pragma function", sql: "SELECT * FROM pragma_table_info('data')", want: []string{"pragma_table_info()", "system catalog"}},
		{name: "cte hiding a system view", sql: "WITH a AS (FROM pg_settings), pg_settings AS (SELECT 1) SELECT * FROM a", want: []string{"pg_settings", catalog}},
		{name: "show databases", sql: "SHOW DATABASES", want: []string{"SHOW databases is not allowed"}},
		{name: "current_setting", sql: "SELECT current_setting('home_directory')", want: []string{"current_setting() is not allowed: it reads the server's settings"}},
		{name: "getvariable", sql: "SELECT getvariable('v')", want: []string{"getvariable() is not allowed"}},
		{name: "getenv", sql: "SELECT getenv('HOME')", want: []string{"getenv() is not allowed: it reads the server's environment"}},
		{name: "another catalog", sql: "SELECT * FROM other.main.data", want: []string{"the table other.main.data is not allowed: only"}},
	}
	t.Run("refusals", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				for mode, datasetID := range map[string]string{"parser only": "", "against the dataset": id} {
					got := mustGenerate(t, s, tc.sql, datasetID)
					if got.IsValid {
						t.Fatalf("%s: accepted", mode)
					}
					for _, want := range tc.want {
						if !strings.Contains(got.ErrorMessage, want) {
							t.Errorf("%s: message %q lacks %q", mode, got.ErrorMessage, want)
						}
					}
					if strings.Contains(got.ErrorMessage, dir) || strings.Contains(got.ErrorMessage, "/etc/") {
						t.Errorf("%s: message reveals a path: %q", mode, got.ErrorMessage)
					}
				}
			})
		}
	})
	// Nothing happened.
	for _, p := range []string{victim, exported, attached} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created", p)
		}
	}
	sess, err := s.Session(context.Background(), id)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	defer sess.Close()
	res, err := sess.Query(context.Background(), "SELECT count(*) AS n, count(sales) AS s FROM data")
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if fmt.Sprint(res.Rows) != "[[2 2]]" {
		t.Errorf("the table changed: %v", res.Rows)
	}
}
