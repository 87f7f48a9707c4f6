package circuit

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/internal/infra/llm"
)

// target is one (circuit, target) pair: a failsafe-go breaker, a bulkhead,
// a cooldown and statistics of its own. Every field is guarded by its
// circuit's mutex, and so is every call into cb: failsafe-go runs state
// listeners synchronously on the calling goroutine, so onStateChanged
// relies on the caller's lock.
//
// failsafe-go records every error its handle conditions do not match as a
// success and pairs each half-open permit with exactly one record. A
// neutral outcome must change nothing, so the breaker is driven by hand:
// the target admits calls itself, limits half-open trials to
// success_threshold, and only for a counted outcome takes a permit and
// records it at once. It also keeps the open delay itself (openUntil), so
// that each reopening can wait longer (recovery backoff), and trips the
// breaker on a failure rate, which failsafe-go cannot combine with a
// consecutive count.
type target struct {
	c    *Circuit
	spec TargetSpec

	cb     circuitbreaker.CircuitBreaker[llm.ChatResponse]
	forced bool
	// gen counts transitions and rebuilds; a permit records into the
	// breaker only if nothing changed since it was taken.
	gen      uint64
	trials   int
	inFlight int
	counts   counters
	recent   []Transition
	// openUntil is when an open (not forced) breaker half-opens; delay is
	// the open delay it was given, reopens the reopenings from half-open
	// since the target last closed.
	openUntil time.Time
	delay     time.Duration
	reopens   int
	// coolUntil: the upstream asked, with a 429 or 503 and Retry-After,
	// not to be called before then.
	coolUntil time.Time
	window    rateWindow
	probe     *time.Timer

	reason  string    // why the transition about to happen happens
	forcing bool      // the transition about to happen is an operator's
	at      time.Time // when it happened, if not now (the lazy half-open)
}

type permit struct {
	gen   uint64
	trial bool
}

// id is the target as logs, events and errors name it.
func (t *target) id() string { return t.spec.ID() }

// build (re)creates the breaker and zeroes the failure streak, since the
// new breaker has counted nothing yet. An operator's forced open holds
// through it: only close or reset end it.
func (t *target) build(s Settings) {
	t.counts.consecutive = 0
	t.cb = circuitbreaker.NewBuilder[llm.ChatResponse]().
		WithFailureThreshold(uint(s.FailureThreshold)).
		WithSuccessThreshold(uint(s.SuccessThreshold)).
		WithDelay(s.RecoveryTimeout).
		OnStateChanged(t.onStateChanged).
		Build()
	t.trials = 0
	t.reopens = 0
	t.openUntil = time.Time{}
	t.delay = s.RecoveryTimeout
	t.window = newRateWindow(s.FailureRateWindow)
	t.stopProbe()
	t.gen++
}

// recoveryDelay is the open delay after n reopenings from half-open:
// recovery_timeout × multiplier^n, capped at max_recovery_timeout.
func recoveryDelay(s Settings, n int) time.Duration {
	d := float64(s.RecoveryTimeout) * math.Pow(max(s.RecoveryBackoffMultiplier, 1), float64(n))
	limit := max(s.MaxRecoveryTimeout, s.RecoveryTimeout)
	if d > float64(limit) || math.IsInf(d, 0) || math.IsNaN(d) {
		return limit
	}
	return time.Duration(d)
}

// busyLocked reports whether the target's bulkhead refuses another call.
func (t *target) busyLocked() bool {
	m := t.c.s.MaxConcurrent
	return m > 0 && t.inFlight >= m
}

// syncLocked makes the move from open to half-open happen as soon as the
// open delay has passed, so that health, logs and callers agree. HalfOpen()
// spends no trial slot. A forced open never drifts to half-open.
func (t *target) syncLocked(now time.Time) {
	if t.c.enabled && !t.forced && t.cb.State() == circuitbreaker.OpenState && !now.Before(t.openUntil) {
		t.reason = fmt.Sprintf("recovery timeout of %s elapsed", t.delay)
		t.at = t.openUntil
		t.cb.HalfOpen()
		t.reason = ""
	}
}

func (t *target) stateLocked(now time.Time) string {
	if !t.c.enabled {
		return StateDisabled
	}
	if t.forced {
		return StateOpen
	}
	switch t.cb.State() {
	case circuitbreaker.OpenState:
		if !now.Before(t.openUntil) {
			return StateHalfOpen
		}
		return StateOpen
	case circuitbreaker.HalfOpenState:
		return StateHalfOpen
	default:
		return StateClosed
	}
}

