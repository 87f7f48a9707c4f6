// Package alert tells an operator's webhook about circuit transitions.
//
// Its one promise is that alerting never hurts the code that raises alerts:
// Notify is called from circuit-breaker listeners, which run synchronously on
// request goroutines, so it only appends to a bounded in-memory queue and
// returns. A single background goroutine per Notifier delivers events in
// order, retrying transient failures with exponential backoff (failsafe-go's
// retrypolicy), or after the delay a 429 or 503 asks for in Retry-After.
// When the webhook cannot keep up, the oldest queued event is dropped so that
// the newest state of each circuit is the one that arrives.
//
// The package imports nothing of ours but httpx and redact; the caller maps its own
// transition type onto Event and its metrics onto Hooks.
package alert
