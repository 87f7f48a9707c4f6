package pgsource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// shopFixture creates customers and orders in a schema of the test's own,
// plus a secrets table that the allow-list leaves out.
func shopFixture(t *testing.T, admin *pgx.Conn) string {
	t.Helper()
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`
CREATE TABLE %[1]s.customers (id int PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE %[1]s.orders (id int PRIMARY KEY, customer_id int REFERENCES %[1]s.customers, amount numeric(10,2), placed date);
CREATE TABLE %[1]s.secrets (id int, secret text);
INSERT INTO %[1]s.customers VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York'), (3, 'Linus', NULL);
INSERT INTO %[1]s.orders VALUES (10, 1, 12.50, '2024-01-02'), (11, 1, 7.25, '2024-02-03'), (12, 2, 100.00, '2024-03-04'), (13, 3, 0.99, NULL);
INSERT INTO %[1]s.secrets VALUES (1, 'the launch codes');`, ident(schema)))
	return schema
}

// shopSource opens the shop schema with customers and orders allowed.
func shopSource(t *testing.T, schema string, tune func(*pgsource.Config)) *pgsource.Source {
	t.Helper()
	cfg := pgsource.Config{Name: "shop", Schemas: []string{schema}, Tables: []string{"customers", schema + ".orders"}}
	if tune != nil {
		tune(&cfg)
	}
	return openRO(t, cfg)
}

