package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

func sqlReply(q string) fakellm.Step { return fakellm.Reply("```sql\n" + q + "\n```") }

const bySales = "SELECT region, sum(sales) AS total FROM data GROUP BY region ORDER BY total DESC"

func stepsOf(t *testing.T, r response) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	var order []string
	for _, s := range r.Body["steps"].([]any) {
		m := s.(map[string]any)
		out[m["step"].(string)] = m
		order = append(order, m["step"].(string))
	}
	if strings.Join(order, ",") != "plan,run,answer,review,chart" {
		t.Fatalf("steps = %v", order)
	}
	return out
}

func expectSteps(t *testing.T, r response, want map[string]string) map[string]map[string]any {
	t.Helper()
	steps := stepsOf(t, r)
	for name, outcome := range want {
		if steps[name]["outcome"] != outcome {
			t.Errorf("step %s = %v, want %s (%v)", name, steps[name]["outcome"], outcome, steps[name])
		}
	}
	return steps
}

func degraded(r response) string {
	var out []string
	for _, d := range r.Body["degraded"].([]any) {
		out = append(out, d.(string))
	}
	return strings.Join(out, ",")
}

// The planner writes SQL, the sandbox runs it, and the analyst explains
// the computed result.
func TestAnalyzeShouldAnswerFromComputedSQL(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("North leads with 160."))
	r := n.post(t, "/analyze", map[string]any{"query": "Which region sells most?", "dataset_id": id})
	expectStatus(t, r, http.StatusOK)
	if r.Body["answer"] != "North leads with 160." || r.Body["sql"] != bySales || r.Body["row_count"] != 3.0 ||
		r.Body["fallback_used"] != false || degraded(r) != "" || r.Body["chart"] != nil || r.Body["review"] != nil ||
		r.Body["circuit"] != "data_analyst" || r.Body["model"] != analystModel || r.Body["truncated"] != false {
		t.Fatalf("body: %s", r.Raw)
	}
	rows := r.Body["rows"].([]any)
	if first := rows[0].([]any); first[0] != "North" || first[1] != 160.0 {
		t.Fatalf("rows: %v", rows)
	}
	steps := expectSteps(t, r, map[string]string{"plan": "ok", "run": "ok", "answer": "ok", "review": "skipped", "chart": "skipped"})
	if steps["run"]["circuit"] != nil || steps["plan"]["circuit"] != "code_generator" || steps["plan"]["attempts"] != 1.0 {
		t.Fatalf("steps: %v", steps)
	}
	got := n.LLM.Received()
	if len(got) != 2 || got[0].Model != codegenModel || got[1].Model != analystModel {
		t.Fatalf("upstream requests: %+v", got)
	}
	plan := got[0].Messages[len(got[0].Messages)-1].Content
	for _, want := range []string{"Table `data`: 4 rows", `"sales" BIGINT`, "North", "Which region sells most?"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan prompt lacks %q:\n%s", want, plan)
		}
	}
	if answer := got[1].Messages[len(got[1].Messages)-1].Content; !strings.Contains(answer, "160") {
		t.Errorf("answer prompt lacks the computed total:\n%s", answer)
	}
}

// Inline data goes through the same pipeline as a table named data.
func TestAnalyzeShouldRunInlineDataThroughThePipeline(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	n.LLM.EnqueueFor(codegenModel, sqlReply("SELECT count(*) AS n FROM data"))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("There are 2 rows."))
	r := n.post(t, "/analyze", map[string]any{
		"query": "How many rows?",
		"data":  map[string]any{"format": "json", "content": `[{"a":1,"b":"x"},{"a":2,"b":"y"}]`},
	})
	expectStatus(t, r, http.StatusOK)
	if r.Body["rows"].([]any)[0].([]any)[0] != 2.0 || r.Body["answer"] != "There are 2 rows." {
		t.Fatalf("body: %s", r.Raw)
	}
}

// A failing query goes back to the planner with the error, and the fixed
// one runs.
func TestAnalyzeShouldRetryAFailedQueryWithItsError(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir })
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, sqlReply("SELECT sum(revenue) FROM data"), sqlReply("SELECT sum(sales) AS total FROM data"))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("Total 300."))
	r := n.post(t, "/analyze", map[string]any{"query": "total?", "dataset_id": id})
	expectStatus(t, r, http.StatusOK)
	steps := expectSteps(t, r, map[string]string{"plan": "ok", "run": "ok", "answer": "ok"})
	if steps["plan"]["attempts"] != 2.0 || r.Body["sql"] != "SELECT sum(sales) AS total FROM data" || r.Body["fallback_used"] != false {
		t.Fatalf("body: %s", r.Raw)
	}
	retry := n.LLM.Received()[1].Messages
	feedback := retry[len(retry)-1].Content
	if !strings.Contains(feedback, "revenue") || strings.Contains(feedback, dataDir) {
		t.Fatalf("retry prompt should carry the scrubbed error:\n%s", feedback)
	}
}

