package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

func withCircuit(name string, failures, successes int, recovery, timeout float64) func(*startOpts) {
	return func(o *startOpts) {
		o.cfg.CircuitBreaker.Circuits[name] = config.Circuit{
			FailureThreshold: failures, SuccessThreshold: successes,
			RecoveryTimeout: config.Seconds(recovery), Timeout: config.Seconds(timeout),
		}
	}
}

// Given a closed data_analyst circuit, when the LLM fails failure_threshold
// times, the circuit opens, rejects without calling the LLM, half-opens
// after recovery_timeout and closes after success_threshold successes; the
// health JSON tells each stage.
func TestCircuitShouldCycleClosedOpenHalfOpenClosed(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 2, 2, 2))

	// Stage 1: closed and healthy.
	h := n.get(t, "/api/health/status")
	expectStatus(t, h, http.StatusOK)
	if h.Body["status"] != "healthy" || n.state(t, "data_analyst") != "closed" {
		t.Fatalf("initial health: %s", h.Raw)
	}
	// With no call yet, both rates are null, not 0.
	if st := n.stats(t, "data_analyst"); st["success_rate"] != nil || st["rejection_rate"] != nil {
		t.Fatalf("rates before any call: %v", st)
	} else if _, ok := st["rejection_rate"]; !ok {
		t.Fatalf("rejection_rate missing: %v", st)
	}
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("There are 3 rows."))
	r := n.analyze(t)
	expectStatus(t, r, http.StatusOK)
	if r.Body["answer"] != "There are 3 rows." || r.Body["circuit"] != "data_analyst" || r.Body["fallback_used"] != false || r.Body["model"] != analystModel {
		t.Fatalf("unexpected 200 body: %s", r.Raw)
	}
	if _, ok := r.Body["duration_ms"].(float64); !ok {
		t.Fatalf("duration_ms missing: %s", r.Raw)
	}

	// Stage 2: two failures open it.
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "boom"), fakellm.Status(502, "bad gateway"))
	for i := 0; i < 2; i++ {
		r := n.analyze(t)
		expectStatus(t, r, http.StatusServiceUnavailable)
		if errorCode(r) != "llm_unavailable" {
			t.Fatalf("failure %d: code %q: %s", i, errorCode(r), r.Raw)
		}
	}
	c := n.circuit(t, "data_analyst")
	if c["state"] != "open" || c["health"] != "unhealthy" {
		t.Fatalf("after failures: %v", c)
	}
	if d := c["remaining_delay_seconds"].(float64); d <= 0 || d > 2 {
		t.Fatalf("remaining_delay_seconds = %v, want in (0, 2]", d)
	}
	if got := n.get(t, "/api/health/status").Body["status"]; got != "degraded" {
		t.Fatalf("overall status with one open circuit = %v, want degraded", got)
	}
	expectStats(t, n, "data_analyst", map[string]float64{
		"total_calls": 3, "success_count": 1, "failure_count": 2, "rejected_count": 0, "consecutive_failures": 2,
	})

	// Stage 3: open rejects at once without an upstream request.
	before := n.LLM.RequestsFor(analystModel)
	r = n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" || r.Body["circuit_state"] != "open" || r.Body["fallback_used"] != true {
		t.Fatalf("open rejection body: %s", r.Raw)
	}
	if got := n.LLM.RequestsFor(analystModel); got != before {
		t.Fatalf("upstream requests while open: %d, want %d", got, before)
	}
	// 1 of the 3 calls made succeeded; 1 of the 4 was rejected.
	expectStats(t, n, "data_analyst", map[string]float64{"total_calls": 4, "rejected_count": 1, "success_rate": 33.33, "rejection_rate": 25})

	// Stage 4: after recovery_timeout health says half-open, with no call made.
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, "data_analyst") == "half-open" })
	c = n.circuit(t, "data_analyst")
	if c["health"] != "degraded" || c["remaining_delay_seconds"] != 0.0 {
		t.Fatalf("half-open entry: %v", c)
	}
	if got := n.LLM.RequestsFor(analystModel); got != before {
		t.Fatalf("health polling made upstream requests: %d", got-before)
	}

	// Stage 5: success_threshold successes close it.
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("ok 1"), fakellm.Reply("ok 2"))
	expectStatus(t, n.analyze(t), http.StatusOK)
	if s := n.state(t, "data_analyst"); s != "half-open" {
		t.Fatalf("after 1 of 2 trial successes state = %s, want half-open", s)
	}
	expectStatus(t, n.analyze(t), http.StatusOK)
	c = n.circuit(t, "data_analyst")
	if c["state"] != "closed" || c["health"] != "healthy" {
		t.Fatalf("after trials: %v", c)
	}
	expectStats(t, n, "data_analyst", map[string]float64{
		"total_calls": 6, "success_count": 3, "failure_count": 2, "rejected_count": 1, "consecutive_failures": 0,
		"success_rate": 60, "rejection_rate": 16.67,
	})
	if n.stats(t, "data_analyst")["last_state_change_at"] == nil || n.stats(t, "data_analyst")["last_failure_at"] == nil {
		t.Fatalf("timestamps missing: %v", n.stats(t, "data_analyst"))
	}

	// Each transition is logged once, open at WARN.
	wantLevels := []string{"warn", "info", "info"}
	wantTo := []string{"open", "half-open", "closed"}
	got := n.logs.lines("circuit state changed")
	if len(got) != 3 {
		t.Fatalf("transition log lines = %d, want 3:\n%s", len(got), n.logs.String())
	}
	for i, l := range got {
		if l["level"] != wantLevels[i] || l["to"] != wantTo[i] || l["circuit"] != "data_analyst" || l["reason"] == "" {
			t.Errorf("transition %d logged as %v", i, l)
		}
	}
}

