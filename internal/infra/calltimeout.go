package infra

import (
	"context"
	"errors"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"
)

// callTimeout bounds one guarded LLM call. It does exactly what
// failsafe-go's timeout policy did here, with a context and a timer: when
// the limit fires the call's context is cancelled (the call sees
// context.Canceled), and if the limit fired before the caller's own
// context ended the result is timeout.ErrExceeded, which Classify counts
// as a timeout. failsafe-go's executor, built around the policy, cost
// about twenty allocations and 2 µs per call (BenchmarkCircuitOverhead);
// the circuit breaker itself is driven by hand and needs no executor.
type callTimeout time.Duration

func (t callTimeout) get(ctx context.Context, call func(context.Context) (ChatResponse, error)) (ChatResponse, error) {
	callCtx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(time.Duration(t), func() { cancel(timeout.ErrExceeded) })
	defer func() {
		timer.Stop()
		cancel(nil)
	}()
	resp, err := call(callCtx)
	if err != nil && errors.Is(context.Cause(callCtx), timeout.ErrExceeded) {
		// Whatever the call returned, it ended because the limit fired.
		return ChatResponse{}, timeout.ErrExceeded
	}
	return resp, err
}
