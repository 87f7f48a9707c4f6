package e2e

// End-to-end tests of failover across LLM targets (issue 9): two fakellm
// instances serve as the providers "default" and "backup", and everything
// is observed through the public HTTP API: /generate and /analyze bodies,
// /api/health/status, /metrics and the admin routes.

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// foBackupModel is the model code_generator's second target asks the
// backup provider for.
const foBackupModel = "backup-model"

// foPython is a valid code_generator answer.
const foPython = "```python\nresult = df['sales'].sum()\n```"

// foWithBackup starts a second fake and returns it with the option that
// declares it as provider "backup" and makes code_generator's targets
// [default/codegen-model, backup/backup-model]. The backup answers valid
// Python unless a test scripts it otherwise.
func foWithBackup(t *testing.T, opts ...fakellm.Option) (*fakellm.Server, func(*startOpts)) {
	t.Helper()
	backup := fakellm.New(t, opts...)
	backup.SetDefault(fakellm.Reply(foPython))
	return backup, func(o *startOpts) {
		o.cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: backup.URL(), APIKeyEnv: "BACKUP_KEY"}}
		o.cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{
			{Provider: config.DefaultProvider, Model: codegenModel},
			{Provider: "backup", Model: foBackupModel},
		}
	}
}

// foCodegen sets code_generator's circuit settings. In a config.Circuit
// literal max_retry_after and hedge_budget_percent zero mean 0; the other
// zeros mean the defaults.
func foCodegen(c config.Circuit) func(*startOpts) {
	return func(o *startOpts) { o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = c }
}

// foTargets returns the circuit's targets from the health endpoint.
func foTargets(t *testing.T, n *nexus, circuit string) []map[string]any {
	t.Helper()
	raw, ok := n.circuit(t, circuit)["targets"].([]any)
	if !ok {
		t.Fatalf("health of %s has no targets list", circuit)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		out = append(out, x.(map[string]any))
	}
	return out
}

// foTarget returns one target of code_generator from the health endpoint,
// checking that it is the expected provider.
func foTarget(t *testing.T, n *nexus, i int, provider string) map[string]any {
	t.Helper()
	ts := foTargets(t, n, config.CircuitCodeGenerator)
	if i >= len(ts) {
		t.Fatalf("code_generator has %d targets, want more than %d: %v", len(ts), i, ts)
	}
	if ts[i]["provider"] != provider {
		t.Fatalf("code_generator target[%d].provider = %v, want %s", i, ts[i]["provider"], provider)
	}
	return ts[i]
}

// foExpectGenerated sends /generate and checks that it answered 200 from
// provider with attempts LLM requests, and failover: true exactly when
// failover is (the field is omitted otherwise).
func foExpectGenerated(t *testing.T, n *nexus, provider, model string, attempts int, failover bool) response {
	t.Helper()
	r := n.generate(t)
	expectStatus(t, r, http.StatusOK)
	if r.Body["provider"] != provider || r.Body["model"] != model || r.Body["attempts"] != float64(attempts) ||
		r.Body["circuit"] != config.CircuitCodeGenerator || r.Body["is_valid"] != true {
		t.Fatalf("want provider %s, model %s, attempts %d: %s", provider, model, attempts, r.Raw)
	}
	f, present := r.Body["failover"]
	switch {
	case failover && f != true:
		t.Fatalf("failover = %v, want true: %s", f, r.Raw)
	case !failover && present:
		t.Fatalf("failover present (%v) on an answer from the first target: %s", f, r.Raw)
	}
	return r
}

// foMetric is a series' value, 0 when the series does not exist yet.
func foMetric(body, name string, labels map[string]string) float64 {
	v, _ := metric(body, name, labels)
	return v
}

// foTime parses a health timestamp, failing on null or a bad value.
func foTime(t *testing.T, v any, what string) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s = %v, want a timestamp", what, v)
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	return at
}

// foRetryAfter reads the Retry-After header as whole seconds.
func foRetryAfter(t *testing.T, r response) int {
	t.Helper()
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After = %q, want whole seconds: %s", r.Header.Get("Retry-After"), r.Raw)
	}
	return secs
}

