package e2e

// Breakers that learn (issue 9, part 4) and what shows them (part 5):
// recovery backoff, failure-rate trips, hedging and its budget, recovery
// probes, provider probes, and the per-target metrics and log lines. Every
// test drives the real server through its HTTP API against fakellm
// providers.

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// learnBackupModel is the code_generator's model on the backup provider.
const learnBackupModel = "backup-model"

// learnCode is a reply from which /generate extracts valid Python.
func learnCode() fakellm.Step { return fakellm.Reply("```python\nresult = 1\n```") }

// learnCodegen tunes the code_generator circuit, starting from the test
// config's settings (every default filled in).
func learnCodegen(mutate func(*config.Circuit)) func(*startOpts) {
	return func(o *startOpts) {
		c := o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		mutate(&c)
		o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = c
	}
}

// learnWithBackup gives code_generator two targets: codegenModel on the
// default provider (n.LLM) first, learnBackupModel on backup second.
func learnWithBackup(backup *fakellm.Server) func(*startOpts) {
	return func(o *startOpts) {
		o.cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: backup.URL(), APIKeyEnv: "BACKUP_KEY"}}
		o.cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{
			{Provider: config.DefaultProvider, Model: codegenModel},
			{Provider: "backup", Model: learnBackupModel},
		}
	}
}

// learnTarget returns code_generator's target on provider from health.
func learnTarget(t testing.TB, n *nexus, provider string) map[string]any {
	t.Helper()
	c := n.circuit(t, config.CircuitCodeGenerator)
	targets, _ := c["targets"].([]any)
	for _, x := range targets {
		if m := x.(map[string]any); m["provider"] == provider {
			return m
		}
	}
	t.Fatalf("code_generator has no target on provider %q: %v", provider, c["targets"])
	return nil
}

// learnAwaitState polls health until code_generator's target on provider
// is in state.
func learnAwaitState(t testing.TB, n *nexus, provider, state string) {
	t.Helper()
	eventually(t, 10*time.Second, "target "+provider+" "+state, func() bool {
		return learnTarget(t, n, provider)["state"] == state
	})
}

// learnTargetStats checks counters of one target's statistics.
func learnTargetStats(t testing.TB, n *nexus, provider string, want map[string]float64) {
	t.Helper()
	got := learnTarget(t, n, provider)["statistics"].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("target %s statistics.%s = %v, want %v (all: %v)", provider, k, got[k], v, got)
		}
	}
}

// learnAnswer checks a 200 /generate: who answered and how many requests
// it took. failover false means the field is absent.
func learnAnswer(t testing.TB, r response, provider, model string, attempts float64, failover bool) {
	t.Helper()
	expectStatus(t, r, http.StatusOK)
	f, present := r.Body["failover"]
	if r.Body["provider"] != provider || r.Body["model"] != model || r.Body["attempts"] != attempts ||
		present != failover || (failover && f != true) || r.Body["code"] != "result = 1" {
		t.Fatalf("want an answer from %s/%s after %v attempt(s), failover %v; body: %s", provider, model, attempts, failover, r.Raw)
	}
}

// learnTransitions returns a target's recent transitions.
func learnTransitions(t testing.TB, tg map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, x := range tg["recent_transitions"].([]any) {
		out = append(out, x.(map[string]any))
	}
	return out
}

func learnTime(t testing.TB, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %v", v)
	}
	return at
}