// Given a half-open circuit, when a trial call fails, it reopens with the
// timer restarted.
func TestHalfOpenFailureShouldReopen(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 2, 2, 2))
	n.LLM.EnqueueFor(analystModel, fakellm.Status(503, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, "data_analyst") == "half-open" })
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "still down"))
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "llm_unavailable" || r.Body["circuit_state"] != "open" {
		t.Fatalf("trial failure body: %s", r.Raw)
	}
	c := n.circuit(t, "data_analyst")
	if c["state"] != "open" || c["remaining_delay_seconds"].(float64) < 1 {
		t.Fatalf("after trial failure: %v", c)
	}
}

// Given an open circuit, the 503 carries Retry-After: the remaining delay
// rounded up, or the upstream's own Retry-After when that is longer.
func TestRetryAfterShouldBeTheLongerOfCircuitAndUpstream(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 2.5, 2))

	n.LLM.EnqueueFor(analystModel, fakellm.RateLimited(7))
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") != "7" {
		t.Fatalf("Retry-After = %q, want 7 (upstream's)", r.Header.Get("Retry-After"))
	}
	fb := r.Body["fallback"].(map[string]any)
	if fb["retry_after_seconds"] != 7.0 || len(fb["alternatives"].([]any)) == 0 || fb["message"] == "" {
		t.Fatalf("fallback: %v", fb)
	}

	n.LLM.EnqueueFor(analystModel, fakellm.RateLimited(1))
	r = n.analyze(t) // opens the circuit: 2.5 s remaining beats upstream's 1
	expectStatus(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") != "3" {
		t.Fatalf("Retry-After = %q, want 3 (ceil of 2.5 s)", r.Header.Get("Retry-After"))
	}
	r = n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	secs, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if errorCode(r) != "circuit_open" || secs < 1 || secs > 3 {
		t.Fatalf("open rejection Retry-After = %q: %s", r.Header.Get("Retry-After"), r.Raw)
	}
}

// Given a circuit with a short timeout, when the LLM hangs, the call fails
// as llm_timeout and the upstream request is cancelled.
func TestTimeoutShouldFireAndCancelUpstream(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 3, 1, 0.3, 0.2))
	n.LLM.EnqueueFor(analystModel, fakellm.Hang())
	start := time.Now()
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "llm_timeout" || r.Body["circuit_state"] != "closed" {
		t.Fatalf("timeout body: %s", r.Raw)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("timeout took %s", elapsed)
	}
	eventually(t, 3*time.Second, "upstream request cancelled", func() bool { return n.LLM.Canceled() == 1 })
	expectStats(t, n, "data_analyst", map[string]float64{"timeout_count": 1, "failure_count": 1, "total_calls": 1})
	if le, _ := n.stats(t, "data_analyst")["last_error"].(string); le == "" {
		t.Fatal("last_error empty after timeout")
	}
}

