// Package infra is Nexus's adapter to the LLM: an OpenAI-compatible client
// (go-openai) and a failsafe-go circuit breaker plus a call timeout per
// named circuit, with one predicate (Classify) deciding which failures count.
// Nothing outside this package calls the LLM, and it imports nothing of ours
// but config, httpx and redact.
package infra
