package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/ratelimit/redistest"
)

// withLimits sets the ratelimit section's windows.
func withLimits(perMinute, burst, perHour int) func(*startOpts) {
	return func(o *startOpts) {
		o.cfg.RateLimit.PerMinute, o.cfg.RateLimit.Burst, o.cfg.RateLimit.PerHour = perMinute, burst, perHour
	}
}

// withRedis keeps the counters in the Redis at url.
func withRedis(url, onError string) func(*startOpts) {
	return func(o *startOpts) {
		o.cfg.RateLimit.RedisURL, o.cfg.RateLimit.OnRedisError = url, onError
		o.cfg.RateLimit.RedisTimeout = 0.2 // generous under -race on a busy machine
	}
}

// The defaults of the original system: 60 a minute with a burst of 10, and
// 1,000 an hour, per client address while no key is configured. The 11th
// request of a burst gets 429 with Retry-After and the RateLimit fields;
// after the wait it passes.
func TestTheEleventhRequestInABurstShouldGet429AndPassAfterTheWait(t *testing.T) {
	t.Parallel()
	def := config.Default().RateLimit
	n := startNexus(t, withLimits(def.PerMinute, def.Burst, def.PerHour))
	const policy = `"minute";q=60;w=60, "hour";q=1000;w=3600`

	// When 10 requests arrive at once, each passes and says what is left
	for i := range 10 {
		r := n.get(t, "/datasets")
		expectStatus(t, r, http.StatusOK)
		if got := r.Header.Get("RateLimit-Policy"); got != policy {
			t.Fatalf("RateLimit-Policy = %q, want %q", got, policy)
		}
		if rem := r.Header.Get("X-RateLimit-Remaining"); rem != strconv.Itoa(9-i) {
			t.Fatalf("request %d: X-RateLimit-Remaining = %q, want %d (RateLimit %q)", i+1, rem, 9-i, r.Header.Get("RateLimit"))
		}
	}
	// Then the 11th is refused, told to wait a second
	r := n.get(t, "/datasets")
	refusedAt := time.Now()
	expectCode(t, r, http.StatusTooManyRequests, "rate_limited")
	for name, want := range map[string]string{
		"Retry-After": "1", "RateLimit": `"minute";r=0;t=1`, "RateLimit-Policy": policy,
		"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// And after the wait one passes (polled, a refusal every 100 ms costs
	// nothing), no sooner than the refusal said
	var passed time.Time
	eventually(t, 5*time.Second, "a request to pass after Retry-After", func() bool {
		time.Sleep(90 * time.Millisecond)
		if n.get(t, "/datasets").Status == http.StatusOK {
			passed = time.Now()
			return true
		}
		return false
	})
	if waited := passed.Sub(refusedAt); waited < 500*time.Millisecond {
		t.Fatalf("a request passed %v after the refusal; the burst was spent for about 1 s", waited)
	}
	// And the probes and health are not limited
	for range 20 {
		expectStatus(t, n.get(t, "/healthz"), http.StatusOK)
	}
	expectStatus(t, n.get(t, "/api/health/status"), http.StatusOK)
}

// A key's rate_limit overrides the section's, and each key has its own
// counters.
func TestEachKeyShouldHaveItsOwnLimits(t *testing.T) {
	t.Parallel()
	two := 2
	tight := apiKey("tight", keyTeamA, config.ScopeDatasetsRead)
	tight.RateLimit = &config.KeyRateLimit{Burst: &two}
	n := startNexus(t, withLimits(60, 5, 1000), withKeys(tight, apiKey("roomy", keyTeamB, config.ScopeDatasetsRead)))
	ok := func(key string, count int) int {
		passed := 0
		for range count {
			if n.as(t, key, http.MethodGet, "/datasets", nil).Status == http.StatusOK {
				passed++
			}
		}
		return passed
	}
	if got := ok(keyTeamA, 4); got != 2 {
		t.Fatalf("tight key: %d of 4 passed, want its burst of 2", got)
	}
	if got := ok(keyTeamB, 6); got != 5 {
		t.Fatalf("roomy key: %d of 6 passed, want the section's burst of 5", got)
	}
}

// A key's token budget is counted from the upstream's usage: once spent,
// its LLM routes answer 429 budget_exceeded with Retry-After to the
// window's end; the new window serves it again. Tokens are counted by key
// in nexus_llm_tokens_total.
func TestATokenBudgetShouldRunOutAndReset(t *testing.T) {
	t.Parallel()
	// Given a key with a budget of 50 tokens per 3-second window (the
	// fake upstream reports ~4 characters a token, and a /generate prompt
	// is a few hundred characters)
	spender := apiKey("spender", keyTeamA, config.ScopeGenerate)
	spender.TokenBudget = 50
	n := startNexus(t, withKeys(spender, apiKey("observer", keyObserve, config.ScopeObserve)),
		func(o *startOpts) { o.cfg.RateLimit.BudgetWindowSeconds = 3 })
	generate := func() response {
		return n.as(t, keyTeamA, http.MethodPost, "/generate", map[string]any{"prompt": "sum the sales column"})
	}

	// When it generates until refused (the first request may fall at a
	// window's end, so allow a few)
	var refused response
	eventually(t, 10*time.Second, "the budget to run out", func() bool {
		r := generate()
		if r.Status == http.StatusTooManyRequests {
			refused = r
			return true
		}
		expectStatus(t, r, http.StatusOK)
		return false
	})

	// Then it was refused for its budget, until the window's end
	expectCode(t, refused, http.StatusTooManyRequests, "budget_exceeded")
	ra, err := strconv.Atoi(refused.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3 {
		t.Fatalf("Retry-After = %q, want 1..3 s", refused.Header.Get("Retry-After"))
	}
	if msg := refused.Body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "token budget of 50") {
		t.Fatalf("message = %q", msg)
	}
	// And once the window turns, it is served again
	eventually(t, 6*time.Second, "the budget to renew", func() bool {
		time.Sleep(100 * time.Millisecond)
		return generate().Status == http.StatusOK
	})
	// And the tokens were counted for the key
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+keyObserve)
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	got, ok := metric(body, "nexus_llm_tokens_total", map[string]string{
		"circuit": config.CircuitCodeGenerator, "provider": config.DefaultProvider, "model": codegenModel, "key": "spender"})
	if !ok || got < 50 {
		t.Fatalf("nexus_llm_tokens_total for spender = %v (present %v)", got, ok)
	}
	if v, _ := metric(body, "nexus_ratelimit_refused_total", map[string]string{"reason": "budget_exceeded"}); v < 1 {
		t.Fatalf("nexus_ratelimit_refused_total{reason=budget_exceeded} = %v", v)
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b.String())
	}
	return b.String()
}

