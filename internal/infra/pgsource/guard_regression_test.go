package pgsource_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// The card number that the secret fixtures hold; no error may show it.
const card = "4111-1111-1111-1111"

// secretFixture creates an allowed schema with a table pub, and a second
// schema, readable by nexus_ro but not allowed, with a table cards.
func secretFixture(t *testing.T, admin *pgx.Conn) (allowed, secret string) {
	t.Helper()
	allowed = fixtureSchema(t, admin)
	secret = fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %s.pub (id int); INSERT INTO %[1]s.pub VALUES (1);
CREATE TABLE %s.cards (num text); INSERT INTO %[2]s.cards VALUES ('%s')`, ident(allowed), ident(secret), card))
	return allowed, secret
}

// queryAndExplain runs sql through Query and Explain, each of which must
// fail with kind; neither message may show the card.
func queryAndExplain(t *testing.T, s *pgsource.Source, sql string, kind pgsource.Kind, fragments ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Query(ctx, sql)
	if err == nil {
		t.Fatalf("Query(%q) succeeded: %v", sql, res.Rows)
	}
	for name, err := range map[string]error{"Query": err, "Explain": s.Explain(ctx, sql)} {
		if err == nil {
			t.Fatalf("%s(%q) succeeded", name, sql)
		}
		if strings.Contains(err.Error(), "4111") {
			t.Fatalf("%s(%q) shows the card: %v", name, sql, err)
		}
		e := requireKind(t, err, kind, fragments...)
		t.Logf("%s(%s): %s", name, sql, e.Message)
	}
}

// Planning evaluates a stable function whose arguments are constants
// (LIMIT and WHERE estimates), so EXPLAIN itself would run
// table_to_xml('secret.cards', ...) or database_to_xml(...) and its error
// would show the rows. Such calls are refused from the SQL's text, before
// anything is sent: a closed source refuses them the same way.
func TestPlanTimeFunctionsShouldBeRefusedBeforeEXPLAIN(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	allowed, secret := secretFixture(t, admin)
	s := openRO(t, pgsource.Config{Schemas: []string{allowed}, Tables: []string{"pub"}})
	xmlArgs := fmt.Sprintf("'%s.cards', true, false, ''", secret)
	for sql, want := range map[string]string{
		"SELECT 1 LIMIT table_to_xml(" + xmlArgs + ")::text::int":                    "calls table_to_xml, which is not allowed",
		"SELECT id FROM pub WHERE id = table_to_xml(" + xmlArgs + ")::text::int":     "calls table_to_xml",
		"SELECT 1 LIMIT database_to_xml(true, false, '')::text::int":                 "calls database_to_xml",
		`SELECT 1 LIMIT "TABLE_TO_XML"(` + xmlArgs + `)::text::int`:                  "calls TABLE_TO_XML",
		"SELECT 1 LIMIT pg_catalog.Table_To_Xml /* */ (" + xmlArgs + ")::text::int":  "calls pg_catalog.table_to_xml",
		"SELECT 1 LIMIT schema_to_xml('" + secret + "', true, false, '')::text::int": "calls schema_to_xml",
		`SELECT 1 LIMIT U&"\0074able_to_xml"(` + xmlArgs + `)::text::int`:            "Unicode-escape",
		"SELECT 1 LIMIT " + ident(secret) + ".peek()::int":                           "outside the allowed schemas",
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "SQL refused: ", want)
	}
	s.Close()
	_, err := s.Query(context.Background(), "SELECT 1 LIMIT database_to_xml(true, false, '')::text::int")
	requireKind(t, err, pgsource.KindUnsafeSQL, "calls database_to_xml")
}

// A name qualified by a schema outside the allowed ones is refused before
// EXPLAIN, whatever it names: a table, a type, an operator. A table alias
// is no schema, and passes.
func TestNamesOfOtherSchemasShouldBeRefusedBeforeEXPLAIN(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	allowed, secret := secretFixture(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE DOMAIN %s.code AS text; GRANT USAGE ON TYPE %[1]s.code TO nexus_ro;
CREATE FUNCTION %[1]s.peek(int, int) RETURNS bool STABLE LANGUAGE sql AS $$ SELECT (SELECT num FROM %[1]s.cards LIMIT 1)::int > 0 $$;
CREATE OPERATOR %[1]s.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = %[1]s.peek)`, ident(secret)))
	s := openRO(t, pgsource.Config{Schemas: []string{allowed}})
	for sql, want := range map[string]string{
		"SELECT id FROM pub WHERE 'x'::" + ident(secret) + ".code IS NOT NULL":            "uses type " + secret + ".code, outside the allowed schemas (" + allowed + ")",
		"SELECT count(*) FROM " + ident(secret) + ".cards":                                "reads " + secret + ".cards, outside the allowed schemas",
		"SELECT 1 LIMIT CASE WHEN 1 OPERATOR(" + ident(secret) + ".===) 1 THEN 1 END":     "uses an operator of schema " + secret,
		"SELECT " + ident(secret) + ".id FROM pub " + ident(secret):                       "reads " + secret + ".id, outside the allowed schemas",
		"SELECT 1 FROM pub WHERE id = ANY (SELECT 1 FROM information_schema.tables)":      "reads information_schema.tables",
		"SELECT 1 FROM pub WHERE id = ANY (SELECT 1 FROM INFORMATION_SCHEMA . \"views\")": "reads information_schema.views",
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "SQL refused: ", want)
	}
	if res := query(t, s, "SELECT p.id, pub.id FROM pub p, pub"); fmt.Sprint(res.Rows) != "[[1 1]]" {
		t.Fatalf("aliases: %v", res.Rows)
	}
}