// foSoonestRemaining is the smallest remaining_delay_seconds over
// code_generator's targets.
func foSoonestRemaining(t *testing.T, n *nexus) float64 {
	t.Helper()
	soonest := math.Inf(1)
	for _, tg := range foTargets(t, n, config.CircuitCodeGenerator) {
		soonest = math.Min(soonest, tg["remaining_delay_seconds"].(float64))
	}
	return soonest
}

// Given code_generator with a primary that always answers 500 and a
// healthy backup, every /generate call succeeds through the backup; after
// failure_threshold calls the primary gets no more requests, health shows
// it open with the circuit degraded but available, and the metrics count
// one failover per call.
func TestFailoverShouldServeEveryCallFromTheBackupWhenThePrimaryIsDead(t *testing.T) {
	t.Parallel()
	const threshold, calls = 3, 6
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: threshold, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2, MaxAttempts: 1,
	}))
	// Given a primary that is down for good.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "primary is down"))

	// When six calls are made, one after the other.
	for i := 1; i <= calls; i++ {
		// Then each is answered by the backup: while the primary's breaker
		// is closed the call tried it first (2 requests), after it opened
		// the primary is skipped without a request (1).
		attempts := 1
		if i <= threshold {
			attempts = 2
		}
		foExpectGenerated(t, n, "backup", foBackupModel, attempts, true)
	}

	// Then the primary got exactly failure_threshold requests.
	if got := n.LLM.RequestsFor(codegenModel); got != threshold {
		t.Fatalf("primary requests = %d, want %d (failure_threshold)", got, threshold)
	}
	if got := backup.RequestsFor(foBackupModel); got != calls {
		t.Fatalf("backup requests = %d, want %d", got, calls)
	}
	// And health shows the primary open, the circuit degraded but available.
	c := n.circuit(t, config.CircuitCodeGenerator)
	if c["state"] != "open" || c["health"] != "degraded" || c["available"] != true {
		t.Fatalf("code_generator: state %v, health %v, available %v; want open, degraded, true", c["state"], c["health"], c["available"])
	}
	primary := foTarget(t, n, 0, "default")
	if primary["model"] != codegenModel || primary["state"] != "open" || primary["admits"] != false || primary["forced"] != false {
		t.Fatalf("target[0]: %v", primary)
	}
	if st := primary["statistics"].(map[string]any); st["failure_count"] != float64(threshold) || st["rejected_count"] != float64(calls-threshold) || st["success_count"] != 0.0 {
		t.Fatalf("target[0].statistics: %v", st)
	}
	second := foTarget(t, n, 1, "backup")
	if second["model"] != foBackupModel || second["state"] != "closed" || second["admits"] != true {
		t.Fatalf("target[1]: %v", second)
	}
	if st := second["statistics"].(map[string]any); st["success_count"] != float64(calls) || st["failure_count"] != 0.0 {
		t.Fatalf("target[1].statistics: %v", st)
	}
	// And the metrics count a failover from default to backup per call.
	body := n.scrape(t)
	expectMetric(t, body, "nexus_llm_failovers_total",
		map[string]string{"circuit": "code_generator", "from_provider": "default", "to_provider": "backup"}, calls)
	expectMetric(t, body, "nexus_target_state", map[string]string{"circuit": "code_generator", "provider": "default", "model": codegenModel}, 2)
	expectMetric(t, body, "nexus_target_state", map[string]string{"circuit": "code_generator", "provider": "backup", "model": foBackupModel}, 0)
}

