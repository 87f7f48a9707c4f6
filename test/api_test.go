package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// Bad input gets a JSON error naming the field, and reaches no LLM.
func TestBadInputShouldGetAClearJSONError(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.Server.MaxBodyBytes = 4096 })
	long := strings.Repeat("x", 4001)
	cases := []struct {
		name   string
		path   string
		body   string
		ctype  string
		status int
		code   string
		field  string
	}{
		{"analyze400MalformedJSON", "/analyze", `{"query":`, "application/json", 400, "invalid_request", ""},
		{"analyze400MissingQuery", "/analyze", `{}`, "application/json", 400, "invalid_request", "query"},
		{"analyze400EmptyQuery", "/analyze", `{"query":""}`, "application/json", 400, "invalid_request", "query"},
		{"analyze400LongQuery", "/analyze", `{"query":"` + long + `"}`, "application/json", 400, "invalid_request", "query"},
		{"analyze400QueryNotString", "/analyze", `{"query":42}`, "application/json", 400, "invalid_request", "query"},
		{"analyze400UnknownField", "/analyze", `{"query":"q","qurey":"x"}`, "application/json", 400, "invalid_request", "qurey"},
		{"analyze400BadFormat", "/analyze", `{"query":"q","data":{"format":"xml","content":"<a/>"}}`, "application/json", 400, "invalid_request", "data.format"},
		{"analyze400MissingContent", "/analyze", `{"query":"q","data":{"format":"csv"}}`, "application/json", 400, "invalid_request", "data.content"},
		{"analyze400BadJSONData", "/analyze", `{"query":"q","data":{"format":"json","content":"{not json"}}`, "application/json", 400, "invalid_request", "data.content"},
		{"analyze400DataAndDataset", "/analyze", `{"query":"q","dataset_id":"ds_1","data":{"format":"csv","content":"a\n1"}}`, "application/json", 400, "invalid_request", "dataset_id"},
		{"analyze400EmptyModel", "/analyze", `{"query":"q","model":""}`, "application/json", 400, "invalid_request", "model"},
		{"analyze400TwoObjects", "/analyze", `{"query":"q"}{"query":"r"}`, "application/json", 400, "invalid_request", ""},
		{"analyze413", "/analyze", `{"query":"` + strings.Repeat("y", 5000) + `"}`, "application/json", 413, "payload_too_large", ""},
		{"analyze415", "/analyze", `query=q`, "application/x-www-form-urlencoded", 415, "unsupported_media_type", ""},
		{"analyze415NoType", "/analyze", `{"query":"q"}`, "", 415, "unsupported_media_type", ""},
		{"generate400MissingPrompt", "/generate", `{"language":"python"}`, "application/json", 400, "invalid_request", "prompt"},
		{"generate400BadLanguage", "/generate", `{"prompt":"p","language":"cobol"}`, "application/json", 400, "invalid_request", "language"},
		{"generate400LanguageNotString", "/generate", `{"prompt":"p","language":1}`, "application/json", 400, "invalid_request", "language"},
		{"unknown404", "/nope", `{}`, "application/json", 404, "not_found", ""},
		{"unknownAPI404", "/api/nope", `{}`, "application/json", 404, "not_found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, n.URL+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			r := n.do(t, req)
			expectStatus(t, r, tc.status)
			e, ok := r.Body["error"].(map[string]any)
			if !ok || e["code"] != tc.code || e["message"] == "" {
				t.Fatalf("error body: %s", r.Raw)
			}
			if field, _ := e["field"].(string); field != tc.field {
				t.Fatalf("field = %q, want %q: %s", field, tc.field, r.Raw)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
	if got := n.LLM.Requests(); got != 0 {
		t.Fatalf("bad input reached the LLM %d times", got)
	}
	expectStats(t, n, "data_analyst", map[string]float64{"total_calls": 0})
	r := n.get(t, "/analyze")
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if errorCode(r) != "method_not_allowed" {
		t.Fatalf("405 body: %s", r.Raw)
	}
}

// A request's model overrides the circuit's configured model.
func TestAnalyzeShouldUseTheRequestedModel(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	n.LLM.EnqueueFor("custom-model", fakellm.Reply("from custom"))
	r := n.post(t, "/analyze", map[string]any{"query": "q", "model": "custom-model"})
	expectStatus(t, r, http.StatusOK)
	if r.Body["model"] != "custom-model" || r.Body["answer"] != "from custom" {
		t.Fatalf("model override: %s", r.Raw)
	}
	if n.LLM.RequestsFor(analystModel) != 0 {
		t.Fatal("the configured model was called")
	}
}

// /generate extracts the fenced code and reviews it; unsafe code is a 200
// with is_valid false.
func TestGenerateShouldExtractAndReviewCode(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	cases := []struct {
		name     string
		lang     string
		reply    string
		code     string
		valid    bool
		errorHas string
	}{
		{"python200Valid", "python", "Here you go:\n```python\nresult = df['sales'].sum()\n```\nDone.", "result = df['sales'].sum()", true, ""},
		{"python200Unsafe", "python", "```python\nimport os\nos.system('rm -rf /')\nresult = 1\n```", "import os\nos.system('rm -rf /')\nresult = 1", false, `forbidden import "os" on line 1`},
		{"python200AliasedOpen", "python", "```python\nf = open\nresult = f('/etc/passwd').read()\n```", "f = open\nresult = f('/etc/passwd').read()", false, `"open"`},
		{"python200SyntaxError", "python", "```python\nresult = (1 +\n```", "result = (1 +", false, "syntax error: line 1"},
		{"sql200Valid", "sql", "```sql\nSELECT region, SUM(sales) FROM data GROUP BY region\n```", "SELECT region, SUM(sales) FROM data GROUP BY region", true, ""},
		{"sql200TwoStatements", "sql", "```sql\nSELECT 1; DROP TABLE data;\n```", "SELECT 1; DROP TABLE data;", false, "single read-only"},
		{"sql200KeywordColumns", "sql", "```sql\nSELECT region, avg(load) FROM data GROUP BY region\n```", "SELECT region, avg(load) FROM data GROUP BY region", true, ""},
		{"sql200ReadsFiles", "sql", "```sql\nSELECT * FROM read_csv('x.csv')\n```", "SELECT * FROM read_csv('x.csv')", false, "read_csv() is not allowed: it reads files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n.LLM.EnqueueFor(codegenModel, fakellm.Reply(tc.reply))
			r := n.post(t, "/generate", map[string]any{"prompt": "p", "language": tc.lang})
			expectStatus(t, r, http.StatusOK)
			if r.Body["code"] != tc.code || r.Body["language"] != tc.lang || r.Body["is_valid"] != tc.valid ||
				r.Body["circuit"] != "code_generator" || r.Body["fallback_used"] != false || r.Body["model"] != codegenModel {
				t.Fatalf("body: %s", r.Raw)
			}
			if _, ok := r.Body["warnings"].([]any); !ok {
				t.Fatalf("warnings must be an array: %s", r.Raw)
			}
			if tc.valid && r.Body["error_message"] != nil {
				t.Fatalf("error_message should be null: %s", r.Raw)
			}
			if !tc.valid {
				msg, _ := r.Body["error_message"].(string)
				if !strings.Contains(msg, tc.errorHas) {
					t.Fatalf("error_message %q lacks %q", msg, tc.errorHas)
				}
			}
		})
	}
	r := n.post(t, "/generate", map[string]any{"prompt": "p"})
	expectStatus(t, r, http.StatusOK)
	if r.Body["language"] != "python" {
		t.Fatalf("default language: %s", r.Raw)
	}
}

// /generate's 503 carries the seed's empty result beside the fallback.
func TestGenerateShouldAnswer503WithEmptyCodeWhenTheLLMIsDown(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitCodeGenerator, 1, 1, 30, 2))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "down"))
	for _, wantCode := range []string{"llm_unavailable", "circuit_open"} {
		r := n.generate(t)
		expectStatus(t, r, http.StatusServiceUnavailable)
		if errorCode(r) != wantCode || r.Body["code"] != "" || r.Body["is_valid"] != false ||
			r.Body["error_message"] != "Code generation service temporarily unavailable" ||
			r.Body["circuit"] != "code_generator" || r.Body["fallback_used"] != true {
			t.Fatalf("body: %s", r.Raw)
		}
		if r.Header.Get("Retry-After") != "30" {
			t.Fatalf("Retry-After = %q, want 30", r.Header.Get("Retry-After"))
		}
	}
}