// An error's quoted value may be data: of another table when planning
// evaluated a function that read it, of a row when the query ran. It is
// cut from the message, which keeps what PostgreSQL says is wrong; the
// names of the SQL stay.
func TestErrorMessagesShouldNotShowQuotedData(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	allowed, secret := secretFixture(t, admin)
	// A stable function of the allowed schema is trusted to be called;
	// what it reads must still not come back through an error.
	exec(t, admin, fmt.Sprintf(`CREATE FUNCTION %s.peek() RETURNS text STABLE LANGUAGE sql AS $$ SELECT num FROM %s.cards LIMIT 1 $$;
CREATE TABLE %[1]s.vals (num text, big text, doc text);
INSERT INTO %[1]s.vals VALUES ('%[3]s', '4111111111111111', '{"k": 4111x}')`, ident(allowed), ident(secret), card))
	s := openRO(t, pgsource.Config{Schemas: []string{allowed}})
	for _, tc := range []struct {
		sql, want string
	}{
		{"SELECT 1 LIMIT peek()::int", "invalid input syntax for type integer (SQLSTATE 22P02, data_exception)"},
		{"SELECT num::int FROM vals", "invalid input syntax for type integer"},
		{"SELECT big::int FROM vals", `value "…" is out of range for type integer`},
		{"SELECT doc::json FROM vals", "invalid input syntax for type json"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.Query(ctx, tc.sql)
		cancel()
		e := requireKind(t, err, pgsource.KindSQL, tc.want)
		if strings.Contains(e.Message, "4111") {
			t.Errorf("Query(%q) shows the data: %s", tc.sql, e.Message)
		}
	}
	err := s.Explain(context.Background(), "SELECT 1 LIMIT peek()::int")
	if e := requireKind(t, err, pgsource.KindSQL, "invalid input syntax for type integer"); strings.Contains(e.Message, "4111") {
		t.Errorf("Explain shows the data: %s", e.Message)
	}
	requireKind(t, s.Explain(context.Background(), `SELECT "Nme" FROM vals`), pgsource.KindSQL, `column "Nme" does not exist`)
}

// postgresFDW installs postgres_fdw, when the server has it, and a server
// that loops back to the test database as nexus_ro; it returns the
// server's name.
func postgresFDW(t *testing.T, admin *pgx.Conn) string {
	t.Helper()
	var available bool
	if err := admin.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'postgres_fdw')`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Skip("the postgres_fdw extension is not installed on this server (postgresql-contrib)")
	}
	ro, err := pgx.ParseConfig(dsn(t, envRODSN))
	if err != nil {
		t.Fatal(err)
	}
	srv := "t_loopback_" + randomSuffix()
	execLocked(t, admin, fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS t_fdw_ext; CREATE EXTENSION IF NOT EXISTS postgres_fdw SCHEMA t_fdw_ext;
CREATE SERVER %s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '%s', port '%d', dbname '%s');
CREATE USER MAPPING FOR nexus_ro SERVER %[1]s OPTIONS (user '%[5]s', password '%[6]s')`,
		srv, ro.Host, ro.Port, ro.Database, ro.User, strings.ReplaceAll(ro.Password, "'", "''")))
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SERVER IF EXISTS "+srv+" CASCADE") })
	return srv
}

