package circuit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// blocker is an LLM whose calls wait until released; entered reports each
// call that reached it.
type blocker struct {
	entered    chan struct{}
	release    chan struct{}
	mu         sync.Mutex
	calls      int
	failedOnce bool
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) chat(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	b.entered <- struct{}{}
	<-b.release
	return ok(ctx, m, r)
}

// failOnceThenChat fails the first call (opening a circuit with
// failure_threshold 1) and blocks the later ones like chat.
func (b *blocker) failOnceThenChat(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
	b.mu.Lock()
	first := !b.failedOnce
	b.failedOnce = true
	b.mu.Unlock()
	if first {
		return fail(ctx, m, r)
	}
	return b.chat(ctx, m, r)
}

// await waits until a call reaches the LLM, and fails the test if one
// returns first instead (a wrong refusal must fail, not hang).
func (b *blocker) await(t *testing.T, results <-chan error) {
	t.Helper()
	select {
	case <-b.entered:
	case err := <-results:
		t.Fatalf("a call returned before reaching the LLM: %v", err)
	}
}

func (b *blocker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// With max_concurrent calls in flight, the next is refused at once as
// circuit_busy: no upstream call, a rejection in the statistics, and no
// effect on the breaker. Once calls finish, new ones pass again.
func TestBulkheadShouldRefuseCallsPastMaxConcurrent(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5, MaxConcurrent: 2}, true, b.chat)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- call(c) })
	}
	b.await(t, errs)
	b.await(t, errs)
	if got := c.Status().InFlight; got != 2 {
		t.Fatalf("in flight = %d, want 2", got)
	}
	err := call(c)
	var le *circuit.LLMError
	if kindOf(err) != llm.KindCircuitBusy || !errors.As(err, &le) || le.RetryAfter <= 0 || le.State != circuit.StateClosed {
		t.Fatalf("third call: %v", err)
	}
	st := c.Status()
	if b.count() != 2 || st.State != circuit.StateClosed || st.Stats.RejectedCount != 1 || st.Stats.FailureCount != 0 || st.Stats.ConsecutiveFailures != 0 {
		t.Fatalf("after refusal: %d upstream calls, %+v", b.count(), st)
	}
	ev := c.Events()
	if last := ev[len(ev)-1]; last.Type != circuit.EventRejected || last.Kind != string(llm.KindCircuitBusy) || last.Count != 1 {
		t.Fatalf("events: %+v", ev)
	}
	close(b.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := call(c); err != nil || c.Status().InFlight != 0 || b.count() != 3 {
		t.Fatalf("after the calls finished: %v, %+v", err, c.Status())
	}
}

// In half-open, a refusal for lack of room takes no trial slot: with
// success_threshold 2 and max_concurrent 1, a busy refusal between the two
// trials leaves the second trial its slot, and two successes close it.
func TestBulkheadShouldSpareHalfOpenTrialSlots(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 2, RecoveryTimeout: 0.1, Timeout: 5, MaxConcurrent: 1}, true, b.failOnceThenChat)
	if kindOf(call(c)) != llm.KindUnavailable {
		t.Fatal("first call should fail and open the circuit")
	}
	waitState(t, c, circuit.StateHalfOpen)
	done := make(chan error, 1)
	go func() { done <- call(c) }()
	b.await(t, done)
	if kindOf(call(c)) != llm.KindCircuitBusy {
		t.Fatal("a call beside the trial should be refused as busy")
	}
	b.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- call(c) }()
	b.await(t, done)
	b.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("second trial: %v", err)
	}
	if st := c.Status(); st.State != circuit.StateClosed || b.count() != 2 {
		t.Fatalf("after two trials: %d upstream calls, %+v", b.count(), st)
	}
}

// With circuit breakers disabled there is no bulkhead: calls go straight
// through, as with everything else the circuit does, and are still
// counted in flight.
func TestBulkheadShouldStepAsideWhenDisabled(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	off := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5, MaxConcurrent: 1}, false, b.chat)
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- call(off) }()
	}
	for range 3 {
		b.await(t, results)
	}
	if got := off.Status().InFlight; got != 3 {
		t.Fatalf("disabled: in flight = %d, want 3", got)
	}
	close(b.release)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