// Given a primary that fails every other request and max_attempts 2, every
// /generate call succeeds on the primary: a call that hits a failure
// retries once and reports attempts 2; the retries show in the metrics and
// the backup is never asked.
func TestFailoverShouldRetryAFlappingPrimaryToFullSuccess(t *testing.T) {
	t.Parallel()
	const calls = 10
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 10, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 2, RetryBackoff: 0.01, MaxRetryBackoff: 0.02, MaxRetryAfter: 30,
	}))
	// Given a primary whose requests alternate: ok, 500, ok, 500, ...
	var seen atomic.Int64
	n.LLM.SetHandler(func(fakellm.Request) fakellm.Step {
		if seen.Add(1)%2 == 0 {
			return fakellm.Status(500, "flap")
		}
		return fakellm.Reply(foPython)
	})

	// When ten calls are made one after the other, then all succeed on the
	// primary: the first takes the first (good) request; each later one
	// starts on a failing request and succeeds on its retry.
	wantRetries := 0
	for i := 1; i <= calls; i++ {
		attempts := 2
		if i == 1 {
			attempts = 1
		}
		wantRetries += attempts - 1
		foExpectGenerated(t, n, "default", codegenModel, attempts, false)
	}

	// Then the primary got one request per attempt and the backup none.
	if got := n.LLM.Requests(); got != calls+wantRetries {
		t.Fatalf("primary requests = %d, want %d", got, calls+wantRetries)
	}
	if got := backup.Requests(); got != 0 {
		t.Fatalf("backup requests = %d, want 0", got)
	}
	// And the retries are in the metrics, with no failover.
	body := n.scrape(t)
	expectMetric(t, body, "nexus_llm_retries_total",
		map[string]string{"circuit": "code_generator", "provider": "default", "model": codegenModel}, float64(wantRetries))
	if got := foMetric(body, "nexus_llm_failovers_total", map[string]string{"circuit": "code_generator", "from_provider": "default", "to_provider": "backup"}); got != 0 {
		t.Fatalf("failovers = %v, want 0", got)
	}
	// And the primary's breaker stayed closed with every outcome counted.
	primary := foTarget(t, n, 0, "default")
	st := primary["statistics"].(map[string]any)
	if primary["state"] != "closed" || st["success_count"] != float64(calls) || st["failure_count"] != float64(wantRetries) || st["consecutive_failures"] != 0.0 {
		t.Fatalf("target[0]: state %v, statistics %v", primary["state"], st)
	}
}

// Given a primary that answers 429 with Retry-After: 2, the call fails over
// to the backup at once; the primary then cools down for 2 s, during which
// calls skip it without a request, and afterwards it is used again.
func TestFailoverShouldSkipAPrimaryCoolingDownAfterRetryAfterThenUseItAgain(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 1, MaxRetryAfter: 30,
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Reply(foPython))
	// Given the primary's next answer is a 429 with Retry-After: 2.
	n.LLM.EnqueueFor(codegenModel, fakellm.RateLimited(2))

	// When a call is made, then it fails over to the backup.
	sent := time.Now()
	foExpectGenerated(t, n, "backup", foBackupModel, 2, true)
	answered := time.Now()

	// Then health shows the primary cooling down until 2 s after its 429,
	// not admitting calls, its breaker still closed.
	primary := foTarget(t, n, 0, "default")
	until := foTime(t, primary["cooling_down_until"], "target[0].cooling_down_until")
	if until.Before(sent.Add(2*time.Second)) || until.After(answered.Add(2*time.Second)) {
		t.Fatalf("cooling_down_until = %s, want 2 s after the 429 (between %s and %s)", until, sent.Add(2*time.Second), answered.Add(2*time.Second))
	}
	if primary["admits"] != false || primary["state"] != "closed" {
		t.Fatalf("target[0] while cooling down: %v", primary)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["available"] != true {
		t.Fatalf("available = %v while the backup admits", c["available"])
	}

	// When two more calls are made during the cooldown, then both go to the
	// backup and the primary gets no request.
	for i := 0; i < 2; i++ {
		if left := time.Until(until); left < 500*time.Millisecond {
			t.Fatalf("only %s of the cooldown left for call %d; the machine is too slow for this test", left, i+1)
		}
		foExpectGenerated(t, n, "backup", foBackupModel, 1, true)
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("primary requests during the cooldown = %d, want 1 (the 429)", got)
	}

	// When the cooldown ends, then health clears it.
	eventually(t, 10*time.Second, "target[0] cooldown over", func() bool {
		p := foTarget(t, n, 0, "default")
		return p["cooling_down_until"] == nil && p["admits"] == true
	})
	if now := time.Now(); now.Before(until) {
		t.Fatalf("cooldown reported over at %s, before %s", now, until)
	}
	// And the primary answers again, as the first target.
	foExpectGenerated(t, n, "default", codegenModel, 1, false)
	if got, want := n.LLM.RequestsFor(codegenModel), 2; got != want {
		t.Fatalf("primary requests = %d, want %d", got, want)
	}
	if got, want := backup.RequestsFor(foBackupModel), 3; got != want {
		t.Fatalf("backup requests = %d, want %d", got, want)
	}
}

