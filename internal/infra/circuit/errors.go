package circuit

import (
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/internal/infra/llm"
)

// ErrCircuitOpen is returned (inside an *LLMError) when a circuit refuses a
// call without contacting the LLM. It wraps failsafe-go's ErrOpen.
var ErrCircuitOpen = fmt.Errorf("circuit open: %w", circuitbreaker.ErrOpen)

// ErrCircuitBusy is returned (inside an *LLMError) when a circuit refuses a
// call because max_concurrent calls are already in flight.
var ErrCircuitBusy = errors.New("circuit busy: max_concurrent calls in flight")

// LLMError is every error that leaves a guarded LLM call. Callers switch on
// Kind; RetryAfter and State are what a 503 needs to tell the client.
type LLMError struct {
	Circuit string
	Kind    llm.Kind
	// State is the circuit's effective state right after the call.
	State string
	// Status is the upstream HTTP status, or 0 when there was no response.
	Status int
	// RetryAfter is the larger of the circuit's remaining open delay and the
	// upstream's own Retry-After header.
	RetryAfter time.Duration
	// Message is a redacted, human-readable description of the cause.
	Message string
	Err     error
}

func (e *LLMError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Circuit, e.Kind, e.Message)
}

func (e *LLMError) Unwrap() error { return e.Err }
