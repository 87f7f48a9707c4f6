package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// A shop of three tables: customers and orders share customer_id, and
// "2024 Sales.csv" becomes table t_2024_sales.
const (
	shopCustomers = "customer_id,name\n1,Ann\n2,Bob\n3,Cy\n"
	shopOrders    = "order_id,customer_id,amount\n10,1,25\n11,1,15\n12,2,40\n13,3,5\n14,3,7\n15,2,1\n16,1,3\n"
	shopSales     = "month,customer_id,total\n2024-01,1,100\n2024-02,2,50\n"
	spentSQL      = "SELECT c.name, sum(o.amount) AS spent FROM customers c JOIN orders o USING (customer_id) GROUP BY c.name ORDER BY spent DESC, c.name"
)

func shopFiles() []formPart {
	return []formPart{
		{field: "file", filename: "customers.csv", content: shopCustomers},
		{field: "file", filename: "orders.csv", content: shopOrders},
		{field: "file", filename: "2024 Sales.csv", content: shopSales},
	}
}

// postParts posts a multipart body of parts to path.
func (n *nexus) postParts(t testing.TB, path string, parts ...formPart) response {
	t.Helper()
	body, contentType := multipartBody(t, "", parts...)
	req, err := http.NewRequest(http.MethodPost, n.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return n.do(t, req)
}

// uploadShop uploads the shop's three files as one dataset.
func (n *nexus) uploadShop(t testing.TB) string {
	t.Helper()
	r := n.postParts(t, "/datasets", shopFiles()...)
	expectStatus(t, r, http.StatusCreated)
	return r.Body["id"].(string)
}

// tableSummary reduces a dataset's tables to "name:rows:columns:file".
func tableSummary(t testing.TB, body map[string]any) string {
	t.Helper()
	var out []string
	for _, x := range body["tables"].([]any) {
		tb := x.(map[string]any)
		var cols []string
		for _, c := range tb["columns"].([]any) {
			cols = append(cols, c.(map[string]any)["name"].(string)+" "+c.(map[string]any)["type"].(string))
		}
		prof := tb["profile"].(map[string]any)
		if prof["row_count"] != tb["rows"] || len(prof["columns"].([]any)) != len(cols) {
			t.Errorf("table %v: profile %v", tb["name"], prof)
		}
		out = append(out, fmt.Sprintf("%v:%v:%s:%v", tb["name"], tb["rows"], strings.Join(cols, ","), tb["file"]))
	}
	return strings.Join(out, " | ")
}

func expectError(t testing.TB, r response, status int, code, field, message string) {
	t.Helper()
	expectStatus(t, r, status)
	e := r.Body["error"].(map[string]any)
	if e["code"] != code || e["field"] != fieldOrNil(field) || e["message"] != message {
		t.Fatalf("error = %v, want code %q field %q message %q", e, code, field, message)
	}
}

func fieldOrNil(f string) any {
	if f == "" {
		return nil
	}
	return f
}

// Three files in one upload make one dataset of three tables; a join
// question goes through the scripted planner, whose prompt lists every
// table and the join key.
func TestMultiTableUploadShouldAnswerAJoin(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	r := n.postParts(t, "/datasets", shopFiles()...)
	expectStatus(t, r, http.StatusCreated)
	id := r.Body["id"].(string)
	const wantTables = "customers:3:customer_id BIGINT,name VARCHAR:customers.csv | " +
		"orders:7:order_id BIGINT,customer_id BIGINT,amount BIGINT:orders.csv | " +
		"t_2024_sales:2:month VARCHAR,customer_id BIGINT,total BIGINT:2024 Sales.csv"
	if got := tableSummary(t, r.Body); got != wantTables {
		t.Fatalf("tables = %s", got)
	}
	if r.Body["table_count"] != 3.0 || r.Body["rows"] != 12.0 || len(r.Body["columns"].([]any)) != 0 || r.Body["profile"] != nil ||
		r.Body["format"] != "csv" || r.Body["name"] != "customers" || r.Body["size_bytes"] != float64(len(shopCustomers+shopOrders+shopSales)) {
		t.Fatalf("created: %s", r.Raw)
	}
	got := n.get(t, "/datasets/"+id)
	expectStatus(t, got, http.StatusOK)
	if !reflect.DeepEqual(got.Body, r.Body) {
		t.Fatalf("GET differs from the upload's answer:\n%s\n%s", got.Raw, r.Raw)
	}
	list := n.get(t, "/datasets").Body["datasets"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["table_count"] != 3.0 || list[0].(map[string]any)["tables"] != nil {
		t.Fatalf("list: %v", list)
	}

	n.LLM.EnqueueFor(codegenModel, sqlReply(spentSQL))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("Ann spent 43."))
	a := n.post(t, "/analyze", map[string]any{"query": "Who spent most?", "dataset_id": id})
	expectStatus(t, a, http.StatusOK)
	if a.Body["answer"] != "Ann spent 43." || a.Body["sql"] != spentSQL || a.Body["row_count"] != 3.0 || degraded(a) != "" {
		t.Fatalf("analyze: %s", a.Raw)
	}
	if rows, _ := json.Marshal(a.Body["rows"]); string(rows) != `[["Ann",43],["Bob",41],["Cy",12]]` {
		t.Fatalf("rows = %s", rows)
	}
	plan := n.LLM.Received()[0].Messages
	prompt := plan[len(plan)-1].Content
	for _, want := range []string{
		"The data has 3 tables: customers, orders, t_2024_sales.",
		"Table `customers`: 3 rows, 2 columns.", `- "name" VARCHAR`, "1 | Ann",
		"Table `orders`: 7 rows, 3 columns.", `- "amount" BIGINT`, "10 | 1 | 25",
		"Table `t_2024_sales`: 2 rows, 3 columns.", `- "month" VARCHAR`, "2024-01 | 1 | 100",
		"- customers.customer_id = orders.customer_id (BIGINT)\n",
		"- customers.customer_id = t_2024_sales.customer_id (BIGINT)\n",
		"- orders.customer_id = t_2024_sales.customer_id (BIGINT)\n",
		"Question: Who spent most?",
	} {
		if !strings.Contains(prompt, want) {
			t.Errorf("plan prompt lacks %q:\n%s", want, prompt)
		}
	}
	if sys := plan[0].Content; !strings.Contains(sys, "The data is in the tables listed") {
		t.Errorf("plan system prompt: %s", sys)
	}
}

// A table added later is queryable at once; the one-table dataset's data
// alias goes with its second table; collisions are refused.
func TestAddedTableShouldBeQueryable(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "customers.csv", []byte(shopCustomers))
	q := n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": "SELECT count(*) AS n FROM data"})
	expectStatus(t, q, http.StatusOK)
	if rows, _ := json.Marshal(q.Body["rows"]); string(rows) != "[[3]]" {
		t.Fatalf("count via data: %s", q.Raw)
	}

	r := n.postParts(t, "/datasets/"+id+"/tables", formPart{field: "file", filename: "orders.csv", content: shopOrders})
	expectStatus(t, r, http.StatusCreated)
	if got := tableSummary(t, r.Body); got != "customers:3:customer_id BIGINT,name VARCHAR:customers.csv | orders:7:order_id BIGINT,customer_id BIGINT,amount BIGINT:orders.csv" {
		t.Fatalf("tables = %s", got)
	}
	if r.Body["id"] != id || r.Body["table_count"] != 2.0 || r.Body["profile"] != nil || r.Body["rows"] != 10.0 {
		t.Fatalf("after adding: %s", r.Raw)
	}
	q = n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": spentSQL})
	expectStatus(t, q, http.StatusOK)
	if rows, _ := json.Marshal(q.Body["rows"]); string(rows) != `[["Ann",43],["Bob",41],["Cy",12]]` || q.Body["row_count"] != 3.0 {
		t.Fatalf("join: %s", q.Raw)
	}
	expectError(t, n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": "SELECT * FROM data"}), 422, "unsafe_sql", "",
		"the table data is not allowed: only customers, orders can be read")

	expectError(t, n.postParts(t, "/datasets/"+id+"/tables", formPart{field: "file", filename: "Orders.CSV", content: shopOrders}),
		422, "invalid_dataset", "file", `file "Orders.CSV": the dataset already has a table named "orders"`)
	expectError(t, n.postParts(t, "/datasets/"+id+"/tables", formPart{field: "name", content: "x"}),
		400, "invalid_request", "name", `unexpected form part "name": only file is accepted`)
	expectError(t, n.postParts(t, "/datasets/ds_0000000000000000/tables", formPart{field: "file", filename: "x.csv", content: shopOrders}),
		404, "dataset_not_found", "", "no dataset with that id")
	if got := n.get(t, "/datasets/"+id); got.Body["table_count"] != 2.0 {
		t.Fatalf("after refused additions: %s", got.Raw)
	}
}