// Given failures of every counted kind, each counts toward opening.
func TestCountedFailuresShouldOpenTheCircuit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		step fakellm.Step
		code string
	}{
		{"500", fakellm.Status(500, "internal"), "llm_unavailable"},
		{"503", fakellm.Status(503, "overloaded"), "llm_unavailable"},
		{"429", fakellm.RateLimited(1), "llm_unavailable"},
		{"401", fakellm.Status(401, "bad key"), "llm_unavailable"},
		{"403", fakellm.Status(403, "forbidden"), "llm_unavailable"},
		{"404 model not found", fakellm.Status(404, "model not found"), "llm_unavailable"},
		{"408", fakellm.Status(408, "request timeout"), "llm_unavailable"},
		{"409", fakellm.Status(409, "conflict"), "llm_unavailable"},
		{"malformed 200", fakellm.Malformed(), "llm_unavailable"},
		{"no choices", fakellm.Step{NoChoices: true}, "llm_unavailable"},
		{"non-JSON 500", fakellm.Step{Status: 500, RawBody: "<html>oops</html>", ContentType: "text/html"}, "llm_unavailable"},
		{"connection reset", fakellm.ResetConn(), "llm_unavailable"},
		{"timeout", fakellm.Hang(), "llm_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 1))
			n.LLM.SetDefaultFor(analystModel, tc.step)
			r := n.analyze(t)
			expectStatus(t, r, http.StatusServiceUnavailable)
			if errorCode(r) != tc.code || r.Body["circuit_state"] != "open" {
				t.Fatalf("body: %s", r.Raw)
			}
			if n.state(t, "data_analyst") != "open" {
				t.Fatal("one counted failure with threshold 1 did not open the circuit")
			}
		})
	}
}

// Given a closed circuit, LLM 400/422 answers are 422s that never trip it,
// and they do not break a run of consecutive failures.
func TestRejectedRequestsShouldNotTripAClosedCircuit(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 30, 2))
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(400, "context length exceeded"))
	for i := 0; i < 5; i++ {
		r := n.analyze(t)
		expectStatus(t, r, http.StatusUnprocessableEntity)
		if errorCode(r) != "llm_rejected_request" {
			t.Fatalf("code %q: %s", errorCode(r), r.Raw)
		}
	}
	n.LLM.EnqueueFor(analystModel, fakellm.Status(422, "unprocessable"))
	expectStatus(t, n.analyze(t), http.StatusUnprocessableEntity)
	if s := n.state(t, "data_analyst"); s != "closed" {
		t.Fatalf("state after 6 rejected requests = %s", s)
	}
	expectStats(t, n, "data_analyst", map[string]float64{"total_calls": 0, "failure_count": 0, "consecutive_failures": 0})

	// failure, 400, failure is two in a row.
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "a"), fakellm.Status(400, "b"), fakellm.Status(500, "c"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	expectStatus(t, n.analyze(t), http.StatusUnprocessableEntity)
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	if s := n.state(t, "data_analyst"); s != "open" {
		t.Fatalf("failure, 400, failure left the circuit %s, want open", s)
	}
}

// Given a closed circuit, clients that hang up never trip it.
func TestClientCancellationShouldNotTripAClosedCircuit(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 5))
	n.LLM.SetDefaultFor(analystModel, fakellm.Hang())
	for i := 0; i < 3; i++ {
		hangUp(t, n)
	}
	eventually(t, 3*time.Second, "three cancelled upstream requests", func() bool { return n.LLM.Canceled() == 3 })
	eventually(t, 3*time.Second, "three 499 log lines", func() bool { return count499(n) == 3 })
	if s := n.state(t, "data_analyst"); s != "closed" {
		t.Fatalf("state after hang-ups = %s", s)
	}
	expectStats(t, n, "data_analyst", map[string]float64{"total_calls": 0, "failure_count": 0, "timeout_count": 0})
}