// Given max_attempts 3 and a primary answering 401, the call fails over at
// once without retrying the primary.
func TestFailoverShouldMoveOnAtOnceFromAPrimaryAnswering401(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 3, RetryBackoff: 0.01, MaxRetryBackoff: 0.02, MaxRetryAfter: 30,
	}))
	// Given a primary that refuses the key.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(401, "Incorrect API key provided"))

	// When a call is made, then the backup answers after one primary request.
	foExpectGenerated(t, n, "backup", foBackupModel, 2, true)
	if got := n.LLM.Requests(); got != 1 {
		t.Fatalf("primary requests = %d, want 1 (no retry after a 401)", got)
	}
	if got := backup.Requests(); got != 1 {
		t.Fatalf("backup requests = %d, want 1", got)
	}
	// And the 401 counted against the primary, with no retry in the metrics.
	if st := foTarget(t, n, 0, "default")["statistics"].(map[string]any); st["failure_count"] != 1.0 {
		t.Fatalf("target[0].statistics: %v", st)
	}
	if got := foMetric(n.scrape(t), "nexus_llm_retries_total", map[string]string{"circuit": "code_generator", "provider": "default", "model": codegenModel}); got != 0 {
		t.Fatalf("retries = %v, want 0", got)
	}
}

// Given a primary answering a plain 400, the call does not fail over: the
// client gets 422 llm_rejected_request and the backup is never asked.
func TestFailoverShouldNotHappenOnAPlain400(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 3, RetryBackoff: 0.01, MaxRetryBackoff: 0.02, MaxRetryAfter: 30,
	}))
	// Given a primary that rejects the request itself.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(400, "Invalid value for 'temperature'"))

	// When a call is made, then it is a 422 and nobody else is asked.
	r := n.generate(t)
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if errorCode(r) != "llm_rejected_request" {
		t.Fatalf("code = %q: %s", errorCode(r), r.Raw)
	}
	if got := n.LLM.Requests(); got != 1 {
		t.Fatalf("primary requests = %d, want 1", got)
	}
	if got := backup.Requests(); got != 0 {
		t.Fatalf("backup requests = %d, want 0", got)
	}
	// And the primary's breaker counted nothing.
	primary := foTarget(t, n, 0, "default")
	if st := primary["statistics"].(map[string]any); primary["state"] != "closed" || st["failure_count"] != 0.0 || st["total_calls"] != 0.0 {
		t.Fatalf("target[0]: state %v, statistics %v", primary["state"], st)
	}
}

// Given a primary answering 400 context_length_exceeded, the call fails
// over to the backup, and the primary's breaker does not count it: with
// failure_threshold 1 it stays closed and keeps being asked.
func TestFailoverShouldHappenOnContextLengthExceededWithoutCountingIt(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 3, RetryBackoff: 0.01, MaxRetryBackoff: 0.02, MaxRetryAfter: 30,
	}))
	// Given a primary whose context window is too small for the prompt.
	n.LLM.SetDefaultFor(codegenModel, fakellm.ContextTooLong())

	// When two calls are made, then both are answered by the backup, each
	// after exactly one (unretried) primary request.
	for i := 1; i <= 2; i++ {
		foExpectGenerated(t, n, "backup", foBackupModel, 2, true)
		if got := n.LLM.Requests(); got != i {
			t.Fatalf("after call %d: primary requests = %d, want %d", i, got, i)
		}
	}
	if got := backup.Requests(); got != 2 {
		t.Fatalf("backup requests = %d, want 2", got)
	}
	// And the primary's breaker counted none of it.
	primary := foTarget(t, n, 0, "default")
	st := primary["statistics"].(map[string]any)
	if primary["state"] != "closed" || st["failure_count"] != 0.0 || st["consecutive_failures"] != 0.0 || st["total_calls"] != 0.0 {
		t.Fatalf("target[0]: state %v, statistics %v", primary["state"], st)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["health"] != "healthy" {
		t.Fatalf("circuit health = %v, want healthy", c["health"])
	}
}

