package circuit

import (
	"time"
)

// TargetStatus is a point-in-time view of one target.
type TargetStatus struct {
	Provider string
	Model    string
	// URL is the provider's base URL as it may be shown.
	URL    string
	State  string
	Forced bool
	// Admits is true when the target would take a call now.
	Admits bool
	// CoolingDownUntil is set while the upstream's Retry-After holds the
	// target back.
	CoolingDownUntil *time.Time
	// RemainingDelay is how long an open target keeps rejecting; 0 when
	// not open or forced open.
	RemainingDelay time.Duration
	// CurrentRecoveryTimeout is the open delay the target has now: the
	// recovery timeout grown by each reopening since it last closed.
	CurrentRecoveryTimeout time.Duration
	Stats                  Stats
	RecentTransitions      []Transition
	InFlight               int
}

// CircuitStatus is a point-in-time view of a circuit for health reports.
// Its State, Forced, Model, Target and RemainingDelay are its first
// target's; Stats and InFlight add up all targets.
type CircuitStatus struct {
	Name   string
	State  string
	Forced bool
	// Settings are the circuit's effective settings.
	Settings Settings
	Model    string
	// Target is the first target's base URL, fit to show.
	Target         string
	RemainingDelay time.Duration
	// Available is true while any target admits calls.
	Available         bool
	Stats             Stats
	RecentTransitions []Transition
	InFlight          int
	Targets           []TargetStatus
}

// TargetReport describes one target in an error that no target answered.
type TargetReport struct {
	Provider         string     `json:"provider"`
	Model            string     `json:"model"`
	State            string     `json:"state"`
	CoolingDownUntil *time.Time `json:"cooling_down_until,omitempty"`
	LastError        *string    `json:"last_error"`
}

// Status reports the circuit, making a due lazy open→half-open move
// visible (and logged) first.
func (c *Circuit) Status() CircuitStatus {
	c.mu.Lock()
	now := c.now()
	st := CircuitStatus{
		Name:              c.name,
		Settings:          c.s,
		RecentTransitions: append([]Transition(nil), c.recent...),
	}
	var sum counters
	for i, t := range c.targets {
		t.syncLocked(now)
		ts := TargetStatus{
			Provider: t.spec.Provider, Model: t.spec.Model, URL: t.spec.URL,
			State: t.stateLocked(now), Forced: t.forced,
			RemainingDelay:         t.remainingLocked(now),
			CurrentRecoveryTimeout: t.delay,
			Stats:                  t.counts.snapshot(),
			RecentTransitions:      append([]Transition(nil), t.recent...),
			InFlight:               t.inFlight,
		}
		if !c.enabled {
			ts.CurrentRecoveryTimeout = c.s.RecoveryTimeout
		}
		ts.Admits, _ = t.admitsLocked(now)
		if t.coolingLocked(now) > 0 {
			until := t.coolUntil.UTC()
			ts.CoolingDownUntil = &until
		}
		st.Available = st.Available || ts.Admits
		st.InFlight += t.inFlight
		sum.add(&t.counts)
		if i == 0 {
			st.State, st.Forced, st.Model, st.Target, st.RemainingDelay = ts.State, ts.Forced, ts.Model, ts.URL, ts.RemainingDelay
			sum.consecutive = t.counts.consecutive
		}
		st.Targets = append(st.Targets, ts)
	}
	st.Stats = sum.snapshot()
	c.mu.Unlock()
	c.deliver()
	return st
}
