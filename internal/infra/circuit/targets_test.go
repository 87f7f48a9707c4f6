package circuit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// These unit tests drive the routing across targets with in-process
// stand-ins for each provider's client; test/failover_test.go and
// test/learning_test.go prove the same behaviour through the HTTP API
// against fake upstreams.

// clock is a settable clock for delays that must not depend on the
// machine's speed.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// counted wraps a stand-in client and counts the requests it receives.
type counted struct {
	n  atomic.Int64
	fn chatFunc
}

func (c *counted) Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error) {
	c.n.Add(1)
	return c.fn(ctx, model, req)
}

func count(fn chatFunc) *counted { return &counted{fn: fn} }

// twoTargets builds the data_analyst circuit with primary on "default" and
// backup on "backup".
func twoTargets(t testing.TB, cc config.Circuit, primary, backup circuit.Chatter, opts circuit.Options) (*circuit.Circuit, *circuit.Registry) {
	t.Helper()
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = cc
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rc := specs(cfg, primary)
	for i := range rc.Circuits {
		if rc.Circuits[i].Name == config.CircuitDataAnalyst {
			rc.Circuits[i].Targets = append(rc.Circuits[i].Targets,
				circuit.TargetSpec{Provider: "backup", Model: "b", URL: "http://backup.test", LLM: backup})
		}
	}
	r := circuit.NewRegistry(rc, opts)
	t.Cleanup(r.Close)
	return r.Circuit(config.CircuitDataAnalyst), r
}

func complete(c *circuit.Circuit) (llm.ChatResponse, *circuit.LLMError) {
	resp, err := c.Complete(context.Background(), llm.ChatRequest{})
	var le *circuit.LLMError
	if err != nil && !errors.As(err, &le) {
		panic(err)
	}
	return resp, le
}

func TestACallShouldSkipAnOpenPrimaryWithoutARequest(t *testing.T) {
	t.Parallel()
	// Given a dead primary and a working backup
	primary, backup := count(fail), count(ok)
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 2, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5}, primary, backup, circuit.Options{})
	// When five calls are made
	for i := 0; i < 5; i++ {
		resp, err := complete(c)
		// Then each is answered by the backup, as a failover
		if err != nil || resp.Provider != "backup" || !resp.Failover {
			t.Fatalf("call %d: %+v, %v", i, resp, err)
		}
	}
	// And the primary saw only the failure_threshold requests that opened it
	if n := primary.n.Load(); n != 2 {
		t.Fatalf("primary got %d requests, want 2", n)
	}
	st := c.Status()
	if st.State != circuit.StateOpen || !st.Available || st.Targets[0].State != circuit.StateOpen || st.Targets[1].State != circuit.StateClosed {
		t.Fatalf("status: state %s available %v targets %+v", st.State, st.Available, st.Targets)
	}
	if st.Targets[0].Stats.RejectedCount != 3 || st.Targets[1].Stats.SuccessCount != 5 {
		t.Fatalf("target stats: %+v / %+v", st.Targets[0].Stats, st.Targets[1].Stats)
	}
}

func TestNoTargetAnsweringShouldListThemAllWithTheSoonestRetryAfter(t *testing.T) {
	t.Parallel()
	// Given two dead targets that open at the first failure
	clk := newClock()
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5},
		count(fail), count(fail), circuit.Options{Now: clk.Now})
	// When a call fails on both
	_, err := complete(c)
	// Then the error lists both targets and counts two requests
	if err == nil || err.Kind != llm.KindUnavailable || len(err.Targets) != 2 || err.Attempts != 2 {
		t.Fatalf("first call: %+v", err)
	}
	for _, tr := range err.Targets {
		if tr.State != circuit.StateOpen || tr.LastError == nil || !strings.Contains(*tr.LastError, "HTTP 500") {
			t.Fatalf("target report %+v", tr)
		}
	}
	// And once both are open, a call sends nothing and says when the
	// first target admits again
	clk.add(10 * time.Second)
	_, err = complete(c)
	if err == nil || err.Kind != llm.KindCircuitOpen || err.Attempts != 0 || err.RetryAfter != 20*time.Second {
		t.Fatalf("second call: %+v", err)
	}
}