// Given every target of code_generator down (both answer 500) with
// failure_threshold 1, the first call is a 503 listing both targets with
// their last (redacted) errors; the next is a 503 circuit_open that asks
// nobody, with Retry-After the soonest remaining open delay, rounded up.
func TestFailoverShouldAnswer503ListingTargetsWhenEveryTargetIsDown(t *testing.T) {
	t.Parallel()
	const (
		primaryKey = "sk-primary-SECRET-0123456789"
		backupKey  = "sk-backup-SECRET-9876543210"
		recovery   = 5
	)
	backup, withBackup := foWithBackup(t, fakellm.WithAPIKey(backupKey))
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: recovery, Timeout: 2, MaxAttempts: 1,
	}), func(o *startOpts) {
		o.fakeOpts = append(o.fakeOpts, fakellm.WithAPIKey(primaryKey))
		o.env["LLM_API_KEY"] = primaryKey
		o.env["BACKUP_KEY"] = backupKey
	})
	// Given both providers down, each quoting its key in its error, as a
	// careless proxy might.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "primary down (key "+primaryKey+")"))
	backup.SetDefault(fakellm.Status(500, "backup down (key "+backupKey+")"))

	// When a call is made, then both are tried, both open, and the 503
	// lists them.
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if strings.Contains(r.Raw, primaryKey) || strings.Contains(r.Raw, backupKey) {
		t.Fatalf("the 503 leaks an API key: %s", r.Raw)
	}
	if errorCode(r) != "llm_unavailable" || r.Body["attempts"] != 2.0 || r.Body["circuit"] != "code_generator" || r.Body["circuit_state"] != "open" ||
		r.Body["error"].(map[string]any)["message"] != "circuit code_generator: no target could answer; last: upstream HTTP 500: backup down (key [REDACTED])" {
		t.Fatalf("first 503: %s", r.Raw)
	}
	foExpectTargetsInBody(t, r)
	// Its Retry-After is the soonest reopening: the primary's, which
	// opened first, rounded up.
	if secs := foRetryAfter(t, r); secs < 1 || secs > recovery {
		t.Fatalf("first Retry-After = %d, want 1..%d", secs, recovery)
	}
	if n.LLM.Requests() != 1 || backup.Requests() != 1 {
		t.Fatalf("requests: primary %d, backup %d; want 1 and 1", n.LLM.Requests(), backup.Requests())
	}

	// When the next call is made, then it is refused without a request,
	// with Retry-After the ceiling of the soonest remaining delay (as
	// health shows it just before and just after).
	before := foSoonestRemaining(t, n)
	r = n.generate(t)
	after := foSoonestRemaining(t, n)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" || r.Body["attempts"] != 0.0 || r.Body["circuit_state"] != "open" ||
		r.Body["error"].(map[string]any)["message"] != "circuit code_generator: none of its 2 targets admits calls now; no request was sent" {
		t.Fatalf("second 503: %s", r.Raw)
	}
	if n.LLM.Requests() != 1 || backup.Requests() != 1 {
		t.Fatalf("requests after a refused call: primary %d, backup %d; want 1 and 1", n.LLM.Requests(), backup.Requests())
	}
	foExpectTargetsInBody(t, r)
	secs := foRetryAfter(t, r)
	lo, hi := int(math.Ceil(after)), int(math.Ceil(before+0.001))
	if secs < 1 || secs > recovery || secs < lo || secs > hi {
		t.Fatalf("second Retry-After = %d, want the ceiling of the soonest remaining delay (%d..%d) within 1..%d", secs, lo, hi, recovery)
	}
	if fb := r.Body["fallback"].(map[string]any); fb["retry_after_seconds"] != float64(secs) {
		t.Fatalf("fallback.retry_after_seconds = %v, Retry-After %d", fb["retry_after_seconds"], secs)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["health"] != "unhealthy" || c["available"] != false {
		t.Fatalf("circuit with every target open: health %v, available %v", c["health"], c["available"])
	}
}

