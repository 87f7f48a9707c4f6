// Package circuit guards every LLM call of a named agent step: per target a
// failsafe-go circuit breaker, a call timeout and a bulkhead, and per
// circuit the routing across its ordered targets. Which failures count is
// decided by one predicate, llm.Classify. It imports nothing of ours but
// the llm and redact packages.
package circuit
