package circuit_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// A call in flight when an operator forces a change records nothing into
// the new state.
func TestCallInFlightAcrossAForcedChangeShouldNotRecord(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5}, true,
		func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
			once.Do(func() { close(started) })
			<-release
			return fail(ctx, m, r)
		})
	done := make(chan error, 1)
	go func() { done <- call(c) }()
	<-started
	if err := c.ForceOpen("test", circuit.All); err != nil {
		t.Fatal(err)
	}
	c.Close("test", circuit.All)
	close(release)
	if kindOf(<-done) != llm.KindUnavailable {
		t.Fatal("the in-flight call should still fail for its caller")
	}
	st := c.Status()
	if st.State != circuit.StateClosed {
		t.Fatalf("a stale failure opened the circuit: %s", st.State)
	}
	if st.Stats.FailureCount != 1 || st.Stats.ConsecutiveFailures != 0 {
		t.Fatalf("the failure should count in statistics but not in the new streak: %+v", st.Stats)
	}
}

// Given failure_threshold 3, when an operator closes the circuit, from
// closed with two failures counted or from open, then the streak is 0 and
// the circuit opens on exactly the third failure after the close.
func TestCloseShouldStartTheFailureCountAfresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before int // failures before the close
		state  string
	}{
		{name: "from closed with two failures", before: 2, state: circuit.StateClosed},
		{name: "from open", before: 3, state: circuit.StateOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, count := numbered(func(int) chatFunc { return fail })
			c := newCircuit(t, config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true, up)
			for i := 0; i < tc.before; i++ {
				_ = call(c)
			}
			if st := c.Status(); st.State != tc.state || st.Stats.ConsecutiveFailures != int64(tc.before) {
				t.Fatalf("before the close: %s, %+v", st.State, st.Stats)
			}
			c.Close("test", circuit.All)
			if st := c.Status(); st.State != circuit.StateClosed || st.Stats.ConsecutiveFailures != 0 || st.Stats.FailureCount != int64(tc.before) {
				t.Fatalf("after the close: %s, %+v", st.State, st.Stats)
			}
			for i := 1; i <= 3; i++ {
				_ = call(c)
				want := circuit.StateClosed
				if i == 3 {
					want = circuit.StateOpen
				}
				if st := c.Status(); st.State != want || st.Stats.ConsecutiveFailures != int64(i) {
					t.Fatalf("after %d failures: %s, %+v; want %s", i, st.State, st.Stats, want)
				}
			}
			if kindOf(call(c)) != llm.KindCircuitOpen || count() != tc.before+3 {
				t.Fatalf("the call after the opening reached the LLM: %d calls", count())
			}
		})
	}
}

// With circuit breakers disabled, Close has no breaker to close but still
// zeroes the streak.
func TestCloseShouldZeroTheStreakWhenDisabled(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, false, fail)
	_ = call(c)
	_ = call(c)
	c.Close("test", circuit.All)
	if st := c.Status(); st.State != circuit.StateDisabled || st.Stats.ConsecutiveFailures != 0 || st.Stats.FailureCount != 2 {
		t.Fatalf("after close: %s, %+v", st.State, st.Stats)
	}
}

func TestResetShouldZeroStatisticsAndKeepEvents(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true, fail)
	_ = call(c)
	_ = call(c)
	c.Reset("test", circuit.All)
	st := c.Status()
	if st.State != circuit.StateClosed || st.Stats.TotalCalls != 0 || st.Stats.FailureCount != 0 ||
		st.Stats.RejectedCount != 0 || st.Stats.ConsecutiveFailures != 0 || st.Stats.LastError != nil {
		t.Fatalf("after reset: %+v", st)
	}
	ev := c.Events()
	if len(ev) == 0 || ev[len(ev)-1].Type != circuit.EventReset {
		t.Fatalf("events: %+v", ev)
	}
}