// An LLM 400 on /generate is a 422, not a 503.
func TestGenerateShouldMapLLMRejectionTo422(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	n.LLM.EnqueueFor(codegenModel, fakellm.Status(400, "This model's maximum context length is 8192 tokens"))
	r := n.generate(t)
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if errorCode(r) != "llm_rejected_request" || !strings.Contains(r.Raw, "maximum context length") {
		t.Fatalf("body: %s", r.Raw)
	}
}

// Every request has an X-Request-ID, echoed when the client sent one, and
// one access-log line.
func TestRequestIDShouldBeEchoedAndLogged(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/healthz", nil)
	req.Header.Set("X-Request-ID", "trace-abc-123")
	r := n.do(t, req)
	expectStatus(t, r, http.StatusOK)
	if r.Header.Get("X-Request-ID") != "trace-abc-123" {
		t.Fatalf("X-Request-ID = %q", r.Header.Get("X-Request-ID"))
	}
	r = n.get(t, "/missing")
	generated := r.Header.Get("X-Request-ID")
	if len(generated) < 16 {
		t.Fatalf("generated X-Request-ID = %q", generated)
	}
	found := map[string]bool{}
	for _, l := range n.logs.lines("request") {
		switch l["request_id"] {
		case "trace-abc-123":
			found["echoed"] = l["route"] == "/healthz" && l["status"] == 200.0 && l["method"] == "GET" && l["duration_ms"] != nil
		case generated:
			found["generated"] = l["route"] == "unmatched" && l["status"] == 404.0
		}
	}
	if !found["echoed"] || !found["generated"] {
		t.Fatalf("access log lines missing or wrong (%v):\n%s", found, n.logs.String())
	}
	// Every line carries one "time", in UTC with sub-second precision.
	fractional := 0
	for _, line := range strings.Split(strings.TrimSpace(n.logs.String()), "\n") {
		if c := strings.Count(line, `"time":`); c != 1 {
			t.Fatalf("%d time keys in %s", c, line)
		}
		var m struct{ Time string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Time)
		if err != nil || !strings.HasSuffix(m.Time, "Z") {
			t.Fatalf("time %q is not RFC 3339 UTC: %v", m.Time, err)
		}
		if ts.Nanosecond() != 0 {
			fractional++
		}
	}
	if fractional == 0 {
		t.Fatalf("no log time has sub-second precision:\n%s", n.logs.String())
	}
}