// Given code_generator with one target, failure_threshold 1,
// recovery_timeout 0.3 s, recovery_backoff_multiplier 2 and
// max_recovery_timeout 10, when each half-open trial fails, then each
// reopening waits twice as long (0.3, 0.6, 1.2 s), and when a trial
// finally succeeds, the target closes and its delay is back to 0.3 s.
func TestRecoveryTimeoutShouldDoubleOnEachFailedTrialAndResetOnClose(t *testing.T) {
	t.Parallel()
	n := startNexus(t, learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.SuccessThreshold, c.RecoveryTimeout = 1, 1, 0.3
		c.RecoveryBackoffMultiplier, c.MaxRecoveryTimeout = 2, 10
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "down"))

	// Given: the first failure opens the target with the configured delay.
	// (The state is read from the 503, taken when the call ended: by the
	// time health answers, a busy machine may have let 0.3 s pass.)
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "llm_unavailable" || r.Body["circuit_state"] != "open" {
		t.Fatalf("first failure: %s", r.Raw)
	}
	tg := learnTarget(t, n, config.DefaultProvider)
	if tg["current_recovery_timeout"] != 0.3 {
		t.Fatalf("after the first opening: %v", tg)
	}
	if cfg := n.circuit(t, config.CircuitCodeGenerator)["config"].(map[string]any); cfg["recovery_backoff_multiplier"] != 2.0 || cfg["max_recovery_timeout"] != 10.0 {
		t.Fatalf("circuit config: %v", cfg)
	}

	// When: each half-open trial fails, the next open delay doubles.
	for _, want := range []float64{0.6, 1.2} {
		learnAwaitState(t, n, config.DefaultProvider, "half-open")
		r := n.generate(t)
		expectStatus(t, r, http.StatusServiceUnavailable)
		if errorCode(r) != "llm_unavailable" || r.Body["circuit_state"] != "open" {
			t.Fatalf("failed trial: %s", r.Raw)
		}
		tg := learnTarget(t, n, config.DefaultProvider)
		if tg["current_recovery_timeout"] != want {
			t.Fatalf("after a failed trial: current_recovery_timeout %v, want %v", tg["current_recovery_timeout"], want)
		}
		if d := tg["remaining_delay_seconds"].(float64); d < 0 || d > want {
			t.Fatalf("remaining_delay_seconds = %v, want in [0, %v]", d, want)
		}
	}

	// Then: the grown delay holds through half-open, and a successful
	// trial closes the target and resets it.
	n.LLM.SetDefaultFor(codegenModel, learnCode())
	learnAwaitState(t, n, config.DefaultProvider, "half-open")
	if got := learnTarget(t, n, config.DefaultProvider)["current_recovery_timeout"]; got != 1.2 {
		t.Fatalf("current_recovery_timeout while half-open = %v, want 1.2", got)
	}
	learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)
	tg = learnTarget(t, n, config.DefaultProvider)
	if tg["state"] != "closed" || tg["current_recovery_timeout"] != 0.3 {
		t.Fatalf("after the successful trial: state %v, current_recovery_timeout %v, want closed and 0.3", tg["state"], tg["current_recovery_timeout"])
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 4 {
		t.Fatalf("upstream requests = %d, want 4 (three failures, one success)", got)
	}

	// The half-opens really came 0.6 s and 1.2 s after the reopenings:
	// the last five transitions are h→o, o→h, h→o, o→h, h→c.
	ts := learnTransitions(t, tg)
	want := [][2]string{{"half-open", "open"}, {"open", "half-open"}, {"half-open", "open"}, {"open", "half-open"}, {"half-open", "closed"}}
	if len(ts) != len(want) {
		t.Fatalf("recent_transitions = %v, want %d", ts, len(want))
	}
	for i, w := range want {
		if ts[i]["from"] != w[0] || ts[i]["to"] != w[1] || ts[i]["provider"] != config.DefaultProvider || ts[i]["model"] != codegenModel {
			t.Fatalf("transition %d = %v, want %s→%s on default/%s", i, ts[i], w[0], w[1], codegenModel)
		}
	}
	for i, d := range map[int]time.Duration{1: 600 * time.Millisecond, 3: 1200 * time.Millisecond} {
		if got := learnTime(t, ts[i]["at"]).Sub(learnTime(t, ts[i-1]["at"])); got != d {
			t.Errorf("half-open %d came %s after the reopening, want %s", i, got, d)
		}
	}
}