// A call whose LLM client panics still leaves the bulkhead.
func TestBulkheadShouldFreeTheSlotOfACallThatPanicked(t *testing.T) {
	t.Parallel()
	c := newCircuit(t, config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5, MaxConcurrent: 1}, true,
		func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) { panic("client bug") })
	func() {
		defer func() { _ = recover() }()
		_ = call(c)
	}()
	if got := c.Status().InFlight; got != 0 {
		t.Fatalf("in flight after a panic = %d, want 0", got)
	}
}

// A half-open trial whose LLM client panics hands its trial slot back, so
// the next call is the trial instead of the circuit refusing every call
// until an operator steps in.
func TestPanickedTrialShouldHandItsSlotBack(t *testing.T) {
	t.Parallel()
	up, _ := numbered(func(n int) chatFunc {
		switch n {
		case 1:
			return fail
		case 2:
			return func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) { panic("client bug") }
		}
		return ok
	})
	c := newCircuit(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.1, Timeout: 5}, true, up)
	if kindOf(call(c)) != llm.KindUnavailable {
		t.Fatal("first call should fail and open the circuit")
	}
	waitState(t, c, circuit.StateHalfOpen)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		_ = call(c)
	}()
	if err := call(c); err != nil {
		t.Fatalf("the next trial was refused: %v", err)
	}
	if st := c.Status(); st.State != circuit.StateClosed || st.InFlight != 0 {
		t.Fatalf("after the trial: %+v", st)
	}
}

// A reload that changes only max_concurrent applies it in place: an open
// circuit stays open, with its failure window, and is not reported as
// rebuilt.
func TestReloadOfMaxConcurrentAloneShouldKeepTheState(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 60, Timeout: 5}
	reg := circuit.NewRegistry(specs(cfg, chatFunc(fail)), circuit.Options{})
	c := reg.Circuit(config.CircuitDataAnalyst)
	if kindOf(call(c)) != llm.KindUnavailable || c.Status().State != circuit.StateOpen {
		t.Fatal("the circuit should be open")
	}
	da := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	da.MaxConcurrent = 4
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = da
	if rebuilt := reg.Apply(specs(cfg, chatFunc(fail))); len(rebuilt) != 0 {
		t.Fatalf("rebuilt %v for a max_concurrent change", rebuilt)
	}
	st := c.Status()
	if st.State != circuit.StateOpen || st.Settings.MaxConcurrent != 4 || st.RemainingDelay <= 0 {
		t.Fatalf("after the reload: %+v", st)
	}
	da.FailureThreshold = 2
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = da
	if rebuilt := reg.Apply(specs(cfg, chatFunc(fail))); len(rebuilt) != 1 || c.Status().State != circuit.StateClosed {
		t.Fatalf("a breaker setting should rebuild: %v, %s", rebuilt, c.Status().State)
	}
}

// The lazy open→half-open found by the call that becomes the trial is
// reported at once, not when the trial ends.
func TestHalfOpenShouldBeReportedWhileTheTrialIsInFlight(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	var mu sync.Mutex
	var seen []string
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.1, Timeout: 5}
	c := circuit.NewRegistry(specs(cfg, chatFunc(b.failOnceThenChat)), circuit.Options{Hooks: circuit.Hooks{OnTransition: func(tr circuit.Transition) {
		mu.Lock()
		seen = append(seen, tr.From+">"+tr.To)
		mu.Unlock()
	}}}).Circuit(config.CircuitDataAnalyst)
	if kindOf(call(c)) != llm.KindUnavailable {
		t.Fatal("first call should fail and open the circuit")
	}
	// Wait out the 100 ms recovery timeout. This cannot poll: asking for
	// the state would itself report the half-open.
	time.Sleep(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- call(c) }()
	b.await(t, done)
	mu.Lock()
	got := append([]string(nil), seen...)
	mu.Unlock()
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || got[1] != "open>half-open" {
		t.Fatalf("transitions seen while the trial was in flight: %v", got)
	}
}
