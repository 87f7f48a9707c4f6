package circuit

import (
	"context"
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
)

// Chatter is the LLM transport that a target guards. *llm.Client is the
// real one, one per provider.
type Chatter interface {
	Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error)
}

// Streamer is a Chatter that can also stream: onDelta gets each piece of
// the reply's text as the upstream sends it, on the calling goroutine.
// *llm.Client is one. A target whose client is not a Streamer answers a
// streamed call in one piece.
type Streamer interface {
	ChatStream(ctx context.Context, model string, req llm.ChatRequest, onDelta func(string)) (llm.ChatResponse, error)
}

// Settings are one circuit's breaker, retry and hedging settings. Every
// target of the circuit uses them. cmd/server/app builds them from the
// validated config; failsafe-go's builders panic on out-of-range values.
type Settings struct {
	// FailureThreshold consecutive counted failures open a target.
	FailureThreshold int
	// RecoveryTimeout is how long a target stays open before half-opening
	// the first time; RecoveryBackoffMultiplier grows it on each reopening,
	// up to MaxRecoveryTimeout.
	RecoveryTimeout           time.Duration
	RecoveryBackoffMultiplier float64
	MaxRecoveryTimeout        time.Duration
	// SuccessThreshold trial successes close a half-open target; it is
	// also the number of trials let through at once.
	SuccessThreshold int
	// Timeout bounds each LLM request.
	Timeout time.Duration
	// MaxConcurrent caps the requests in flight to one target; 0: no limit.
	MaxConcurrent int
	// MaxAttempts is the number of attempts per target (1: no retry).
	MaxAttempts int
	// RetryBackoff and MaxRetryBackoff bound the exponential backoff, with
	// jitter, between attempts on one target.
	RetryBackoff, MaxRetryBackoff time.Duration
	// MaxRetryAfter is the longest upstream Retry-After that is waited for
	// (and the longest cooldown); a longer one fails over instead.
	MaxRetryAfter time.Duration
	// FailureRateThreshold (percent, 0: off) also opens a target when, over
	// the last FailureRateWindow, at least MinimumCalls counted outcomes
	// were seen and that share of them failed.
	FailureRateThreshold float64
	FailureRateWindow    time.Duration
	MinimumCalls         int
	// HedgeAfter (0: off) sends one more request to the next admitting
	// target when a call is still unanswered after it, within
	// HedgeBudgetPercent of the circuit's calls in the last minute.
	HedgeAfter         time.Duration
	HedgeBudgetPercent float64
	// RecoveryProbe makes Nexus send the half-open trials itself, 1-token
	// requests, so that no user request is spent on a trial.
	RecoveryProbe bool
	// FirstTokenTimeout bounds a streamed request's wait for its first
	// token; past it the attempt is a counted timeout, retried or failed
	// over like any other. 0 means Timeout, which still bounds the whole
	// request.
	FirstTokenTimeout time.Duration
	// SlowCallThreshold and SlowCallRateThreshold (percent, 0: off) also
	// open a target when, over the last FailureRateWindow, at least
	// MinimumCalls counted outcomes were seen and that share of them were
	// slow: streamed calls whose first token took longer than
	// SlowCallThreshold (calls that do not stream are never slow).
	SlowCallThreshold     time.Duration
	SlowCallRateThreshold float64
}

// firstTokenTimeout is the effective first-token limit.
func (s Settings) firstTokenTimeout() time.Duration {
	if s.FirstTokenTimeout <= 0 || s.FirstTokenTimeout > s.Timeout {
		return s.Timeout
	}
	return s.FirstTokenTimeout
}

// breakerEqual reports whether a and b build the same breaker: everything
// but the bulkhead, retries, cooldowns and hedging, which apply in place.
func breakerEqual(a, b Settings) bool {
	return a.FailureThreshold == b.FailureThreshold && a.SuccessThreshold == b.SuccessThreshold &&
		a.RecoveryTimeout == b.RecoveryTimeout && a.RecoveryBackoffMultiplier == b.RecoveryBackoffMultiplier &&
		a.MaxRecoveryTimeout == b.MaxRecoveryTimeout && a.Timeout == b.Timeout &&
		a.FailureRateThreshold == b.FailureRateThreshold && a.FailureRateWindow == b.FailureRateWindow &&
		a.MinimumCalls == b.MinimumCalls && a.RecoveryProbe == b.RecoveryProbe
}

// TargetSpec is one configured target of a circuit: a model on a provider.
type TargetSpec struct {
	Provider string
	Model    string
	// URL is the provider's base URL as it may be shown (scheme and host).
	URL string
	// Endpoint is the provider's whole base URL, path included: with the
	// provider and model it identifies the target across reloads. It is
	// never shown.
	Endpoint string
	// LLM is the provider's client.
	LLM Chatter
}

// ID names the target as provider/model.
func (t TargetSpec) ID() string { return t.Provider + "/" + t.Model }

// Spec is one circuit's whole configuration.
type Spec struct {
	Name     string
	Settings Settings
	// Targets are tried in order; the list is never empty.
	Targets []TargetSpec
}

// RegistryConfig is what the registry is built from and reloaded with.
type RegistryConfig struct {
	// Enabled false sends calls straight to the targets, with timeouts,
	// retries and failover but no breaker, and reports "disabled".
	Enabled bool
	// LogCircuitChanges logs each transition once (WARN for open).
	LogCircuitChanges bool
	Circuits          []Spec
}