// Given code_generator with failure_threshold 5 (never reached here),
// failure_rate_threshold 50 over 60 s and minimum_calls 6, when the
// upstream alternates 500 and success so that it never fails twice in a
// row, then the target stays closed for five calls and opens on the sixth
// (3 failures of 6), saying the failure rate did it; the next call is
// rejected without a request.
func TestFailureRateShouldOpenATargetThatNeverFailsTwiceInARow(t *testing.T) {
	t.Parallel()
	n := startNexus(t, learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.SuccessThreshold, c.RecoveryTimeout = 5, 1, 30
		c.FailureRateThreshold, c.FailureRateWindow, c.MinimumCalls = 50, 60, 6
	}))
	for i := 0; i < 3; i++ {
		n.LLM.EnqueueFor(codegenModel, fakellm.Status(500, "flap"), learnCode())
	}

	// When: five calls, failing every other one.
	for i := 1; i <= 5; i++ {
		r := n.generate(t)
		if i%2 == 1 {
			expectStatus(t, r, http.StatusServiceUnavailable)
		} else {
			learnAnswer(t, r, config.DefaultProvider, codegenModel, 1, false)
		}
		if s := learnTarget(t, n, config.DefaultProvider)["state"]; s != "closed" {
			t.Fatalf("after call %d the target is %v, want closed (fewer than minimum_calls)", i, s)
		}
	}
	learnTargetStats(t, n, config.DefaultProvider, map[string]float64{"failure_count": 3, "success_count": 2, "consecutive_failures": 1})

	// Then: the sixth call succeeds, and 3 failures of 6 calls open the target.
	learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)
	tg := learnTarget(t, n, config.DefaultProvider)
	if tg["state"] != "open" {
		t.Fatalf("after 3 failures of 6 calls the target is %v, want open", tg["state"])
	}
	ts := learnTransitions(t, tg)
	last := ts[len(ts)-1]
	reason, _ := last["reason"].(string)
	if last["from"] != "closed" || last["to"] != "open" ||
		!strings.HasPrefix(reason, "failure rate 50% (3 of 6 calls) in the last 1m0s reached failure_rate_threshold 50%") {
		t.Fatalf("last transition = %v, want closed→open because of the failure rate", last)
	}
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" {
		t.Fatalf("call after the trip: %s", r.Raw)
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 6 {
		t.Fatalf("upstream requests = %d, want 6", got)
	}
}

// Given a primary that never answers and a fast backup, with hedge_after
// 0.2 s and hedge_budget_percent 100, when /generate is called, then the
// backup's answer wins after 2 requests, the primary's request is
// cancelled, the hedge counts as won, and the primary's breaker records
// nothing against it.
func TestHedgeShouldLetAFastBackupWinAndCancelTheSlowPrimary(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.HedgeAfter, c.HedgeBudgetPercent, c.Timeout = 0.2, 100, 10
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Hang())

	// When
	start := time.Now()
	r := n.generate(t)

	// Then
	learnAnswer(t, r, "backup", learnBackupModel, 2, true)
	if took := time.Since(start); took >= 10*time.Second {
		t.Fatalf("the answer took %s: the primary timed out, no hedge was sent", took)
	}
	eventually(t, 10*time.Second, "the primary's request cancelled", func() bool { return n.LLM.Canceled() == 1 })
	if n.LLM.RequestsFor(codegenModel) != 1 || backup.RequestsFor(learnBackupModel) != 1 {
		t.Fatalf("requests: primary %d, backup %d, want 1 and 1", n.LLM.RequestsFor(codegenModel), backup.RequestsFor(learnBackupModel))
	}
	body := n.scrape(t)
	expectMetric(t, body, "nexus_llm_hedges_total", map[string]string{"circuit": "code_generator", "outcome": "won"}, 1)
	expectMetric(t, body, "nexus_llm_hedges_total", map[string]string{"circuit": "code_generator", "outcome": "lost"}, 0)
	expectMetric(t, body, "nexus_target_calls_total", map[string]string{"circuit": "code_generator", "provider": "default", "model": codegenModel, "outcome": "neutral"}, 1)
	expectMetric(t, body, "nexus_target_calls_total", map[string]string{"circuit": "code_generator", "provider": "backup", "model": learnBackupModel, "outcome": "success"}, 1)
	// The loser is neutral: no failure, no streak, still closed.
	if s := learnTarget(t, n, config.DefaultProvider)["state"]; s != "closed" {
		t.Fatalf("primary state = %v, want closed", s)
	}
	learnTargetStats(t, n, config.DefaultProvider, map[string]float64{"total_calls": 0, "failure_count": 0, "timeout_count": 0, "consecutive_failures": 0})
	learnTargetStats(t, n, "backup", map[string]float64{"total_calls": 1, "success_count": 1})
}