// Two Nexus processes pointed at one redis-server enforce one limit
// between them: hammered at once, together they let through the burst,
// not twice the burst.
func TestTwoReplicasSharingRedisShouldEnforceOneLimit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// Given a burst of 10 refilled at one a minute, so that the count
	// does not depend on how long the hammering takes
	opts := []func(*startOpts){withKeys(apiKey("shared", keyTeamA, config.ScopeDatasetsRead)),
		withLimits(1, 10, 1000), withRedis(srv.URL(), config.OnRedisErrorAllow)}
	replicas := []*nexus{startNexus(t, opts...), startNexus(t, opts...)}

	// When both are sent 25 requests at once, 4 clients each
	var passed, refused atomic.Int64
	var wg sync.WaitGroup
	for _, n := range replicas {
		for range 4 {
			wg.Go(func() {
				for range 25 {
					r := n.as(t, keyTeamA, http.MethodGet, "/datasets", nil)
					switch r.Status {
					case http.StatusOK:
						passed.Add(1)
					case http.StatusTooManyRequests:
						refused.Add(1)
					default:
						t.Errorf("status %d: %s", r.Status, r.Raw)
					}
				}
			})
		}
	}
	wg.Wait()

	// Then exactly the burst passed, across both
	t.Logf("two replicas, 200 requests: %d passed, %d refused", passed.Load(), refused.Load())
	if passed.Load() != 10 || refused.Load() != 190 {
		t.Fatalf("%d passed and %d were refused across two replicas; want the one limit's 10 and 190", passed.Load(), refused.Load())
	}
}

// With Redis gone, on_redis_error decides: allow lets requests through
// unlimited, deny answers 503 with Retry-After; both log and count the
// failures, and both enforce the limits again once Redis is back.
func TestWithRedisStoppedAllowAndDenyShouldBehaveAsDocumented(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	allow := startNexus(t, withLimits(60, 10, 1000), withRedis(srv.URL(), config.OnRedisErrorAllow))
	deny := startNexus(t, withLimits(60, 10, 1000), withRedis(srv.URL(), config.OnRedisErrorDeny))
	expectStatus(t, allow.get(t, "/datasets"), http.StatusOK)
	expectStatus(t, deny.get(t, "/datasets"), http.StatusOK)

	// When Redis stops
	srv.Stop()

	// Then allow serves, unlimited: past the burst, without RateLimit fields
	for i := range 15 {
		r := allow.get(t, "/datasets")
		expectStatus(t, r, http.StatusOK)
		if r.Header.Get("RateLimit") != "" {
			t.Fatalf("request %d: RateLimit %q without a store", i, r.Header.Get("RateLimit"))
		}
	}
	// And deny refuses with 503 and Retry-After
	r := deny.get(t, "/datasets")
	expectCode(t, r, http.StatusServiceUnavailable, "rate_limiter_unavailable")
	if r.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	// And both counted and logged the failures, the log at most once a
	// period
	for _, n := range []*nexus{allow, deny} {
		if v, _ := metric(n.scrape(t), "nexus_ratelimit_redis_errors_total", map[string]string{"op": "limit"}); v < 1 {
			t.Fatalf("nexus_ratelimit_redis_errors_total{op=limit} = %v", v)
		}
		if lines := n.logs.lines("rate limiter: Redis call failed"); len(lines) != 1 || lines[0]["level"] != "warn" {
			t.Fatalf("failure log lines = %v", lines)
		}
	}
	if v, _ := metric(deny.scrape(t), "nexus_ratelimit_refused_total", map[string]string{"reason": "store_unavailable"}); v < 1 {
		t.Fatalf("nexus_ratelimit_refused_total{reason=store_unavailable} = %v", v)
	}

	// When Redis is back (empty), deny serves again, with the limits
	srv.Restart()
	eventually(t, 10*time.Second, "deny to serve again", func() bool {
		time.Sleep(50 * time.Millisecond)
		return deny.get(t, "/datasets").Status == http.StatusOK
	})
	if r := allow.get(t, "/datasets"); r.Header.Get("RateLimit") == "" {
		t.Fatalf("allow: no RateLimit field with Redis back: %v", r.Header)
	}
}