// foExpectTargetsInBody checks a 503's targets: both code_generator targets
// in order, open, each with its last error, the key in it redacted.
func foExpectTargetsInBody(t *testing.T, r response) {
	t.Helper()
	list, ok := r.Body["targets"].([]any)
	if !ok || len(list) != 2 {
		t.Fatalf("targets = %v, want 2: %s", r.Body["targets"], r.Raw)
	}
	want := []struct{ provider, model, lastError string }{
		{"default", codegenModel, "llm_unavailable: upstream HTTP 500: primary down (key [REDACTED])"},
		{"backup", foBackupModel, "llm_unavailable: upstream HTTP 500: backup down (key [REDACTED])"},
	}
	for i, x := range list {
		tg := x.(map[string]any)
		_, cooling := tg["cooling_down_until"]
		if tg["provider"] != want[i].provider || tg["model"] != want[i].model || tg["state"] != "open" ||
			tg["last_error"] != want[i].lastError || cooling || len(tg) != 4 {
			t.Fatalf("targets[%d] = %v\nwant %s/%s open with last_error %q", i, tg, want[i].provider, want[i].model, want[i].lastError)
		}
	}
}

// Given a primary that fails and a retry backoff far longer than
// server.request_timeout_seconds, the request deadline cuts the wait: the
// client gets a 504 request_timeout within the deadline's order, and
// nothing stays in flight, upstream or in the circuit.
func TestFailoverShouldStopARetryWaitAtTheRequestDeadline(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2,
		MaxAttempts: 3, RetryBackoff: 20, MaxRetryBackoff: 20, MaxRetryAfter: 30,
	}), func(o *startOpts) { o.cfg.Server.RequestTimeoutSeconds = 1 })
	// Given both targets failing.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "primary down"))
	backup.SetDefault(fakellm.Status(500, "backup down"))

	// When a call is made, then the 10-20 s backoff after the primary's
	// 500 is cut by the 1 s request deadline.
	start := time.Now()
	r := n.generate(t)
	took := time.Since(start)
	expectStatus(t, r, http.StatusGatewayTimeout)
	if errorCode(r) != "request_timeout" {
		t.Fatalf("code = %q: %s", errorCode(r), r.Raw)
	}
	if took >= 10*time.Second {
		t.Fatalf("the 504 took %s: the backoff was waited out", took)
	}
	if n.LLM.Requests() != 1 || backup.Requests() != 0 {
		t.Fatalf("requests: primary %d, backup %d; want 1 (then the wait) and 0", n.LLM.Requests(), backup.Requests())
	}
	// And nothing is left in flight.
	eventually(t, 10*time.Second, "nothing in flight", func() bool {
		if n.LLM.InFlight() != 0 || backup.InFlight() != 0 {
			return false
		}
		c := n.circuit(t, config.CircuitCodeGenerator)
		if c["in_flight"] != 0.0 {
			return false
		}
		for _, tg := range foTargets(t, n, config.CircuitCodeGenerator) {
			if tg["in_flight"] != 0.0 {
				return false
			}
		}
		return true
	})
	if st := foTarget(t, n, 0, "default")["statistics"].(map[string]any); st["failure_count"] != 1.0 {
		t.Fatalf("target[0].statistics: %v", st)
	}
}

// foReload asks the server to reload its config file now.
func foReload(t *testing.T, n *nexus) {
	t.Helper()
	expectStatus(t, n.admin(t, http.MethodPost, "/api/config/reload", adminToken), http.StatusOK)
}