// Given hedge_budget_percent 10 and hedge_after 0.1 s on a fresh server,
// when the primary is slow on the first call, then no hedge is sent (1
// call in the last minute allows none); when the primary hangs on the
// tenth call, the budget allows one hedge and the backup answers; and on
// the eleventh the budget is spent again, so the call waits for the
// primary's timeout and only then fails over.
func TestHedgeBudgetShouldHoldBackHedgesUntilItAllowsOne(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.HedgeAfter, c.HedgeBudgetPercent, c.Timeout, c.FailureThreshold = 0.1, 10, 2, 5
	}))
	hedges := func(outcome string) float64 {
		v, _ := metric(n.scrape(t), "nexus_llm_hedges_total", map[string]string{"circuit": "code_generator", "outcome": outcome})
		return v
	}
	n.LLM.SetDefaultFor(codegenModel, learnCode())

	// When: the first call's primary answers after 0.5 s, well past hedge_after.
	n.LLM.EnqueueFor(codegenModel, fakellm.Step{Delay: 500 * time.Millisecond, Content: "```python\nresult = 1\n```"})
	learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)
	// Then: no hedge.
	if got := backup.Requests(); got != 0 {
		t.Fatalf("backup requests after the first call = %d, want 0", got)
	}

	// Calls 2 to 9 are answered by the primary; the budget still allows no hedge.
	for i := 2; i <= 9; i++ {
		learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)
	}
	if got := backup.Requests(); got != 0 || hedges("won")+hedges("lost") != 0 {
		t.Fatalf("after 9 calls: backup requests %d, hedges %v won %v lost, want none", got, hedges("won"), hedges("lost"))
	}

	// When: the tenth call's primary hangs, 1 hedge in 10 calls is 10%.
	n.LLM.EnqueueFor(codegenModel, fakellm.Hang())
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 2, true)
	if hedges("won") != 1 {
		t.Fatalf("hedges won = %v, want 1", hedges("won"))
	}
	eventually(t, 10*time.Second, "the hedged primary request cancelled", func() bool { return n.LLM.Canceled() == 1 })
	learnTargetStats(t, n, config.DefaultProvider, map[string]float64{"failure_count": 0, "timeout_count": 0})

	// When: the eleventh call's primary hangs too, 2 hedges in 11 calls
	// would be over 10%: the call waits for the primary's 2 s timeout,
	// which counts as a failure, and then fails over.
	n.LLM.EnqueueFor(codegenModel, fakellm.Hang())
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 2, true)
	if hedges("won") != 1 || hedges("lost") != 0 {
		t.Fatalf("hedges after the eleventh call: won %v lost %v, want 1 and 0", hedges("won"), hedges("lost"))
	}
	learnTargetStats(t, n, config.DefaultProvider, map[string]float64{"failure_count": 1, "timeout_count": 1})
	if got := backup.Requests(); got != 2 {
		t.Fatalf("backup requests = %d, want 2", got)
	}
}

// Given hedging off (hedge_after 0) and a primary that answers after
// 0.5 s, when /generate is called, then the primary answers and the
// backup gets no request.
func TestHedgeOffShouldWaitForTheSlowPrimary(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.HedgeAfter, c.HedgeBudgetPercent, c.Timeout = 0, 100, 10
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Step{Delay: 500 * time.Millisecond, Content: "```python\nresult = 1\n```"})

	learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)

	if got := backup.Requests(); got != 0 {
		t.Fatalf("backup requests = %d, want 0", got)
	}
	body := n.scrape(t)
	expectMetric(t, body, "nexus_llm_hedges_total", map[string]string{"circuit": "code_generator", "outcome": "won"}, 0)
	expectMetric(t, body, "nexus_llm_hedges_total", map[string]string{"circuit": "code_generator", "outcome": "lost"}, 0)
}