// A postgres_fdw join or aggregate pushed down to the remote server is a
// Foreign Scan without a Relation Name: its relations, named only in
// "Relations", are checked against the allow-list like any other.
func TestForeignScanPushdownShouldNotEscapeTheAllowList(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	allowed, secret := secretFixture(t, admin)
	srv := postgresFDW(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE FOREIGN TABLE %[1]s.ft (num text) SERVER %[3]s OPTIONS (schema_name '%[4]s', table_name 'cards');
CREATE FOREIGN TABLE %[2]s.ft (num text) SERVER %[3]s OPTIONS (schema_name '%[4]s', table_name 'cards');
GRANT SELECT ON %[1]s.ft, %[2]s.ft TO nexus_ro`, ident(allowed), ident(secret), srv, secret))
	// ft is in the allowed schema but not on the allow-list.
	s := openRO(t, pgsource.Config{Schemas: []string{allowed}, Tables: []string{"pub"}})
	for _, sql := range []string{
		"SELECT * FROM ft",
		"SELECT string_agg(num, ',') FROM ft",
		"SELECT count(*) FROM ft a JOIN ft b USING (num)",
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "reads "+allowed+".ft, outside the allowed tables")
	}
	// Another schema's foreign table: refused from the text, and by the
	// plan on its own.
	sql := fmt.Sprintf("SELECT string_agg(num, ',') FROM %s.ft", ident(secret))
	queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "reads "+secret+".ft, outside the allowed schemas")
	_, err := pgsource.QueryCheckingOnlyThePlan(s, context.Background(), sql)
	requireKind(t, err, pgsource.KindUnsafeSQL, "reads "+secret+".ft, outside the allowed schemas")
	// Allowed, the pushed-down aggregate runs.
	s2 := openRO(t, pgsource.Config{Schemas: []string{allowed}, Tables: []string{"pub", "ft"}})
	if res := query(t, s2, "SELECT string_agg(num, ',') FROM ft"); fmt.Sprint(res.Rows) != "[["+card+"]]" {
		t.Fatalf("an allowed foreign table: %v", res.Rows)
	}
}

// One huge value is refused before pgx buffers it: the protocol message is
// capped at twice MaxResultBytes (8 MiB at least), the query fails as too
// expensive, and its broken connection is discarded, not reused. Plans
// and the catalog still fit under a tiny result cap.
func TestAHugeRowShouldBeRefusedWithoutBufferingIt(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	s := openRO(t, pgsource.Config{MaxResultBytes: 1 << 20, MaxConnections: 1})
	pid := query(t, s, "SELECT pg_backend_pid()").Rows[0][0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Query(ctx, "SELECT repeat('x', 64000000) AS a")
	runtime.ReadMemStats(&after)
	requireKind(t, err, pgsource.KindTooExpensive, "a result row (or the plan) is too large")
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Errorf("reading the huge row allocated %d MiB", d>>20)
	}
	if again := query(t, s, "SELECT pg_backend_pid()").Rows[0][0]; again == pid {
		t.Errorf("the connection that failed (backend %v) was reused", pid)
	}
	// Twice the result cap passes the protocol; the cap truncates.
	res := query(t, s, "SELECT repeat('x', 1500000) AS a")
	if !res.Truncated || len(res.Rows) != 0 {
		t.Errorf("a row past MaxResultBytes: truncated %v, %d rows", res.Truncated, len(res.Rows))
	}
	small := openRO(t, pgsource.Config{MaxResultBytes: 1000})
	in := make([]string, 3000)
	for i := range in {
		in[i] = fmt.Sprint(i)
	}
	if res := query(t, small, "SELECT count(*) FROM generate_series(1, 5000) g WHERE g IN ("+strings.Join(in, ", ")+")"); fmt.Sprint(res.Rows) != "[[2999]]" {
		t.Errorf("a large plan under a small result cap: %v", res.Rows)
	}
}

// An inheritance child that is not a partition is no part of its allowed
// parent: it may add columns the parent has not. It is read only through
// the parent, and never for its own columns or whole rows.
func TestInheritanceChildrenShouldBeReadOnlyThroughTheirAllowedParent(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %[1]s.orders (id int); INSERT INTO %[1]s.orders VALUES (1);
CREATE TABLE %[1]s.orders_private (card text) INHERITS (%[1]s.orders); INSERT INTO %[1]s.orders_private VALUES (2, '%s');
CREATE TABLE %[1]s.orders_copy () INHERITS (%[1]s.orders); INSERT INTO %[1]s.orders_copy VALUES (3);
CREATE TABLE %[1]s.events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE %[1]s.events_2024 PARTITION OF %[1]s.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO %[1]s.events VALUES (1, '2024-05-01')`, ident(schema), card))
	s := openRO(t, pgsource.Config{Schemas: []string{schema}, Tables: []string{"orders", "events"}})
	child := schema + ".orders_private"
	for sql, want := range map[string]string{
		"SELECT * FROM orders_private":                                  "reads " + child + ", outside the allowed tables",
		"SELECT * FROM orders_copy":                                     "reads " + schema + ".orders_copy, outside the allowed tables",
		"SELECT p.card FROM orders_private p, orders o":                 "reads column card of " + child,
		"SELECT o.id FROM orders o, orders_private p WHERE p.card > ''": "reads column card of " + child,
		"SELECT p FROM orders_private p CROSS JOIN orders":              "reads whole rows of " + child,
		"SELECT row_to_json(p) FROM orders_private p, orders":           "reads whole rows of " + child,
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "SQL refused: ", want)
	}
	for sql, want := range map[string]string{
		"SELECT id FROM orders ORDER BY id":                             "[[1] [2] [3]]",
		"SELECT p.id FROM orders_private p, orders o WHERE o.id = p.id": "[[2]]",
		"SELECT id FROM events_2024":                                    "[[1]]",
		"SELECT count(*) FROM events":                                   "[[1]]",
	} {
		if res := query(t, s, sql); fmt.Sprint(res.Rows) != want {
			t.Errorf("Query(%q) = %v, want %s", sql, res.Rows, want)
		}
	}
}