// A forced-open rejection says so in its cause, and is still an open
// rejection to anyone who asks only that; a tripped circuit's is not forced.
func TestForcedOpenRejectionShouldWrapErrCircuitOpen(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true, fail)
	_ = call(c)
	tripped := call(c)
	if !errors.Is(tripped, circuit.ErrCircuitOpen) || errors.Is(tripped, circuit.ErrCircuitForcedOpen) {
		t.Fatalf("tripped rejection: %v", tripped)
	}
	if err := c.ForceOpen("test", circuit.All); err != nil {
		t.Fatal(err)
	}
	forced := call(c)
	if kindOf(forced) != llm.KindCircuitOpen || !errors.Is(forced, circuit.ErrCircuitForcedOpen) ||
		!errors.Is(forced, circuit.ErrCircuitOpen) || !errors.Is(forced, circuitbreaker.ErrOpen) {
		t.Fatalf("forced rejection: %v", forced)
	}
}

func TestForceOpenShouldRefuseWhenDisabled(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, false, ok)
	if err := c.ForceOpen("test", circuit.All); err != circuit.ErrDisabled {
		t.Fatalf("err = %v", err)
	}
}

// Apply keeps unchanged circuits as they are and rebuilds changed ones
// closed, keeping statistics.
func TestApplyShouldRebuildOnlyChangedCircuits(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	for name, cc := range cfg.CircuitBreaker.Circuits {
		cc.FailureThreshold = 1
		cfg.CircuitBreaker.Circuits[name] = cc
	}
	r := circuit.NewRegistry(specs(cfg, chatFunc(fail)), circuit.Options{})
	for _, name := range []string{config.CircuitDataAnalyst, config.CircuitCodeGenerator} {
		_, _ = r.Circuit(name).Complete(context.Background(), llm.ChatRequest{})
	}
	next := config.Default()
	next.CircuitBreaker.Circuits = config.Circuits{}
	for name, cc := range cfg.CircuitBreaker.Circuits {
		next.CircuitBreaker.Circuits[name] = cc
	}
	cg := next.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
	cg.FailureThreshold = 4
	next.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg

	changed := r.Apply(specs(next, chatFunc(fail)))
	if len(changed) != 1 || changed[0] != config.CircuitCodeGenerator {
		t.Fatalf("changed = %v", changed)
	}
	if s := r.Circuit(config.CircuitDataAnalyst).Status(); s.State != circuit.StateOpen {
		t.Fatalf("unchanged circuit: %s", s.State)
	}
	s := r.Circuit(config.CircuitCodeGenerator).Status()
	if s.State != circuit.StateClosed || s.Settings.FailureThreshold != 4 || s.Stats.FailureCount != 1 || s.Stats.ConsecutiveFailures != 0 {
		t.Fatalf("rebuilt circuit: %+v", s)
	}
	if s := r.Circuit(config.CircuitDataAnalyst).Status(); s.Stats.ConsecutiveFailures != 1 {
		t.Fatalf("unchanged circuit lost its streak: %+v", s.Stats)
	}
	next.CircuitBreaker.Enabled = false
	if changed := r.Apply(specs(next, chatFunc(fail))); len(changed) != 4 || r.Enabled() {
		t.Fatalf("disabling changed %v", changed)
	}
	if s := r.Circuit(config.CircuitDataAnalyst).Status(); s.State != circuit.StateDisabled {
		t.Fatalf("after disabling: %s", s.State)
	}
}

// Reset also clears failsafe-go's failure window: failures before it do
// not count toward the next opening.
func TestResetShouldForgetFailuresOfAClosedCircuit(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 1}, true, fail)
	_ = call(c)
	_ = call(c)
	c.Reset("test", circuit.All)
	_ = call(c)
	if st := c.Status(); st.State != circuit.StateClosed {
		t.Fatalf("one failure after a reset opened the circuit: %s", st.State)
	}
}

// A half-open circuit lets at most success_threshold trials through in
// total, not only at once.
func TestHalfOpenShouldAdmitAtMostSuccessThresholdTrials(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	failing := true
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 2, RecoveryTimeout: 0.05, Timeout: 1}, true,
		func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if failing {
				return fail(ctx, m, r)
			}
			return ok(ctx, m, r)
		})
	_ = call(c)
	waitState(t, c, circuit.StateHalfOpen)
	mu.Lock()
	failing, calls = false, 0
	mu.Unlock()
	if err := call(c); err != nil {
		t.Fatal(err)
	}
	if err := call(c); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.State != circuit.StateClosed {
		t.Fatalf("two successes did not close: %s", st.State)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("trials reaching the LLM = %d, want 2", calls)
	}
}