// Given code_generator with one target, recovery_probe on,
// failure_threshold 1 and success_threshold 1, when one call fails and the
// upstream recovers, then with no user request Nexus half-opens the
// target, sends a 1-token "ping" and closes it on the success.
func TestRecoveryProbeShouldCloseATargetWithoutAnyUserRequest(t *testing.T) {
	t.Parallel()
	n := startNexus(t, learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.SuccessThreshold, c.RecoveryTimeout, c.RecoveryProbe = 1, 1, 0.3, true
	}))
	n.LLM.SetDefaultFor(codegenModel, learnCode())
	n.LLM.EnqueueFor(codegenModel, fakellm.Status(500, "down"))

	// Given: one failure opens the target.
	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if r.Body["circuit_state"] != "open" {
		t.Fatalf("after the failure: %s", r.Raw)
	}

	// When: nothing but health polling happens.
	learnAwaitState(t, n, config.DefaultProvider, "closed")

	// Then: the probe was the second and last upstream request.
	got := n.LLM.Received()
	if len(got) != 2 {
		t.Fatalf("upstream requests = %d, want 2 (the failed call and the probe)", len(got))
	}
	p := got[1]
	if p.Model != codegenModel || p.MaxTokens != 1 || len(p.Messages) != 1 || p.Messages[0].Role != "user" || p.Messages[0].Content != "ping" {
		t.Fatalf("probe request = %+v, want one user message \"ping\" with max_tokens 1", p)
	}
	ts := learnTransitions(t, learnTarget(t, n, config.DefaultProvider))
	if len(ts) != 3 || ts[0]["to"] != "open" || ts[1]["to"] != "half-open" || ts[2]["from"] != "half-open" || ts[2]["to"] != "closed" {
		t.Fatalf("transitions = %v, want closed→open→half-open→closed", ts)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["state"] != "closed" || c["health"] != "healthy" {
		t.Fatalf("circuit after the probe: state %v health %v", c["state"], c["health"])
	}
}

// Given two targets with recovery_probe on, when the primary is half-open
// and its probe is in flight, then a user call is not spent as a trial:
// the backup answers it and the primary gets no request; once the probe
// succeeds, the primary answers again.
func TestRecoveryProbeShouldLeaveUserCallsToTheBackupWhileItTests(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.SuccessThreshold, c.RecoveryTimeout, c.RecoveryProbe, c.Timeout = 1, 1, 0.3, true, 10
	}))
	release := make(chan struct{})
	n.LLM.SetDefaultFor(codegenModel, fakellm.Held(release, "```python\nresult = 1\n```"))
	n.LLM.EnqueueFor(codegenModel, fakellm.Status(500, "down"))

	// Given: the primary fails once and opens; the backup answers.
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 2, true)
	// ... and its probe is held in flight while it is half-open.
	eventually(t, 10*time.Second, "the probe in flight", func() bool { return n.LLM.InFlight() == 1 })
	if s := learnTarget(t, n, config.DefaultProvider)["state"]; s != "half-open" {
		t.Fatalf("primary while probed: %v, want half-open", s)
	}

	// When
	r := n.generate(t)

	// Then: the backup answers without any request to the primary.
	learnAnswer(t, r, "backup", learnBackupModel, 1, true)
	if got := n.LLM.RequestsFor(codegenModel); got != 2 {
		t.Fatalf("primary requests = %d, want 2 (the failure and the probe)", got)
	}
	if c := n.circuit(t, config.CircuitCodeGenerator); c["state"] != "half-open" || c["health"] != "degraded" || c["available"] != true {
		t.Fatalf("circuit while probed: state %v health %v available %v", c["state"], c["health"], c["available"])
	}

	// When the probe succeeds, the primary closes and answers again.
	n.LLM.SetDefaultFor(codegenModel, learnCode())
	close(release)
	learnAwaitState(t, n, config.DefaultProvider, "closed")
	learnAnswer(t, n.generate(t), config.DefaultProvider, codegenModel, 1, false)
	got := n.LLM.Received()
	if len(got) != 3 || got[1].MaxTokens != 1 || got[2].MaxTokens == 1 {
		t.Fatalf("primary requests = %+v, want the failure, the probe (max_tokens 1) and the user call", got)
	}
}