// Malicious SQL never runs: the refusal goes back to the planner, and when
// no safe query comes the degraded path answers from the profile.
func TestMaliciousSQLShouldNeverRun(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "stolen.csv")
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir })
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	attacks := []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"COPY data TO '" + outside + "'",
		"ATTACH '" + filepath.Join(t.TempDir(), "x.db") + "' AS x",
		"INSTALL httpfs",
		"DROP TABLE data; SELECT 1",
		"SELECT * FROM glob('/*')",
	}
	for i, attack := range attacks {
		n.LLM.EnqueueFor(codegenModel, sqlReply(attack))
		if i%3 == 2 {
			// Three attempts per question (max_sql_attempts): ask again.
			n.LLM.EnqueueFor(analystModel, fakellm.Reply("From the profile: 4 rows."))
			r := n.post(t, "/analyze", map[string]any{"query": "steal", "dataset_id": id})
			expectStatus(t, r, http.StatusOK)
			steps := expectSteps(t, r, map[string]string{"plan": "ok", "run": "fallback", "answer": "ok"})
			if r.Body["sql"] != nil || r.Body["fallback_used"] != true || degraded(r) != "run" || steps["run"]["detail"] == "" {
				t.Fatalf("body: %s", r.Raw)
			}
			if strings.Contains(r.Raw, "root:") {
				t.Fatal("/etc/passwd leaked")
			}
		}
	}
	for _, req := range n.LLM.Received() {
		for _, m := range req.Messages {
			if strings.Contains(m.Content, "root:x:") || strings.Contains(m.Content, dataDir) {
				t.Fatalf("a prompt carries file contents or server paths:\n%s", m.Content)
			}
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Fatal("COPY wrote a file")
	}
	n.LLM.EnqueueFor(codegenModel, sqlReply("SELECT count(*) AS n FROM data"))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("4"))
	r := n.post(t, "/analyze", map[string]any{"query": "count", "dataset_id": id})
	expectStatus(t, r, http.StatusOK)
	if r.Body["rows"].([]any)[0].([]any)[0] != 4.0 {
		t.Fatalf("the table changed: %s", r.Raw)
	}
	for _, attack := range attacks {
		n.LLM.EnqueueFor(codegenModel, sqlReply(attack))
		g := n.post(t, "/generate", map[string]any{"prompt": "p", "language": "sql", "dataset_id": id})
		expectStatus(t, g, http.StatusOK)
		if g.Body["is_valid"] != false || g.Body["error_message"] == nil {
			t.Fatalf("/generate accepted %q: %s", attack, g.Raw)
		}
	}
}

// A critic that rejects once, then accepts: the answer is regenerated
// with the critique and reviewed again.
func TestReviewShouldRegenerateAnInvalidAnswer(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("South leads."), fakellm.Reply("North leads with 160."))
	n.LLM.EnqueueFor(cotModel, fakellm.Reply("INVALID: the result shows North with 160, not South."), fakellm.Reply("VALID"))
	r := n.post(t, "/analyze", map[string]any{"query": "Which region sells most?", "dataset_id": id, "review": true})
	expectStatus(t, r, http.StatusOK)
	rv := r.Body["review"].(map[string]any)
	if rv["iterations"] != 1.0 || rv["verdict"] != "valid" || r.Body["answer"] != "North leads with 160." {
		t.Fatalf("body: %s", r.Raw)
	}
	expectSteps(t, r, map[string]string{"review": "ok"})
	revise := n.LLM.Received()
	var sawCritique bool
	for _, req := range revise {
		if req.Model == analystModel && strings.Contains(req.Messages[len(req.Messages)-1].Content, "not South") {
			sawCritique = true
		}
	}
	if !sawCritique || n.LLM.RequestsFor(cotModel) != 2 || n.LLM.RequestsFor(analystModel) != 2 {
		t.Fatalf("critique not used or wrong counts: cot %d analyst %d", n.LLM.RequestsFor(cotModel), n.LLM.RequestsFor(analystModel))
	}
}

