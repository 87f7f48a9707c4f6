package circuit_test

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// BenchmarkCircuitOverhead compares a guarded call with a direct call of
// the same in-process function: the difference is the circuit's cost
// (permit, timeout policy, classification, statistics).
// Target: < 2 µs and < 10 allocations per call.
func BenchmarkCircuitOverhead(b *testing.B) {
	ctx := context.Background()
	req := llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: "hi"}}}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		var fn chatFunc = ok
		for b.Loop() {
			if _, err := fn.Chat(ctx, "m", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("circuit", func(b *testing.B) {
		c := newCircuit(b, config.Circuit{FailureThreshold: 3, SuccessThreshold: 2, RecoveryTimeout: 60, Timeout: 30}, true, ok)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("skip-open-primary", func(b *testing.B) {
		// The backup answers after the walk skips the open primary: the
		// difference from "circuit" is what a skipped target costs.
		c, _ := twoTargets(b, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 3600, Timeout: 30}, chatFunc(fail), chatFunc(ok), circuit.Options{})
		_, _ = c.Complete(ctx, req)
		b.ReportAllocs()
		for b.Loop() {
			if resp, err := c.Complete(ctx, req); err != nil || resp.Provider != "backup" {
				b.Fatal(resp, err)
			}
		}
	})
	b.Run("circuit-open-reject", func(b *testing.B) {
		c := newCircuit(b, config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 3600, Timeout: 30}, true, fail)
		_, _ = c.Complete(ctx, req)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Complete(ctx, req); err == nil {
				b.Fatal("want rejection")
			}
		}
	})
}

// BenchmarkFailsafeTimeoutExecutor is what the circuit no longer pays:
// failsafe-go's executor with only a timeout policy around the same
// function, which the circuit used before callTimeout replaced it (about
// twenty allocations a call). It stays as the figure that decision rests on.
func BenchmarkFailsafeTimeoutExecutor(b *testing.B) {
	ctx := context.Background()
	exec := failsafe.With[llm.ChatResponse](timeout.New[llm.ChatResponse](30 * time.Second))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := exec.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[llm.ChatResponse]) (llm.ChatResponse, error) {
			return ok(e.Context(), "m", llm.ChatRequest{})
		}); err != nil {
			b.Fatal(err)
		}
	}
}