// Given a live default provider and a provider "dead" on a closed port,
// probed every 0.2 s, when the probes have run a few times, then health
// lists both in order with their reachability, the log has exactly one
// WARN naming the dead provider, and the metrics say up 1 and 0.
func TestProviderProbesShouldTellALiveProviderFromADeadOne(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := "http://" + ln.Addr().String()
	ln.Close()
	n := startNexus(t, func(o *startOpts) {
		o.cfg.LLM.Providers = map[string]config.Provider{"dead": {BaseURL: deadAddr + "/v1", APIKeyEnv: "DEAD_KEY"}}
		o.cfg.LLM.ProbeInterval = 0.2
	})
	providers := func() []map[string]any {
		var out []map[string]any
		for _, p := range n.get(t, "/api/health/status").Body["providers"].([]any) {
			out = append(out, p.(map[string]any))
		}
		return out
	}

	// When: wait for a first probe of both, then for a later probe of the
	// dead one (a provider still down must not be logged again).
	var first any
	eventually(t, 10*time.Second, "both providers probed", func() bool {
		ps := providers()
		if len(ps) != 2 {
			t.Fatalf("providers = %v, want 2", ps)
		}
		first = ps[1]["last_probe_at"]
		return ps[0]["last_probe_at"] != nil && first != nil
	})
	eventually(t, 10*time.Second, "a later probe of the dead provider", func() bool {
		return providers()[1]["last_probe_at"] != first
	})

	// Then
	ps := providers()
	live, dead := ps[0], ps[1]
	liveAddr := strings.TrimSuffix(n.LLM.URL(), "/v1")
	if live["name"] != "default" || live["base_url"] != liveAddr || live["reachable"] != true || live["last_error"] != nil {
		t.Fatalf("live provider: %v", live)
	}
	if lat, ok := live["latency_ms"].(float64); !ok || lat < 0 {
		t.Fatalf("live latency_ms = %v, want a number", live["latency_ms"])
	}
	learnTime(t, live["last_probe_at"])
	if dead["name"] != "dead" || dead["base_url"] != deadAddr || dead["reachable"] != false {
		t.Fatalf("dead provider: %v", dead)
	}
	if e, _ := dead["last_error"].(string); e == "" {
		t.Fatalf("dead provider has no last_error: %v", dead)
	}
	learnTime(t, dead["last_probe_at"])

	warns := n.logs.lines("LLM provider unreachable")
	if len(warns) != 1 {
		t.Fatalf("\"LLM provider unreachable\" lines = %d, want 1: %v", len(warns), warns)
	}
	if w := warns[0]; w["level"] != "warn" || w["provider"] != "dead" || w["url"] != deadAddr || w["error"] == "" || w["error"] == nil {
		t.Fatalf("unreachable line: %v", w)
	}
	if back := n.logs.lines("LLM provider reachable again"); len(back) != 0 {
		t.Fatalf("reachable-again lines: %v", back)
	}

	body := n.scrape(t)
	expectMetric(t, body, "nexus_provider_up", map[string]string{"provider": "default"}, 1)
	expectMetric(t, body, "nexus_provider_up", map[string]string{"provider": "dead"}, 0)
	for _, p := range []string{"default", "dead"} {
		if _, ok := metric(body, "nexus_provider_probe_latency_seconds", map[string]string{"provider": p}); !ok {
			t.Errorf("nexus_provider_probe_latency_seconds{provider=%q} missing", p)
		}
	}
	// Probes are not chat calls.
	if got := n.LLM.Requests(); got != 0 {
		t.Fatalf("chat requests = %d, want 0", got)
	}
}