// Each circuit open in turn degrades its own step only.
func TestEachOpenCircuitShouldDegradeItsStep(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		open     string
		body     map[string]any
		degraded string
		check    func(t *testing.T, n *nexus, r response)
	}{
		{name: "code_generator", open: "code_generator", degraded: "plan",
			check: func(t *testing.T, n *nexus, r response) {
				expectSteps(t, r, map[string]string{"plan": "fallback", "run": "skipped", "answer": "ok"})
				if r.Body["sql"] != nil || r.Body["answer"] != "from the profile" || n.LLM.RequestsFor(codegenModel) != 0 {
					t.Fatalf("body: %s", r.Raw)
				}
				if p := n.LLM.Received()[0].Messages; !strings.Contains(p[len(p)-1].Content, "4 rows") {
					t.Fatalf("fallback prompt lacks the profile: %v", p)
				}
			}},
		{name: "data_analyst", open: "data_analyst", degraded: "answer",
			check: func(t *testing.T, n *nexus, r response) {
				expectSteps(t, r, map[string]string{"plan": "ok", "run": "ok", "answer": "fallback"})
				if r.Body["row_count"] != 3.0 || !strings.Contains(r.Body["answer"].(string), "3 rows") || r.Body["model"] != nil {
					t.Fatalf("body: %s", r.Raw)
				}
			}},
		{name: "visualization", open: "visualization", degraded: "chart", body: map[string]any{"visualize": true},
			check: func(t *testing.T, n *nexus, r response) {
				expectSteps(t, r, map[string]string{"chart": "fallback"})
				chart := r.Body["chart"].(map[string]any)
				values := chart["data"].(map[string]any)["values"].([]any)
				if chart["mark"] != "bar" || len(values) != 3 || values[0].(map[string]any)["region"] != "North" {
					t.Fatalf("chart: %v", chart)
				}
			}},
		{name: "cot_engine", open: "cot_engine", degraded: "review", body: map[string]any{"review": true},
			check: func(t *testing.T, n *nexus, r response) {
				expectSteps(t, r, map[string]string{"review": "fallback"})
				if r.Body["review"].(map[string]any)["verdict"] != "skipped" || r.Body["answer"] != "North leads." {
					t.Fatalf("body: %s", r.Raw)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withAdmin)
			id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
			expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+tc.open+"/open", adminToken), http.StatusOK)
			n.LLM.SetDefaultFor(codegenModel, sqlReply(bySales))
			answer := "North leads."
			if tc.open == "code_generator" {
				answer = "from the profile"
			}
			n.LLM.SetDefaultFor(analystModel, fakellm.Reply(answer))
			body := map[string]any{"query": "Which region sells most?", "dataset_id": id}
			for k, v := range tc.body {
				body[k] = v
			}
			r := n.post(t, "/analyze", body)
			expectStatus(t, r, http.StatusOK)
			if r.Body["fallback_used"] != true || degraded(r) != tc.degraded || r.Body["circuit"] != "data_analyst" {
				t.Fatalf("body: %s", r.Raw)
			}
			tc.check(t, n, r)
		})
	}
}

// With visualization open, the chart follows the result's shape: time and
// number make a line, two numbers a scatter, and text alone no chart.
func TestChartFallbackShouldFollowTheResultShape(t *testing.T) {
	t.Parallel()
	const content = "day,sales,units,region\n2026-01-01,120,3,North\n2026-01-02,80,2,South\n2026-01-03,40,1,East\n"
	cases := []struct {
		name, sql, mark, x, y string
	}{
		{"time and number", "SELECT day, sales FROM data ORDER BY day", "line", "day", "sales"},
		{"two numbers", "SELECT units, sales FROM data", "point", "units", "sales"},
		{"category and number", "SELECT region, sales FROM data", "bar", "region", "sales"},
		{"text only", "SELECT region FROM data", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withAdmin)
			expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/visualization/open", adminToken), http.StatusOK)
			n.LLM.SetDefaultFor(codegenModel, sqlReply(tc.sql))
			n.LLM.SetDefaultFor(analystModel, fakellm.Reply("Sales fell."))
			r := n.post(t, "/analyze", map[string]any{
				"query": "How did sales go?", "visualize": true,
				"data": map[string]any{"format": "csv", "content": content},
			})
			expectStatus(t, r, http.StatusOK)
			expectSteps(t, r, map[string]string{"chart": "fallback"})
			if degraded(r) != "chart" || n.LLM.RequestsFor(vizModel) != 0 {
				t.Fatalf("body: %s", r.Raw)
			}
			if tc.mark == "" {
				if r.Body["chart"] != nil {
					t.Fatalf("a chart for text alone: %v", r.Body["chart"])
				}
				return
			}
			chart, _ := r.Body["chart"].(map[string]any)
			if chart == nil {
				t.Fatalf("no chart: %s", r.Raw)
			}
			enc := chart["encoding"].(map[string]any)
			values := chart["data"].(map[string]any)["values"].([]any)
			if chart["mark"] != tc.mark || enc["x"].(map[string]any)["field"] != tc.x || enc["y"].(map[string]any)["field"] != tc.y || len(values) != 3 {
				t.Fatalf("chart: %v", chart)
			}
		})
	}
}