// Given a single-target code_generator whose target is open, a reload that
// adds a backup target keeps the first target open, and calls go to the
// backup; an operator's forced open survives a reload that changes a
// breaker setting; the admin routes act on one target when named, and an
// unknown target is a 404 that lists the known ones.
func TestFailoverShouldKeepTargetStatesAndForcedOpenAcrossReloads(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(fakellm.Reply(foPython))
	n := startNexus(t, withAdmin, foCodegen(config.Circuit{
		FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2, MaxAttempts: 1,
	}))
	// Given the one target opened by a failure.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "down"))
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if _, listed := r.Body["targets"]; listed || errorCode(r) != "llm_unavailable" {
		t.Fatalf("single-target 503: %s", r.Raw)
	}
	if s := n.state(t, config.CircuitCodeGenerator); s != "open" {
		t.Fatalf("state = %s, want open", s)
	}

	// When the config gains a backup provider as code_generator's second
	// target and is reloaded.
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) {
		c.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: backup.URL(), APIKeyEnv: "BACKUP_KEY"}}
		c.LLM.Models[config.CircuitCodeGenerator] = config.Targets{
			{Provider: config.DefaultProvider, Model: codegenModel},
			{Provider: "backup", Model: foBackupModel},
		}
	})
	foReload(t, n)

	// Then the first target is still open and the new one closed.
	ts := foTargets(t, n, config.CircuitCodeGenerator)
	if len(ts) != 2 || ts[0]["provider"] != "default" || ts[0]["state"] != "open" || ts[1]["provider"] != "backup" || ts[1]["state"] != "closed" {
		t.Fatalf("targets after adding one: %v", ts)
	}
	if rd := ts[0]["remaining_delay_seconds"].(float64); rd <= 0 || rd > 30 {
		t.Fatalf("target[0].remaining_delay_seconds = %v, want in (0, 30]", rd)
	}
	// And calls go to the backup without asking the primary.
	foExpectGenerated(t, n, "backup", foBackupModel, 1, true)
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("primary requests = %d, want 1", got)
	}

	// When an operator forces the circuit open, and a reload then changes
	// failure_threshold (which rebuilds its targets).
	r = n.admin(t, http.MethodPost, "/api/circuits/code_generator/open", adminToken)
	expectStatus(t, r, http.StatusOK)
	if r.Body["state"] != "open" || r.Body["forced"] != true {
		t.Fatalf("open answer: %s", r.Raw)
	}
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) {
		cg := c.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		cg.FailureThreshold = 4
		c.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg
	})
	foReload(t, n)

	// Then the new setting applies, and every target is still forced open.
	c := n.circuit(t, config.CircuitCodeGenerator)
	if c["config"].(map[string]any)["failure_threshold"] != 4.0 {
		t.Fatalf("failure_threshold after the reload = %v, want 4", c["config"].(map[string]any)["failure_threshold"])
	}
	if c["state"] != "open" || c["forced"] != true || c["available"] != false {
		t.Fatalf("after the reload: state %v, forced %v, available %v; want open, true, false", c["state"], c["forced"], c["available"])
	}
	for i, tg := range foTargets(t, n, config.CircuitCodeGenerator) {
		if tg["state"] != "open" || tg["forced"] != true {
			t.Fatalf("target[%d] after the reload: %v", i, tg)
		}
	}
	before, beforeBackup := n.LLM.Requests(), backup.Requests()
	r = n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" || n.LLM.Requests() != before || backup.Requests() != beforeBackup {
		t.Fatalf("call through a forced-open circuit (requests %d→%d, %d→%d): %s", before, n.LLM.Requests(), beforeBackup, backup.Requests(), r.Raw)
	}

	// When the operator closes everything, then opens the backup alone.
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/code_generator/close", adminToken), http.StatusOK)
	r = n.admin(t, http.MethodPost, "/api/circuits/code_generator/open?provider=backup&model="+foBackupModel, adminToken)
	expectStatus(t, r, http.StatusOK)

	// Then only the backup is held open.
	ts = foTargets(t, n, config.CircuitCodeGenerator)
	if ts[0]["state"] != "closed" || ts[0]["forced"] != false || ts[1]["state"] != "open" || ts[1]["forced"] != true {
		t.Fatalf("targets after opening the backup alone: %v", ts)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["state"] != "closed" || c["forced"] != false {
		t.Fatalf("circuit after opening the backup alone: state %v, forced %v", c["state"], c["forced"])
	}

	// When the operator names a target the circuit does not have, then it
	// is a 404 unknown_target listing the known ones, and nothing changes.
	r = n.admin(t, http.MethodPost, "/api/circuits/code_generator/open?provider=backup&model=nope", adminToken)
	expectStatus(t, r, http.StatusNotFound)
	want := `unknown target "backup/nope" of circuit code_generator (known: default/` + codegenModel + `, backup/` + foBackupModel + `)`
	if errorCode(r) != "unknown_target" || r.Body["error"].(map[string]any)["message"] != want {
		t.Fatalf("unknown target answer: %s\nwant message %q", r.Raw, want)
	}
	if ts := foTargets(t, n, config.CircuitCodeGenerator); ts[0]["state"] != "closed" || ts[1]["forced"] != true {
		t.Fatalf("targets after the refused action: %v", ts)
	}
}