// Given code_generator's primary open and its backup closed, when metrics
// are scraped, then nexus_target_state says 2 and 0 for them, and calls,
// rejections and failovers carry the provider.
func TestMetricsShouldShowEachTargetsStateAndProvider(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.RecoveryTimeout = 1, 30
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "down"))

	// Given: the first call opens the primary and fails over; the second
	// skips the primary.
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 2, true)
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 1, true)
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("primary requests = %d, want 1", got)
	}

	// When
	body := n.scrape(t)

	// Then
	cg := func(extra map[string]string) map[string]string {
		m := map[string]string{"circuit": "code_generator"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	expectMetric(t, body, "nexus_target_state", cg(map[string]string{"provider": "default", "model": codegenModel}), 2)
	expectMetric(t, body, "nexus_target_state", cg(map[string]string{"provider": "backup", "model": learnBackupModel}), 0)
	expectMetric(t, body, "nexus_target_state", map[string]string{"circuit": "data_analyst", "provider": "default", "model": analystModel}, 0)
	expectMetric(t, body, "nexus_target_calls_total", cg(map[string]string{"provider": "default", "model": codegenModel, "outcome": "failure"}), 1)
	expectMetric(t, body, "nexus_target_calls_total", cg(map[string]string{"provider": "default", "model": codegenModel, "outcome": "rejected"}), 1)
	expectMetric(t, body, "nexus_target_calls_total", cg(map[string]string{"provider": "backup", "model": learnBackupModel, "outcome": "success"}), 2)
	expectMetric(t, body, "nexus_circuit_calls_total", cg(map[string]string{"outcome": "success"}), 2)
	if _, ok := metric(body, "nexus_target_calls_total", cg(map[string]string{"provider": "backup", "model": learnBackupModel, "outcome": "failure"})); ok {
		t.Fatal("a failure series for the backup, which never failed")
	}
	expectMetric(t, body, "nexus_llm_failovers_total", map[string]string{"circuit": "code_generator", "from_provider": "default", "to_provider": "backup"}, 2)
	expectMetric(t, body, "nexus_circuit_state", cg(map[string]string{"state": "open"}), 1)

	c := n.circuit(t, config.CircuitCodeGenerator)
	if c["state"] != "open" || c["health"] != "degraded" || c["available"] != true {
		t.Fatalf("circuit: state %v health %v available %v", c["state"], c["health"], c["available"])
	}
	if p, b := learnTarget(t, n, config.DefaultProvider), learnTarget(t, n, "backup"); p["admits"] != false || b["admits"] != true || b["state"] != "closed" {
		t.Fatalf("targets: primary %v, backup %v", p, b)
	}
}

// Given two code_generator targets that both fail with failure_threshold
// 1, when one call opens both, then each opening is logged once at WARN
// as "circuit state changed" naming its provider and model, primary first.
func TestTransitionLogLinesShouldNameTheTarget(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	backup.SetDefault(fakellm.Status(500, "backup down"))
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.RecoveryTimeout = 1, 30
	}))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "primary down"))

	// When
	r := n.generate(t)

	// Then
	expectStatus(t, r, http.StatusServiceUnavailable)
	if r.Body["attempts"] != 2.0 || len(r.Body["targets"].([]any)) != 2 {
		t.Fatalf("503 body: %s", r.Raw)
	}
	lines := n.logs.lines("circuit state changed")
	want := [][2]string{{config.DefaultProvider, codegenModel}, {"backup", learnBackupModel}}
	if len(lines) != len(want) {
		t.Fatalf("transition lines = %d, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		reason, _ := l["reason"].(string)
		if l["level"] != "warn" || l["circuit"] != "code_generator" || l["provider"] != w[0] || l["model"] != w[1] ||
			l["from"] != "closed" || l["to"] != "open" || l["forced"] != false || !strings.HasPrefix(reason, "1 consecutive failures") {
			t.Errorf("transition line %d = %v, want closed→open of %s/%s at warn", i, l, w[0], w[1])
		}
	}
}

// Given an alert webhook and two code_generator targets whose primary
// fails with failure_threshold 1, when a call opens the primary (the
// backup answers), then the webhook hears of exactly that opening, and
// the alert names the target: provider default, model codegenModel.
func TestAlertsShouldNameTheTargetThatChanged(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	backup := fakellm.New(t)
	backup.SetDefault(learnCode())
	n := startNexus(t, learnWithBackup(backup), learnCodegen(func(c *config.Circuit) {
		c.FailureThreshold, c.RecoveryTimeout = 1, 30
	}), func(o *startOpts) { o.cfg.Alerts.WebhookURL = hook.URL + "/alerts" })
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "down"))

	// When
	learnAnswer(t, n.generate(t), "backup", learnBackupModel, 2, true)

	// Then
	eventually(t, 10*time.Second, "the opening alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	a := got[0]
	mu.Unlock()
	if a["circuit"] != "code_generator" || a["from"] != "closed" || a["to"] != "open" ||
		a["provider"] != config.DefaultProvider || a["model"] != codegenModel {
		t.Fatalf("alert = %v, want closed→open of code_generator naming provider %q and model %q", a, config.DefaultProvider, codegenModel)
	}
}
