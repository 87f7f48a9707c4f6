// Package progress carries a request's progress out of the agents while it
// happens: each pipeline step as it starts and ends, and the text the LLM
// writes as it writes it. The API streams it to the client as server-sent
// events; a request without a Sink runs exactly as before.
package progress

import "time"

// Step statuses: a step starts, then ends with one of the agents' step
// outcomes (ok, fallback, skipped). A skipped step never starts.
const (
	StatusStarted  = "started"
	StatusOK       = "ok"
	StatusFallback = "fallback"
	StatusSkipped  = "skipped"
)

// Step is one step starting or ending.
type Step struct {
	Step   string
	Status string
	// Circuit is the step's circuit; empty for a step that calls no LLM.
	Circuit string
	// Provider and Model name the target that answered the step's last
	// LLM call; LLMRequests counts its requests. Set on an ending step
	// that made LLM calls.
	Provider, Model string
	LLMRequests     int
	// Attempts, Duration and Detail are the ending step's, as in the
	// final result.
	Attempts int
	Duration time.Duration
	Detail   string
}

// Sink receives a request's progress, on the request's goroutine, in the
// order it happens.
type Sink interface {
	Step(Step)
	// Token is a piece of the text step is writing (the analyst's answer,
	// the generator's code).
	Token(step, text string)
	// Replace is the whole new text of step, replacing every piece sent
	// before (the analyst's answer, revised after its review).
	Replace(step, text string)
}
