package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/pgsource/pgtest"
	"github.com/nexus/nexus/test/fakellm"
)

// rowsText decodes a response's rows keeping numbers as written, each
// value as text: what psql would print for the same rows.
func rowsText(t *testing.T, r response) [][]string {
	t.Helper()
	var body struct {
		Rows [][]any `json:"rows"`
	}
	dec := json.NewDecoder(strings.NewReader(r.Raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("rows of %s: %v", r.Raw, err)
	}
	out := [][]string{}
	for _, row := range body.Rows {
		var cells []string
		for _, v := range row {
			cells = append(cells, textOf(v))
		}
		out = append(out, cells)
	}
	return out
}

func textOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// psqlRows runs sql as the admin and returns the rows as PostgreSQL's
// text output, as psql prints them.
func psqlRows(t *testing.T, admin *pgx.Conn, sql string) [][]string {
	t.Helper()
	rows, err := admin.Query(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("admin %q: %v", sql, err)
	}
	defer rows.Close()
	out := [][]string{}
	for rows.Next() {
		var cells []string
		for _, b := range rows.RawValues() {
			if b == nil {
				cells = append(cells, "NULL")
			} else {
				cells = append(cells, string(b))
			}
		}
		out = append(out, cells)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// spentBy is the shop's join: what each customer spent.
func (s *pgShop) spentBy() string {
	return fmt.Sprintf("SELECT c.name, sum(o.amount) AS spent, count(*) AS orders FROM %s c JOIN %s o USING (customer_id) "+
		"GROUP BY c.name ORDER BY spent DESC", s.customers, s.orders)
}

// A join over two tables of a source, written by the scripted planner,
// gives the rows the database itself gives; the planner is told the
// dialect and sees both tables, their catalog statistics and the join key.
func TestSourceShouldAnswerAJoinAsTheDatabaseDoes(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, nil))
	n.LLM.EnqueueFor(codegenModel, sqlReply(shop.spentBy()))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("Grace spent most."))

	a := n.post(t, "/analyze", map[string]any{"query": "Who spent most?", "source": "shop"})

	expectStatus(t, a, http.StatusOK)
	want := psqlRows(t, shop.admin, shop.spentBy())
	if got := rowsText(t, a); !reflect.DeepEqual(got, want) || len(want) != 3 {
		t.Fatalf("rows = %v, psql gives %v", got, want)
	}
	if want[0][0] != "Grace" || want[0][1] != "103.10" {
		t.Fatalf("psql: %v", want)
	}
	cols, _ := json.Marshal(a.Body["columns"])
	if string(cols) != `[{"name":"name","type":"text"},{"name":"spent","type":"numeric"},{"name":"orders","type":"bigint"}]` ||
		a.Body["answer"] != "Grace spent most." || a.Body["sql"] != shop.spentBy() || a.Body["row_count"] != 3.0 || degraded(a) != "" {
		t.Fatalf("analyze: %s", a.Raw)
	}
	expectSteps(t, a, map[string]string{"plan": "ok", "run": "ok", "answer": "ok"})

	plan := n.LLM.Received()[0].Messages
	if sys := plan[0].Content; !strings.Contains(sys, "You write exactly one read-only PostgreSQL SQL query") ||
		!strings.Contains(sys, "use PostgreSQL's syntax and functions") || strings.Contains(sys, "DuckDB") {
		t.Errorf("plan system prompt: %s", sys)
	}
	prompt := plan[1].Content
	for _, w := range []string{
		fmt.Sprintf("The data has 2 tables: %s, %s.", shop.customers, shop.orders),
		fmt.Sprintf("Table `%s`: about 3 rows (the catalog's estimate), 3 columns.", shop.customers),
		fmt.Sprintf("Table `%s`: about 5 rows (the catalog's estimate), 3 columns.", shop.orders),
		`- "name" text (nulls 0, distinct 3`, `- "amount" numeric(10,2)`,
		"customer_id | name | city\n1 | Ada | London\n",
		fmt.Sprintf("- %s.customer_id = %s.customer_id (integer)\n", shop.customers, shop.orders),
		"Question: Who spent most?",
	} {
		if !strings.Contains(prompt, w) {
			t.Errorf("plan prompt lacks %q:\n%s", w, prompt)
		}
	}
	if strings.Contains(prompt, shop.secret) {
		t.Errorf("the plan prompt names the table left off the allow-list:\n%s", prompt)
	}
	// Two samples and the planner's query, each counted by outcome.
	body := n.scrape(t)
	expectMetric(t, body, "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "ok"}, 3)
	expectMetric(t, body, "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "unavailable"}, 0)
	expectMetric(t, body, "nexus_source_query_duration_seconds_count", map[string]string{"source": "shop"}, 3)
}

// Each unsafe query is refused both through POST /sources/{name}/query and
// as the planner's SQL, whose refusal goes back to the planner for a
// corrected query; the database is unchanged afterwards.
func TestSourceShouldRefuseUnsafeSQLAndLeaveTheDatabaseUnchanged(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, func(s *config.Source) { s.StatementTimeout = 0.3 }),
		func(o *startOpts) { o.cfg.Datasets.MaxSQLAttempts = 2 })
	before := shop.state(t)
	cases := []struct {
		name, sql, code, msg string
	}{
		{"a table outside the allow-list", "SELECT * FROM " + shop.secret, "unsafe_sql",
			"SQL refused: reads public." + shop.secret + ", outside the allowed tables"},
		{"pg_read_file", "SELECT pg_read_file('/etc/passwd')", "unsafe_sql", "SQL refused"},
		{"COPY TO", fmt.Sprintf("COPY %s TO '/tmp/%s.csv'", shop.customers, shop.customers), "unsafe_sql",
			"SQL refused: only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got COPY"},
		{"COPY TO PROGRAM", fmt.Sprintf("COPY %s TO PROGRAM 'touch /tmp/x'", shop.customers), "unsafe_sql",
			"SQL refused: only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got COPY"},
		{"DELETE", "DELETE FROM " + shop.orders, "unsafe_sql",
			"SQL refused: only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got DELETE"},
		{"a data-modifying WITH", fmt.Sprintf("WITH d AS (DELETE FROM %s RETURNING *) SELECT count(*) FROM d", shop.orders), "unsafe_sql",
			"SQL refused"},
		{"two statements", fmt.Sprintf("SELECT 1; DELETE FROM %s", shop.orders), "unsafe_sql", "SQL refused: only one statement is allowed"},
		{"SET ROLE", "SET ROLE nexus_admin", "unsafe_sql",
			"SQL refused: only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got SET"},
		{"pg_sleep past the timeout", "SELECT pg_sleep(5)", "query_timeout",
			"the query was cancelled: it ran past the statement timeout of 300ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" through the query endpoint", func(t *testing.T) {
			start := time.Now()
			r := n.post(t, "/sources/shop/query", map[string]any{"sql": tc.sql})
			expectStatus(t, r, http.StatusUnprocessableEntity)
			e := r.Body["error"].(map[string]any)
			if e["code"] != tc.code || !strings.HasPrefix(e["message"].(string), tc.msg) {
				t.Fatalf("error = %v, want %s starting %q", e, tc.code, tc.msg)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("took %v: the statement was not cancelled at its timeout", took)
			}
		})
		t.Run(tc.name+" as the planner's SQL", func(t *testing.T) {
			calls := len(n.LLM.Received())
			n.LLM.EnqueueFor(codegenModel, sqlReply(tc.sql), sqlReply("SELECT count(*) AS n FROM "+shop.customers))
			n.LLM.EnqueueFor(analystModel, fakellm.Reply("There are 3 customers."))
			a := n.post(t, "/analyze", map[string]any{"query": "How many customers?", "source": "shop"})
			expectStatus(t, a, http.StatusOK)
			if rows, _ := json.Marshal(a.Body["rows"]); string(rows) != "[[3]]" || degraded(a) != "" {
				t.Fatalf("analyze: %s", a.Raw)
			}
			if s := expectSteps(t, a, map[string]string{"plan": "ok", "run": "ok"}); s["run"]["attempts"] != 2.0 {
				t.Fatalf("run step: %v", s["run"])
			}
			got := n.LLM.Received()[calls+1].Messages
			retry := got[len(got)-1].Content
			if !strings.HasPrefix(retry, "That query failed: "+tc.msg) ||
				!strings.HasSuffix(retry, "Write one corrected PostgreSQL SELECT over the tables listed, in a ```sql block.") {
				t.Fatalf("the planner was told %q", retry)
			}
		})
	}
	if after := shop.state(t); after != before {
		t.Fatalf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
	body := n.scrape(t)
	expectMetric(t, body, "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "unsafe_sql"}, 16)
	expectMetric(t, body, "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "timeout"}, 2)
}

// runStartup runs the server with cfg and env and returns its log and
// Run's error; a server that starts is stopped at once and fails the test.
func runStartup(t *testing.T, cfg config.Config, env map[string]string) (string, error) {
	t.Helper()
	path := writeConfig(t, cfg)
	vars := map[string]string{"NEXUS_CONFIG": path, "NEXUS_ADDR": "127.0.0.1:0", "NEXUS_DATA_DIR": t.TempDir()}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	started := false
	var out bytes.Buffer
	var mu sync.Mutex
	err := app.Run(ctx, nil, func(k string) string { return vars[k] }, &lockedWriter{w: &out, mu: &mu}, &lockedWriter{w: &out, mu: &mu},
		func(net.Addr) { started = true; cancel() }, nil)
	if started {
		t.Fatalf("the server started; want a refusal (Run returned %v)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), err
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Start-up refuses a source whose role can write or escape, naming the
// privilege, and one whose DSN is missing or invalid, naming the path;
// the DSN and its password never appear.
func TestStartupShouldRefuseAnUnsafeOrMissingSource(t *testing.T) {
	t.Parallel()
	admin, writer := pgDSN(t, envAdminDSN), pgDSN(t, envWriterDSN)
	cases := []struct {
		name, dsn, want string
	}{
		{"the superuser", admin, `sources.shop: role "nexus_admin" is a superuser (and 5 more: role "nexus_admin" is a member of superuser role "postgres"; `},
		{"a role that can INSERT", writer, `sources.shop: role "nexus_writer" holds INSERT on public.nexus_writer_target; use a read-only role (see README)`},
		{"no variable", "", "sources.shop.dsn_env: environment variable SHOP_DSN is not set"},
		{"a DSN that does not parse", "postgres://nexus_ro:s3cr3t-pass@127.0.0.1:5432/nexus_test?sslmode=bogus", "sources.shop.dsn_env: the value of SHOP_DSN: the DSN is not valid: "},
		{"nothing listening", "postgres://nexus_ro:s3cr3t-pass@127.0.0.1:1/nexus_test?sslmode=disable", "sources.shop: the database is unavailable: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Sources = config.Sources{"shop": {Kind: config.SourceKindPostgres, DSNEnv: "SHOP_DSN"}}
			env := map[string]string{}
			if tc.dsn != "" {
				env["SHOP_DSN"] = tc.dsn
			}
			logs, err := runStartup(t, cfg, env)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) ||
				(strings.Contains(tc.want, "role") && !strings.HasSuffix(err.Error(), "; use a read-only role (see README)")) {
				t.Fatalf("Run = %v, want an error starting %q", err, tc.want)
			}
			if tc.dsn != "" {
				for _, secret := range []string{tc.dsn, "s3cr3t-pass", "nexus_admin_test", "nexus_writer_test"} {
					if strings.Contains(err.Error(), secret) || strings.Contains(logs, secret) {
						t.Fatalf("a secret leaked: %v\n%s", err, logs)
					}
				}
			}
		})
	}
}

// A source that goes down between the plan and the run answers 503
// source_unavailable with Retry-After: not a fallback, and no LLM circuit
// counts it. The endpoints that read it say the same, health and GET
// /sources show it unreachable, and it recovers by itself.
func TestSourceThatGoesDownShouldAnswer503AndSpareTheCircuits(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	ro := pgDSN(t, envRODSN)
	p := pgtest.StartProxy(t, pgtest.Host(t, ro))
	n := startNexus(t, withSource("shop", p.Via(t, ro), shop, nil))
	release := make(chan struct{})
	n.LLM.EnqueueFor(codegenModel, fakellm.Held(release, "```sql\nSELECT count(*) FROM "+shop.customers+"\n```"))
	done := make(chan response, 1)
	go func() {
		done <- n.post(t, "/analyze", map[string]any{"query": "How many customers?", "source": "shop"})
	}()
	eventually(t, 10*time.Second, "the planner's request", func() bool { return n.LLM.RequestsFor(codegenModel) == 1 })
	p.Stop()
	close(release)
	a := <-done

	expectStatus(t, a, http.StatusServiceUnavailable)
	e := a.Body["error"].(map[string]any)
	if e["code"] != "source_unavailable" || !strings.HasPrefix(e["message"].(string), `source "shop": the database is unavailable: `) ||
		a.Header.Get("Retry-After") != "5" {
		t.Fatalf("503: %s (Retry-After %q)", a.Raw, a.Header.Get("Retry-After"))
	}
	if got := n.LLM.Requests(); got != 1 {
		t.Fatalf("%d LLM requests; want only the planner's", got)
	}
	for _, c := range config.CircuitNames() {
		s := n.stats(t, c)
		want := 0.0
		if c == config.CircuitCodeGenerator {
			want = 1 // the planner's call, which succeeded
		}
		if s["failure_count"] != 0.0 || s["timeout_count"] != 0.0 || s["rejected_count"] != 0.0 || s["total_calls"] != want ||
			s["success_count"] != want || n.state(t, c) != "closed" {
			t.Errorf("circuit %s: %v", c, s)
		}
	}

	// Opening the source fails now, before any LLM call; so do the
	// endpoints that read it.
	for _, r := range []response{
		n.post(t, "/analyze", map[string]any{"query": "How many customers?", "source": "shop"}),
		n.post(t, "/sources/shop/query", map[string]any{"sql": "SELECT 1"}),
		n.get(t, "/sources/shop/rows?table="+shop.customers),
		n.get(t, "/sources/shop"),
	} {
		expectStatus(t, r, http.StatusServiceUnavailable)
		if errorCode(r) != "source_unavailable" || r.Header.Get("Retry-After") != "5" {
			t.Fatalf("503: %s", r.Raw)
		}
	}
	if got := n.LLM.Requests(); got != 1 {
		t.Fatalf("%d LLM requests", got)
	}
	h := n.get(t, "/api/health/status")
	srcs := h.Body["sources"].([]any)
	if len(srcs) != 1 {
		t.Fatalf("health sources: %s", h.Raw)
	}
	hs := srcs[0].(map[string]any)
	if hs["name"] != "shop" || hs["kind"] != "postgres" || hs["reachable"] != false ||
		!strings.HasPrefix(hs["last_error"].(string), "the database is unavailable: ") || hs["last_checked_at"] == nil {
		t.Fatalf("health: %v", hs)
	}
	if h.Body["status"] != "healthy" {
		t.Fatalf("a source down is no circuit's failure: %s", h.Raw)
	}
	ls := n.get(t, "/sources").Body["sources"].([]any)[0].(map[string]any)
	if ls["reachable"] != false || ls["last_error"] != hs["last_error"] {
		t.Fatalf("GET /sources: %v", ls)
	}

	p.Listen(t, p.Addr())
	eventually(t, 15*time.Second, "the source to come back", func() bool {
		return n.post(t, "/sources/shop/query", map[string]any{"sql": "SELECT 1"}).Status == http.StatusOK
	})
	ls = n.get(t, "/sources").Body["sources"].([]any)[0].(map[string]any)
	if ls["reachable"] != true || ls["last_error"] != nil {
		t.Fatalf("after the source came back: %v", ls)
	}
	body := n.scrape(t)
	// The run step's query, the query endpoint's and the rows page's (the
	// profiles of /analyze's opening and of GET /sources/shop are no
	// queries).
	expectMetric(t, body, "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "unavailable"}, 3)
}

// Fifty concurrent /analyze calls on one source never hold more than its
// max_connections connections at once, all answer, and nothing leaks
// (goleak checks the whole package when it ends).
func TestSourceShouldRespectMaxConnectionsUnderLoad(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, func(s *config.Source) { s.MaxConnections = 2 }))
	n.LLM.SetDefaultFor(codegenModel, sqlReply(shop.spentBy()))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("Grace spent most."))
	const calls = 50
	var wg sync.WaitGroup
	statuses := make([]int, calls)
	for i := range calls {
		wg.Go(func() {
			statuses[i] = n.post(t, "/analyze", map[string]any{"query": "Who spent most?", "source": "shop"}).Status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("call %d: status %d", i, s)
		}
	}
	src := n.get(t, "/sources").Body["sources"].([]any)[0].(map[string]any)
	pool := src["pool"].(map[string]any)
	if pool["max_connections"] != 2.0 || pool["peak_in_use"] != 2.0 || pool["in_use"] != 0.0 || pool["open"].(float64) > 2 {
		t.Fatalf("pool: %v", pool)
	}
	expectMetric(t, n.scrape(t), "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "ok"}, 3*calls)
}

// /generate with a source writes PostgreSQL for its tables, and checks the
// SQL with the source's EXPLAIN, never running it.
func TestGenerateWithASourceShouldCheckTheSQLWithExplain(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, func(s *config.Source) { s.StatementTimeout = 0.3 }))
	before := shop.state(t)
	cases := []struct {
		name, sql string
		valid     bool
		msg       string
	}{
		{"a valid join", shop.spentBy(), true, ""},
		// Run, it would pass the statement timeout; EXPLAIN does not run it.
		{"a slow query, only planned", "SELECT pg_sleep(2), count(*) FROM " + shop.orders, true, ""},
		{"an unknown column", "SELECT nope FROM " + shop.customers, false, `PostgreSQL: column "nope" does not exist`},
		{"a table outside the allow-list", "SELECT * FROM " + shop.secret, false,
			"SQL refused: reads public." + shop.secret + ", outside the allowed tables"},
		{"DELETE", "DELETE FROM " + shop.orders, false,
			"SQL refused: only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got DELETE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := len(n.LLM.Received())
			n.LLM.EnqueueFor(codegenModel, sqlReply(tc.sql))
			r := n.post(t, "/generate", map[string]any{"prompt": "What did each customer spend?", "language": "sql", "source": "shop"})
			expectStatus(t, r, http.StatusOK)
			msg, _ := r.Body["error_message"].(string)
			if r.Body["code"] != tc.sql || r.Body["is_valid"] != tc.valid || !strings.HasPrefix(msg, tc.msg) || (tc.valid && msg != "") {
				t.Fatalf("generate: %s", r.Raw)
			}
			req := n.LLM.Received()[calls].Messages
			if sys := req[0].Content; !strings.Contains(sys, "You write one read-only PostgreSQL SQL query") || strings.Contains(sys, "DuckDB") {
				t.Fatalf("system prompt: %s", sys)
			}
			wantUser := fmt.Sprintf("The data is 2 PostgreSQL tables (double-quote a name that is an SQL keyword):\n"+
				"- %s with columns: \"customer_id\" integer, \"name\" text, \"city\" text\n"+
				"- %s with columns: \"order_id\" integer, \"customer_id\" integer, \"amount\" numeric(10,2)\n"+
				"Task: What did each customer spend?", shop.customers, shop.orders)
			if got := req[1].Content; got != wantUser {
				t.Fatalf("user prompt:\n%s\nwant:\n%s", got, wantUser)
			}
		})
	}
	if after := shop.state(t); after != before {
		t.Fatalf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
	expectError(t, n.post(t, "/generate", map[string]any{"prompt": "p", "language": "sql", "source": "nope"}),
		404, "source_not_found", "", "no source with that name")
	expectError(t, n.post(t, "/generate", map[string]any{"prompt": "p", "source": "shop", "dataset_id": "ds_0000000000000000"}),
		400, "invalid_request", "source", "give only one of data, dataset_id and source")
	// Explain queries are no queries: none counted.
	expectMetric(t, n.scrape(t), "nexus_source_queries_total", map[string]string{"source": "shop", "outcome": "ok"}, 0)
}

// GET /sources lists each source with its tables and reachability, GET
// /sources/{name} adds each table's catalog profile, rows pages a table
// by its primary key, and the query endpoint runs the caller's SQL; none
// calls the LLM, so all work with every circuit held open, and the 503's
// advice links to them.
func TestSourceEndpointsShouldDescribePageAndQuery(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, func(s *config.Source) { s.MaxRows = 4 }), withAdmin)
	for _, name := range config.CircuitNames() {
		expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+name+"/open", adminToken), http.StatusOK)
	}

	list := n.get(t, "/sources")
	expectStatus(t, list, http.StatusOK)
	srcs := list.Body["sources"].([]any)
	if len(srcs) != 1 {
		t.Fatalf("sources: %s", list.Raw)
	}
	src := srcs[0].(map[string]any)
	var raw struct {
		Sources []struct{ Tables, Limits json.RawMessage }
	}
	if err := json.Unmarshal([]byte(list.Raw), &raw); err != nil {
		t.Fatal(err)
	}
	tables, limits := raw.Sources[0].Tables, raw.Sources[0].Limits
	wantTables := fmt.Sprintf(`[{"schema":"public","name":"%s","columns":[{"name":"customer_id","type":"integer"},{"name":"name","type":"text"},{"name":"city","type":"text"}],"primary_key":["customer_id"]},`+
		`{"schema":"public","name":"%s","columns":[{"name":"order_id","type":"integer"},{"name":"customer_id","type":"integer"},{"name":"amount","type":"numeric(10,2)"}],"primary_key":["order_id"]}]`,
		shop.customers, shop.orders)
	if src["name"] != "shop" || src["kind"] != "postgres" || !reflect.DeepEqual(src["schemas"], []any{"public"}) || string(tables) != wantTables ||
		src["reachable"] != true || src["last_error"] != nil || src["last_checked_at"] == nil || src["latency_ms"] == nil ||
		string(limits) != `{"statement_timeout":10,"max_rows":4,"max_result_bytes":1048576,"max_connections":4}` {
		t.Fatalf("GET /sources: %s", list.Raw)
	}
	if strings.Contains(list.Raw, "nexus_ro_test") || strings.Contains(list.Raw, "SHOP_DSN") {
		t.Fatalf("GET /sources shows the DSN or its variable: %s", list.Raw)
	}

	one := n.get(t, "/sources/shop")
	expectStatus(t, one, http.StatusOK)
	prof := one.Body["tables"].([]any)[0].(map[string]any)["profile"].(map[string]any)
	if prof["table"] != shop.customers || prof["row_estimate"] != 3.0 || prof["analyzed"] != true {
		t.Fatalf("profile: %v", prof)
	}
	var wantName any
	_ = json.Unmarshal([]byte(`{"name":"name","type":"text","has_stats":true,"null_fraction":0,"nulls":0,"distinct":3,"min":"Ada","max":"Linus","top_values":[]}`), &wantName)
	if got := prof["columns"].([]any)[1]; !reflect.DeepEqual(got, wantName) {
		t.Fatalf("name's profile: %v", got)
	}
	expectError(t, n.get(t, "/sources/nope"), 404, "source_not_found", "", "no source with that name")

	pages := []struct {
		query, rows string
		next        any
	}{
		{"?table=" + shop.orders + "&limit=2", `[[10,1,12.50],[11,1,7.25]]`, 2.0},
		{"?table=public." + shop.orders + "&limit=2&offset=2", `[[12,2,100.00],[13,3,0.99]]`, 4.0},
		{"?table=" + shop.orders + "&limit=2&offset=4", `[[14,2,3.10]]`, nil},
		{"?table=" + shop.orders, `[[10,1,12.50],[11,1,7.25],[12,2,100.00],[13,3,0.99]]`, 4.0},
	}
	for _, pg := range pages {
		r := n.get(t, "/sources/shop/rows"+pg.query)
		expectStatus(t, r, http.StatusOK)
		var got struct {
			Rows json.RawMessage `json:"rows"`
		}
		_ = json.Unmarshal([]byte(r.Raw), &got)
		if string(got.Rows) != pg.rows || r.Body["next_offset"] != pg.next || r.Body["table"] != shop.orders ||
			r.Body["schema"] != "public" || r.Body["source"] != "shop" || r.Body["truncated"] != false {
			t.Errorf("rows%s: %s", pg.query, r.Raw)
		}
	}
	for _, bad := range []struct{ query, field, msg string }{
		{"", "table", fmt.Sprintf("the source has 2 tables (public.%s, public.%s): name one with ?table=", shop.customers, shop.orders)},
		{"?table=" + shop.secret, "table", fmt.Sprintf("the source has no table named %q; its tables are public.%s, public.%s", shop.secret, shop.customers, shop.orders)},
		{"?table=" + shop.orders + "&limit=5", "limit", `limit must be an integer from 1 to 4 (the source's max_rows), got "5"`},
		{"?table=" + shop.orders + "&offset=-1", "offset", `offset must be an integer of 0 or more, got "-1"`},
		{"?tabel=x", "tabel", `unknown query parameter "tabel": use table, limit and offset`},
	} {
		expectError(t, n.get(t, "/sources/shop/rows"+bad.query), 400, "invalid_request", bad.field, bad.msg)
	}

	q := n.post(t, "/sources/shop/query", map[string]any{"sql": shop.spentBy()})
	expectStatus(t, q, http.StatusOK)
	if got, want := rowsText(t, q), psqlRows(t, shop.admin, shop.spentBy()); !reflect.DeepEqual(got, want) ||
		q.Body["source"] != "shop" || q.Body["row_count"] != 3.0 || q.Body["truncated"] != false {
		t.Fatalf("query: %s, psql gives %v", q.Raw, want)
	}
	capped := n.post(t, "/sources/shop/query", map[string]any{"sql": "SELECT * FROM " + shop.orders + " ORDER BY order_id"})
	if len(capped.Body["rows"].([]any)) != 4 || capped.Body["truncated"] != true || capped.Body["row_count"] != 5.0 {
		t.Fatalf("capped at max_rows: %s", capped.Raw)
	}
	expectError(t, n.post(t, "/sources/shop/query", map[string]any{"sql": " "}), 400, "invalid_request", "sql", "sql is required")

	a := n.post(t, "/analyze", map[string]any{"query": "Who spent most?", "source": "shop"})
	expectStatus(t, a, http.StatusServiceUnavailable)
	alts, _ := json.Marshal(a.Body["fallback"].(map[string]any)["alternatives"])
	for _, want := range []string{"GET /sources/shop/rows?table=NAME", "POST /sources/shop/query", "GET /sources/shop."} {
		if !strings.Contains(string(alts), want) {
			t.Errorf("alternatives lack %q: %s", want, alts)
		}
	}
	if strings.Contains(string(alts), "/datasets/") {
		t.Errorf("alternatives point at datasets: %s", alts)
	}
	g := n.post(t, "/generate", map[string]any{"prompt": "p", "language": "sql", "source": "shop"})
	expectStatus(t, g, http.StatusServiceUnavailable)
	if alts, _ := json.Marshal(g.Body["fallback"].(map[string]any)["alternatives"]); !strings.Contains(string(alts), "POST /sources/shop/query") {
		t.Errorf("generate's alternatives: %s", alts)
	}
	if got := len(n.LLM.Received()); got != 0 {
		t.Fatalf("the LLM was asked %d times", got)
	}

	for _, bad := range []struct {
		body      map[string]any
		status    int
		code, fld string
		msg       string
	}{
		{map[string]any{"query": "q", "source": "nope"}, 404, "source_not_found", "", "no source with that name"},
		{map[string]any{"query": "q", "source": ""}, 400, "invalid_request", "source", "source must not be empty"},
		{map[string]any{"query": "q", "source": "shop", "dataset_id": "ds_0000000000000000"}, 400, "invalid_request", "source", "give only one of data, dataset_id and source"},
		{map[string]any{"query": "q", "source": "shop", "data": map[string]any{"format": "csv", "content": "a\n1\n"}}, 400, "invalid_request", "source", "give only one of data, dataset_id and source"},
	} {
		expectError(t, n.post(t, "/analyze", bad.body), bad.status, bad.code, bad.fld, bad.msg)
	}
}