// When every path to an answer fails, the 503 carries the profile.
func TestAnalyzeShouldAnswer503WithTheProfileWhenNothingWorks(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	for _, c := range []string{"code_generator", "data_analyst"} {
		expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+c+"/open", adminToken), http.StatusOK)
	}
	r := n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": id})
	expectStatus(t, r, http.StatusServiceUnavailable)
	p, ok := r.Body["profile"].(map[string]any)
	if !ok || p["row_count"] != 4.0 || errorCode(r) != "circuit_open" || r.Body["circuit"] != "data_analyst" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("body: %s", r.Raw)
	}
	if _, has := r.Body["code"]; has {
		t.Fatalf("the analyst's 503 must not carry /generate's fields: %s", r.Raw)
	}
	if n.LLM.Requests() != 0 {
		t.Fatal("open circuits called the LLM")
	}
	expectStatus(t, n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": "ds_nope"}), http.StatusNotFound)
}

// An LLM 400 in the plan step degrades like an open circuit.
func TestPlanRejectionShouldDegradeNot422(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, fakellm.Status(400, "context length exceeded"))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("from the profile"))
	r := n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": id})
	expectStatus(t, r, http.StatusOK)
	if degraded(r) != "plan" {
		t.Fatalf("body: %s", r.Raw)
	}
}

// A chart spec that is not JSON, or lacks mark/encoding, falls back to
// the deterministic chart; a good one is kept with the data inlined.
func TestChartShouldValidateTheSpec(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	cases := []struct {
		name, reply, mark, outcome string
	}{
		{"good spec", "```json\n{\"mark\":\"arc\",\"encoding\":{\"theta\":{\"field\":\"total\",\"type\":\"quantitative\"},\"color\":{\"field\":\"region\"}}}\n```", "arc", "ok"},
		{"not JSON", "here is a nice chart!", "bar", "fallback"},
		{"no encoding", `{"mark":"bar"}`, "bar", "fallback"},
		{"unknown field", `{"mark":"bar","encoding":{"x":{"field":"nope"}}}`, "bar", "fallback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
			n.LLM.EnqueueFor(analystModel, fakellm.Reply("ok"))
			n.LLM.EnqueueFor(vizModel, fakellm.Reply(tc.reply))
			r := n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": id, "visualize": true})
			expectStatus(t, r, http.StatusOK)
			expectSteps(t, r, map[string]string{"chart": tc.outcome})
			chart := r.Body["chart"].(map[string]any)
			if chart["mark"] != tc.mark || len(chart["data"].(map[string]any)["values"].([]any)) != 3 || !strings.Contains(chart["$schema"].(string), "vega-lite/v5") {
				t.Fatalf("chart: %v", chart)
			}
		})
	}
}

