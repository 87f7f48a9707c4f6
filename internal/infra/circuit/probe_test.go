package circuit_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// Regression (review of issue 9): the recovery probe sends max_tokens=1; go-openai refuses that
// client-side for o1/o3/o4/gpt-5 models (ErrReasoningModelMaxTokensDeprecated),
// which Classify counts as a FAILURE. The probe never reaches the healthy
// upstream, the target reopens with growing backoff forever, and user calls
// are never admitted as trials.
func TestARecoveryProbeShouldReachAReasoningModel(t *testing.T) {
	t.Parallel()
	var n, served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if n.Add(1) == 1 {
			http.Error(w, `{"error":{"message":"boom"}}`, 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"gpt-5","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}]}`))
	}))
	defer srv.Close()
	cl := llm.NewClient(llm.Config{BaseURL: srv.URL + "/v1", APIKey: "k", MaxIdleConnsPerHost: 2})
	defer cl.Close()
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.05,
		Timeout: 5, RecoveryProbe: true}
	rc := specs(cfg, cl)
	for i := range rc.Circuits {
		for j := range rc.Circuits[i].Targets {
			rc.Circuits[i].Targets[j].Model = "gpt-5"
		}
	}
	r := circuit.NewRegistry(rc, circuit.Options{})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	_ = call(c) // 500: open
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().State != circuit.StateClosed && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := c.Status()
	if st.State != circuit.StateClosed {
		t.Fatalf("upstream healthy since the first call, yet state %s, upstream requests %d, failures %d, last error %v, current recovery timeout %s",
			st.State, served.Load(), st.Stats.FailureCount, *st.Stats.LastError, st.Targets[0].CurrentRecoveryTimeout)
	}
}

// Regression (review of issue 9): runProbe calls cancel() before testing ctx.Err(), so every failed probe
// (a 500, a 401, a refused connection) is relabelled llm_timeout.
func TestAFailedRecoveryProbeShouldKeepItsOwnKind(t *testing.T) {
	t.Parallel()
	var outcomes atomic.Value
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.05,
		MaxRecoveryTimeout: 10, RecoveryBackoffMultiplier: 10, Timeout: 5, RecoveryProbe: true}
	r := circuit.NewRegistry(specs(cfg, chatFunc(fail)), circuit.Options{Hooks: circuit.Hooks{OnCall: func(e circuit.CallEvent) {
		if e.Outcome != circuit.CallRejected {
			outcomes.Store(e.Outcome)
		}
	}}})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	_ = call(c)
	deadline := time.Now().Add(3 * time.Second)
	for c.Status().Stats.FailureCount < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := c.Status().Stats
	if st.TimeoutCount != 0 {
		t.Fatalf("probe got an HTTP 500 in microseconds, yet timeouts %d, last error %q, metric outcome %v", st.TimeoutCount, *st.LastError, outcomes.Load())
	}
}