// A reload re-introspects the sources: a table on the allow-list that is
// created after start-up appears. A change to the sources section itself
// waits for a restart.
func TestReloadShouldRefreshSources(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	later := shop.customers[:len("e2e_")+8] + "_later"
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, func(s *config.Source) {
		s.Tables = append(s.Tables, later)
	}), withAdmin)
	names := func() []string {
		var out []string
		for _, tb := range n.get(t, "/sources").Body["sources"].([]any)[0].(map[string]any)["tables"].([]any) {
			out = append(out, tb.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := names(); !reflect.DeepEqual(got, []string{shop.customers, shop.orders}) {
		t.Fatalf("tables at start: %v", got)
	}
	pgExec(t, shop.admin, fmt.Sprintf("CREATE TABLE public.%[1]s (id int); GRANT SELECT ON public.%[1]s TO nexus_ro", later))
	t.Cleanup(func() { _, _ = shop.admin.Exec(context.Background(), "DROP TABLE IF EXISTS public."+later) })

	rewriteConfig(t, n.ConfigPath, func(c *config.Config) {
		src := c.Sources["shop"]
		src.MaxRows = 7 // restart-only: ignored, with a WARN
		c.Sources["shop"] = src
	})
	expectStatus(t, n.admin(t, http.MethodPost, "/api/config/reload", adminToken), http.StatusOK)
	if got := names(); !reflect.DeepEqual(got, []string{shop.customers, later, shop.orders}) {
		t.Fatalf("tables after the reload: %v", got)
	}
	warned := false
	for _, l := range n.logs.lines("restart required: config change ignored until then") {
		warned = warned || l["section"] == "sources"
	}
	if !warned {
		t.Fatalf("no restart WARN for the sources section:\n%s", n.logs.String())
	}
}

// A key's sources list limits which sources it may use: another source is
// a 404 source_not_found on /analyze, /generate and its own routes, as if
// it did not exist, and GET /sources does not list it.
func TestAKeysSourcesShouldLimitWhatItMayQuery(t *testing.T) {
	t.Parallel()
	shop := newPGShop(t)
	allowed := apiKey("limited", "limited-key-0123456789", config.ScopeAnalyze, config.ScopeGenerate, config.ScopeSources)
	allowed.Sources = []string{"elsewhere"}
	full := apiKey("full", "full-key-0123456789abc", config.ScopeAnalyze, config.ScopeGenerate, config.ScopeSources)
	n := startNexus(t, withSource("shop", pgDSN(t, envRODSN), shop, nil), withKeys(allowed, full))

	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/analyze"}, {http.MethodPost, "/generate"},
	} {
		body := map[string]any{"query": "what did each customer spend?", "prompt": "total spent by customer", "language": "sql", "source": "shop"}
		if tc.path == "/analyze" {
			delete(body, "prompt")
			delete(body, "language")
		} else {
			delete(body, "query")
		}
		expectCode(t, n.as(t, "limited-key-0123456789", tc.method, tc.path, body), http.StatusNotFound, "source_not_found")
	}
	expectCode(t, n.as(t, "limited-key-0123456789", http.MethodGet, "/sources/shop", nil), http.StatusNotFound, "source_not_found")
	if r := n.as(t, "limited-key-0123456789", http.MethodGet, "/sources", nil); r.Status != http.StatusOK || len(r.Body["sources"].([]any)) != 0 {
		t.Fatalf("GET /sources for a key limited to another source: %d %s", r.Status, r.Raw)
	}
	if r := n.as(t, "full-key-0123456789abc", http.MethodGet, "/sources", nil); r.Status != http.StatusOK || len(r.Body["sources"].([]any)) != 1 {
		t.Fatalf("GET /sources for a key without a list: %d %s", r.Status, r.Raw)
	}
	if n.LLM.Requests() != 0 {
		t.Fatalf("the LLM got %d requests for refused sources", n.LLM.Requests())
	}
}