// hangUp sends /analyze and abandons it once the fake has received it.
func hangUp(t *testing.T, n *nexus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	before := n.LLM.Requests()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/analyze", stringsReader(`{"query":"q"}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := n.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 3*time.Second, "request reached the fake", func() bool { return n.LLM.Requests() > before })
	cancel()
	<-done
}

func count499(n *nexus) int {
	c := 0
	for _, l := range n.logs.lines("request") {
		if l["status"] == 499.0 && l["route"] == "/analyze" {
			c++
		}
	}
	return c
}

// Given a half-open circuit, a 400 or a hang-up leaves it half-open and
// hands the trial slot back; with success_threshold 1 the next call still
// goes through and closes it.
func TestNeutralOutcomesShouldKeepAHalfOpenCircuitHalfOpen(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 0.3, 5))
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, "data_analyst") == "half-open" })

	n.LLM.EnqueueFor(analystModel, fakellm.Status(400, "context length exceeded"))
	expectStatus(t, n.analyze(t), http.StatusUnprocessableEntity)
	if s := n.state(t, "data_analyst"); s != "half-open" {
		t.Fatalf("after a 400 in half-open: %s", s)
	}

	n.LLM.EnqueueFor(analystModel, fakellm.Hang())
	hangUp(t, n)
	eventually(t, 3*time.Second, "cancelled upstream request", func() bool { return n.LLM.Canceled() == 1 })
	eventually(t, 3*time.Second, "a 499 log line", func() bool { return count499(n) == 1 })
	if s := n.state(t, "data_analyst"); s != "half-open" {
		t.Fatalf("after a hang-up in half-open: %s", s)
	}

	n.LLM.EnqueueFor(analystModel, fakellm.Reply("recovered"))
	r := n.analyze(t)
	expectStatus(t, r, http.StatusOK)
	if s := n.state(t, "data_analyst"); s != "closed" {
		t.Fatalf("after the trial success: %s", s)
	}
	expectStats(t, n, "data_analyst", map[string]float64{"total_calls": 2, "success_count": 1, "failure_count": 1, "rejected_count": 0})
}

// Given half-open with success_threshold 1, a second concurrent call is
// rejected while the trial is in flight.
func TestHalfOpenShouldLimitTrialCalls(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 0.3, 60))
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, "data_analyst") == "half-open" })

	release := make(chan struct{})
	n.LLM.EnqueueFor(analystModel, fakellm.Held(release, "slow trial"))
	before := n.LLM.Requests()
	trial := make(chan response, 1)
	go func() { trial <- n.analyze(t) }()
	eventually(t, 3*time.Second, "trial reached the fake", func() bool { return n.LLM.Requests() > before })
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" || r.Body["circuit_state"] != "half-open" {
		t.Fatalf("second call during trial: %s", r.Raw)
	}
	if r.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q, want 1", r.Header.Get("Retry-After"))
	}
	close(release)
	expectStatus(t, <-trial, http.StatusOK)
	if s := n.state(t, "data_analyst"); s != "closed" {
		t.Fatalf("after trial: %s", s)
	}
}

// Given data_analyst open, code_generator keeps working.
func TestCircuitsShouldBeIsolated(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 2))
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(500, "analyst model down"))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Reply("```python\nresult = df['sales'].sum()\n```"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	if n.state(t, "data_analyst") != "open" {
		t.Fatal("data_analyst should be open")
	}
	for i := 0; i < 3; i++ {
		r := n.generate(t)
		expectStatus(t, r, http.StatusOK)
		if r.Body["circuit"] != "code_generator" {
			t.Fatalf("generate body: %s", r.Raw)
		}
	}
	for _, name := range []string{"code_generator", "cot_engine", "visualization"} {
		if s := n.state(t, name); s != "closed" {
			t.Errorf("%s = %s, want closed", name, s)
		}
	}
	expectStats(t, n, "code_generator", map[string]float64{"total_calls": 3, "success_count": 3})
	if got := n.LLM.RequestsFor(analystModel); got != 1 {
		t.Fatalf("analyst upstream requests = %d, want 1", got)
	}
}