// remainingLocked is how long an open, not forced, target keeps rejecting.
func (t *target) remainingLocked(now time.Time) time.Duration {
	if !t.c.enabled || t.forced || t.cb.State() != circuitbreaker.OpenState {
		return 0
	}
	return max(0, t.openUntil.Sub(now))
}

// coolingLocked is how long the target still cools down; 0 when it does not.
func (t *target) coolingLocked(now time.Time) time.Duration {
	if !t.c.enabled {
		return 0
	}
	return max(0, t.coolUntil.Sub(now))
}

// admitsLocked reports, without side effects, whether a call would be
// admitted now, and if not, how long until it might be.
func (t *target) admitsLocked(now time.Time) (bool, time.Duration) {
	if !t.c.enabled {
		return true, 0
	}
	if t.forced {
		return false, t.c.s.RecoveryTimeout
	}
	if d := t.coolingLocked(now); d > 0 {
		return false, max(d, t.remainingLocked(now))
	}
	switch t.stateLocked(now) {
	case StateOpen:
		return false, t.remainingLocked(now)
	case StateHalfOpen:
		if t.c.s.RecoveryProbe || (t.cb.State() == circuitbreaker.HalfOpenState && t.trials >= t.c.s.SuccessThreshold) {
			return false, busyRetryAfter
		}
	}
	if t.busyLocked() {
		return false, busyRetryAfter
	}
	return true, 0
}

// refusal is why a target turned a call away without a request.
type refusal struct {
	kind    llm.Kind
	err     error
	state   string
	retry   time.Duration
	message string
}

// busyRetryAfter is the Retry-After of a bulkhead refusal: calls finish
// within the circuit's timeout, usually much sooner.
const busyRetryAfter = time.Second

// admitLocked admits a call to the target or says why not. probe is true
// for Nexus's own recovery probe, the only caller admitted as a trial when
// recovery_probe is on.
func (t *target) admitLocked(now time.Time, probe bool) (permit, *refusal) {
	if !t.c.enabled {
		t.inFlight++
		return permit{gen: t.gen}, nil
	}
	t.syncLocked(now)
	if !t.forced && !probe {
		if d := t.coolingLocked(now); d > 0 {
			return permit{}, t.refuseLocked(now, llm.KindCircuitOpen, ErrCoolingDown, d,
				fmt.Sprintf("target %s is cooling down for %s at the upstream's request (Retry-After)", t.id(), d.Round(time.Millisecond)),
				"calls skipped: the target is cooling down")
		}
	}
	if !t.forced {
		switch t.cb.State() {
		case circuitbreaker.ClosedState:
			if !probe {
				if t.busyLocked() {
					return permit{}, t.refuseBusyLocked(now)
				}
				t.inFlight++
				return permit{gen: t.gen}, nil
			}
		case circuitbreaker.HalfOpenState:
			if t.trials < t.c.s.SuccessThreshold && (probe || !t.c.s.RecoveryProbe) {
				if t.busyLocked() {
					return permit{}, t.refuseBusyLocked(now)
				}
				t.trials++
				t.inFlight++
				return permit{gen: t.gen, trial: true}, nil
			}
		}
	}
	state := t.stateLocked(now)
	msg := fmt.Sprintf("circuit %s is %s after repeated LLM failures; no request was sent", t.c.name, state)
	cause, retry := ErrCircuitOpen, t.remainingLocked(now)
	switch {
	case t.forced:
		retry = t.c.s.RecoveryTimeout
		msg = fmt.Sprintf("circuit %s is held open by an operator; no request was sent", t.c.name)
		cause = ErrCircuitForcedOpen
	case state == StateHalfOpen && t.c.s.RecoveryProbe:
		retry = busyRetryAfter
		msg = fmt.Sprintf("circuit %s is half-open and a recovery probe is testing it; no request was sent", t.c.name)
	case state == StateHalfOpen:
		retry = busyRetryAfter
		msg = fmt.Sprintf("circuit %s is half-open and its trial calls are in flight; no request was sent", t.c.name)
	}
	if len(t.c.targets) > 1 {
		msg = fmt.Sprintf("target %s is %s; no request was sent", t.id(), state)
		if t.forced {
			msg = fmt.Sprintf("target %s is held open by an operator; no request was sent", t.id())
		}
	}
	return permit{}, t.refuseLocked(now, llm.KindCircuitOpen, cause, retry, msg, "calls rejected without contacting the LLM")
}