// One bad file fails the whole upload, naming the file: no dataset is
// listed and no file is left in the data directory. Colliding and
// reserved names do the same.
func TestMultiTableUploadShouldBeAtomic(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir })
	cases := []struct {
		name  string
		parts []formPart
		msg   string
	}{
		{"second file malformed", []formPart{
			{field: "file", filename: "customers.csv", content: shopCustomers},
			{field: "file", filename: "orders.json", content: `[{"order_id":10},`},
			{field: "file", filename: "sales.csv", content: shopSales},
		}, `file "orders.json": invalid JSON: the document ends early`},
		{"name collision", []formPart{
			{field: "file", filename: "2024 Sales.csv", content: shopSales},
			{field: "file", filename: "2024_sales.csv", content: shopSales},
		}, `file "2024_sales.csv": its table name "t_2024_sales" is the same as that of file "2024 Sales.csv"`},
		{"reserved name", []formPart{
			{field: "file", filename: "customers.csv", content: shopCustomers},
			{field: "file", filename: "pg_stats.csv", content: shopSales},
		}, `file "pg_stats.csv": the table name "pg_stats" is reserved: names starting with pg_ belong to DuckDB's system catalog; rename the file`},
		{"data among several", []formPart{
			{field: "file", filename: "data.csv", content: shopCustomers},
			{field: "file", filename: "orders.csv", content: shopOrders},
		}, `file "data.csv": the table name "data" is reserved: it is the name of a dataset's only table; rename the file`},
	}
	for _, tc := range cases {
		r := n.postParts(t, "/datasets", tc.parts...)
		expectError(t, r, 422, "invalid_dataset", "file", tc.msg)
	}
	if got := len(n.get(t, "/datasets").Body["datasets"].([]any)); got != 0 {
		t.Fatalf("%d datasets listed after failed uploads", got)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("files left in the data dir: %v", entries)
	}
}

