package ratelimit

import (
	"errors"
	"math"
	"time"
)

// ErrUnavailable wraps every error of the shared store: Redis down, slow
// past its timeout, or answering nonsense. The caller decides whether such
// a request goes through.
var ErrUnavailable = errors.New("ratelimit: the shared store is unavailable")

// Limit is one window: Rate events per Period on average, at most Burst
// of them at once. Name labels it in headers and store keys ("minute").
type Limit struct {
	Name   string
	Rate   int
	Burst  int
	Period time.Duration
}

// interval is GCRA's emission interval: the time one event costs.
func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// State is one limit's state as a request left it.
type State struct {
	Limit Limit
	// Remaining is how many more events would be allowed at once now.
	Remaining int
	// ResetAfter is how long until the limit is back to a full burst.
	ResetAfter time.Duration
	// RetryAfter is how long until one more event fits; 0 unless this
	// limit refused the request.
	RetryAfter time.Duration
}

// Decision is what a request came to under all its limits: allowed only
// when every limit allowed it.
type Decision struct {
	Allowed bool
	// States has one entry per limit, in the order given.
	States []State
}

// RetryAfter is the longest wait any refusing limit asks for.
func (d Decision) RetryAfter() time.Duration {
	var out time.Duration
	for _, s := range d.States {
		out = max(out, s.RetryAfter)
	}
	return out
}

// Tightest is the state to report to a client: a refusing limit, else the
// one with the fewest events left (the first of equals).
func (d Decision) Tightest() (State, bool) {
	if len(d.States) == 0 {
		return State{}, false
	}
	best := d.States[0]
	for _, s := range d.States[1:] {
		if (s.RetryAfter > 0) != (best.RetryAfter > 0) {
			if s.RetryAfter > 0 {
				best = s
			}
			continue
		}
		if s.Remaining < best.Remaining {
			best = s
		}
	}
	return best, true
}

// gcra decides one event under l at now, given the key's theoretical
// arrival time tat (zero for a new key). It returns the state and the
// tat to store if the event goes through. It is the same arithmetic as
// the Redis script, so that both stores answer alike.
func gcra(l Limit, tat, now time.Time) (State, time.Time) {
	iv := l.interval()
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(iv)
	allowAt := next.Add(-iv * time.Duration(l.Burst))
	if now.Before(allowAt) {
		return State{Limit: l, ResetAfter: tat.Sub(now), RetryAfter: allowAt.Sub(now)}, tat
	}
	remaining := int(math.Floor(float64(now.Sub(allowAt)) / float64(iv)))
	return State{Limit: l, Remaining: remaining, ResetAfter: next.Sub(now)}, next
}

// windowOf returns the index of the budget window holding now, and how
// long until it ends.
func windowOf(now time.Time, window time.Duration) (int64, time.Duration) {
	w := int64(window / time.Second)
	if w < 1 {
		w = 1
	}
	idx := now.Unix() / w
	end := time.Unix((idx+1)*w, 0)
	return idx, end.Sub(now)
}