// asText renders a converted value as psql prints it, for the types the
// join uses.
func asText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// A join over two tables gives the rows that the same SQL gives when run
// directly as the admin, in PostgreSQL's own text form (what psql shows).
func TestQueryShouldJoinTwoTablesAsTheDatabaseDoes(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	s := shopSource(t, schema, nil)
	sql := `SELECT c.name, c.city, count(o.id) AS orders, sum(o.amount) AS total, max(o.placed) AS last
FROM customers c JOIN orders o ON o.customer_id = c.id
GROUP BY c.name, c.city ORDER BY total DESC`
	res := query(t, s, sql)

	exec(t, admin, "SET search_path = "+ident(schema))
	rows, err := admin.Query(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]string
	for rows.Next() {
		var row []string
		for _, b := range rows.RawValues() {
			row = append(row, string(b))
		}
		want = append(want, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, r := range res.Rows {
		var row []string
		for _, v := range r {
			row = append(row, asText(v))
		}
		got = append(got, row)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 3 {
		t.Fatalf("rows through the source:\n%v\ndirectly as admin:\n%v", got, want)
	}
	wantCols := []pgsource.Column{{Name: "name", Type: "text"}, {Name: "city", Type: "text"}, {Name: "orders", Type: "bigint"},
		{Name: "total", Type: "numeric"}, {Name: "last", Type: "date"}}
	if !slices.Equal(res.Columns, wantCols) {
		t.Fatalf("columns = %+v, want %+v", res.Columns, wantCols)
	}
	if res.RowCount != 3 || res.Truncated {
		t.Fatalf("RowCount %d, Truncated %v", res.RowCount, res.Truncated)
	}
}

// Each of these is refused, with an error naming why, and the database is
// unchanged afterwards: the fixture tables' contents, the role the source
// runs as, and no file written.
func TestQueryShouldRefuseUnsafeSQLAndLeaveTheDatabaseUnchanged(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	s := shopSource(t, schema, nil)
	tables := []string{ident(schema, "customers"), ident(schema, "orders"), ident(schema, "secrets")}
	before := map[string]string{}
	for _, tbl := range tables {
		before[tbl] = digest(t, admin, tbl)
	}
	copyTarget := "/tmp/nexus-pgsource-copy-" + randomSuffix()
	cases := []struct {
		name, sql string
		kind      pgsource.Kind
		fragments []string
	}{
		{"table outside the allow-list", "SELECT * FROM secrets", pgsource.KindUnsafeSQL,
			[]string{"SQL refused: reads " + schema + ".secrets, outside the allowed tables"}},
		{"table outside the allow-list in a subquery", "SELECT name FROM customers WHERE id IN (SELECT id FROM secrets)", pgsource.KindUnsafeSQL,
			[]string{"reads " + schema + ".secrets"}},
		{"catalog table", "SELECT relname FROM pg_class", pgsource.KindUnsafeSQL,
			[]string{"SQL refused: reads pg_catalog.pg_class, outside the allowed schemas (" + schema + ")"}},
		// The database refuses pg_authid at EXPLAIN already (EXPLAIN checks
		// privileges); the guard would refuse it too (TestCheckPlan...).
		{"password hashes", "SELECT rolname, rolpassword FROM pg_authid", pgsource.KindUnsafeSQL,
			[]string{"SQL refused", "pg_authid"}},
		{"catalog view", "SELECT * FROM pg_catalog.pg_stat_activity", pgsource.KindUnsafeSQL,
			[]string{"SQL refused:"}},
		{"another schema", "SELECT * FROM public.nexus_writer_target", pgsource.KindUnsafeSQL,
			[]string{"reads public.nexus_writer_target, outside the allowed schemas"}},
		{"pg_read_file", "SELECT pg_read_file('/etc/passwd')", pgsource.KindUnsafeSQL,
			[]string{"SQL refused", "pg_read_file"}},
		{"pg_read_file hidden in a filter", "SELECT name FROM customers WHERE length(pg_catalog.pg_read_file('/etc/passwd')) > 0", pgsource.KindUnsafeSQL,
			[]string{"SQL refused", "pg_read_file"}},
		{"pg_ls_dir in FROM", "SELECT * FROM pg_ls_dir('.') AS f", pgsource.KindUnsafeSQL,
			[]string{"pg_ls_dir"}},
		{"lo_import", "SELECT lo_import('/etc/passwd')", pgsource.KindUnsafeSQL, []string{"SQL refused", "lo_import"}},
		{"lo_get", "SELECT lo_get(1)", pgsource.KindUnsafeSQL, []string{"SQL refused: calls lo_get, which is not allowed"}},
		{"pg_notify", "SELECT pg_notify('c', 'x')", pgsource.KindUnsafeSQL, []string{"calls pg_notify"}},
		{"set_config", "SELECT set_config('role', 'nexus_admin', true)", pgsource.KindUnsafeSQL, []string{"calls set_config"}},
		{"query_to_xml", "SELECT query_to_xml('SELECT * FROM pg_authid', true, true, '')", pgsource.KindUnsafeSQL, []string{"calls query_to_xml"}},
		{"pg_terminate_backend", "SELECT pg_terminate_backend(pid) FROM (VALUES (1)) v(pid)", pgsource.KindUnsafeSQL, []string{"calls pg_terminate_backend"}},
		{"COPY TO a file", fmt.Sprintf("COPY customers TO '%s'", copyTarget), pgsource.KindUnsafeSQL,
			[]string{"only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got COPY"}},
		{"COPY a query TO a program", "COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'", pgsource.KindUnsafeSQL, []string{"got COPY"}},
		{"DELETE", "DELETE FROM orders", pgsource.KindUnsafeSQL, []string{"got DELETE"}},
		{"two statements", "SELECT 1; DELETE FROM orders", pgsource.KindUnsafeSQL, []string{"only one statement is allowed"}},
		{"two statements behind a comment", "SELECT 1 /* ; */ ; -- x\n DELETE FROM orders", pgsource.KindUnsafeSQL, []string{"only one statement"}},
		{"SET ROLE", "SET ROLE nexus_admin", pgsource.KindUnsafeSQL, []string{"got SET"}},
		{"data-modifying WITH", "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d", pgsource.KindUnsafeSQL,
			[]string{"SQL refused"}},
		{"SELECT INTO", "SELECT * INTO stolen FROM customers", pgsource.KindUnsafeSQL, []string{"SELECT ... INTO creates a table"}},
		{"FOR UPDATE", "SELECT * FROM customers FOR UPDATE", pgsource.KindUnsafeSQL, []string{"SQL refused"}},
		{"advisory lock", "SELECT pg_advisory_lock(1)", pgsource.KindUnsafeSQL, []string{"calls pg_advisory_lock"}},
		{"nextval", "SELECT nextval(name::regclass) FROM customers", pgsource.KindUnsafeSQL, []string{"calls nextval"}},
		{"EXPLAIN ANALYZE", "EXPLAIN ANALYZE DELETE FROM orders", pgsource.KindUnsafeSQL, []string{"got EXPLAIN"}},
		{"a transaction", "BEGIN; DELETE FROM orders; COMMIT", pgsource.KindUnsafeSQL, []string{"got BEGIN"}},
		{"empty", " -- nothing\n ; ", pgsource.KindUnsafeSQL, []string{"the SQL is empty"}},
		{"a syntax error", "SELECT FROM WHERE", pgsource.KindSQL, []string{"syntax error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := s.Query(ctx, tc.sql)
			if err == nil {
				t.Fatalf("Query(%q) succeeded: %+v", tc.sql, res)
			}
			e := requireKind(t, err, tc.kind, tc.fragments...)
			if strings.Contains(e.Message, "the launch codes") {
				t.Fatalf("the refusal shows the secret: %s", e.Message)
			}
			// Explain refuses the same, without running anything.
			requireKind(t, s.Explain(ctx, tc.sql), tc.kind, tc.fragments...)
		})
	}
	for _, tbl := range tables {
		if got := digest(t, admin, tbl); got != before[tbl] {
			t.Fatalf("%s changed: %s, was %s", tbl, got, before[tbl])
		}
	}
	if _, err := os.Stat(copyTarget); !os.IsNotExist(err) {
		t.Fatalf("COPY wrote %s (stat: %v)", copyTarget, err)
	}
	res := query(t, s, "SELECT current_user, session_user, current_setting('transaction_read_only')")
	if fmt.Sprint(res.Rows[0]) != "[nexus_ro nexus_ro on]" {
		t.Fatalf("after the refusals the source runs as %v", res.Rows[0])
	}
}

// pg_sleep is allowed, bounded by the statement timeout: past it the
// server cancels the statement, the error is of kind timeout, and the
// source keeps working.
func TestQueryShouldCancelAStatementPastItsTimeout(t *testing.T) {
	t.Parallel()
	s := openRO(t, pgsource.Config{StatementTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := s.Query(context.Background(), "SELECT pg_sleep(10)")
	requireKind(t, err, pgsource.KindTimeout, "statement timeout")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the timeout took %v", d)
	}
	// The caller's deadline cancels it on the server as well.
	s2 := openRO(t, pgsource.Config{StatementTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = s2.Query(ctx, "SELECT pg_sleep(10)")
	requireKind(t, err, pgsource.KindTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the deadline took %v", d)
	}
	admin := adminConn(t)
	waitNoActive(t, admin, "SELECT pg_sleep(10)")
	query(t, s, "SELECT 1")
	query(t, s2, "SELECT 1")
}

// waitNoActive waits until no backend runs sql: the server itself stopped
// the statement.
func waitNoActive(t *testing.T, admin *pgx.Conn, sql string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1`, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still run %q", n, sql)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dblink, when the extension can be installed, is refused whether its
// functions are in an allowed schema or in another one.
func TestQueryShouldRefuseDblink(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	var available bool
	if err := admin.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'dblink')`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Skip("the dblink extension is not installed on this server (postgresql-contrib)")
	}
	schema := shopFixture(t, admin)
	// Extensions are per database and may live in one schema only: this
	// test owns it for its duration.
	ext := "t_dblink_" + randomSuffix()
	exec(t, admin, fmt.Sprintf("CREATE SCHEMA %[1]s; GRANT USAGE ON SCHEMA %[1]s TO nexus_ro", ext))
	if _, err := admin.Exec(context.Background(), "CREATE EXTENSION dblink SCHEMA "+ext); err != nil {
		t.Skipf("dblink cannot be installed: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP EXTENSION IF EXISTS dblink; DROP SCHEMA "+ext+" CASCADE")
	})
	before := digest(t, admin, ident(schema, "orders"))
	adminDSN := dsn(t, envAdminDSN)
	remote := fmt.Sprintf("'%s'", strings.ReplaceAll(adminDSN, "'", "''"))
	del := fmt.Sprintf("'DELETE FROM %s.orders'", schema)
	for _, sc := range []struct {
		name    string
		schemas []string
		sql     string
	}{
		{"in another schema", []string{schema}, fmt.Sprintf("SELECT %s.dblink_exec(%s, %s)", ext, remote, del)},
		{"in another schema, in FROM", []string{schema}, fmt.Sprintf("SELECT * FROM %s.dblink(%s, 'SELECT 1') AS x(i int)", ext, remote)},
		{"in an allowed schema", []string{schema, ext}, fmt.Sprintf("SELECT dblink_exec(%s, %s)", remote, del)},
		{"in an allowed schema, in FROM", []string{schema, ext}, fmt.Sprintf("SELECT * FROM dblink(%s, %s) AS x(i int)", remote, del)},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s := openRO(t, pgsource.Config{Schemas: sc.schemas})
			_, err := s.Query(context.Background(), sc.sql)
			e := requireKind(t, err, pgsource.KindUnsafeSQL, "SQL refused: ", "dblink", "which is not allowed")
			t.Log(e.Message)
			if strings.Contains(e.Message, "nexus_admin_test") || strings.Contains(e.Message, adminDSN) {
				t.Fatalf("the refusal echoes the DSN: %s", e.Message)
			}
		})
	}
	if got := digest(t, admin, ident(schema, "orders")); got != before {
		t.Fatalf("orders changed: %s, was %s", got, before)
	}
}

// The extended protocol itself refuses a second statement, even when the
// lexical check is skipped: the guard does not rest on the lexer.
func TestProtocolShouldRefuseTwoStatementsWithoutTheLexicalCheck(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	s := shopSource(t, schema, nil)
	before := digest(t, admin, ident(schema, "orders"))
	for _, sql := range []string{"SELECT 1; DELETE FROM orders", "SELECT 1; COMMIT; DELETE FROM orders"} {
		_, err := pgsource.QueryWithoutLexicalCheck(s, context.Background(), sql)
		requireKind(t, err, pgsource.KindSQL, "cannot insert multiple commands into a prepared statement")
	}
	// And a DELETE that reached the database would meet the read-only
	// transaction, and the role's missing privilege.
	_, err := pgsource.QueryWithoutLexicalCheck(s, context.Background(), "DELETE FROM orders")
	requireKind(t, err, pgsource.KindUnsafeSQL, "SQL refused by the database: permission denied for table orders")
	if got := digest(t, admin, ident(schema, "orders")); got != before {
		t.Fatalf("orders changed: %s, was %s", got, before)
	}
}

// Rows stop at MaxRows and at MaxResultBytes, and a huge result stops at
// once: the query is cancelled rather than read to its end.
func TestQueryShouldCapRowsAndBytesWhileStreaming(t *testing.T) {
	t.Parallel()
	s := openRO(t, pgsource.Config{MaxRows: 10, MaxResultBytes: 1000})
	res := query(t, s, "SELECT g FROM generate_series(1, 1000) g")
	if len(res.Rows) != 10 || !res.Truncated || res.RowCount != 11 {
		t.Fatalf("rows %d, truncated %v, row count %d", len(res.Rows), res.Truncated, res.RowCount)
	}
	if res.Rows[9][0] != int64(10) {
		t.Fatalf("last row %v", res.Rows[9])
	}
	res = query(t, s, "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 1000) g")
	b, _ := json.Marshal(res.Rows)
	if !res.Truncated || len(res.Rows) == 0 || len(res.Rows) >= 10 || len(b) > 1000 {
		t.Fatalf("rows %d (%d bytes), truncated %v", len(res.Rows), len(b), res.Truncated)
	}
	// A result that would take minutes to read in full.
	start := time.Now()
	// generate_series in the select list streams (in FROM it would
	// materialise every row first).
	res = query(t, s, "SELECT generate_series(1, 1000000000) AS g")
	if !res.Truncated || time.Since(start) > 5*time.Second {
		t.Fatalf("truncated %v after %v", res.Truncated, time.Since(start))
	}
	admin := adminConn(t)
	waitNoActive(t, admin, "SELECT generate_series(1, 1000000000) AS g")
	res = query(t, s, "SELECT g FROM generate_series(1, 3) g")
	if len(res.Rows) != 3 || res.Truncated {
		t.Fatalf("after a cancelled query: %+v", res)
	}
}

// Explain checks without executing: a query that fails only when run
// passes Explain.
func TestExplainShouldNeverExecute(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	s := shopSource(t, schema, nil)
	sql := "SELECT 1 / (id - id) FROM customers"
	if err := s.Explain(context.Background(), sql); err != nil {
		t.Fatalf("Explain: %v", err)
	}
	_, err := s.Query(context.Background(), sql)
	requireKind(t, err, pgsource.KindSQL, "division by zero")
	// Nor does it wait for what the query would do.
	start := time.Now()
	if err := s.Explain(context.Background(), "SELECT pg_sleep(5)"); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Explain(pg_sleep) = %v after %v", err, time.Since(start))
	}
	requireKind(t, s.Explain(context.Background(), "SELECT nme FROM customers"), pgsource.KindSQL, `column "nme" does not exist`)
}

// Tables lists the allowed tables with their columns; a bare allow-list
// entry matches in any allowed schema, a partition is read through its
// allowed parent, and Refresh picks up a new table.
func TestTablesShouldListTheAllowedTablesAndRefresh(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %[1]s.events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE %[1]s.events_2024 PARTITION OF %[1]s.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE %[1]s.events_2025 PARTITION OF %[1]s.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO %[1]s.events VALUES (1, '2024-05-01'), (2, '2025-05-01');
CREATE VIEW %[1]s.big_orders AS SELECT * FROM %[1]s.orders WHERE amount > 10;`, ident(schema)))
	s := shopSource(t, schema, func(c *pgsource.Config) { c.Tables = append(c.Tables, "events", "big_orders", "later") })
	var names []string
	for _, tbl := range s.Tables() {
		names = append(names, tbl.QualifiedName())
	}
	want := []string{schema + ".big_orders", schema + ".customers", schema + ".events", schema + ".orders"}
	if !slices.Equal(names, want) {
		t.Fatalf("Tables() = %v, want %v", names, want)
	}
	cust := s.Tables()[1]
	if fmt.Sprint(cust.Columns) != "[{id integer} {name text} {city text}]" {
		t.Fatalf("customers columns = %v", cust.Columns)
	}
	if res := query(t, s, "SELECT count(*) FROM events"); res.Rows[0][0] != int64(2) {
		t.Fatalf("events through its partitions: %v", res.Rows)
	}
	if res := query(t, s, "SELECT count(*) FROM big_orders"); res.Rows[0][0] != int64(2) {
		t.Fatalf("a view over an allowed table: %v", res.Rows)
	}
	_, err := s.Query(context.Background(), "SELECT * FROM events_2024")
	if err != nil {
		t.Fatalf("a partition of an allowed table: %v", err)
	}
	exec(t, admin, fmt.Sprintf("CREATE TABLE %s (x int)", ident(schema, "later")))
	_, err = s.Profile(context.Background(), "later")
	requireKind(t, err, pgsource.KindNotFound, `no table "later"`)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Tables()); n != 5 {
		t.Fatalf("after Refresh: %d tables", n)
	}
	res, err := s.Sample(context.Background(), schema+".customers", 2)
	if err != nil || len(res.Rows) != 2 || res.Rows[0][1] != "Ada" {
		t.Fatalf("Sample = %+v, %v", res, err)
	}
	_, err = s.Sample(context.Background(), "secrets", 2)
	requireKind(t, err, pgsource.KindNotFound)
}

// Every form of a read-only query passes the guard.
func TestQueryShouldAcceptEveryFormOfReadOnlyQuery(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := shopFixture(t, admin)
	s := shopSource(t, schema, nil)
	for sql, want := range map[string]string{
		"(SELECT 1) UNION ALL (SELECT 2) ORDER BY 1":                                           "[[1] [2]]",
		"VALUES (1, 'a'), (2, 'b')":                                                            "[[1 a] [2 b]]",
		"TABLE customers ORDER BY id LIMIT 1":                                                  "[[1 Ada London]]",
		"WITH big AS (SELECT * FROM orders WHERE amount > 10) SELECT count(*) FROM big":        "[[2]]",
		"select name from customers where city = 'London'; -- trailing":                        "[[Ada]]",
		"SELECT name FROM customers WHERE name = 'it''s; DELETE'":                              "[]",
		"SELECT c.name, g FROM customers c, generate_series(1, 2) g WHERE c.id = 1 ORDER BY g": "[[Ada 1] [Ada 2]]",
		"SELECT x->>'k' FROM jsonb_array_elements('[{\"k\": \"v\"}]') x":                       "[[v]]",
		"SELECT current_setting('statement_timeout'), current_setting('search_path')":          fmt.Sprintf(`[[10s "%s"]]`, schema),
		"SELECT " + schema + ".orders.id FROM " + schema + ".orders WHERE id = 10":             "[[10]]",
	} {
		res := query(t, s, sql)
		if got := fmt.Sprint(res.Rows); got != want {
			t.Errorf("Query(%q) = %s, want %s", sql, got, want)
		}
	}
}