// GET /datasets/{id}/rows pages through a table in load order.
func TestRowsEndpointShouldPage(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.Datasets.MaxRows = 5 })
	id := n.uploadShop(t)
	page := func(query string) response {
		t.Helper()
		return n.get(t, "/datasets/"+id+"/rows"+query)
	}
	cases := []struct {
		query, rows string
		offset      float64
		limit       float64
		next        any
	}{
		{"?table=orders&limit=3", "[[10,1,25],[11,1,15],[12,2,40]]", 0, 3, 3.0},
		{"?table=orders&limit=3&offset=3", "[[13,3,5],[14,3,7],[15,2,1]]", 3, 3, 6.0},
		{"?table=orders&limit=3&offset=6", "[[16,1,3]]", 6, 3, nil},
		{"?table=ORDERS&offset=100", "[]", 100, 5, nil},
		{"?table=customers", `[[1,"Ann"],[2,"Bob"],[3,"Cy"]]`, 0, 5, nil},
	}
	for _, tc := range cases {
		r := page(tc.query)
		expectStatus(t, r, http.StatusOK)
		rows, _ := json.Marshal(r.Body["rows"])
		if string(rows) != tc.rows || r.Body["offset"] != tc.offset || r.Body["limit"] != tc.limit || r.Body["next_offset"] != tc.next ||
			r.Body["dataset_id"] != id || r.Body["truncated"] != false {
			t.Errorf("%s: %s", tc.query, r.Raw)
		}
	}
	if r := page("?table=orders&limit=1"); r.Body["table"] != "orders" || r.Body["total_rows"] != 7.0 || len(r.Body["columns"].([]any)) != 3 {
		t.Errorf("page: %s", r.Raw)
	}
	for _, tc := range []struct{ query, field, msg string }{
		{"", "table", "the dataset has 3 tables (customers, orders, t_2024_sales): name one with ?table="},
		{"?table=nope", "table", `the dataset has no table named "nope"; its tables are customers, orders, t_2024_sales`},
		{"?table=data", "table", `the dataset has no table named "data"; its tables are customers, orders, t_2024_sales`},
		{"?table=orders&limit=0", "limit", `limit must be an integer from 1 to 5 (datasets.max_rows), got "0"`},
		{"?table=orders&limit=6", "limit", `limit must be an integer from 1 to 5 (datasets.max_rows), got "6"`},
		{"?table=orders&limit=x", "limit", `limit must be an integer from 1 to 5 (datasets.max_rows), got "x"`},
		{"?table=orders&offset=-1", "offset", `offset must be an integer of 0 or more, got "-1"`},
		{"?table=orders&limt=2", "limt", `unknown query parameter "limt": use table, limit and offset`},
		{"?table=orders&table=customers", "table", "table is given 2 times"},
	} {
		expectError(t, page(tc.query), 400, "invalid_request", tc.field, tc.msg)
	}
	expectError(t, n.get(t, "/datasets/ds_0000000000000000/rows"), 404, "dataset_not_found", "", "no dataset with that id")

	// One table: table may be left out, and data names it.
	one := n.mustUpload(t, "customers.csv", []byte(shopCustomers))
	for _, q := range []string{"", "?table=data", "?table=customers"} {
		r := n.get(t, "/datasets/"+one+"/rows"+q)
		expectStatus(t, r, http.StatusOK)
		if rows, _ := json.Marshal(r.Body["rows"]); string(rows) != `[[1,"Ann"],[2,"Bob"],[3,"Cy"]]` || r.Body["table"] != "customers" || r.Body["limit"] != 5.0 {
			t.Errorf("%q: %s", q, r.Raw)
		}
	}
}