func TestARejectedRequestShouldNotFailOver(t *testing.T) {
	t.Parallel()
	backup := count(ok)
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5},
		count(reject), backup, circuit.Options{})
	_, err := complete(c)
	if err == nil || err.Kind != llm.KindRejected || backup.n.Load() != 0 {
		t.Fatalf("err %+v, backup requests %d", err, backup.n.Load())
	}
}

func TestAPromptTooLongShouldFailOverAndCountNothingAgainstThePrimary(t *testing.T) {
	t.Parallel()
	tooLong := count(func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
		return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 400, Code: "context_length_exceeded", Message: "too long"}
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5},
		tooLong, count(ok), circuit.Options{})
	resp, err := complete(c)
	if err != nil || resp.Provider != "backup" || resp.Attempts != 2 {
		t.Fatalf("resp %+v err %+v", resp, err)
	}
	if st := c.Status().Targets[0]; st.State != circuit.StateClosed || st.Stats.FailureCount != 0 {
		t.Fatalf("primary %+v", st)
	}
}

func TestRetriesShouldStopOnceTheBreakerOpens(t *testing.T) {
	t.Parallel()
	// Given one failing target, max_attempts 5 and failure_threshold 2
	up := count(fail)
	var retries atomic.Int64
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 2, SuccessThreshold: 1, RecoveryTimeout: 30,
		Timeout: 5, MaxAttempts: 5, RetryBackoff: 0.001, MaxRetryBackoff: 0.002}
	r := circuit.NewRegistry(specs(cfg, up), circuit.Options{Hooks: circuit.Hooks{OnRetry: func(string, string, string) { retries.Add(1) }}})
	t.Cleanup(r.Close)
	// When one call is made
	_, err := complete(r.Circuit(config.CircuitDataAnalyst))
	// Then it tried twice, retried once, and stopped at the open breaker
	if err == nil || up.n.Load() != 2 || retries.Load() != 1 || err.Attempts != 2 {
		t.Fatalf("err %+v, requests %d, retries %d", err, up.n.Load(), retries.Load())
	}
}

func TestABadKeyShouldFailOverWithoutARetry(t *testing.T) {
	t.Parallel()
	badKey := count(func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
		return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 401, Message: "bad key"}
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5,
		MaxAttempts: 3, RetryBackoff: 0.001, MaxRetryBackoff: 0.002}, badKey, count(ok), circuit.Options{})
	resp, err := complete(c)
	if err != nil || resp.Provider != "backup" || badKey.n.Load() != 1 || resp.Attempts != 2 {
		t.Fatalf("resp %+v err %+v primary requests %d", resp, err, badKey.n.Load())
	}
}

func TestRecoveryBackoffShouldGrowTheOpenDelayAndResetOnClose(t *testing.T) {
	t.Parallel()
	// Given a target that fails until told otherwise, recovery 10 s
	// doubled on each reopening up to 35 s, on a settable clock
	clk := newClock()
	var healthy atomic.Bool
	up := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		if healthy.Load() {
			return ok(ctx, m, r)
		}
		return fail(ctx, m, r)
	})
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 10,
		Timeout: 5, RecoveryBackoffMultiplier: 2, MaxRecoveryTimeout: 35}
	r := circuit.NewRegistry(specs(cfg, up), circuit.Options{Now: clk.Now})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	delay := func() time.Duration { return c.Status().Targets[0].CurrentRecoveryTimeout }

	_, _ = complete(c)
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 35 * time.Second, 35 * time.Second} {
		if got := delay(); got != want || c.Status().State != circuit.StateOpen {
			t.Fatalf("opening %d: delay %s, state %s; want %s, open", i, got, c.Status().State, want)
		}
		clk.add(want - time.Millisecond)
		if c.Status().State != circuit.StateOpen {
			t.Fatalf("opening %d: half-open before its delay", i)
		}
		clk.add(time.Millisecond)
		if c.Status().State != circuit.StateHalfOpen {
			t.Fatalf("opening %d: not half-open after its delay", i)
		}
		if i < 3 {
			_, _ = complete(c) // the trial fails: reopen
		}
	}
	// When the trial succeeds, the circuit closes and the delay resets
	healthy.Store(true)
	if _, err := complete(c); err != nil || c.Status().State != circuit.StateClosed || delay() != 10*time.Second {
		t.Fatalf("after a good trial: err %v state %s delay %s", err, c.Status().State, delay())
	}
	healthy.Store(false)
	_, _ = complete(c)
	if delay() != 10*time.Second {
		t.Fatalf("first opening after a close: delay %s, want 10s", delay())
	}
}

