// Package ratelimit counts requests and LLM tokens per caller: request
// limits with GCRA (the generic cell rate algorithm, a token bucket kept as
// one timestamp per key), and token budgets over fixed windows aligned to
// the Unix epoch (86400 s is a UTC day). Two stores give the same answers:
// Local keeps the counters in this process, Redis keeps them in a Redis
// server that every replica shares, so that N replicas enforce one limit,
// not N. Callers name the caller by an opaque key (an API key's name, a
// client address); the package knows nothing of keys or HTTP.
package ratelimit