// Given circuit_breaker.enabled false, failures never open anything, the
// timeout still applies, and health says disabled.
func TestDisabledModeShouldCallStraightThroughWithTimeout(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 1), func(o *startOpts) {
		o.cfg.CircuitBreaker.Enabled = false
	})
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(500, "down"))
	for i := 0; i < 4; i++ {
		r := n.analyze(t)
		expectStatus(t, r, http.StatusServiceUnavailable)
		if errorCode(r) != "llm_unavailable" || r.Body["circuit_state"] != "disabled" {
			t.Fatalf("disabled failure body: %s", r.Raw)
		}
	}
	if got := n.LLM.RequestsFor(analystModel); got != 4 {
		t.Fatalf("upstream requests = %d, want 4 (nothing rejected)", got)
	}
	n.LLM.EnqueueFor(analystModel, fakellm.Hang())
	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "llm_timeout" {
		t.Fatalf("disabled mode timeout: %s", r.Raw)
	}
	h := n.get(t, "/api/health/status")
	cb := h.Body["circuit_breakers"].(map[string]any)
	if h.Body["status"] != "healthy" || cb["enabled"] != false {
		t.Fatalf("health: %s", h.Raw)
	}
	for _, c := range cb["circuit_breakers"].([]any) {
		if c.(map[string]any)["state"] != "disabled" || c.(map[string]any)["health"] != "healthy" {
			t.Fatalf("circuit entry: %v", c)
		}
	}
	expectStats(t, n, "data_analyst", map[string]float64{"failure_count": 5, "timeout_count": 1, "rejected_count": 0})
}

// Given every circuit open, overall health is unhealthy; with some open,
// degraded.
func TestHealthShouldBeUnhealthyWhenEveryCircuitIsOpen(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, func(o *startOpts) {
		for _, name := range config.CircuitNames() {
			withCircuit(name, 1, 1, 30, 2)(o)
		}
	})
	n.LLM.SetDefault(fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	expectStatus(t, n.generate(t), http.StatusServiceUnavailable)
	h := n.get(t, "/api/health/status")
	if cb := h.Body["circuit_breakers"].(map[string]any); h.Body["status"] != "degraded" || cb["overall_health"] != "degraded" {
		t.Fatalf("two of four open: %s", h.Raw)
	}
	for _, name := range []string{"cot_engine", "visualization"} {
		expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+name+"/open", adminToken), http.StatusOK)
	}
	h = n.get(t, "/api/health/status")
	if cb := h.Body["circuit_breakers"].(map[string]any); h.Body["status"] != "unhealthy" || cb["overall_health"] != "unhealthy" || len(cb["circuit_breakers"].([]any)) != 4 {
		t.Fatalf("all open: %s", h.Raw)
	}
}

// With max_concurrent set, a call past the limit is refused at once with a
// 503 circuit_busy and Retry-After 1, without reaching the LLM and without
// counting against the breaker; health and metrics show the calls in
// flight.
func TestBulkheadShouldRefuseCallsPastMaxConcurrent(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) {
		o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = config.Circuit{
			FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 1, MaxConcurrent: 1,
		}
	})
	n.LLM.SetDefaultFor(codegenModel, fakellm.Hang())
	first := make(chan int, 1)
	go func() {
		resp, err := n.client.Post(n.URL+"/generate", "application/json", stringsReader(`{"prompt":"sum the sales column"}`))
		if err != nil {
			first <- 0
			return
		}
		_, _ = drain(resp)
		first <- resp.StatusCode
	}()
	eventually(t, 5*time.Second, "one call in flight", func() bool {
		return n.circuit(t, "code_generator")["in_flight"] == 1.0
	})
	cg := n.circuit(t, "code_generator")
	if cg["config"].(map[string]any)["max_concurrent"] != 1.0 {
		t.Fatalf("health config: %v", cg["config"])
	}
	expectMetric(t, n.scrape(t), "nexus_circuit_in_flight", map[string]string{"circuit": "code_generator"}, 1)

	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_busy" || r.Body["circuit_state"] != "closed" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("busy answer: %s (Retry-After %q)", r.Raw, r.Header.Get("Retry-After"))
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("%d upstream requests, want 1", got)
	}
	if got := <-first; got != http.StatusServiceUnavailable {
		t.Fatalf("the hanging call answered %d, want 503 after its timeout", got)
	}
	st := n.stats(t, "code_generator")
	// The refusal counts in rejection_rate (1 of 2 calls), not in
	// success_rate (0 of the 1 call made).
	if n.state(t, "code_generator") != "closed" || st["rejected_count"] != 1.0 || st["failure_count"] != 1.0 || st["timeout_count"] != 1.0 ||
		st["success_rate"] != 0.0 || st["rejection_rate"] != 50.0 ||
		n.circuit(t, "code_generator")["in_flight"] != 0.0 {
		t.Fatalf("after: %v", n.circuit(t, "code_generator"))
	}
}