// POST /datasets/{id}/query runs the caller's SQL through the guard: a
// SELECT over the dataset's tables runs; DDL and tables of other
// datasets are refused.
func TestQueryEndpointShouldRunGuardedSQL(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.uploadShop(t)
	n.mustUpload(t, "secrets.csv", []byte("k,v\na,1\n"))
	r := n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": "SELECT month, total FROM t_2024_sales ORDER BY month"})
	expectStatus(t, r, http.StatusOK)
	if got, _ := json.Marshal(r.Body); string(got) != `{"columns":[{"name":"month","type":"VARCHAR"},{"name":"total","type":"BIGINT"}],`+
		`"dataset_id":"`+id+`","row_count":2,"rows":[["2024-01",100],["2024-02",50]],"truncated":false}` {
		t.Fatalf("query: %s", got)
	}
	only := "only customers, orders, t_2024_sales can be read"
	for _, tc := range []struct{ sql, code, msg string }{
		{"DROP TABLE orders", "unsafe_sql", "only a single read-only SELECT is allowed: the SQL holds a statement that is not a query " +
			"(such as CREATE, DROP, ALTER, INSERT, UPDATE, DELETE, SET, RESET, PRAGMA, COPY, ATTACH, DETACH, INSTALL, LOAD, CALL, EXPORT, IMPORT or EXPLAIN); " +
			"write one SELECT, WITH ... SELECT or FROM ... query (a PIVOT must list its values: PIVOT data ON col IN ('a', 'b') USING ...)"},
		{"CREATE TABLE x AS SELECT 1", "unsafe_sql", ""},
		{"SELECT * FROM secrets", "unsafe_sql", "the table secrets is not allowed: " + only},
		{"SELECT * FROM data", "unsafe_sql", "the table data is not allowed: " + only},
		{"SELECT * FROM read_csv('/etc/passwd')", "unsafe_sql", "the table function read_csv() is not allowed: it reads files; SQL may read only the dataset's table"},
		{"SELECT nope FROM orders", "sql_error", ""},
	} {
		r := n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": tc.sql})
		expectStatus(t, r, http.StatusUnprocessableEntity)
		e := r.Body["error"].(map[string]any)
		if e["code"] != tc.code || (tc.msg != "" && e["message"] != tc.msg) {
			t.Errorf("%s: %v", tc.sql, e)
		}
	}
	if got := n.get(t, "/datasets/"+id); got.Body["table_count"] != 3.0 {
		t.Fatalf("the dataset changed: %s", got.Raw)
	}
	expectError(t, n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": "  "}), 400, "invalid_request", "sql", "sql is required")
	expectError(t, n.post(t, "/datasets/ds_0000000000000000/query", map[string]any{"sql": "SELECT 1"}), 404, "dataset_not_found", "", "no dataset with that id")
	if got := len(n.LLM.Received()); got != 0 {
		t.Fatalf("the LLM was asked %d times", got)
	}
}

// With every circuit held open, /analyze answers 503 with advice that
// links to the data endpoints, and both endpoints still answer.
func TestDataEndpointsShouldWorkWithEveryCircuitOpen(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin)
	id := n.uploadShop(t)
	for _, name := range config.CircuitNames() {
		r := n.admin(t, http.MethodPost, "/api/circuits/"+name+"/open", adminToken)
		expectStatus(t, r, http.StatusOK)
		if r.Body["state"] != "open" || r.Body["forced"] != true {
			t.Fatalf("open %s: %s", name, r.Raw)
		}
	}
	a := n.post(t, "/analyze", map[string]any{"query": "Who spent most?", "dataset_id": id})
	expectStatus(t, a, http.StatusServiceUnavailable)
	fb := a.Body["fallback"].(map[string]any)
	alts, _ := json.Marshal(fb["alternatives"])
	for _, want := range []string{"GET /datasets/" + id + "/rows", "POST /datasets/" + id + "/query", "GET /datasets/" + id + "."} {
		if !strings.Contains(string(alts), want) {
			t.Errorf("alternatives lack %q: %s", want, alts)
		}
	}
	if a.Body["profile"] != nil {
		t.Errorf("a dataset of several tables has no single profile: %s", a.Raw)
	}

	r := n.get(t, "/datasets/"+id+"/rows?table=customers&limit=2")
	expectStatus(t, r, http.StatusOK)
	if rows, _ := json.Marshal(r.Body["rows"]); string(rows) != `[[1,"Ann"],[2,"Bob"]]` {
		t.Fatalf("rows: %s", r.Raw)
	}
	q := n.post(t, "/datasets/"+id+"/query", map[string]any{"sql": spentSQL})
	expectStatus(t, q, http.StatusOK)
	if rows, _ := json.Marshal(q.Body["rows"]); string(rows) != `[["Ann",43],["Bob",41],["Cy",12]]` {
		t.Fatalf("query: %s", q.Raw)
	}
	if got := len(n.LLM.Received()); got != 0 {
		t.Fatalf("the LLM was asked %d times", got)
	}
	for _, name := range config.CircuitNames() {
		if c := n.circuit(t, name); c["state"] != "open" || c["forced"] != true {
			t.Errorf("circuit %s after the reads: %v", name, c)
		}
	}
}