// A chart spec keeps only the inlined rows: URLs and links anywhere in it
// are stripped, and a lookup transform with its own data makes the
// deterministic chart be used instead.
func TestChartShouldKeepOnlyInlineData(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	cases := []struct {
		name, reply, want, outcome, detail string
	}{
		{"URLs and links stripped",
			`{"data":{"url":"https://evil.example/a.csv"},"mark":{"type":"bar","href":"https://evil.example"},` +
				`"encoding":{"x":{"field":"region"},"y":{"field":"total"},"href":{"value":"https://evil.example"}},` +
				`"layer":[{"mark":"rule","data":{"url":"https://evil.example/b.json"}}],"usermeta":{"embedOptions":{"editorUrl":"https://evil.example"}}}`,
			`{"$schema":"https://vega.github.io/schema/vega-lite/v5.json","data":{"values":[{"region":"North","total":160},{"region":"South","total":80},{"region":"East","total":60}]},` +
				`"encoding":{"x":{"field":"region"},"y":{"field":"total"}},"layer":[{"mark":"rule"}],"mark":{"type":"bar"}}`,
			"ok", ""},
		{"lookup with external data refused",
			`{"mark":"line","encoding":{"x":{"field":"region"},"y":{"field":"total"}},` +
				`"transform":[{"lookup":"region","from":{"data":{"url":"https://evil.example/c.csv"},"key":"region","fields":["pop"]}}]}`,
			`{"$schema":"https://vega.github.io/schema/vega-lite/v5.json","data":{"values":[{"region":"North","total":160},{"region":"South","total":80},{"region":"East","total":60}]},` +
				`"encoding":{"x":{"field":"region","type":"nominal"},"y":{"field":"total","type":"quantitative"}},"mark":"bar"}`,
			"fallback", "unusable spec: spec.transform[0]: a lookup transform may not bring its own data; chart chosen from the result's shape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
			n.LLM.EnqueueFor(analystModel, fakellm.Reply("ok"))
			n.LLM.EnqueueFor(vizModel, fakellm.Reply(tc.reply))
			r := n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": id, "visualize": true})
			expectStatus(t, r, http.StatusOK)
			steps := expectSteps(t, r, map[string]string{"chart": tc.outcome})
			if d, _ := steps["chart"]["detail"].(string); d != tc.detail {
				t.Fatalf("chart detail %q, want %q", d, tc.detail)
			}
			chart, err := json.Marshal(r.Body["chart"])
			if err != nil {
				t.Fatal(err)
			}
			if string(chart) != tc.want {
				t.Fatalf("chart\n got  %s\n want %s", chart, tc.want)
			}
		})
	}
}

// /generate checks SQL against the dataset's schema with DuckDB, and
// Python with a real parser.
func TestGenerateShouldParseWithRealParsers(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	cases := []struct {
		name, lang, dataset, reply string
		valid                      bool
		errHas                     string
	}{
		{"sql against schema", "sql", id, "```sql\nSELECT region FROM data\n```", true, ""},
		{"sql unknown column", "sql", id, "```sql\nSELECT revenue FROM data\n```", false, "revenue"},
		{"sql parser only", "sql", "", "```sql\nSELECT revenue FROM anything\n```", true, ""},
		{"sql syntax error", "sql", "", "```sql\nSELECT FROM WHERE\n```", false, "DuckDB"},
		{"python syntax error", "python", "", "```python\nresult = (1 +\nx = 2\n```", false, "line"},
		{"python valid", "python", id, "```python\nresult = df.groupby('region')['sales'].sum()\n```", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.LLM.EnqueueFor(codegenModel, fakellm.Reply(tc.reply))
			body := map[string]any{"prompt": "p", "language": tc.lang}
			if tc.dataset != "" {
				body["dataset_id"] = tc.dataset
			}
			r := n.post(t, "/generate", body)
			expectStatus(t, r, http.StatusOK)
			if r.Body["is_valid"] != tc.valid {
				t.Fatalf("body: %s", r.Raw)
			}
			if msg, _ := r.Body["error_message"].(string); !strings.Contains(msg, tc.errHas) {
				t.Fatalf("error_message %q lacks %q", msg, tc.errHas)
			}
		})
	}
	last := n.LLM.Received()
	if p := last[len(last)-1].Messages; !strings.Contains(p[len(p)-1].Content, `"region" VARCHAR`) {
		t.Fatalf("the generator was not given the schema: %v", p)
	}
	expectStatus(t, n.post(t, "/generate", map[string]any{"prompt": "p", "dataset_id": "ds_missing"}), http.StatusNotFound)
}

// Concurrent analyses and uploads are safe (run with -race).
func TestConcurrentAnalysesShouldBeSafe(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 100, 1, 1, 5))
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.SetDefaultFor(codegenModel, sqlReply(bySales))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("ok"))
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				r := n.post(t, "/analyze", map[string]any{"query": "q", "dataset_id": id})
				if r.Status != http.StatusOK || r.Body["row_count"] != 3.0 {
					errs <- r.Raw
				}
			}
			if g%2 == 0 {
				if r := n.upload(t, "more.csv", []byte(salesCSV), ""); r.Status != http.StatusCreated {
					errs <- r.Raw
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