// Each circuit's health entry names the routes whose LLM calls it guards,
// and these are the circuits that /analyze's steps and /generate report;
// it also names the LLM base URL, without userinfo, query or the API key.
func TestHealthShouldNameWhatEachCircuitGuardsAndWhere(t *testing.T) {
	t.Parallel()

	// What the running pipeline says: each /analyze step names its circuit.
	n := startNexus(t)
	n.LLM.EnqueueFor(codegenModel, sqlReply("SELECT count(*) AS n FROM data"))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("There are 2 rows."))
	r := n.post(t, "/analyze", map[string]any{
		"query": "How many rows?",
		"data":  map[string]any{"format": "json", "content": `[{"a":1},{"a":2}]`},
	})
	expectStatus(t, r, http.StatusOK)
	want := map[string][]string{}
	for _, s := range r.Body["steps"].([]any) {
		step := s.(map[string]any)
		if c, ok := step["circuit"].(string); ok {
			want[c] = append(want[c], "POST /analyze "+step["step"].(string))
		}
	}
	n.LLM.EnqueueFor(codegenModel, fakellm.Reply("```python\nresult = 1\n```"))
	g := n.generate(t)
	expectStatus(t, g, http.StatusOK)
	want[g.Body["circuit"].(string)] = append([]string{"POST /generate"}, want[g.Body["circuit"].(string)]...)
	if len(want) != 4 {
		t.Fatalf("the pipeline named %d circuits, want 4: %v", len(want), want)
	}

	for _, c := range n.get(t, "/api/health/status").Body["circuit_breakers"].(map[string]any)["circuit_breakers"].([]any) {
		entry := c.(map[string]any)
		var got []string
		for _, g := range entry["guards"].([]any) {
			route := g.(map[string]any)
			s := route["endpoint"].(string)
			if step, ok := route["step"]; ok {
				s += " " + step.(string)
			}
			got = append(got, s)
		}
		name := entry["name"].(string)
		if strings.Join(got, ", ") != strings.Join(want[name], ", ") {
			t.Errorf("%s guards %q, but the pipeline sends %q through it", name, got, want[name])
		}
		// scheme://host:port only, as the one URL policy says: no /v1.
		if want := strings.TrimSuffix(n.LLM.URL(), "/v1"); entry["llm_base_url"] != want {
			t.Errorf("%s llm_base_url = %v, want %s", name, entry["llm_base_url"], want)
		}
	}

	// A base URL with credentials is shown without them, or its path.
	const key = "sk-e2e-SECRET-0123456789"
	masked := startNexus(t, func(o *startOpts) {
		o.env["LLM_API_KEY"] = key
		o.env["LLM_BASE_URL"] = "https://nexus:hunter2@llm.example.invalid/tenants/" + key + "/v1?api-key=" + key + "#frag"
	})
	h := masked.get(t, "/api/health/status")
	if strings.Contains(h.Raw, "hunter2") || strings.Contains(h.Raw, key) || strings.Contains(h.Raw, "api-key") {
		t.Fatalf("health leaks the base URL's secrets: %s", h.Raw)
	}
	if got := masked.circuit(t, config.CircuitDataAnalyst)["llm_base_url"]; got != "https://llm.example.invalid" {
		t.Fatalf("llm_base_url = %v", got)
	}
}
