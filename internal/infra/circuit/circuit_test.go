package circuit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/redact"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// chatFunc adapts a function to circuit.Chatter, standing in for the HTTP
// client in these unit tests of the circuit's own logic.
type chatFunc func(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error)

func (f chatFunc) Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error) {
	return f(ctx, model, req)
}

func ok(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{Content: "fine", Model: "m"}, nil
}

func fail(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 500, Message: "boom"}
}

func reject(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 400, Message: "too long"}
}

func newCircuit(t testing.TB, c config.Circuit, enabled bool, chat chatFunc) *circuit.Circuit {
	t.Helper()
	cfg := config.Default()
	cfg.CircuitBreaker.Enabled = enabled
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return circuit.NewRegistry(specs(cfg, chat), circuit.Options{}).Circuit(config.CircuitDataAnalyst)
}

// numbered is an LLM whose n-th call (from 1) answers as pick(n) says;
// count tells how many calls reached it.
func numbered(pick func(n int) chatFunc) (up chatFunc, count func() int) {
	var mu sync.Mutex
	calls := 0
	up = func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		return pick(n)(ctx, m, r)
	}
	count = func() int {
		mu.Lock()
		defer mu.Unlock()
		return calls
	}
	return up, count
}

func call(c *circuit.Circuit) error {
	_, err := c.Complete(context.Background(), llm.ChatRequest{})
	return err
}

func kindOf(err error) llm.Kind {
	var le *circuit.LLMError
	if errors.As(err, &le) {
		return le.Kind
	}
	return ""
}

func waitState(t *testing.T, c *circuit.Circuit, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for c.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("state = %s, want %s", c.Status().State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Statistics add up: total = success + failure + rejected, timeouts are a
// part of failures, neutral outcomes count nowhere.
func TestStatsShouldAddUp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	script := []chatFunc{ok, ok, fail, reject, ok, fail, fail}
	c := newCircuit(t, config.Circuit{FailureThreshold: 2, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true,
		func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
			mu.Lock()
			next := script[0]
			script = script[1:]
			mu.Unlock()
			return next(ctx, m, r)
		})
	for i := 0; i < 7; i++ {
		_ = call(c)
	}
	_ = call(c) // rejected: the last two failures opened it
	s := c.Status().Stats
	if s.SuccessCount != 3 || s.FailureCount != 3 || s.RejectedCount != 1 || s.TotalCalls != 7 {
		t.Fatalf("stats = %+v", s)
	}
	// 3 of the 6 calls made succeeded; 1 of the 7 was rejected.
	if rate(s.SuccessRate) != "50" || rate(s.RejectionRate) != "14.29" || s.ConsecutiveFailures != 2 || s.LastError == nil || s.LastFailureAt == nil {
		t.Fatalf("stats = %+v (success_rate %s, rejection_rate %s)", s, rate(s.SuccessRate), rate(s.RejectionRate))
	}
}

// rate prints a rate, or "null" when it is unknown.
func rate(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// The rates are percentages rounded to 2 decimals, null over an empty
// denominator: success_rate over the calls made, rejection_rate over every
// call with a counted outcome.
func TestStatsRatesShouldBeOverTheirOwnDenominators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                       string
		script                     []chatFunc
		forceOpen                  bool
		rejected                   int
		wantSuccess, wantRejection string
	}{
		{name: "no calls: both null", wantSuccess: "null", wantRejection: "null"},
		{name: "only neutral outcomes: both null", script: []chatFunc{reject, reject}, wantSuccess: "null", wantRejection: "null"},
		{name: "only rejections: no call made", forceOpen: true, rejected: 3, wantSuccess: "null", wantRejection: "100"},
		{name: "one success", script: []chatFunc{ok}, wantSuccess: "100", wantRejection: "0"},
		{name: "two of three succeed", script: []chatFunc{ok, fail, ok}, wantSuccess: "66.67", wantRejection: "0"},
		{name: "rejections do not lower the success rate", script: []chatFunc{ok, ok, fail}, forceOpen: true, rejected: 1,
			wantSuccess: "66.67", wantRejection: "25"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, _ := numbered(func(n int) chatFunc { return tc.script[n-1] })
			c := newCircuit(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true, up)
			for range tc.script {
				_ = call(c)
			}
			if tc.forceOpen {
				if err := c.ForceOpen("test", circuit.All); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < tc.rejected; i++ {
				if kindOf(call(c)) != llm.KindCircuitOpen {
					t.Fatal("a call through a forced-open circuit was not rejected")
				}
			}
			s := c.Status().Stats
			if rate(s.SuccessRate) != tc.wantSuccess || rate(s.RejectionRate) != tc.wantRejection {
				t.Fatalf("success_rate %s, rejection_rate %s; want %s, %s (%+v)",
					rate(s.SuccessRate), rate(s.RejectionRate), tc.wantSuccess, tc.wantRejection, s)
			}
		})
	}
}