func (t *target) refuseBusyLocked(now time.Time) *refusal {
	msg := fmt.Sprintf("circuit %s already has %d calls in flight, its max_concurrent; no request was sent", t.c.name, t.c.s.MaxConcurrent)
	if len(t.c.targets) > 1 {
		msg = fmt.Sprintf("target %s already has %d calls in flight, its max_concurrent; no request was sent", t.id(), t.c.s.MaxConcurrent)
	}
	return t.refuseLocked(now, llm.KindCircuitBusy, ErrCircuitBusy, busyRetryAfter, msg,
		"calls refused: max_concurrent calls already in flight")
}

func (t *target) refuseLocked(now time.Time, kind llm.Kind, cause error, retry time.Duration, msg, event string) *refusal {
	t.counts.rejected++
	t.c.events.rejected(now, kind, t.spec, event)
	return &refusal{kind: kind, err: cause, state: t.stateLocked(now), retry: retry, message: msg}
}

// finishLocked records an admitted call's outcome and ends its stay in
// flight. msg is the redacted description of err.
func (t *target) finishLocked(p permit, outcome llm.Outcome, kind llm.Kind, err error, msg string, now time.Time, slow bool) {
	t.inFlight--
	s := t.c.s
	current := t.c.enabled && p.gen == t.gen
	if p.trial && current && outcome == llm.Neutral {
		// Only a neutral trial hands its slot back: at most
		// success_threshold trials reach the LLM per half-open period.
		t.trials--
	}
	switch outcome {
	case llm.Success:
		t.counts.success++
		if p.gen == t.gen {
			t.counts.consecutive = 0
		}
		if current {
			if p.trial {
				t.reason = fmt.Sprintf("%d trial call(s) succeeded", s.SuccessThreshold)
			}
			t.recordLocked(p, now, false, slow)
		}
	case llm.Failure:
		t.counts.failure++
		if kind == llm.KindTimeout {
			t.counts.timeouts++
		}
		if p.gen == t.gen {
			// The streak mirrors the breaker's count: a call admitted
			// before a state change, a close or a rebuild does not
			// move it.
			t.counts.consecutive++
		}
		t.counts.lastFailureAt = now
		t.counts.lastError = string(kind) + ": " + msg
		t.c.events.add(Event{At: now, Type: EventFailure, Kind: string(kind), Reason: msg, Provider: t.spec.Provider, Model: t.spec.Model})
		if t.c.enabled {
			t.coolDownLocked(err, now)
		}
		if current {
			if p.trial {
				t.reason = "trial call failed: " + t.counts.lastError
			} else {
				t.reason = fmt.Sprintf("%d consecutive failures, last: %s", s.FailureThreshold, t.counts.lastError)
			}
			t.recordLocked(p, now, true, slow)
		}
	}
}

// coolDownLocked starts a cooldown when a 429 or 503 came with Retry-After:
// the target is skipped, without requests, for min(Retry-After,
// max_retry_after), even though its breaker may still be closed.
func (t *target) coolDownLocked(err error, now time.Time) {
	status := llm.HTTPStatus(err)
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return
	}
	d := min(llm.RetryAfter(err), t.c.s.MaxRetryAfter)
	if d <= 0 {
		return
	}
	if until := now.Add(d); until.After(t.coolUntil) {
		t.coolUntil = until
		t.c.events.add(Event{At: now, Type: EventCooldown, Provider: t.spec.Provider, Model: t.spec.Model,
			Reason: fmt.Sprintf("upstream HTTP %d asked to wait %s (Retry-After); the target is skipped until %s", status, d, until.UTC().Format(time.RFC3339Nano))})
	}
}

