package circuit

import (
	"errors"
	"fmt"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/config"
)

// ErrDisabled is returned when an operation needs circuit breakers on.
var ErrDisabled = errors.New("circuit breakers are disabled")

// ErrCircuitForcedOpen is returned (inside an *LLMError of kind
// llm.KindCircuitOpen) when the circuit refusing the call is held open by an
// operator: it does not recover on its own. It wraps ErrCircuitOpen, so
// errors.Is(err, ErrCircuitOpen) holds for every open rejection.
var ErrCircuitForcedOpen = fmt.Errorf("held open by an operator: %w", ErrCircuitOpen)

// ForceOpen holds the circuit open until Close or Reset, like
// resilience4j's FORCED_OPEN: it rejects every call and never drifts to
// half-open. Calls in flight record nothing into the new state. With
// circuit breakers disabled there is nothing to hold open: ErrDisabled.
func (c *Circuit) ForceOpen(reason string) error {
	c.mu.Lock()
	if !c.enabled {
		c.mu.Unlock()
		return ErrDisabled
	}
	c.syncLocked()
	from := c.stateLocked()
	c.forced = true
	c.gen++
	if c.cb.State() != circuitbreaker.OpenState {
		c.control(reason, c.cb.Open)
	} else {
		// Already open: failsafe-go fires no listener, so note it here.
		c.noteTransition(Transition{Circuit: c.name, From: from, To: StateOpen, Reason: reason, At: c.now(), Forced: true})
	}
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
	return nil
}

// Close closes the circuit once; it then counts normally, from zero: the
// failure streak and failsafe-go's failure window start afresh, so that the
// next opening takes the full failure_threshold. Statistics are kept. There
// is no forced-closed state.
func (c *Circuit) Close(reason string) {
	c.mu.Lock()
	if c.enabled {
		c.closeLocked(reason)
	}
	c.counts.consecutive = 0
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
}

// Reset closes the circuit and zeroes its statistics, failsafe-go's own
// failure window included; its event log keeps the history, with a reset
// entry. It works with circuit breakers disabled too (statistics only).
func (c *Circuit) Reset(reason string) {
	c.mu.Lock()
	if c.enabled {
		c.closeLocked(reason)
	}
	c.counts = counters{lastStateChangeAt: c.counts.lastStateChangeAt}
	c.events.add(Event{At: c.now(), Type: EventReset, Reason: reason})
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
}

// closeLocked ends any forced or tripped state as an operator's change, so
// that calls in flight record nothing into the closed state, and starts the
// failure count afresh. Requires mu.
//
// failsafe-go's Close does nothing to a breaker that is already closed, so
// the failures in its window would still count toward the next opening;
// the breaker is therefore rebuilt, after the transition has been noted.
func (c *Circuit) closeLocked(reason string) {
	c.syncLocked()
	from := c.stateLocked()
	c.forced = false
	c.gen++
	c.trials = 0
	if c.cb.State() != circuitbreaker.ClosedState {
		c.control(reason, c.cb.Close)
	} else if from != StateClosed {
		c.noteTransition(Transition{Circuit: c.name, From: from, To: StateClosed, Reason: reason, At: c.now(), Forced: true})
	}
	c.build(c.cfg, c.enabled, c.model)
}

// control runs a forced breaker change so that the listener marks the
// transition as an operator's. Requires mu.
func (c *Circuit) control(reason string, fn func()) {
	c.reason, c.forcing = reason, true
	fn()
	c.reason, c.forcing = "", false
}

// What a reload did to a circuit.
const (
	reconfigNone    = ""
	reconfigRebuilt = "rebuilt"
	reconfigBulk    = "max_concurrent"
)

// reconfigure applies new settings. Unchanged settings keep the state; a
// changed circuit is rebuilt closed and keeps its statistics and events,
// except the failure streak, which starts at 0 with the new breaker. A
// change to max_concurrent alone applies in place: the bulkhead is not the
// breaker, and an operator tuning it during an outage must not close a
// tripped circuit. It reports which of the three happened.
func (c *Circuit) reconfigure(cfg config.Circuit, enabled, logChanges bool, model string) string {
	c.mu.Lock()
	c.logChanges = logChanges
	if c.cfg == cfg && c.enabled == enabled && c.model == model {
		c.mu.Unlock()
		return reconfigNone
	}
	breaker := func(x config.Circuit) config.Circuit { x.MaxConcurrent = 0; return x }
	if breaker(c.cfg) == breaker(cfg) && c.enabled == enabled && c.model == model {
		from := c.cfg.MaxConcurrent
		c.cfg.MaxConcurrent = cfg.MaxConcurrent
		c.events.add(Event{At: c.now(), Type: EventReconfig,
			Reason: fmt.Sprintf("max_concurrent changed from %d to %d by a config reload; state kept", from, cfg.MaxConcurrent)})
		c.mu.Unlock()
		return reconfigBulk
	}
	c.syncLocked()
	from := c.stateLocked()
	c.build(cfg, enabled, model)
	to := c.stateLocked()
	now := c.now()
	c.events.add(Event{At: now, Type: EventReconfig, Reason: "settings changed by a config reload"})
	if from != to {
		c.counts.lastStateChangeAt = now
		c.noteTransition(Transition{Circuit: c.name, From: from, To: to, Reason: "rebuilt by a config reload", At: now})
	}
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
	return reconfigRebuilt
}