// A rate over nothing is JSON null, never 0 or NaN, and both keys are
// always present.
func TestStatsShouldEncodeUnknownRatesAsNull(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 1, Timeout: 1}, true, ok)
	s := c.Status().Stats
	if s.TotalCalls != 0 || s.LastError != nil || s.LastStateChangeAt != nil {
		t.Fatalf("fresh stats = %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"success_rate":null`, `"rejection_rate":null`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("fresh stats JSON lacks %s: %s", want, b)
		}
	}
	_ = call(c)
	b, err = json.Marshal(c.Status().Stats)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"success_rate":100,`, `"rejection_rate":0,`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("stats JSON after one success lacks %s: %s", want, b)
		}
	}
}

// A call admitted while closed that finishes after the circuit went
// half-open must not close it without a real trial.
func TestStalePermitShouldNotCloseAHalfOpenCircuit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	var mu sync.Mutex
	first := true
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.1, Timeout: 5}, true,
		func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
			mu.Lock()
			slow := first
			first = false
			mu.Unlock()
			if slow {
				close(started)
				<-release
				return ok(ctx, m, r)
			}
			return fail(ctx, m, r)
		})
	done := make(chan error, 1)
	go func() { done <- call(c) }()
	<-started
	if kindOf(call(c)) != llm.KindUnavailable {
		t.Fatal("second call should fail and open the circuit")
	}
	waitState(t, c, circuit.StateHalfOpen)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("slow call: %v", err)
	}
	if got := c.Status().State; got != circuit.StateHalfOpen {
		t.Fatalf("a stale success moved the circuit to %s", got)
	}
	if s := c.Status().Stats; s.SuccessCount != 1 {
		t.Fatalf("the stale success still counts in statistics: %+v", s)
	}
}

// The timeout cancels the inner call's context and is reported as
// llm_timeout even though the inner call sees context.Canceled.
func TestTimeoutShouldCancelTheInnerCall(t *testing.T) {
	t.Parallel()
	innerErr := make(chan error, 1)
	c := newCircuit(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 1, Timeout: 0.05}, true,
		func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
			<-ctx.Done()
			innerErr <- ctx.Err()
			return llm.ChatResponse{}, ctx.Err()
		})
	err := call(c)
	if kindOf(err) != llm.KindTimeout {
		t.Fatalf("err = %v", err)
	}
	if e := <-innerErr; !errors.Is(e, context.Canceled) {
		t.Fatalf("inner saw %v", e)
	}
	if s := c.Status().Stats; s.TimeoutCount != 1 || s.FailureCount != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// Concurrent callers keep the counters consistent (run with -race).
func TestConcurrentCallsShouldKeepStatsConsistent(t *testing.T) {
	t.Parallel()
	up, count := numbered(func(n int) chatFunc {
		switch n % 4 {
		case 0:
			return fail
		case 1:
			return reject
		default:
			return ok
		}
	})
	c := newCircuit(t, config.Circuit{FailureThreshold: 3, SuccessThreshold: 2, RecoveryTimeout: 0.01, Timeout: 1}, true, up)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				_ = call(c)
			}
		}()
	}
	wg.Wait()
	s := c.Status().Stats
	neutral := int64(1600) - s.TotalCalls
	if s.TotalCalls != s.SuccessCount+s.FailureCount+s.RejectedCount || neutral < 0 {
		t.Fatalf("stats = %+v", s)
	}
	if upstream := int64(count()); upstream != s.SuccessCount+s.FailureCount+neutral {
		t.Fatalf("upstream calls %d != success %d + failure %d + neutral %d", upstream, s.SuccessCount, s.FailureCount, neutral)
	}
}

// Disabled circuits never reject and report state disabled.
func TestDisabledCircuitShouldNeverReject(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, false, fail)
	for i := 0; i < 5; i++ {
		if k := kindOf(call(c)); k != llm.KindUnavailable {
			t.Fatalf("call %d: kind %q", i, k)
		}
	}
	st := c.Status()
	if st.State != circuit.StateDisabled || st.Stats.RejectedCount != 0 || st.Stats.FailureCount != 5 {
		t.Fatalf("status = %+v", st)
	}
}

// Given an upstream whose error message is 10 MB, when the call fails, then
// the error, last_error, the failure event and the opening transition's
// reason each hold at most redact.MaxRunes of it, cut with an ellipsis.
func TestAHugeUpstreamMessageShouldBeStoredAndReportedCut(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 10<<20)
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true,
		func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
			return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 500, Message: huge}
		})
	err := call(c)
	var le *circuit.LLMError
	if !errors.As(err, &le) {
		t.Fatalf("err = %.200v", err)
	}
	wantMsg := "upstream HTTP 500: " + strings.Repeat("x", redact.MaxRunes-len("upstream HTTP 500: ")) + redact.Ellipsis
	if le.Message != wantMsg {
		t.Fatalf("message (%d bytes) = %.80q…", len(le.Message), le.Message)
	}
	if got := le.Error(); got != "data_analyst: llm_unavailable: "+wantMsg {
		t.Fatalf("Error() (%d bytes) = %.80q…", len(got), got)
	}
	st := c.Status()
	if st.Stats.LastError == nil || *st.Stats.LastError != "llm_unavailable: "+wantMsg {
		t.Fatalf("last_error = %.80v…", st.Stats.LastError)
	}
	var failures int
	for _, e := range c.Events() {
		if len(e.Reason) > 1024 {
			t.Fatalf("%s event reason is %d bytes", e.Type, len(e.Reason))
		}
		if e.Type == circuit.EventFailure {
			failures++
			if e.Reason != wantMsg {
				t.Fatalf("failure event reason = %.80q…", e.Reason)
			}
		}
	}
	if failures != 1 || len(st.RecentTransitions) != 1 || len(st.RecentTransitions[0].Reason) > 1024 {
		t.Fatalf("failure events = %d, transitions = %d", failures, len(st.RecentTransitions))
	}
}

// A reply cut at max_response_bytes is a counted failure that reads as a
// malformed reply.
func TestAReplyPastTheCapShouldCountAsAMalformedReply(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 2, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true,
		func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
			return llm.ChatResponse{}, fmt.Errorf("error, reading response body: %w", &llm.ResponseTooLargeError{Limit: 65536})
		})
	err := call(c)
	const want = "malformed reply from the LLM: reply body exceeds llm.max_response_bytes (65536 bytes); the connection was closed"
	var le *circuit.LLMError
	if !errors.As(err, &le) || le.Kind != llm.KindUnavailable || le.Message != want {
		t.Fatalf("err = %v", err)
	}
	s := c.Status().Stats
	if s.FailureCount != 1 || s.ConsecutiveFailures != 1 || s.LastError == nil || *s.LastError != "llm_unavailable: "+want {
		t.Fatalf("stats = %+v", s)
	}
}

// specs turns a validated config into the registry's config, as
// cmd/server/app does: one target per circuit on up. Settings left at zero
// in a test's config.Circuit literal take their defaults.
func specs(cfg config.Config, up circuit.Chatter) circuit.RegistryConfig {
	out := circuit.RegistryConfig{Enabled: cfg.CircuitBreaker.Enabled, LogCircuitChanges: cfg.CircuitBreaker.LogCircuitChanges}
	for _, name := range config.CircuitNames() {
		cc := cfg.CircuitBreaker.Circuits[name].Effective()
		s := circuit.Settings{
			FailureThreshold: cc.FailureThreshold, SuccessThreshold: cc.SuccessThreshold, MaxConcurrent: cc.MaxConcurrent,
			RecoveryTimeout: cc.RecoveryTimeout.Duration(), Timeout: cc.Timeout.Duration(),
			RecoveryBackoffMultiplier: cc.RecoveryBackoffMultiplier, MaxRecoveryTimeout: cc.MaxRecoveryTimeout.Duration(),
			MaxAttempts: cc.MaxAttempts, RetryBackoff: cc.RetryBackoff.Duration(), MaxRetryBackoff: cc.MaxRetryBackoff.Duration(),
			MaxRetryAfter: cc.MaxRetryAfter.Duration(), FailureRateThreshold: cc.FailureRateThreshold,
			FailureRateWindow: cc.FailureRateWindow.Duration(), MinimumCalls: cc.MinimumCalls,
			HedgeAfter: cc.HedgeAfter.Duration(), HedgeBudgetPercent: cc.HedgeBudgetPercent, RecoveryProbe: cc.RecoveryProbe,
		}
		out.Circuits = append(out.Circuits, circuit.Spec{Name: name, Settings: s, Targets: []circuit.TargetSpec{
			{Provider: "default", Model: "llama3.1", URL: "http://llm.test", LLM: up},
		}})
	}
	return out
}