// recordLocked takes the breaker's permit just before recording, so that
// the breaker's own half-open permit count stays balanced (the target
// limits trials itself), then checks the failure and slow-call rates.
func (t *target) recordLocked(p permit, now time.Time, failed, slow bool) {
	if p.trial {
		t.cb.TryAcquirePermit()
	}
	closed := t.cb.State() == circuitbreaker.ClosedState
	if failed {
		t.cb.RecordFailure()
	} else {
		t.cb.RecordSuccess()
	}
	t.reason = ""
	s := t.c.s
	if slow {
		t.counts.slow++
	}
	if !closed || t.cb.State() != circuitbreaker.ClosedState || (s.FailureRateThreshold <= 0 && s.SlowCallRateThreshold <= 0) {
		return
	}
	t.window.add(now, failed, slow)
	calls, failures, slowCalls := t.window.totals(now)
	if calls < int64(s.MinimumCalls) {
		return
	}
	switch {
	case s.FailureRateThreshold > 0 && float64(failures)*100 >= s.FailureRateThreshold*float64(calls):
		t.reason = fmt.Sprintf("failure rate %.0f%% (%d of %d calls) in the last %s reached failure_rate_threshold %g%%; last: %s",
			100*float64(failures)/float64(calls), failures, calls, s.FailureRateWindow, s.FailureRateThreshold, t.counts.lastError)
	case s.SlowCallRateThreshold > 0 && float64(slowCalls)*100 >= s.SlowCallRateThreshold*float64(calls):
		t.reason = fmt.Sprintf("slow-call rate %.0f%% (%d of %d calls slower than %s to their first token) in the last %s reached slow_call_rate_threshold %g%%",
			100*float64(slowCalls)/float64(calls), slowCalls, calls, s.SlowCallThreshold, s.FailureRateWindow, s.SlowCallRateThreshold)
	default:
		return
	}
	t.cb.Open()
	t.reason = ""
}

// onStateChanged runs inside a call into cb, with the circuit's mutex held.
func (t *target) onStateChanged(e circuitbreaker.StateChangedEvent) {
	c := t.c
	t.gen++
	t.trials = 0
	at := c.now()
	if !t.at.IsZero() {
		at, t.at = t.at, time.Time{}
	}
	t.counts.lastStateChangeAt = at
	switch e.NewState {
	case circuitbreaker.OpenState:
		if e.OldState == circuitbreaker.HalfOpenState && !t.forcing {
			t.reopens++
		}
		t.delay = recoveryDelay(c.s, t.reopens)
		t.openUntil = at.Add(t.delay)
		if !t.forcing && !t.forced {
			c.scheduleProbeLocked(t, t.delay)
		}
	case circuitbreaker.ClosedState:
		t.reopens = 0
		t.delay = c.s.RecoveryTimeout
		t.window = newRateWindow(c.s.FailureRateWindow)
		t.stopProbe()
	}
	c.noteTransitionLocked(t, Transition{
		Circuit: c.name, Provider: t.spec.Provider, Model: t.spec.Model,
		From: e.OldState.String(), To: e.NewState.String(),
		Reason: t.reason, At: at, Forced: t.forcing,
	})
}

// control runs a forced breaker change so that the listener marks the
// transition as an operator's.
func (t *target) control(reason string, fn func()) {
	t.reason, t.forcing = reason, true
	fn()
	t.reason, t.forcing = "", false
}

func (t *target) stopProbe() {
	if t.probe != nil {
		t.probe.Stop()
		t.probe = nil
	}
}

// rateWindow counts counted outcomes over a sliding window, in 60 buckets.
type rateWindow struct {
	width   time.Duration
	buckets [60]struct {
		start                 int64 // bucket index (time / width) it holds
		calls, failures, slow int64
	}
}

func newRateWindow(span time.Duration) rateWindow {
	w := rateWindow{width: span / 60}
	if w.width <= 0 {
		w.width = time.Second
	}
	for i := range w.buckets {
		w.buckets[i].start = -1
	}
	return w
}

func (w *rateWindow) add(now time.Time, failed, slow bool) {
	n := now.UnixNano() / int64(w.width)
	b := &w.buckets[n%int64(len(w.buckets))]
	if b.start != n {
		b.start, b.calls, b.failures, b.slow = n, 0, 0, 0
	}
	b.calls++
	if failed {
		b.failures++
	}
	if slow {
		b.slow++
	}
}

func (w *rateWindow) totals(now time.Time) (calls, failures, slow int64) {
	n := now.UnixNano() / int64(w.width)
	for _, b := range w.buckets {
		if b.start >= 0 && n-b.start < int64(len(w.buckets)) {
			calls += b.calls
			failures += b.failures
			slow += b.slow
		}
	}
	return calls, failures, slow
}