func TestAFailureRateShouldOpenATargetThatNeverFailsTwiceInARow(t *testing.T) {
	t.Parallel()
	// Given a target failing every other call, failure_threshold 3 (never
	// reached), and a 50 % rate over at least 6 calls
	up, _ := numbered(func(n int) chatFunc {
		if n%2 == 1 {
			return fail
		}
		return ok
	})
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 30,
		Timeout: 5, FailureRateThreshold: 50, FailureRateWindow: 60, MinimumCalls: 6}
	var reasons []string
	r := circuit.NewRegistry(specs(cfg, up), circuit.Options{Hooks: circuit.Hooks{OnTransition: func(tr circuit.Transition) { reasons = append(reasons, tr.Reason) }}})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	// When five calls are made, it stays closed; the sixth opens it
	for i := 1; i <= 6; i++ {
		_, _ = complete(c)
		want := circuit.StateClosed
		if i == 6 {
			want = circuit.StateOpen
		}
		if got := c.Status().State; got != want {
			t.Fatalf("after call %d: %s, want %s", i, got, want)
		}
	}
	if len(reasons) != 1 || !strings.Contains(reasons[0], "failure rate 50% (3 of 6 calls)") {
		t.Fatalf("transition reasons %q", reasons)
	}
}

func TestAHedgeShouldWinOverASlowPrimaryAndCancelIt(t *testing.T) {
	t.Parallel()
	// Given a primary that answers only when cancelled, a fast backup, and
	// hedging after 10 ms with the whole budget
	var cancelled atomic.Int64
	slow := count(func(ctx context.Context, _ string, _ llm.ChatRequest) (llm.ChatResponse, error) {
		<-ctx.Done()
		cancelled.Add(1)
		return llm.ChatResponse{}, ctx.Err()
	})
	var won, lost atomic.Int64
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 30,
		HedgeAfter: 0.01, HedgeBudgetPercent: 100}, slow, count(ok), circuit.Options{Hooks: circuit.Hooks{OnHedge: func(_, o string) {
		if o == circuit.HedgeWon {
			won.Add(1)
		} else {
			lost.Add(1)
		}
	}}})
	// When a call is made
	resp, err := complete(c)
	// Then the backup answers, the primary's request was cancelled and
	// counts as neither success nor failure
	if err != nil || resp.Provider != "backup" || !resp.Failover || resp.Attempts != 2 {
		t.Fatalf("resp %+v err %+v", resp, err)
	}
	st := c.Status().Targets[0]
	if cancelled.Load() != 1 || st.State != circuit.StateClosed || st.Stats.FailureCount != 0 || st.InFlight != 0 || won.Load() != 1 || lost.Load() != 0 {
		t.Fatalf("cancelled %d, primary %+v, won %d lost %d", cancelled.Load(), st, won.Load(), lost.Load())
	}
}

func TestTheHedgeBudgetShouldHold(t *testing.T) {
	t.Parallel()
	// Given a primary that always answers after 20 ms, hedging after 1 ms
	// and a budget of 10 % of the calls
	slow := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		select {
		case <-time.After(20 * time.Millisecond):
			return ok(ctx, m, r)
		case <-ctx.Done():
			return llm.ChatResponse{}, ctx.Err()
		}
	})
	backup := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		select {
		case <-time.After(40 * time.Millisecond): // slower still: the primary wins
			return ok(ctx, m, r)
		case <-ctx.Done():
			return llm.ChatResponse{}, ctx.Err()
		}
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 30,
		HedgeAfter: 0.001, HedgeBudgetPercent: 10}, slow, backup, circuit.Options{})
	// When 25 calls are made within the minute
	for i := 0; i < 25; i++ {
		if _, err := complete(c); err != nil {
			t.Fatal(err)
		}
	}
	// Then at most 10 % of them were hedged: 2
	if n := backup.n.Load(); n != 2 {
		t.Fatalf("hedged requests %d, want 2 (10 %% of 25)", n)
	}
}

