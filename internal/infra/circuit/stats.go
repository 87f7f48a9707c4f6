package circuit

import "time"

// Stats are a circuit's cumulative counters. failsafe-go's own metrics reset
// on every transition and never count rejections, so we keep these.
// TotalCalls = SuccessCount + FailureCount + RejectedCount; TimeoutCount is
// the part of FailureCount that were timeouts. Neutral outcomes (a rejected
// request, a client hang-up) enter none of the counts.
//
// ConsecutiveFailures is the failure streak as the breaker counts it toward
// failure_threshold: a success, an operator's close or reset and a rebuild
// by a reload zero it, and a call admitted before any of those (or before a
// transition) does not move it.
type Stats struct {
	TotalCalls    int64 `json:"total_calls"`
	SuccessCount  int64 `json:"success_count"`
	FailureCount  int64 `json:"failure_count"`
	RejectedCount int64 `json:"rejected_count"`
	TimeoutCount  int64 `json:"timeout_count"`
	// SlowCallCount counts the successes and failures slower than
	// slow_call_threshold to their first token (0 while it is off);
	// neutral outcomes are not counted.
	SlowCallCount int64 `json:"slow_call_count"`
	// SuccessRate is the percentage of the LLM calls actually made that
	// succeeded: 100 × SuccessCount / (SuccessCount + FailureCount),
	// rounded to 2 decimals. Rejections made no call and do not lower it.
	// It is nil (JSON null) while no call has been made.
	SuccessRate *float64 `json:"success_rate"`
	// RejectionRate is the percentage of calls that the circuit refused
	// without contacting the LLM (open, half-open with its trials in
	// flight, or max_concurrent reached): 100 × RejectedCount / TotalCalls,
	// rounded to 2 decimals. It is nil (JSON null) while TotalCalls is 0.
	RejectionRate       *float64   `json:"rejection_rate"`
	ConsecutiveFailures int64      `json:"consecutive_failures"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	LastError           *string    `json:"last_error"`
	LastStateChangeAt   *time.Time `json:"last_state_change_at"`
}

// counters is the mutable form of Stats, guarded by its circuit's mutex.
type counters struct {
	success, failure, rejected, timeouts, consecutive, slow int64
	lastFailureAt, lastStateChangeAt                        time.Time
	lastError                                               string
}

func (c *counters) snapshot() Stats {
	s := Stats{
		SuccessCount:        c.success,
		FailureCount:        c.failure,
		RejectedCount:       c.rejected,
		TimeoutCount:        c.timeouts,
		SlowCallCount:       c.slow,
		ConsecutiveFailures: c.consecutive,
	}
	s.TotalCalls = s.SuccessCount + s.FailureCount + s.RejectedCount
	s.SuccessRate = percent(s.SuccessCount, s.SuccessCount+s.FailureCount)
	s.RejectionRate = percent(s.RejectedCount, s.TotalCalls)
	if !c.lastFailureAt.IsZero() {
		t := c.lastFailureAt.UTC()
		s.LastFailureAt = &t
	}
	if !c.lastStateChangeAt.IsZero() {
		t := c.lastStateChangeAt.UTC()
		s.LastStateChangeAt = &t
	}
	if c.lastError != "" {
		e := c.lastError
		s.LastError = &e
	}
	return s
}

// percent is 100 × part / whole rounded to 2 decimals, or nil when whole
// is 0: a rate over nothing is unknown, not 0 (and never NaN, which JSON
// cannot carry).
func percent(part, whole int64) *float64 {
	if whole <= 0 {
		return nil
	}
	v := roundTo(100*float64(part)/float64(whole), 2)
	return &v
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// add sums o's counts into c, for a circuit's totals over its targets; the
// last failure and state change are the latest of either.
func (c *counters) add(o *counters) {
	c.success += o.success
	c.failure += o.failure
	c.rejected += o.rejected
	c.timeouts += o.timeouts
	c.slow += o.slow
	if o.lastFailureAt.After(c.lastFailureAt) {
		c.lastFailureAt, c.lastError = o.lastFailureAt, o.lastError
	}
	if o.lastStateChangeAt.After(c.lastStateChangeAt) {
		c.lastStateChangeAt = o.lastStateChangeAt
	}
}
