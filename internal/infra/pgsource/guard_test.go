package pgsource

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestCheckTextShouldAcceptOneReadOnlyQuery(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"SELECT 1",
		"  select 1;",
		"SELECT 1;;  ",
		"(SELECT 1) UNION (SELECT 2)",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"VALUES (1), (2)",
		"TABLE customers",
		"-- a comment\nSELECT 1 /* nested /* comment */ ; */",
		"SELECT 'it''s; DELETE FROM t', E'\\'; DROP', $$; DELETE$$, $tag$ ; into $tag$, \"into\" FROM t",
		"SELECT \"a;b\" FROM \"x\"\"y\"",
		"SELECT $1::int",
		"SELECT 1 -- trailing; comment",
		"SELECT * FROM t WHERE a = 'unterminated",
	} {
		if err := checkText(sql); err != nil {
			t.Errorf("checkText(%q) = %v", sql, err)
		}
	}
}

func TestCheckTextShouldRefuseEverythingElse(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]string{
		"":                                          "the SQL is empty",
		" ; ":                                       "the SQL is empty",
		"/* only a comment */":                      "the SQL is empty",
		"DELETE FROM t":                             "got DELETE",
		"SELECT 1; DELETE FROM t":                   "only one statement",
		"SELECT 1; -- x\nDELETE FROM t":             "only one statement",
		"SELECT ';'; SELECT 2":                      "only one statement",
		"SELECT $$;$$; SELECT 2":                    "only one statement",
		"COPY t TO '/tmp/x'":                        "got COPY",
		"SET ROLE nexus_admin":                      "got SET",
		"RESET ROLE":                                "got RESET",
		"SELECT * INTO t2 FROM t":                   "INTO creates a table",
		"SELECT * FROM t INTO t2":                   "INTO creates a table",
		"EXPLAIN ANALYZE DELETE FROM t":             "got EXPLAIN",
		"CALL p()":                                  "got CALL",
		"DO $$BEGIN DELETE FROM t; END$$":           "got DO",
		"SHOW data_directory":                       "got SHOW",
		"LISTEN x":                                  "got LISTEN",
		"DECLARE c CURSOR FOR SELECT 1":             "got DECLARE",
		"((DELETE FROM t))":                         "got DELETE",
		"\"select\" FROM t":                         `got "select"`,
		"INSERT INTO t VALUES (1)":                  "got INSERT",
		"WITH d AS (DELETE FROM t) SELECT 1 INTO x": "INTO",
	} {
		err := checkText(sql)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkText(%q) = %v, want %q", sql, err, want)
		}
	}
}

func TestFuncCallsShouldSkipConstantsAndFindQualifiedNames(t *testing.T) {
	t.Parallel()
	toks, ok := lex(`a.name <> 'pg_read_file(x)'::text AND ext."dblink"(1, lower(b)) AND pg_catalog.upper ( c )`)
	if !ok {
		t.Fatal("lex failed")
	}
	var got []string
	for _, fc := range funcCalls(toks) {
		got = append(got, fc.String())
	}
	if strings.Join(got, ",") != "ext.dblink,lower,pg_catalog.upper" {
		t.Fatalf("funcCalls = %v", got)
	}
}

// planOf runs EXPLAIN (VERBOSE, FORMAT JSON) as the admin, who may plan
// anything, with search_path set to the allowed schemas.
func planOf(t *testing.T, admin *pgx.Conn, schemas, sql string) []byte {
	t.Helper()
	ctx := context.Background()
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+schemas); err != nil {
		t.Fatal(err)
	}
	var plan []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (VERBOSE, FORMAT JSON) "+sql).Scan(&plan); err != nil {
		t.Fatalf("EXPLAIN %s: %v", sql, err)
	}
	return plan
}

// The plan check on PostgreSQL's own plans, planned as a superuser: the
// database's privileges, which refuse most of these before a plan exists
// for a read-only role, play no part, so this shows the guard holding on
// its own.
func TestCheckPlanShouldRefuseWhatThePlanWritesLocksOrCalls(t *testing.T) {
	t.Parallel()
	adminDSN := os.Getenv("NEXUS_TEST_POSTGRES_DSN")
	if adminDSN == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("NEXUS_TEST_POSTGRES_DSN is not set (CI is set, so the PostgreSQL tests must run)")
		}
		t.Skip("NEXUS_TEST_POSTGRES_DSN is not set; run `source .ci/postgres-setup.sh`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	schema := "t_plan_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_")
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".t (id int, name text); CREATE SEQUENCE "+schema+".s"); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	allowed := []string{schema}
	for sql, want := range map[string]string{
		"SELECT pg_read_file('/etc/passwd')":                                     "calls pg_read_file, which is not allowed",
		"SELECT pg_catalog.pg_read_binary_file('/etc/passwd')":                   "calls pg_read_binary_file",
		"SELECT name FROM t WHERE length(pg_read_file(name)) > 0":                "calls pg_read_file",
		"SELECT * FROM pg_ls_dir('.') AS f":                                      "reads from function pg_catalog.pg_ls_dir in FROM",
		"SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) AS f":   "reads from function pg_ls_dir in FROM",
		"SELECT lo_export(1, '/tmp/x')":                                          "calls lo_export",
		"SELECT set_config('search_path', 'pg_catalog', true)":                   "calls set_config",
		"SELECT pg_cancel_backend(1)":                                            "calls pg_cancel_backend",
		"SELECT pg_reload_conf()":                                                "calls pg_reload_conf",
		"SELECT count(*) FROM t WHERE id < (SELECT nextval('" + schema + ".s'))": "calls nextval",
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d":                  "ModifyTable",
		"WITH d AS (UPDATE t SET id = 1 RETURNING *) SELECT 1":                   "ModifyTable",
		"SELECT * FROM t FOR UPDATE":                                             "LockRows",
		"SELECT * FROM pg_authid":                                                "reads pg_catalog.pg_authid",
		"SELECT * FROM t WHERE id IN (SELECT oid::int FROM pg_class)":            "reads pg_catalog.pg_class",
	} {
		_, ge := checkPlan(planOf(t, admin, schema, sql), allowed)
		if ge == nil {
			// Relations are checked against the allow-list by the
			// caller; checkPlan returns them.
			rep, _ := checkPlan(planOf(t, admin, schema, sql), allowed)
			var found bool
			for _, r := range rep.relations {
				if r.schema != schema && strings.Contains(want, r.String()) {
					found = true
				}
			}
			if !found {
				t.Errorf("checkPlan(%q) passed, want %q (relations %v)", sql, want, rep.relations)
			}
			continue
		}
		if !strings.Contains(ge.Error(), want) {
			t.Errorf("checkPlan(%q) = %v, want %q", sql, ge, want)
		}
	}
	for _, sql := range []string{
		"SELECT id, upper(name), now(), current_setting('work_mem'), pg_sleep(0) FROM t",
		"SELECT * FROM t, generate_series(1, 3) g, unnest(ARRAY[1, 2]) u",
		"SELECT * FROM jsonb_array_elements('[1, 2]') e, ROWS FROM (generate_series(1, 2), unnest(ARRAY['a'])) r",
		"SELECT * FROM t WHERE name = 'pg_read_file(''x'')'",
		"WITH x AS (SELECT * FROM t) SELECT count(*) FROM x",
	} {
		rep, ge := checkPlan(planOf(t, admin, schema, sql), allowed)
		if ge != nil {
			t.Errorf("checkPlan(%q) = %v", sql, ge)
		}
		for _, r := range rep.relations {
			if r.schema != schema {
				t.Errorf("checkPlan(%q) reads %s", sql, r)
			}
		}
	}
}
