package circuit

import (
	"fmt"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
)

// Selector picks the targets an operator's action applies to: every
// target when zero, else the one with this provider and model.
type Selector struct {
	Provider, Model string
}

// All selects every target of a circuit.
var All = Selector{}

func (s Selector) String() string { return s.Provider + "/" + s.Model }

// selectLocked returns the selected targets, or an error wrapping
// ErrUnknownTarget that lists the known ones.
func (c *Circuit) selectLocked(sel Selector) ([]*target, error) {
	if sel == All {
		return c.targets, nil
	}
	known := make([]string, 0, len(c.targets))
	for _, t := range c.targets {
		if t.spec.Provider == sel.Provider && t.spec.Model == sel.Model {
			return []*target{t}, nil
		}
		known = append(known, t.id())
	}
	return nil, fmt.Errorf("%w %q of circuit %s (known: %s)", ErrUnknownTarget, sel.String(), c.name, strings.Join(known, ", "))
}

// Targets lists the circuit's targets as provider/model.
func (c *Circuit) Targets() []Selector {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Selector, 0, len(c.targets))
	for _, t := range c.targets {
		out = append(out, Selector{Provider: t.spec.Provider, Model: t.spec.Model})
	}
	return out
}

// each runs fn on every selected target with the lock held, then delivers
// the transitions it caused.
func (c *Circuit) each(sel Selector, fn func(t *target, now time.Time) error) error {
	c.mu.Lock()
	targets, err := c.selectLocked(sel)
	if err == nil {
		now := c.now()
		for _, t := range targets {
			if err = fn(t, now); err != nil {
				break
			}
		}
	}
	c.mu.Unlock()
	c.deliver()
	return err
}

// ForceOpen holds the selected targets open until Close or Reset, like
// resilience4j's FORCED_OPEN: they reject every call, never drift to
// half-open, and stay held through reloads. Calls in flight record
// nothing into the new state. With circuit breakers disabled there is
// nothing to hold open: ErrDisabled.
func (c *Circuit) ForceOpen(reason string, sel Selector) error {
	return c.each(sel, func(t *target, now time.Time) error {
		if !c.enabled {
			return ErrDisabled
		}
		t.syncLocked(now)
		from := t.stateLocked(now)
		t.forced = true
		t.gen++
		t.stopProbe()
		if t.cb.State() != circuitbreaker.OpenState {
			t.control(reason, t.cb.Open)
		} else {
			// Already open: failsafe-go fires no listener, so note it here.
			c.noteTransitionLocked(t, Transition{Circuit: c.name, Provider: t.spec.Provider, Model: t.spec.Model,
				From: from, To: StateOpen, Reason: reason, At: now, Forced: true})
		}
		return nil
	})
}

// Close closes the selected targets once; they then count normally, from
// zero: the failure streak and failsafe-go's failure window start afresh.
// Statistics are kept. There is no forced-closed state.
func (c *Circuit) Close(reason string, sel Selector) error {
	return c.each(sel, func(t *target, _ time.Time) error {
		if c.enabled {
			c.closeLocked(t, reason)
		}
		t.counts.consecutive = 0
		return nil
	})
}

// Reset closes the selected targets and zeroes their statistics and
// cooldowns; the event log keeps the history, with a reset entry. It works
// with circuit breakers disabled too (statistics only).
func (c *Circuit) Reset(reason string, sel Selector) error {
	return c.each(sel, func(t *target, now time.Time) error {
		if c.enabled {
			c.closeLocked(t, reason)
		}
		t.counts = counters{lastStateChangeAt: t.counts.lastStateChangeAt}
		t.coolUntil = now
		ev := Event{At: now, Type: EventReset, Reason: reason}
		if sel != All || len(c.targets) > 1 {
			ev.Provider, ev.Model = t.spec.Provider, t.spec.Model
		}
		c.events.add(ev)
		return nil
	})
}

// closeLocked ends any forced or tripped state of t as an operator's
// change, so that calls in flight record nothing into the closed state,
// and starts the failure count afresh.
//
// failsafe-go's Close does nothing to a breaker that is already closed, so
// the failures in its window would still count toward the next opening;
// the breaker is therefore rebuilt, after the transition has been noted.
func (c *Circuit) closeLocked(t *target, reason string) {
	now := c.now()
	t.syncLocked(now)
	from := t.stateLocked(now)
	t.forced = false
	t.gen++
	t.trials = 0
	t.coolUntil = now
	if t.cb.State() != circuitbreaker.ClosedState {
		t.control(reason, t.cb.Close)
	} else if from != StateClosed {
		c.noteTransitionLocked(t, Transition{Circuit: c.name, Provider: t.spec.Provider, Model: t.spec.Model,
			From: from, To: StateClosed, Reason: reason, At: now, Forced: true})
	}
	t.build(c.s)
}
