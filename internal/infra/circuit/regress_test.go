package circuit_test

import (
	"context"
	"os"
	"os/exec"
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

// Regression (review of issue 9): the hedge budget is checked (allow) and spent (spend) in two separate
// critical sections: concurrent calls that reach hedge_after together all
// pass allow before any spends.
func TestTheHedgeBudgetShouldHoldUnderConcurrency(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		select {
		case <-release:
			return ok(ctx, m, r)
		case <-ctx.Done():
			return llm.ChatResponse{}, ctx.Err()
		}
	})
	backup := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		select {
		case <-release:
			return ok(ctx, m, r)
		case <-ctx.Done():
			return llm.ChatResponse{}, ctx.Err()
		}
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 30,
		HedgeAfter: 0.05, HedgeBudgetPercent: 10}, slow, backup, circuit.Options{})
	const n = 100 // 10 % of 100 calls: at most 10 hedges
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = complete(c) }()
	}
	deadline := time.Now().Add(3 * time.Second)
	for slow.n.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // every hedge timer has fired
	close(release)
	wg.Wait()
	h := backup.n.Load()
	t.Logf("hedges %d", h)
	if h > n/10 {
		t.Fatalf("hedged requests %d for %d calls, budget allows %d", h, n, n/10)
	}
}

// Regression (review of issue 9): a client panic inside a hedged attempt runs on a goroutine with no
// recover: it kills the process although the caller recovers panics (as
// the API's recoverPanics middleware does).
func TestAPanicInAHedgedAttemptShouldReachTheCaller(t *testing.T) {
	if os.Getenv("REVIEW_CRASH") == "1" {
		panicky := chatFunc(func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
			time.Sleep(50 * time.Millisecond)
			panic("client bug")
		})
		c, _ := twoTargets(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 30,
			HedgeAfter: 0.001, HedgeBudgetPercent: 100}, panicky, chatFunc(func(ctx context.Context, _ string, _ llm.ChatRequest) (llm.ChatResponse, error) {
			<-ctx.Done()
			return llm.ChatResponse{}, ctx.Err()
		}), circuit.Options{})
		func() {
			defer func() { recover() }() // what recoverPanics does
			_, _ = c.Complete(context.Background(), llm.ChatRequest{})
		}()
		return // survived: no defect
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAPanicInAHedgedAttemptShouldReachTheCaller$")
	cmd.Env = append(os.Environ(), "REVIEW_CRASH=1")
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "panic: client bug") {
		t.Fatalf("the process died of the client's panic despite the caller's recover:\n%s", firstLines(string(out), 6))
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// Regression (review of issue 9): a recovery probe refused by the bulkhead (max_concurrent lowered in
// place by a reload while calls admitted before the trip are in flight) is
// never rescheduled: the target stays half-open, refusing every user call.
func TestARecoveryProbeRefusedByTheBulkheadShouldTryAgain(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	var healthy atomic.Bool
	var n atomic.Int64
	up := chatFunc(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		switch n.Add(1) {
		case 1, 2:
			return b.chat(ctx, m, r) // two calls hang
		}
		if healthy.Load() {
			return ok(ctx, m, r)
		}
		return fail(ctx, m, r)
	})
	cfg := config.Default()
	cc := config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 0.2, Timeout: 30, MaxConcurrent: 3, RecoveryProbe: true}
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = cc
	r := circuit.NewRegistry(specs(cfg, up), circuit.Options{})
	t.Cleanup(r.Close)
	c := r.Circuit(config.CircuitDataAnalyst)
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- call(c) }()
		b.await(t, results)
	}
	_ = call(c) // the third call fails: open
	if c.Status().State != circuit.StateOpen {
		t.Fatal("should be open")
	}
	// The operator lowers max_concurrent during the outage (applied in place).
	cc.MaxConcurrent = 1
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = cc
	if rebuilt := r.Apply(specs(cfg, up)); len(rebuilt) != 0 {
		t.Fatalf("rebuilt %v", rebuilt)
	}
	time.Sleep(400 * time.Millisecond) // the probe fires while 2 calls are in flight
	close(b.release)
	<-results
	<-results
	healthy.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().State != circuit.StateClosed {
		if time.Now().After(deadline) {
			st := c.Status()
			t.Fatalf("stuck: state %s, in flight %d, user call: %v", st.State, st.InFlight, call(c))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Regression (review of issue 9): a prompt too long for the first target, with the second target open,
// answers 422 llm_rejected_request (client error, no Retry-After) instead
// of the 503 "no target could answer".
func TestAPromptTooLongWithTheBackupOpenShouldBeA503(t *testing.T) {
	t.Parallel()
	tooLong := count(func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
		return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 400, Code: "context_length_exceeded", Message: "too long"}
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5},
		tooLong, count(ok), circuit.Options{})
	if err := c.ForceOpen("backup down", circuit.Selector{Provider: "backup", Model: "b"}); err != nil {
		t.Fatal(err)
	}
	_, err := complete(c)
	if err == nil || err.Kind == llm.KindRejected {
		t.Fatalf("kind %s (=> HTTP 422, the client is told its request is invalid) although a target that may take it is merely open: %+v", err.Kind, err)
	}
}

// Regression (review of issue 9): after a hedge in which both targets failed, the walk's real failover to
// the second target is not counted (w.prev was set by the hedge attempt).
func TestAFailoverAfterAHedgeShouldBeCounted(t *testing.T) {
	t.Parallel()
	var failovers atomic.Int64
	primary := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		time.Sleep(100 * time.Millisecond)
		return fail(ctx, m, r)
	})
	var bn atomic.Int64
	backup := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		if bn.Add(1) == 1 {
			return fail(ctx, m, r)
		}
		return ok(ctx, m, r)
	})
	c, _ := twoTargets(t, config.Circuit{FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5,
		HedgeAfter: 0.01, HedgeBudgetPercent: 100}, primary, backup, circuit.Options{Hooks: circuit.Hooks{
		OnFailover: func(string, string, string) { failovers.Add(1) }}})
	resp, err := complete(c)
	if err != nil || !resp.Failover || resp.Provider != "backup" {
		t.Fatalf("resp %+v err %+v", resp, err)
	}
	if failovers.Load() != 1 {
		t.Fatalf("answered by a failover to backup (attempts %d) but nexus_llm_failovers_total += %d", resp.Attempts, failovers.Load())
	}
}