// expose_health_endpoint false hides the health route.
func TestHealthShouldBeHiddenWhenNotExposed(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.CircuitBreaker.ExposeHealthEndpoint = false })
	r := n.get(t, "/api/health/status")
	expectStatus(t, r, http.StatusNotFound)
	expectStatus(t, n.get(t, "/healthz"), http.StatusOK)
}

// The API key never appears in logs, health or error bodies, even when the
// upstream rejects it.
func TestSecretsShouldNeverLeak(t *testing.T) {
	t.Parallel()
	const key = "sk-test-SECRET-0123456789abcdef"
	n := startNexus(t, func(o *startOpts) {
		o.env["LLM_API_KEY"] = key
	})
	n.LLM.SetHandler(func(req fakellm.Request) fakellm.Step {
		// An upstream that echoes the key it got, as some proxies do.
		return fakellm.Status(401, "Incorrect API key provided: "+req.Header.Get("Authorization"))
	})
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	h := n.get(t, "/api/health/status")
	for what, text := range map[string]string{"error body": r.Raw, "health": h.Raw, "logs": n.logs.String()} {
		if strings.Contains(text, key) || strings.Contains(text, "SECRET") {
			t.Errorf("%s leaks the API key:\n%s", what, text)
		}
	}
	if le, _ := n.stats(t, "data_analyst")["last_error"].(string); !strings.Contains(le, "401") {
		t.Fatalf("last_error = %q, want the 401 described", le)
	}
}

