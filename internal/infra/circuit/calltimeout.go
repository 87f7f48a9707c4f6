package circuit

import (
	"github.com/nexus/nexus/internal/infra/llm"

	"context"
	"errors"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"
)

// callTimeout bounds one guarded LLM call as failsafe-go's timeout policy
// did here: when the limit fires the call's context is cancelled (the call
// sees context.Canceled, as under failsafe-go, not a deadline of its own,
// which is why this is not context.WithTimeoutCause), and if the limit
// fired before the caller's own context ended the result is
// timeout.ErrExceeded, which llm.Classify counts as a timeout. failsafe-go's
// executor, built around the policy, cost about twenty allocations and
// 1–2 µs per call (BenchmarkCircuitOverhead); the circuit breaker itself
// is driven by hand and needs no executor.
type callTimeout time.Duration

func (t callTimeout) get(ctx context.Context, call func(context.Context) (llm.ChatResponse, error)) (llm.ChatResponse, error) {
	callCtx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(time.Duration(t), func() { cancel(timeout.ErrExceeded) })
	defer func() {
		timer.Stop()
		cancel(nil)
	}()
	resp, err := call(callCtx)
	if err != nil && errors.Is(context.Cause(callCtx), timeout.ErrExceeded) {
		// Whatever the call returned, it ended because the limit fired;
		// the tokens it spent are still reported.
		return llm.ChatResponse{Usage: resp.Usage, Model: resp.Model}, timeout.ErrExceeded
	}
	return resp, err
}
