package circuit_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// Regression (review of issue 9): a walk keeps its snapshot of the targets: a target removed by a reload
// while a call is in flight still receives NEW requests (failover, retries)
// from that call, and its transitions are still published (alerts) although
// it is no longer configured.
func TestARemovedTargetShouldGetNoNewRequests(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	primary := count(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		close(entered)
		<-release
		return fail(ctx, m, r)
	})
	backup := count(fail)
	var alerts atomic.Int64
	cc := config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5}
	c, r := twoTargets(t, cc, primary, backup, circuit.Options{Hooks: circuit.Hooks{OnTransition: func(tr circuit.Transition) {
		if tr.Provider == "backup" {
			alerts.Add(1)
		}
	}}})
	done := make(chan struct{})
	go func() { defer close(done); _, _ = complete(c) }()
	<-entered
	// The operator removes the backup (e.g. its key leaked).
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = cc
	r.Apply(specs(cfg, primary))
	close(release)
	<-done
	if backup.n.Load() != 0 || alerts.Load() != 0 {
		t.Fatalf("removed target got %d new request(s) after the reload and published %d transition(s)", backup.n.Load(), alerts.Load())
	}
}