// Given /analyze with inline data whose planner's primary fails, the plan
// step is answered by the backup and says so: provider backup, failover
// true, and two LLM requests.
func TestFailoverShouldAnswerTheAnalyzePlanStepFromTheBackup(t *testing.T) {
	t.Parallel()
	backup, withBackup := foWithBackup(t)
	n := startNexus(t, withBackup, foCodegen(config.Circuit{
		FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 2, MaxAttempts: 1,
	}))
	// Given a planner primary that is down, a backup that writes the SQL,
	// and an analyst that explains it.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "planner down"))
	backup.EnqueueFor(foBackupModel, sqlReply("SELECT count(*) AS n FROM data"))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("There are 2 rows."))

	// When /analyze is asked about inline data.
	r := n.post(t, "/analyze", map[string]any{
		"query": "How many rows?",
		"data":  map[string]any{"format": "json", "content": `[{"a":1},{"a":2}]`},
	})

	// Then it answers from the SQL the backup wrote.
	expectStatus(t, r, http.StatusOK)
	if r.Body["answer"] != "There are 2 rows." || r.Body["sql"] != "SELECT count(*) AS n FROM data" || r.Body["row_count"] != 1.0 || degraded(r) != "" {
		t.Fatalf("body: %s", r.Raw)
	}
	steps := expectSteps(t, r, map[string]string{"plan": "ok", "run": "ok", "answer": "ok"})
	// And the plan step names the backup, with the failover and both requests.
	plan := steps["plan"]
	if plan["circuit"] != "code_generator" || plan["provider"] != "backup" || plan["model"] != foBackupModel ||
		plan["failover"] != true || plan["llm_requests"] != 2.0 || plan["attempts"] != 1.0 {
		t.Fatalf("plan step: %v", plan)
	}
	// And the answer step, served by its only target, has no failover.
	answer := steps["answer"]
	if _, f := answer["failover"]; answer["provider"] != "default" || answer["model"] != analystModel || answer["llm_requests"] != 1.0 || f {
		t.Fatalf("answer step: %v", answer)
	}
	// And the run step calls no LLM, so it names no provider.
	if _, p := steps["run"]["provider"]; p {
		t.Fatalf("run step: %v", steps["run"])
	}
	if n.LLM.RequestsFor(codegenModel) != 1 || backup.Requests() != 1 {
		t.Fatalf("planner requests: primary %d, backup %d; want 1 and 1", n.LLM.RequestsFor(codegenModel), backup.Requests())
	}
}

// Given the shipped single-target config, a plain call reports provider
// default and attempts 1 with no failover field, and a 429 with
// Retry-After is the 503 it always was: the upstream's Retry-After and no
// targets list.
func TestFailoverShouldLeaveASingleTargetConfigAsItWas(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	n.LLM.SetDefaultFor(codegenModel, fakellm.Reply(foPython))

	// When a plain call succeeds, then it names the one provider.
	foExpectGenerated(t, n, "default", codegenModel, 1, false)

	// When the LLM answers 429 with Retry-After: 7, then the 503 carries it.
	n.LLM.EnqueueFor(codegenModel, fakellm.RateLimited(7))
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "llm_unavailable" || r.Header.Get("Retry-After") != "7" || r.Body["attempts"] != 1.0 {
		t.Fatalf("429 answer (Retry-After %q): %s", r.Header.Get("Retry-After"), r.Raw)
	}
	if _, listed := r.Body["targets"]; listed {
		t.Fatalf("a single-target 503 lists targets: %s", r.Raw)
	}
	if fb := r.Body["fallback"].(map[string]any); fb["retry_after_seconds"] != 7.0 {
		t.Fatalf("fallback: %v", fb)
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 2 {
		t.Fatalf("upstream requests = %d, want 2", got)
	}
}
