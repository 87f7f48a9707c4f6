package ratelimit

import (
	"context"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys Local tracks before it sweeps out those
// whose state has expired.
const DefaultMaxKeys = 100_000

// Local keeps the counters in this process: each replica counts alone.
// It is safe for concurrent use. Memory stays bounded: once more than
// maxKeys keys are tracked, keys whose limits are back to a full burst
// and budgets of past windows are forgotten (they are then as new).
type Local struct {
	now     func() time.Time
	maxKeys int

	mu sync.Mutex
	// tats holds each (limit name, key)'s theoretical arrival time.
	tats map[string]time.Time
	// spent holds each key's tokens in its current budget window.
	spent map[string]spending
	// sweepAt is the size past which the next insert sweeps.
	sweepAt int
}

type spending struct {
	window int64         // the window's index
	size   time.Duration // the window's length, to tell when it is over
	tokens int64
}

// NewLocal returns an empty in-process store; now is its clock (time.Now
// when nil). maxKeys <= 0 means DefaultMaxKeys.
func NewLocal(now func() time.Time, maxKeys int) *Local {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Local{now: now, maxKeys: maxKeys, sweepAt: maxKeys, tats: map[string]time.Time{}, spent: map[string]spending{}}
}

// Allow decides one request of key under every limit at once: it counts
// against all of them only if all allow it.
func (l *Local) Allow(_ context.Context, key string, limits ...Limit) (Decision, error) {
	now := l.now()
	d := Decision{Allowed: true, States: make([]State, len(limits))}
	next := make([]time.Time, len(limits))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, lim := range limits {
		st, tat := gcra(lim, l.tats[lim.Name+"|"+key], now)
		d.States[i], next[i] = st, tat
		if st.RetryAfter > 0 {
			d.Allowed = false
		}
	}
	if !d.Allowed {
		return d, nil
	}
	for i, lim := range limits {
		l.tats[lim.Name+"|"+key] = next[i]
	}
	l.maybeSweep(now)
	return d, nil
}

// Spent returns the tokens key spent in the budget window holding now,
// and how long until that window ends.
func (l *Local) Spent(_ context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	idx, reset := windowOf(l.now(), window)
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.spent[key]; s.window == idx && s.size == window {
		return s.tokens, reset, nil
	}
	return 0, reset, nil
}

// Spend adds n tokens to key's current budget window.
func (l *Local) Spend(_ context.Context, key string, n int64, window time.Duration) error {
	now := l.now()
	idx, _ := windowOf(now, window)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.spent[key]
	if s.window != idx || s.size != window {
		s = spending{window: idx, size: window}
	}
	s.tokens += n
	l.spent[key] = s
	l.maybeSweep(now)
	return nil
}

// maybeSweep forgets what has expired (limits back to a full burst,
// budgets of windows that have ended) once the maps outgrow sweepAt; the
// next sweep waits until they have doubled again, so that sweeping costs
// O(1) per insert on average.
func (l *Local) maybeSweep(now time.Time) {
	if len(l.tats)+len(l.spent) <= l.sweepAt {
		return
	}
	for k, tat := range l.tats {
		if !tat.After(now) {
			delete(l.tats, k)
		}
	}
	for k, s := range l.spent {
		if idx, _ := windowOf(now, s.size); idx != s.window {
			delete(l.spent, k)
		}
	}
	l.sweepAt = max(l.maxKeys, 2*(len(l.tats)+len(l.spent)))
}
