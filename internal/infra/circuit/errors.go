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

// ErrCoolingDown is returned (inside an *LLMError of kind KindCircuitOpen)
// when a target was skipped because its upstream asked, with Retry-After,
// not to be called yet. It wraps ErrCircuitOpen.
var ErrCoolingDown = fmt.Errorf("cooling down at the upstream's request: %w", ErrCircuitOpen)

// ErrDisabled is returned when an operation needs circuit breakers on.
var ErrDisabled = errors.New("circuit breakers are disabled")

// ErrCircuitForcedOpen is returned (inside an *LLMError of kind
// KindCircuitOpen) when the target refusing the call is held open by an
// operator: it does not recover on its own. It wraps ErrCircuitOpen, so
// errors.Is(err, ErrCircuitOpen) holds for every open rejection.
var ErrCircuitForcedOpen = fmt.Errorf("held open by an operator: %w", ErrCircuitOpen)

// ErrUnknownCircuit is returned for a circuit name that is not configured.
var ErrUnknownCircuit = errors.New("unknown circuit")

// ErrUnknownTarget is returned when an operator names a target that the
// circuit does not have.
var ErrUnknownTarget = errors.New("unknown target")

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
	// Provider and Model name the target whose failure this is; empty for
	// a refusal.
	Provider, Model string
	// Attempts is how many LLM requests the call made before it failed.
	Attempts int
	// Targets lists every target of a circuit with more than one when no
	// target could answer.
	Targets []TargetReport
	// Interrupted is true when a streamed call failed after some of its
	// text had reached the caller: it was neither retried nor failed
	// over, and the text sent so far is all there is.
	Interrupted bool
}

func (e *LLMError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Circuit, e.Kind, e.Message)
}

func (e *LLMError) Unwrap() error { return e.Err }