func TestARecoveryProbeShouldCloseTheTargetWithoutAUserCall(t *testing.T) {
	t.Parallel()
	// Given a target that failed once and is well since, recovery probes
	// on, and two successes needed
	var healthy atomic.Bool
	var probes atomic.Int64
	up := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		if r.MaxTokens == 1 {
			probes.Add(1)
		}
		if healthy.Load() {
			return ok(ctx, m, r)
		}
		return fail(ctx, m, r)
	})
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 2, RecoveryTimeout: 0.05,
		Timeout: 5, RecoveryProbe: true}
	r := circuit.NewRegistry(specs(cfg, up), circuit.Options{})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	_, _ = complete(c)
	healthy.Store(true)
	// When nobody calls, the probes alone close it
	waitState(t, c, circuit.StateClosed)
	if probes.Load() != 2 || up.n.Load() != 3 {
		t.Fatalf("probes %d, requests %d; want 2 probes after 1 user call", probes.Load(), up.n.Load())
	}
}

func TestAForcedOpenShouldHoldThroughARebuildAndEndOnClose(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	r := circuit.NewRegistry(specs(cfg, chatFunc(ok)), circuit.Options{})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	if err := c.ForceOpen("test", circuit.All); err != nil {
		t.Fatal(err)
	}
	// When a reload changes the breaker's settings
	cc := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	cc.FailureThreshold++
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = cc
	if rebuilt := r.Apply(specs(cfg, chatFunc(ok))); len(rebuilt) != 1 {
		t.Fatalf("rebuilt %v", rebuilt)
	}
	// Then the operator's hold stands
	if st := c.Status(); st.State != circuit.StateOpen || !st.Forced || kindOf(call(c)) != llm.KindCircuitOpen {
		t.Fatalf("after the rebuild: %s forced=%v", st.State, st.Forced)
	}
	_ = c.Close("test", circuit.All)
	if st := c.Status(); st.State != circuit.StateClosed || st.Forced || call(c) != nil {
		t.Fatalf("after close: %s forced=%v", st.State, st.Forced)
	}
}

func TestAReloadAddingATargetShouldKeepTheFirstTargetsState(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5}
	primary := count(fail)
	r := circuit.NewRegistry(specs(cfg, primary), circuit.Options{})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	_ = call(c)
	// When a reload adds a backup target
	rc := specs(cfg, primary)
	rc.Circuits[0].Targets = append(rc.Circuits[0].Targets, circuit.TargetSpec{Provider: "backup", Model: "b", URL: "http://backup.test", LLM: chatFunc(ok)})
	if rebuilt := r.Apply(rc); len(rebuilt) != 0 {
		t.Fatalf("adding a target rebuilt %v", rebuilt)
	}
	// Then the first target is still open, and the backup answers
	st := c.Status()
	if st.State != circuit.StateOpen || len(st.Targets) != 2 || st.Targets[0].Stats.FailureCount != 1 {
		t.Fatalf("after the reload: %+v", st)
	}
	if resp, err := complete(c); err != nil || resp.Provider != "backup" || primary.n.Load() != 1 {
		t.Fatalf("resp %+v err %+v primary %d", resp, err, primary.n.Load())
	}
}

func TestAdminActionsShouldNameOneTargetOrAll(t *testing.T) {
	t.Parallel()
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5}, count(ok), count(ok), circuit.Options{})
	if err := c.ForceOpen("test", circuit.Selector{Provider: "backup", Model: "b"}); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Targets[0].State != circuit.StateClosed || st.Targets[1].State != circuit.StateOpen || !st.Targets[1].Forced {
		t.Fatalf("targets %+v", st.Targets)
	}
	err := c.Reset("test", circuit.Selector{Provider: "backup", Model: "nope"})
	if !errors.Is(err, circuit.ErrUnknownTarget) || !strings.Contains(err.Error(), "default/llama3.1, backup/b") {
		t.Fatalf("unknown target: %v", err)
	}
	_ = c.Close("test", circuit.All)
	if st := c.Status(); st.Targets[1].State != circuit.StateClosed {
		t.Fatalf("after close all: %+v", st.Targets)
	}
}