// deadlineTest is the request deadline of the deadline tests. The steps
// before the one under test (an inline DuckDB load, a profile, a plan, a
// query) must fit in it on a busy 2-core machine under -race, so it is
// seconds, not a fraction of one; the step under test hangs on the fake
// LLM, and each test checks that the deadline fired there (the hanging
// call was made and then cancelled), not in an earlier step.
const deadlineTest = 3 * time.Second

// withDeadline sets the request deadline to deadlineTest, and the LLM
// calls' own timeouts past it, so that the deadline is what cuts them.
func withDeadline(o *startOpts) {
	o.cfg.Server.RequestTimeoutSeconds = config.Seconds(deadlineTest.Seconds())
	for name, c := range o.cfg.CircuitBreaker.Circuits {
		c.Timeout = 60
		o.cfg.CircuitBreaker.Circuits[name] = c
	}
}

// server.request_timeout_seconds bounds a whole request: past it the
// request's LLM call is cancelled upstream and the answer is a 504. The
// cut call is the deadline's doing, not the LLM's, so no circuit counts it.
func TestRequestTimeoutShouldAnswer504AndCountNothing(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withDeadline)
	n.LLM.SetDefault(fakellm.Hang())
	for i, send := range []func() response{
		func() response { return n.generate(t) },
		func() response {
			return n.post(t, "/analyze", map[string]any{
				"query": "Total?", "data": map[string]any{"format": "csv", "content": "a,b\n1,2\n"},
			})
		},
	} {
		start := time.Now()
		r := send()
		expectStatus(t, r, http.StatusGatewayTimeout)
		if errorCode(r) != "request_timeout" || !strings.Contains(r.Raw, deadlineTest.String()) {
			t.Fatalf("answer: %s", r.Raw)
		}
		if took := time.Since(start); took < deadlineTest {
			t.Fatalf("answered after %v, before the %v deadline", took, deadlineTest)
		}
		// The deadline fired in the hanging LLM call, the step under test.
		if got := n.LLM.Requests(); got != i+1 {
			t.Fatalf("%d LLM requests, want %d: the deadline fired before the hanging step", got, i+1)
		}
		eventually(t, 5*time.Second, "the upstream call cancelled", func() bool { return n.LLM.Canceled() == i+1 })
	}
	for _, name := range []string{"code_generator", "data_analyst"} {
		st := n.stats(t, name)
		if n.state(t, name) != "closed" || st["failure_count"] != 0.0 || st["consecutive_failures"] != 0.0 {
			t.Fatalf("%s counted the deadline: %v", name, st)
		}
	}
	got := map[string]bool{}
	for _, l := range n.logs.lines("request") {
		if l["status"] == 504.0 {
			got[l["route"].(string)] = true
		}
	}
	if !got["/generate"] || !got["/analyze"] {
		t.Fatalf("access log lacks the 504s: %v", got)
	}
}

// A deadline that fires in a late step, whose fallback would otherwise
// answer 200, still answers 504: the review here.
func TestRequestTimeoutInALateStepShouldStillAnswer504(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withDeadline)
	n.LLM.SetDefaultFor(codegenModel, fakellm.Reply("```sql\nSELECT sum(a) AS total FROM data\n```"))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("The total is 1."))
	n.LLM.SetDefaultFor(cotModel, fakellm.Hang())
	r := n.post(t, "/analyze", map[string]any{
		"query": "Total?", "review": true, "data": map[string]any{"format": "csv", "content": "a,b\n1,2\n"},
	})
	expectStatus(t, r, http.StatusGatewayTimeout)
	// The deadline fired in the review, after the plan and the answer.
	if errorCode(r) != "request_timeout" || n.LLM.RequestsFor(cotModel) != 1 ||
		n.LLM.RequestsFor(codegenModel) != 1 || n.LLM.RequestsFor(analystModel) != 1 {
		t.Fatalf("answer: %s (requests: codegen %d, analyst %d, review %d)", r.Raw,
			n.LLM.RequestsFor(codegenModel), n.LLM.RequestsFor(analystModel), n.LLM.RequestsFor(cotModel))
	}
	eventually(t, 5*time.Second, "the review call cancelled", func() bool { return n.LLM.Canceled() == 1 })
	if st := n.stats(t, "cot_engine"); st["failure_count"] != 0.0 {
		t.Fatalf("cot_engine counted the deadline: %v", st)
	}
}