// A function of an allowed schema is trusted to read, not to write or to
// take what outlives the query: a VOLATILE or SECURITY DEFINER one is
// refused, called from the SQL or from a view.
func TestVolatileOrSecurityDefinerFunctionsOfAnAllowedSchemaShouldBeRefused(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %[1]s.t (id int); INSERT INTO %[1]s.t VALUES (1);
CREATE FUNCTION %[1]s.grab() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(4243); RETURN 1; END $$;
CREATE FUNCTION %[1]s.definer() RETURNS int STABLE SECURITY DEFINER LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION %[1]s.fine(x int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT x + 1 $$;
CREATE FUNCTION %[1]s.rows() RETURNS SETOF int STABLE LANGUAGE sql AS $$ SELECT 1 $$;
CREATE VIEW %[1]s.grabbing AS SELECT %[1]s.grab() AS g`, ident(schema)))
	s := openRO(t, pgsource.Config{Schemas: []string{schema}})
	for sql, want := range map[string]string{
		"SELECT grab()": "calls " + schema + ".grab, a VOLATILE function",
		"SELECT id FROM t WHERE id = " + ident(schema) + ".grab()": "calls " + schema + ".grab, a VOLATILE function",
		"SELECT definer()":       "calls " + schema + ".definer, a SECURITY DEFINER function",
		"SELECT * FROM grabbing": "calls " + schema + ".grab, a VOLATILE function",
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "SQL refused: ", want)
	}
	_, err := pgsource.QueryCheckingOnlyThePlan(s, context.Background(), "SELECT grab()")
	requireKind(t, err, pgsource.KindUnsafeSQL, "a VOLATILE function")
	if res := query(t, s, "SELECT fine(id), r FROM t, rows() r"); fmt.Sprint(res.Rows) != "[[2 1]]" {
		t.Fatalf("stable and immutable functions: %v", res.Rows)
	}
	var n int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("advisory locks 4243: %d, %v", n, err)
	}
}

// A function may take what outlives the transaction even when it is
// labelled STABLE (a session advisory lock): a connection is reset when it
// goes back to the pool. The reset keeps the settings the source relies
// on, and the connection itself.
func TestPooledConnectionsShouldBeResetWhenReleased(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE FUNCTION %[1]s.sneaky() RETURNS int STABLE LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_lock(4244); RETURN 1; END $$`, ident(schema)))
	s := openRO(t, pgsource.Config{Schemas: []string{schema}, MaxConnections: 1})
	settings := "SELECT pg_backend_pid(), current_setting('statement_timeout'), current_setting('search_path'), " +
		"current_setting('transaction_read_only'), current_setting('default_transaction_read_only'), current_setting('DateStyle'), " +
		"current_setting('IntervalStyle'), current_setting('TimeZone'), current_setting('bytea_output'), " +
		"current_setting('extra_float_digits'), current_setting('application_name'), now()::date::text, interval '1 day', '\\x01'::bytea"
	first := fmt.Sprint(query(t, s, settings).Rows)
	query(t, s, "SELECT sneaky()")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4244 AND granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a pooled connection still holds advisory lock 4244 after the query's rollback")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		if got := fmt.Sprint(query(t, s, settings).Rows); got != first {
			t.Fatalf("after the reset the session is\n%s\nwas\n%s", got, first)
		}
	}
}

