package pgsource

import (
	"errors"
	"math"
	"sync"
	"time"
)

// Health is what Nexus last learned of the database's reachability: from
// Ping (the prober's and Open's), and from every other call, which marks
// the source unreachable when it fails with KindUnavailable and reachable
// again when it succeeds. The pointer fields are nil until the first
// check.
type Health struct {
	// Reachable is whether the last check reached the database.
	Reachable *bool `json:"reachable"`
	// LatencyMS is the last successful Ping's round trip, in milliseconds
	// rounded to two decimals.
	LatencyMS *float64 `json:"latency_ms"`
	// LastError is the last check's error when it failed (an *Error's
	// Message: no DSN, no password); nil when it succeeded.
	LastError *string `json:"last_error"`
	// CheckedAt is when the last check ended, in UTC.
	CheckedAt *time.Time `json:"last_checked_at"`
}

// health is a Source's Health, guarded by its own lock.
type health struct {
	mu        sync.Mutex
	reachable *bool
	latencyMS *float64
	lastErr   *string
	at        *time.Time
}

// Health returns what the last check found.
func (s *Source) Health() Health {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return Health{Reachable: clonePtr(h.reachable), LatencyMS: clonePtr(h.latencyMS), LastError: clonePtr(h.lastErr), CheckedAt: clonePtr(h.at)}
}

// observe records the outcome of a call that reached for the database:
// success marks it reachable; KindUnavailable unreachable, with the error.
// Other errors (the SQL's, the caller's cancellation) say nothing of
// reachability. A change is logged: WARN when the source becomes
// unreachable, INFO when it is back. latency is recorded when > 0.
func (s *Source) observe(err error, latency time.Duration) {
	var e *Error
	switch {
	case err == nil:
	case errors.As(err, &e) && e.Kind == KindUnavailable:
	default:
		return
	}
	ok := err == nil
	now := time.Now().UTC().Round(0)
	h := &s.health
	h.mu.Lock()
	was := h.reachable
	h.reachable, h.at = &ok, &now
	if ok {
		h.lastErr = nil
		if latency > 0 {
			ms := math.Round(float64(latency)/float64(time.Millisecond)*100) / 100
			h.latencyMS = &ms
		}
	} else {
		msg := e.Message
		h.lastErr = &msg
	}
	h.mu.Unlock()
	switch {
	case !ok && (was == nil || *was):
		s.log.Warn("postgres source unreachable", "error", e.Message)
	case ok && was != nil && !*was:
		s.log.Info("postgres source reachable again")
	}
}

func clonePtr[T any](v *T) *T {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}