// Set-returning functions in the select list (a ProjectSet) meet the same
// allow-list as in FROM, and the catalog readers are denied wherever they
// are called: other sessions' queries, the server's settings, any view's
// definition.
func TestCatalogReadersShouldBeRefusedInTheSelectList(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	allowed, secret := secretFixture(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE VIEW %s.v AS SELECT 'the view definition'::text AS x`, ident(secret)))
	var viewOID uint32
	if err := admin.QueryRow(context.Background(), fmt.Sprintf("SELECT '%s.v'::regclass::oid", ident(secret))).Scan(&viewOID); err != nil {
		t.Fatal(err)
	}
	s := openRO(t, pgsource.Config{Schemas: []string{allowed}})
	for sql, want := range map[string]string{
		"SELECT pg_stat_get_activity(NULL)":               "calls pg_stat_get_activity, which is not allowed",
		"SELECT (pg_show_all_settings()).name LIMIT 3":    "calls pg_show_all_settings",
		fmt.Sprintf("SELECT pg_get_viewdef(%d)", viewOID): "calls pg_get_viewdef",
		"SELECT pg_lock_status()":                         "calls set-returning function pg_catalog.pg_lock_status in the select list",
		"SELECT pg_options_to_table(ARRAY['a=1'])":        "calls set-returning function pg_catalog.pg_options_to_table",
	} {
		queryAndExplain(t, s, sql, pgsource.KindUnsafeSQL, "SQL refused: ", want)
	}
	_, err := pgsource.QueryCheckingOnlyThePlan(s, context.Background(), "SELECT pg_catalog.pg_lock_status()")
	requireKind(t, err, pgsource.KindUnsafeSQL, "pg_lock_status")
	for sql, want := range map[string]string{
		"SELECT generate_series(1, 2)":                "[[1] [2]]",
		"SELECT unnest(ARRAY['a']), upper('b')":       "[[a B]]",
		"SELECT jsonb_array_elements_text('[\"x\"]')": "[[x]]",
	} {
		if res := query(t, s, sql); fmt.Sprint(res.Rows) != want {
			t.Errorf("Query(%q) = %v, want %s", sql, res.Rows, want)
		}
	}
}

// A query past temp_file_limit (SQLSTATE 53400) is too expensive, not the
// source being unavailable: the LLM may write a cheaper one.
func TestResourceLimitErrorsShouldBeTooExpensiveNotUnavailable(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	role, roleDSN := testRole(t, admin)
	execLocked(t, admin, fmt.Sprintf(`ALTER ROLE %[1]s SET temp_file_limit = '64kB'; ALTER ROLE %[1]s SET work_mem = '64kB'`, role))
	s := openRO(t, pgsource.Config{DSN: roleDSN})
	_, err := s.Query(context.Background(), "SELECT g FROM generate_series(1, 500000) g ORDER BY g DESC")
	requireKind(t, err, pgsource.KindTooExpensive, "temp_file_limit")
	query(t, s, "SELECT 1")
}
